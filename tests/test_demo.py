"""`auction-engine demo`, run for real as a subprocess: a short auction with 4 bots."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(tool: str, *args: object, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow  # a real 8-second auction in a subprocess: `make test-slow` runs it
def test_short_demo_awards_both_lots_and_its_journal_verifies(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    done = run("auction-engine", "demo", "--seconds", 8, "--bidders", 4, "--seed", 1, "--data-dir", data)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "\x1b[" not in out  # not a terminal: plain lines, no ANSI redraws
    # live progress: openings, the buyer's suspension and resumption, the closes
    assert "L1 open: scheduled to close" in out and "L2 open: scheduled to close" in out
    assert "L1 SUSPENDED by the buyer" in out and "L2 resumed" in out
    assert "L1 CLOSED" in out and "L2 CLOSED" in out and "status: L1" in out
    # the award and the savings, per lot and in total, identities revealed after close
    results = out[out.index("RESULTS of"):]
    assert len(re.findall(r"awarded to +[a-z-]+ \(B-[0-9A-Z]{4}, [a-z]+\)", results)) == 2
    assert len(re.findall(r"savings +[0-9 ]+\.[0-9]{2} MAD \([0-9]+\.[0-9]{2} %\)", results)) == 2
    assert re.search(r"TOTAL awarded .* SAVINGS [0-9 ]+\.[0-9]{2} MAD", results)
    # last-second bids extended the close (the timings scale with --seconds)
    extensions = [int(n) for n in re.findall(r"(\d+) extension\(s\);", results)]
    assert len(extensions) == 2 and sum(extensions) >= 1, results
    assert "EXTENDED #1" in out
    # the journal it wrote verifies, in the demo and with the auditors' command line
    verified = re.search(r"auction-replay verify: OK, (\d+) records, state ([0-9a-f]{16})", out)
    assert verified, out
    again = run("auction-replay", "verify", data / "journal", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    checked = json.loads(again.stdout)
    assert checked["ok"] and checked["records"] == int(verified[1])
    assert checked["state_hash"].startswith(verified[2])
    assert f"auction-replay verify {data / 'journal'}" in out
    # the service's JSON logs went to a file in the data dir, not to the display
    first = (data / "service.log").read_text().splitlines()[0]
    assert json.loads(first)["logger"].startswith("gateway")


def test_bad_arguments_exit_2() -> None:
    done = run("auction-engine", "demo", "--bidders", 1, timeout=30)
    assert done.returncode == 2
    assert "--bidders" in done.stderr
