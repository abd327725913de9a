"""The auditors' and operators' command lines, run as real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from journals import EXAMPLES

from auction_engine.journal import JournalReader

AUCTION = json.loads((EXAMPLES / "seei-supply-2-lots.json").read_text())["auction"]["auction_id"]
BIN = Path(sys.executable).parent


def run(tool: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=120)


def simulated(tmp_path: Path) -> Path:
    out = run("auction-engine", "simulate", EXAMPLES / "seei-supply-2-lots.json", "--journal", tmp_path / "j")
    assert out.returncode == 0, out.stderr
    return tmp_path / "j"


def test_simulate_writes_a_journal_that_verifies_with_the_same_state(tmp_path: Path) -> None:
    journal = simulated(tmp_path)
    state = json.loads(run("auction-engine", "simulate", EXAMPLES / "seei-supply-2-lots.json").stdout)["state_hash"]
    out = run("auction-replay", "verify", journal, "--json")
    assert out.returncode == 0, out.stdout
    result = json.loads(out.stdout)
    assert result["ok"] and result["state_hash"] == state and list(result["auctions"]) == [AUCTION]
    again = run("auction-engine", "simulate", EXAMPLES / "seei-supply-2-lots.json", "--journal", journal)
    assert again.returncode == 2 and "new or empty directory" in again.stderr


def test_verify_fails_with_the_place_of_the_damage(tmp_path: Path) -> None:
    journal = simulated(tmp_path)
    segment = next(journal.glob("*.journal"))
    _, where = list(JournalReader(segment).records())[7]
    data = bytearray(segment.read_bytes())
    data[where.offset + 20] ^= 0x10
    segment.write_bytes(bytes(data))
    out = run("auction-replay", "verify", journal)
    assert out.returncode == 1
    assert "FAILED bad_crc" in out.stdout and f"at byte {where.offset} (record 7 of the segment)" in out.stdout
    recovered = run("auction-engine", "recover", journal)
    assert recovered.returncode == 4 and "bad_crc" in recovered.stderr
    assert run("auction-engine", "repair", journal).returncode == 0
    assert run("auction-engine", "recover", journal).stdout.startswith("recovered 7 records")
    assert run("auction-replay", "verify", journal).returncode == 0


def test_export_timeline_and_report(tmp_path: Path) -> None:
    journal = simulated(tmp_path)
    out = run("auction-replay", "export", journal, "--auction", AUCTION, "-o", tmp_path / "a.journal")
    assert out.returncode == 0 and "OK" in out.stdout
    assert run("auction-replay", "verify", tmp_path / "a.journal").returncode == 0
    csv = run("auction-replay", "timeline", tmp_path / "a.journal", "--auction", AUCTION)
    lines = csv.stdout.splitlines()
    assert lines[0].startswith("gseq,time,lot_id,pseudonym,amount") and "bidder_id" not in lines[0]
    rows = json.loads(run("auction-replay", "timeline", journal, "--auction", AUCTION, "--format", "json",
                          "--reveal").stdout)
    assert len(rows) == len(lines) - 1 and all(r["bidder_id"] for r in rows)
    assert {r["outcome"] for r in rows} == {"accepted", "rejected"}
    report = run("auction-replay", "report", journal, "--auction", AUCTION, "-o", tmp_path / "r.html")
    assert report.returncode == 0 and (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    missing = run("auction-replay", "timeline", journal, "--auction", "NOPE")
    assert missing.returncode == 1 and "unknown_auction" in missing.stderr
    assert run("auction-replay", "verify", tmp_path / "nothing").returncode == 2
