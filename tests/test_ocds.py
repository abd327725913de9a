"""`auction-replay ocds`: one OCDS 1.1 release package for every tender and auction of a
journal, validated offline against the vendored schemas (schemas/ocds/): the release
package schema with the core release schema, and each extension field (lots, bids,
techniques, enquiries, amendments) against the registry-patched release schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import grouped_example
import jsonschema
import pytest
from journals import EXAMPLES
from referencing import Registry
from referencing.jsonschema import DRAFT4

from auction_engine.cli import write_journal
from auction_engine.journal import Journaled
from auction_engine.scenario import load_scenario, run_scenario
from auction_engine.tender_scenario import load_tender_scenario, run_tender_scenario
from replay.cli import main as replay_main

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "ocds"
PACKAGE = json.loads((SCHEMAS / "release-package-schema.json").read_text())
CORE = json.loads((SCHEMAS / "release-schema.json").read_text())
EXTENDED = json.loads((SCHEMAS / "release-schema-extended.json").read_text())
# the package schema's $ref to the release schema resolves to the core; the patched one has its own name
REGISTRY = Registry().with_resources([
    (PACKAGE["properties"]["releases"]["items"]["$ref"], DRAFT4.create_resource(CORE)),
    ("urn:x-ocds:extended-release-schema", DRAFT4.create_resource(EXTENDED))])
EXTENSION_FIELDS = {"Lot": ("tender", "lots"), "Enquiry": ("tender", "enquiries"), "Bid": ("bids", "details"),
                    "Amendment": ("tender", "amendments"), "Contract": ("contracts", None)}


def problems(package: dict[str, Any]) -> list[str]:
    """Every schema error: the package against the core, each extension object against its definition."""
    found = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft4Validator(PACKAGE, registry=REGISTRY)
             .iter_errors(package)]
    for release in package["releases"]:
        objects = [("Techniques", release["tender"]["techniques"])] if "techniques" in release["tender"] else []
        objects += [(name, item) for name, (block, field) in EXTENSION_FIELDS.items()
                    for item in (release.get(block, []) if field is None else release.get(block, {}).get(field, []))]
        for name, item in objects:
            schema = {"$ref": f"urn:x-ocds:extended-release-schema#/definitions/{name}"}
            found += [f"{name} {list(e.path)}: {e.message}" for e in
                      jsonschema.Draft4Validator(schema, registry=REGISTRY).iter_errors(item)]
    return found


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worked grouped purchase (January 2026), the example tender (1 to 22 March), then
    the example auction moved to June."""
    journaled = Journaled()
    frames = [f for c in grouped_example.commands() for f in journaled.submit(c).frames]
    frames += list(run_tender_scenario(load_tender_scenario(json.loads(
        (EXAMPLES / "tender-supply-2-lots.json").read_text())), journal=journaled).frames)
    auction = json.loads((EXAMPLES / "seei-supply-2-lots.json").read_text().replace("2026-03-02", "2026-06-01"))
    frames += run_scenario(load_scenario(auction), journal=journaled).frames
    path = tmp_path_factory.mktemp("ocds") / "j"
    write_journal(path, frames)
    return path


def test_every_case_is_a_valid_release(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "package.json"
    assert replay_main(["ocds", str(journal), "-o", str(out), "--prefix", "ocds-abc123", "--publisher", "TGR"]) == 0
    package = json.loads(out.read_text())
    assert problems(package) == []
    assert [(r["ocid"], r["tag"]) for r in package["releases"]] == [
        ("ocds-abc123-AO-ONEE-2026-07", ["tender", "award"]), ("ocds-abc123-TGR-EEI-2026-014", ["tender", "award"]),
        ("ocds-abc123-G-1", ["contract", "implementation"])]
    assert package["version"] == "1.1" and package["publisher"] == {"name": "TGR"}
    tender, auction, collective = package["releases"]
    assert tender["id"] == "AO-ONEE-2026-07-65" and tender["tender"]["numberOfTenderers"] == 6
    assert tender["tender"]["techniques"] == {"hasElectronicAuction": False}
    assert tender["tender"]["enquiries"] == [{"id": "q1", "description": "Les prix sont-ils fermes ou révisables ?",
                                              "answer": "Les prix sont fermes et non révisables."}]
    assert "beta-bureautique" not in json.dumps(tender["tender"]["enquiries"])  # the asker: never
    assert tender["tender"]["amendments"] == [{"id": "A1", "date": "2026-03-15T10:00:00.000000Z", "description":
                                               "Lot L2 : le délai de livraison passe de 30 à 60 jours."}]
    assert tender["awards"] == [
        {"id": "AO-ONEE-2026-07-L1", "relatedLots": ["L1"], "status": "active",
         "suppliers": [{"id": "atlas-informatique", "name": "atlas-informatique"}],
         "value": {"amount": 900000, "currency": "MAD"}},
        {"id": "AO-ONEE-2026-07-L2", "relatedLots": ["L2"], "status": "active",
         "suppliers": [{"id": "eps-maroc", "name": "eps-maroc"}], "value": {"amount": 45000, "currency": "MAD"}}]
    bids = {b["id"]: (b["status"], b.get("value", {}).get("amount"), b.get("rank"))
            for b in tender["bids"]["details"]}
    assert bids == {  # losing prices too, at the amount evaluated (gamma's EUR converted)
        "atlas-informatique-L1": ("valid", 900000, 1), "beta-bureautique-L1": ("valid", 1050000, 5),
        "gamma-gmbh-L1": ("valid", 868000, 3), "eps-maroc-L1": ("valid", 890000, 2),
        "eps-maroc-L2": ("valid", 45000, 1), "groupement-delta-L1": ("valid", 940000, 4)}
    assert auction["tender"]["techniques"]["hasElectronicAuction"] is True
    assert [a["suppliers"][0]["id"] for a in auction["awards"]] == ["sofitech-sarl", "rif-digital"]
    assert len(auction["bids"]["details"]) == sum(1 for b in auction["bids"]["details"] if b["value"]["amount"] > 0)
    assert [(p["id"], p["roles"]) for p in collective["parties"]] == [
        ("coord", ["centralPurchasingBody", "procuringEntity"]), ("m1", ["buyer", "payer"]),
        ("m2", ["buyer", "payer"]), ("m3", ["buyer", "payer"]), ("supplier-x", ["supplier", "payee"]),
        ("supplier-y", ["supplier", "payee"])]
    contracts = {k["id"]: k for k in collective["contracts"]}
    assert {cid: round(k["value"]["amount"] * 100) for cid, k in contracts.items()} == \
        grouped_example.EXPECTED_CONTRACTS
    assert contracts["A-G1/L1/m3"]["buyer"] == {"id": "m3", "name": "m3"}
    assert contracts["A-G1/L1/m3"]["implementation"] == {
        "transactions": [{"id": "A-G1/L1/m3/paid", "value": {"amount": 1000, "currency": "MAD"},
                          "payer": {"id": "m3", "name": "m3"}, "payee": {"id": "supplier-x", "name": "supplier-x"}}],
        "milestones": [{"id": "A-G1/L1/m3/TN", "title": "Delivery of TN", "type": "delivery", "status": "met",
                        "description": "ordered 2, delivered 2, received 2, rejected 0"}]}
    assert contracts["A-G1/L1/m1"]["implementation"] == {"milestones": [
        {"id": "A-G1/L1/m1/A4", "title": "Delivery of A4", "type": "delivery", "status": "scheduled",
         "description": "ordered 100, delivered 60, received 55, rejected 5"}]}
    assert [(a["id"], a["value"]["amount"]) for a in collective["awards"]] == [("G-1-L1", 6000.01), ("G-1-L2", 11000)]
    assert replay_main(["ocds", str(journal), "-o", str(tmp_path / "again.json"), "--prefix", "ocds-abc123",
                        "--publisher", "TGR"]) == 0
    assert (tmp_path / "again.json").read_bytes() == out.read_bytes()  # deterministic


def test_before_the_award_no_bidder_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journaled = Journaled()
    data = json.loads((EXAMPLES / "tender-supply-2-lots.json").read_text())
    data["actions"] = [a for a in data["actions"] if "share" not in a and "decide" not in a
                       and "close_admission" not in a][:14]  # deposits made, nothing opened
    scenario = load_tender_scenario(data)
    frames = [f for c in (scenario.publish, *scenario.commands) for f in journaled.submit(c).frames]
    write_journal(tmp_path / "j", frames)
    assert replay_main(["ocds", str(tmp_path / "j")]) == 0
    package = json.loads(capsys.readouterr().out)
    assert problems(package) == []
    release = package["releases"][0]
    assert release["tag"] == ["tender"] and "bids" not in release and "awards" not in release
    assert release["parties"] == [{"id": "onee-achats", "name": "onee-achats", "roles": ["buyer", "procuringEntity"]}]
    text = json.dumps(package)
    assert not [b for b in ("atlas-informatique", "beta-bureautique", "gamma-gmbh") if b in text]


def test_the_validation_catches_a_broken_release(journal: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert replay_main(["ocds", str(journal)]) == 0
    package = json.loads(capsys.readouterr().out)
    broken = copy.deepcopy(package)
    broken["releases"][0]["tender"]["lots"][0]["value"]["amount"] = "900000"
    broken["releases"][0]["bids"]["details"][0]["tenderers"] = "acme"
    del broken["releases"][1]["ocid"]
    assert sorted(p.split(":")[0] for p in problems(broken)) == [  # lots are not core: the extension's check
        "Bid ['tenderers']", "Lot ['value', 'amount']", "['releases', 1]"]
    segment = next(journal.iterdir())
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / segment.name).write_bytes(bytes(data))
    assert replay_main(["ocds", str(damaged), "-o", str(tmp_path / "x.json")]) == 1
    assert "FAILED" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
