"""`auction-engine simulate` of a whole grouped purchase (examples/grouped/three-members.json),
run as a real process: its contracts, deliveries and payments computed by hand, its
journal verified and re-executed by `auction-replay verify`, and an invalid scenario
answered with every problem and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "grouped" / "three-members.json"


def cli(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, input=stdin,
                          cwd=ROOT, timeout=120)


def test_the_example_runs_from_constitution_to_payments(tmp_path: Path) -> None:
    done = cli("auction_engine.cli", "simulate", str(EXAMPLE), "--journal", str(tmp_path / "j"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["excluded"] == ["m2"]  # revised after confirming, never confirmed again
    assert out["schedule"]["total"] == "19500.00" and out["schedule"]["final"] is True
    [auction] = out["auctions"]
    # The bots undercut each other by 100.00 from the starting prices down to their floors.
    assert [(lot["lot_id"], lot["winner_id"], lot["awarded_price"]) for lot in auction["lots"]] == [
        ("L1", "acme", "6100.00"), ("L2", "beta", "11500.00")]
    # L1 on 6100.00 of an estimate of 7500.00: A4 30.00 -> 24.40, TN 450.00 -> 366.00, no remainder;
    # L2: CH 1200.00 -> 1150.00.
    assert [(k["contract_id"], k["supplier"], k["total"], k["paid"]) for k in out["contracts"]] == [
        ("EEI-G1/L1/m1", "acme", "3904.00", "0.00"), ("EEI-G1/L1/m3", "acme", "2196.00", "2196.00"),
        ("EEI-G1/L2/m1", "beta", "11500.00", "5000.00")]
    assert out["contracts"][0]["rejected"] == {"A4": 5}
    assert out["refused"] == [{"command": "RecordDelivery", "actor": "m3", "code": "beyond_contract",
                               "message": "0 units remain to deliver"}]
    assert out["consolidation"]["articles"][0] == {"article": "A4", "ordered": 160, "delivered": 60, "received": 55,
                                                   "rejected": 5, "outstanding": 105}
    assert out["consolidation"]["members"][0]["outstanding"] == "10404.00"
    again = cli("auction_engine.cli", "simulate", "-", stdin=EXAMPLE.read_text())
    assert json.loads(again.stdout)["state_hash"] == out["state_hash"]  # reproducible
    verified = cli("replay.cli", "verify", str(tmp_path / "j"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"state {out['state_hash']}" in verified.stdout


def test_an_invalid_grouped_scenario_lists_every_problem() -> None:
    data = json.loads(EXAMPLE.read_text())
    data["steps"][0]["act"] = "dance"
    data["steps"][3]["colour"] = "blue"
    data["steps"][16]["step"] = "0.00"
    data["steps"][22]["amount"] = "12.345"
    done = cli("auction_engine.cli", "simulate", "-", stdin=json.dumps(data))
    assert done.returncode == 2 and done.stdout == ""
    problems = [line.strip() for line in done.stderr.splitlines()[1:]]
    assert problems == [
        "steps[0].act: must be one of accept, need, withdraw, confirm, schedule, launch, bots, deliver, receive, pay",
        "steps[3].colour: unknown field for need",
        "steps[16].step: must be above zero",
        "steps[22].amount: amount '12.345' has more than 2 decimals"]
