"""A grouped purchase as an OCDS 1.1 release (docs/ocds.md, "A grouped purchase").

The collective as parties (the coordinator a `centralPurchasingBody` and the release's
buyer, each member a `buyer` and `payer`), the final schedule as the tender's items and
lots, one award per awarded lot, one contract per member (its `buyer`, multiple-buyers
extension) with its lines as items; payments as `implementation.transactions`, each
article's deliveries as an `implementation.milestones` entry of type `delivery`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grouped_purchases.state import Collective

from .ocds import org as _org
from .ocds import party as _party


def collective_release(cid: str, c: Collective, ocid: str, position: int, date: str,
                       money: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """The release of one collective at its current state (`money`: minor units -> Value)."""
    schedule = next((s for s in reversed(c.schedules) if s.final), c.schedules[-1] if c.schedules else None)
    section: dict[str, Any] = {"id": cid, "status": "complete" if c.contracts else "planning",
                               "procurementMethodDetails": "Achat groupé (groupement de commandes)"}
    if schedule is not None:
        section["items"] = [{"id": line.article, "description": c.articles[line.article].description,
                             "quantity": line.quantity, "relatedLot": line.lot,
                             "unit": {"name": c.articles[line.article].unit, "value": money(line.unit_price)}}
                            for line in schedule.lines]
        section["lots"] = [{"id": lot, "value": money(schedule.lot_total(lot)),
                            "status": {"awarded": "complete", "pending": "active"}.get(
                                c.lots.get(lot, ("", ""))[0], "unsuccessful" if c.procurements else "planning")}
                           for lot in schedule.lots()]
        section["value"] = money(schedule.total)
    suppliers = sorted({k.supplier for k in c.contracts.values()})
    parties = [_party(c.coordinator, ["centralPurchasingBody", "procuringEntity"])]
    parties += [_party(m, ["buyer", "payer"]) for m in c.members]
    parties += [_party(s, ["supplier", "payee"]) for s in suppliers]
    release: dict[str, Any] = {"ocid": ocid, "id": f"{cid}-{position}", "date": date, "language": "fr",
                               "initiationType": "tender", "tag": ["contract", "implementation"] if c.contracts
                               else ["planning"], "buyer": _org(c.coordinator), "parties": parties,
                               "tender": section}
    if c.contracts:
        by_lot: dict[str, list[Any]] = {}
        for k in c.contracts.values():
            by_lot.setdefault(k.lot, []).append(k)
        release["awards"] = [{"id": f"{cid}-{lot}", "status": "active", "relatedLots": [lot],
                              "suppliers": [_org(ks[0].supplier)], "value": money(sum(k.total for k in ks))}
                             for lot, ks in sorted(by_lot.items())]
        release["contracts"] = [_contract(cid, contract_id, k, c, money)
                                for contract_id, k in sorted(c.contracts.items())]
    return release


def _contract(cid: str, contract_id: str, k: Any, c: Collective, money: Callable[[int], dict[str, Any]]
              ) -> dict[str, Any]:
    """One member's contract: its lines, what was paid, each article's delivery state."""
    implementation: dict[str, Any] = {}
    if k.paid:
        implementation["transactions"] = [{"id": f"{contract_id}/paid", "value": money(k.paid),
                                           "payer": _org(k.member), "payee": _org(k.supplier)}]
    milestones = []
    for line in k.lines:
        a = line.article
        delivered, received, rejected = k.delivered.get(a, 0), k.received.get(a, 0), k.rejected.get(a, 0)
        if delivered or received:
            milestones.append({"id": f"{contract_id}/{a}", "title": f"Delivery of {a}", "type": "delivery",
                               "status": "met" if received >= line.quantity else "scheduled",
                               "description": f"ordered {line.quantity}, delivered {delivered}, received "
                                              f"{received}, rejected {rejected}"})
    if milestones:
        implementation["milestones"] = milestones
    contract: dict[str, Any] = {
        "id": contract_id, "awardID": f"{cid}-{k.lot}", "title": f"Marché particulier {contract_id}",
        "status": "active", "buyer": _org(k.member), "value": money(k.total),
        "items": [{"id": line.article, "description": c.articles[line.article].description,
                   "quantity": line.quantity, "unit": {"name": c.articles[line.article].unit,
                                                       "value": money(line.unit_price)}} for line in k.lines]}
    if implementation:
        contract["implementation"] = implementation
    return contract
