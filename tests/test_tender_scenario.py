"""`auction-engine simulate` on a tender scenario, through the real CLI as a subprocess:
publication to award with sealed deposits (real HPKE), a question, an amendment that
moves the opening, confirmations, a deposit set aside, a late one refused, k shares,
decisions; its journal verifies and gives the minutes; bad scenarios list every problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from journals import EXAMPLES

from auction_engine.tender_scenario import load_tender_scenario, run_tender_scenario
from tenders.messages import PublishAmendment, SubmitShare

EXAMPLE = EXAMPLES / "tender-supply-2-lots.json"


def cli(module: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_example_runs_from_publication_to_award(tmp_path: Path) -> None:
    done = cli("auction_engine.cli", "simulate", str(EXAMPLE), "--journal", str(tmp_path / "j"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["lots"] == {
        "L1": {"status": "awarded", "winner": "atlas-informatique", "amount": "900000.00", "reference": "964800.00",
               "reason": ""},
        "L2": {"status": "awarded", "winner": "eps-maroc", "amount": "45000.00", "reference": "47500.00",
               "reason": ""}}
    assert out["status"] == "decided" and out["opening_at"] == "2026-03-22T10:00:00.000000Z"  # moved by A1
    assert out["set_aside"] == ["omega-services"]
    assert [(r["actor"], r["command"], r["code"]) for r in out["refused_commands"]] == [
        ("late-comer", "DepositOffer", "deposit_closed")]
    assert out["events_by_type"] == {
        "TenderPublished": 1, "FileDownloaded": 5, "QuestionAsked": 1, "QuestionAnswered": 1, "OfferDeposited": 8,
        "AmendmentPublished": 1, "OfferConfirmed": 5, "OfferWithdrawn": 1, "OfferSetAside": 1, "DepositsClosed": 1,
        "TenderRefused": 1, "RateRecorded": 1, "ShareAccepted": 3, "TenderOpened": 1, "EnvelopeOpened": 11,
        "EnvelopeUnreadable": 1, "AdmissionDecided": 6, "TenderLotAwarded": 2}
    assert out["commands"] == 35
    verified = cli("replay.cli", "verify", str(tmp_path / "j"))
    assert verified.returncode == 0 and f"state {out['state_hash']}" in verified.stdout, verified.stdout
    pv = tmp_path / "pv.html"
    made = cli("replay.cli", "minutes", str(tmp_path / "j"), "AO-ONEE-2026-07", "--which", "evaluation",
               "--format", "html", "-o", str(pv))
    assert made.returncode == 0, made.stderr
    html = pv.read_text()
    assert "attribué à atlas-informatique pour 900000.00 MAD" in html
    assert "offre financière illisible" in html  # zeta's rejection, with its reason
    table = cli("auction_engine.cli", "simulate", str(EXAMPLE), "--table")
    assert table.returncode == 0
    assert "Lot L1  awarded to atlas-informatique at 900000.00 (P = 964800.00)" in table.stdout.splitlines()


def test_offers_are_sealed_to_the_published_key_and_shares_match_it() -> None:
    scenario = load_tender_scenario(json.loads(EXAMPLE.read_text()))
    spec = scenario.publish.spec
    assert spec.opening_at == 1_774_000_800_000_000 and spec.threshold == 3  # 2026-03-20T10:00Z
    amendment = next(c for c in scenario.commands if type(c) is PublishAmendment)
    assert amendment.now == spec.opening_at - 5 * 86_400_000_000
    shares = [c for c in scenario.commands if type(c) is SubmitShare]
    assert [c.member_id for c in shares] == ["finances", "juridique", "observateur"]
    run = run_tender_scenario(scenario)
    tender = run.kind.tenders["AO-ONEE-2026-07"]
    assert tender.opened["zeta-negoce"]["financial"][0] == "malformed_offer"
    assert b"900000.00" not in b"".join(c for d in tender.deposits.values() for _, c, _ in d)  # sealed


def test_a_bad_scenario_lists_every_problem() -> None:
    data: dict[str, Any] = json.loads(EXAMPLE.read_text())
    data["tender"]["colour"] = "blue"
    data["actions"][0] = {"at": "-18d", "dance": {}}
    data["actions"][1] = {"at": "yesterday", "download": {"bidder": "x"}}
    data["actions"][2] = {"at": "-18d", "download": {"bidder": "x", "extra": 1}}
    data["actions"][3] = {"at": "-30d", "download": {"bidder": "x"}}  # before the publication
    done = cli("auction_engine.cli", "simulate", "-", stdin=json.dumps(data))
    assert done.returncode == 2 and done.stdout == ""
    data["tender"].pop("colour")
    done = cli("auction_engine.cli", "simulate", "-", stdin=json.dumps(data))
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "auction-engine: invalid scenario -: 5 problem(s) in the configuration:"
    assert lines[1].startswith("  actions[0].dance: unknown field (actions are: download, deposit,")
    assert lines[2] == "  actions[0]: must hold exactly one of " + ", ".join(
        ["download", "deposit", "withdraw", "confirm", "ask", "answer", "amend", "rate", "share", "decide",
         "close_admission", "extend", "answer_extension", "justify", "decide_justification", "cancel"])
    assert lines[3].startswith("  actions[1].at: ")
    assert lines[4] == "  actions[2].download: must be an object with ['bidder']"
    assert lines[5] == "  actions[3].at: is before the tender is published (published_at)"
    data["tender"]["threshold"] = 9
    done = cli("auction_engine.cli", "simulate", "-", stdin=json.dumps({"tender": data["tender"], "actions": []}))
    assert done.returncode == 2 and done.stderr.splitlines()[1].startswith("  tender.members: ")
    data["tender"]["threshold"] = 3
    data["tender"]["opening_at"] = "2026-02-01T00:00:00Z"  # before the publication: the kind refuses
    done = cli("auction_engine.cli", "simulate", "-", stdin=json.dumps({"tender": data["tender"], "actions": []}))
    assert done.returncode == 2
    assert done.stderr.splitlines()[1] == "  tender.(spec): refused by the tender kind: opening_in_past"
