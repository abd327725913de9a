"""A collective's state in the RPC's edge form (gateway/collective_models.py states it):
money as decimal strings, times in ISO-8601. Pure functions of the kind's live state;
what a reader may see is decided by grouped_purchases/views.py, not here."""

from __future__ import annotations

from typing import Any

from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from grouped_purchases import Consolidation
from grouped_purchases.procurement import EDGE_DECIMALS
from grouped_purchases.rules import Schedule
from grouped_purchases.state import Collective, Contract


def money(minor: int) -> str:
    return format_amount(minor, EDGE_DECIMALS)


def collective_body(cid: str, c: Collective) -> dict[str, Any]:
    return {
        "collective_id": cid, "coordinator": c.coordinator, "members": list(c.members),
        "convention_hash": c.convention_hash, "needs_deadline": format_instant(c.needs_deadline),
        "accepted": sorted(c.accepted), "constituted": c.constituted, "needs_closed": c.needs_closed,
        "excluded": list(c.excluded),
        "articles": [{"code": code, "description": a.description, "unit": a.unit, "unit_price": money(a.unit_price),
                      "lot": a.lot} for code, a in c.articles.items()],
        "schedules": [schedule_summary(s) for s in c.schedules],
        "procurements": [{"procurement_id": pid, "schedule_version": version, "lots": list(lots)}
                         for pid, (version, lots) in c.procurements.items()],
        "lots": [{"lot": lot, "status": status, "procurement_id": pid}
                 for lot, (status, pid) in sorted(c.lots.items())],
        "contracts": len(c.contracts),
        "commission": [{"member_id": m, "representative": r} for m, r in c.commission],
    }


def schedule_summary(s: Schedule) -> dict[str, Any]:
    return {"version": s.version, "time": format_instant(s.time), "final": s.final, "digest": s.digest,
            "total": money(s.total)}


def schedule_body(cid: str, s: Schedule) -> dict[str, Any]:
    return {**schedule_summary(s), "collective_id": cid,
            "lines": [{"article": ln.article, "lot": ln.lot, "unit_price": money(ln.unit_price),
                       "quantity": ln.quantity, "amount": money(ln.amount),
                       "members": [{"member_id": m, "quantity": q, "amount": money(ln.unit_price * q)}
                                   for m, q in ln.members]} for ln in s.lines],
            "lots": [{"lot": lot, "total": money(s.lot_total(lot))} for lot in s.lots()]}


def need_rows(c: Collective, member: str | None) -> list[dict[str, Any]]:
    """The latest version of each need (of one member, or of all), by member then article."""
    out = []
    for (m, article), versions in sorted(c.needs.items()):
        if member is not None and m != member:
            continue
        time, quantity, place = versions[-1]
        out.append({"member_id": m, "article": article, "version": len(versions), "quantity": quantity,
                    "place": place, "time": format_instant(time), "confirmed": m in c.confirmed})
    return out


def contract_body(contract_id: str, k: Contract) -> dict[str, Any]:
    return {
        "contract_id": contract_id, "member_id": k.member, "lot": k.lot, "procurement_id": k.procurement_id,
        "supplier": k.supplier, "total": money(k.total), "paid": money(k.paid), "outstanding": money(k.total - k.paid),
        "lines": [{"article": ln.article, "unit_price": money(ln.unit_price), "quantity": ln.quantity,
                   "extra": ln.extra, "amount": money(ln.amount), "delivered": k.delivered.get(ln.article, 0),
                   "received": k.received.get(ln.article, 0), "rejected": k.rejected.get(ln.article, 0)}
                  for ln in k.lines],
        "discrepancies": [{"time": format_instant(t), "article": a, "rejected": q, "reason": r}
                          for t, a, q, r in k.discrepancies],
    }


def revision(c: Collective) -> int:
    """A number that grows with every contract, delivery, receipt and payment: each adds at
    least one unit (or minor unit) to the sum, and none ever decreases."""
    return sum(1 + sum(k.delivered.values()) + sum(k.received.values()) + sum(k.rejected.values()) + k.paid
               for k in c.contracts.values())


def consolidation_body(cid: str, c: Collective, view: Consolidation) -> dict[str, Any]:
    return {"collective_id": cid, "revision": revision(c),
            "articles": [p._asdict() for p in view.articles],
            "members": [{"member_id": p.member, "ordered": p.ordered, "delivered": p.delivered,
                         "received": p.received, "amount": money(p.amount), "paid": money(p.paid),
                         "outstanding": money(p.outstanding)} for p in view.members]}
