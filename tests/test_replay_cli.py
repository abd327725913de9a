"""The auditors' and operators' command lines, run as real subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from journals import EXAMPLES, segment, stream_commands, write

from auction_engine.journal import JournalReader
from replay.verify import _verify_shared

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


def same_report(out: subprocess.CompletedProcess[str], *, as_json: bool) -> object:
    """What `verify` printed, without the time it took (the only part that may differ)."""
    if as_json:
        return {k: v for k, v in json.loads(out.stdout).items() if k != "seconds"}
    return re.sub(r" re-executed in \d+\.\d+ s$", " re-executed", out.stdout, count=1, flags=re.MULTILINE)


@pytest.mark.parametrize("tampered", [False, True], ids=["good", "tampered"])
def test_verify_jobs_gives_the_same_verdict_and_report_whatever_the_number(tmp_path: Path, tampered: bool) -> None:
    journal = tmp_path / "stream"
    write(journal, stream_commands(7, 400))  # several auctions, well under the size at which sharing is automatic
    if tampered:
        path = segment(journal)
        _, where = list(JournalReader(path).records())[150]
        data = bytearray(path.read_bytes())
        data[where.offset + 20] ^= 0x10
        path.write_bytes(bytes(data))
    else:  # --jobs 2 on this journal really is shared: the shares vouch for it, no one-process rerun
        assert _verify_shared(journal, 2) is not None
    for as_json in (False, True):
        flags = ["--json"] if as_json else []
        outs = [run("auction-replay", "verify", journal, *flags, *jobs) for jobs in ([], ["--jobs", 1], ["--jobs", 2])]
        assert {out.returncode for out in outs} == {1 if tampered else 0}, [out.stderr for out in outs]
        reports = [same_report(out, as_json=as_json) for out in outs]
        assert reports[0] == reports[1] == reports[2]
    if tampered:  # the last run, --jobs 2 --json: the damage itself, exactly located
        problem = json.loads(outs[2].stdout)["problem"]
        assert problem["code"] == "bad_crc" and problem["location"]["offset"] == where.offset


@pytest.mark.parametrize("value", ["0", "-1", "x", "2.5", ""])
def test_verify_refuses_a_number_of_jobs_that_is_not_a_positive_integer(tmp_path: Path, value: str) -> None:
    out = run("auction-replay", "verify", tmp_path, "--jobs", value)  # accepted, it would say "empty" (exit 1)
    assert out.returncode == 2 and out.stdout == ""
    assert "auction-replay verify: error: argument --jobs" in out.stderr and "Traceback" not in out.stderr


def test_a_service_data_directory_stands_for_its_journal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    out = run("auction-engine", "simulate", EXAMPLES / "seei-supply-2-lots.json", "--journal", data / "journal")
    assert out.returncode == 0, out.stderr
    (data / "api-keys.json").write_text("{}")
    direct, via_data = run("auction-replay", "verify", data / "journal"), run("auction-replay", "verify", data)
    assert direct.returncode == via_data.returncode == 0, via_data.stdout
    assert via_data.stdout.startswith(f"{data / 'journal'}: engine journal, 44 records checked")
    assert via_data.stdout.splitlines()[1:] == direct.stdout.splitlines()[1:]
    empty = run("auction-replay", "verify", tmp_path)  # no segment, no journal/: still a clear refusal
    assert empty.returncode == 1 and "no journal segment" in empty.stdout
