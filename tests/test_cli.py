"""The `auction-engine simulate` command, and `serve`'s start failures, run as real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from journals import stream_commands, write

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.json")  # auctions' (tenders': test_tender_scenario)
                  if "auction" in json.loads(p.read_text()))


def simulate(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auction_engine.cli", "simulate", *args],
                          capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(example: Path) -> None:
    done = simulate(str(example))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["results"]["final"] is True
    assert len(out["state_hash"]) == 64
    again = json.loads(simulate(str(example)).stdout)
    assert again["state_hash"] == out["state_hash"]  # deterministic


def test_seei_example_outcome() -> None:
    out = json.loads(simulate(str(ROOT / "examples/seei-supply-2-lots.json"), "--events").stdout)
    lots = {lot["lot_id"]: lot for lot in out["results"]["lots"]}
    assert lots["L1"]["status"] == lots["L2"]["status"] == "awarded"
    assert lots["L1"]["extensions"] >= 5 and lots["L2"]["extensions"] >= 3
    assert out["events_by_type"]["LotExtended"] == lots["L1"]["extensions"] + lots["L2"]["extensions"]
    assert set(out["bid_rejections"]) == {"step_too_large", "insufficient_step", "not_admitted"}
    assert lots["L1"]["awarded_price"].count(".") == 1 and lots["L1"]["closed_at"].endswith("Z")
    first = out["events"][0]
    assert first["type"] == "AuctionCreated" and first["time"].endswith("Z")


def test_table_and_anonymous() -> None:
    table = simulate(str(ROOT / "examples/seei-supply-2-lots.json"), "--table").stdout
    assert "Lot L1" in table and "savings" in table and "sofitech-sarl" in table
    anonymous = simulate(str(ROOT / "examples/seei-supply-2-lots.json"), "--anonymous").stdout
    assert "sofitech-sarl" not in anonymous and "B-" in anonymous


def test_bad_scenarios_list_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "auction": {"auction_id": "X", "title": "t", "currency": "MAD", "start": "2026-01-01T10:00:00Z",
                    "end": "2026-01-01T09:00:00Z", "lots": [{"lot_id": "L", "estimate": "1", "starting_price": "x"}]},
        "actions": [{"at": "soon", "bid": {"bidder": "b", "lot": "L", "amount": "1"}},
                    {"at": "+1m", "dance": {}}, {"at": "+1m", "bid": {"bidder": "b"}}],
    }))
    done = simulate(str(bad))
    assert done.returncode == 2 and done.stdout == ""
    for path in ("auction.end", "auction.lots[0].starting_price", "actions[0].at", "actions[1].dance",
                 "actions[2].bid"):
        assert path in done.stderr, (path, done.stderr)


@pytest.mark.parametrize(("content", "message"), [("{not json", "not valid JSON"), ("[]", "(root)")])
def test_unreadable_input(content: str, message: str) -> None:
    done = simulate("-", stdin=content)
    assert done.returncode == 2 and message in done.stderr


def test_missing_file() -> None:
    done = simulate("/nonexistent/scenario.json")
    assert done.returncode == 2 and "cannot read" in done.stderr


# -- `auction-engine serve`: start failures give their documented exit codes -----------------


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auction_engine.cli", "serve", "--host", "127.0.0.1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_serve_with_invalid_settings_exits_2_listing_every_problem(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.toml")
    done = subprocess.run([sys.executable, "-m", "auction_engine.cli", "serve", "--config", missing, "--port", "70000"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "AUCTION_ENGINE_BID_RAET": "5"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "auction-engine serve: invalid_settings: 3 problem(s) in the settings:",
        f"  {missing}: cannot read the settings file: No such file or directory",
        "  env:AUCTION_ENGINE_BID_RAET: unknown setting",
        "  override:port: must be an integer from 0 to 65535",
    ]


def test_serve_on_a_port_in_use_exits_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = serve("--port", str(taken.getsockname()[1]), "--data-dir", str(tmp_path))
    assert done.returncode == 3, done.stderr
    assert "auction-engine serve: [Errno 98]" in done.stderr and "Traceback" not in done.stderr


def test_serve_on_a_damaged_journal_exits_4(tmp_path: Path) -> None:
    write(tmp_path / "journal", stream_commands(3, 40))
    segment = next((tmp_path / "journal").glob("*.journal"))
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte mid-file: damage, not a torn tail
    segment.write_bytes(bytes(data))
    done = serve("--port", "0", "--data-dir", str(tmp_path))
    assert done.returncode == 4, done.stderr
    assert "the journal is damaged" in done.stderr and "Traceback" not in done.stderr


def test_serve_whose_journal_sync_process_cannot_start_exits_3(tmp_path: Path) -> None:
    program = ("import sys; sys.executable = sys.argv.pop(1); from auction_engine.cli import main; "
               "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", program, str(tmp_path / "no-such-python"), "serve", "--host",
                           "127.0.0.1", "--port", "0", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "no-such-python" in done.stderr and "Traceback" not in done.stderr
