"""What each role may see of a tender: anyone, a bidder (its own file), the buyer.

Plain values in the core's units (minor units, µs). No view names who asked a question
(art. 10); before the opening no view holds more than digests; a bidder sees its own
evaluation steps and each lot's outcome, the buyer every bidder's after the opening.
"""

from __future__ import annotations

from typing import Any

from .tender import Tender, lot_outcome


def public_view(tender_id: str, tender: Tender) -> dict[str, Any]:
    """Status, deadlines, the number of deposits, lot outcomes, answered clarifications."""
    return {"tender_id": tender_id, "status": tender.status, "opening_at": tender.opening_at,
            "validity_until": tender.validity_until, "deposits": len(tender.deposits),
            "lots": {lot: {"status": v[0], "reason": v[4]} for lot, v in tender.lots.items()},
            "clarifications": [{"question_id": q, "question": v[1], "answer": v[2]}
                               for q, v in tender.questions.items() if v[2]]}


def _explain(tender: Tender, lot_id: str) -> list[dict[str, Any]]:
    return lot_outcome(tender, lot_id)[3] if tender.private_key else []


def _own(tender: Tender, lot_id: str, bidder_id: str) -> dict[str, Any]:
    """A bidder's part of a lot's explain: its steps, P, its preference adjustment, its rank."""
    steps = _explain(tender, lot_id)
    by_step = {s["step"]: s for s in steps}
    ranking = by_step.get("best_offer", {}).get("ranking", [])
    return {"steps": [s for s in steps if s.get("bidder_id") == bidder_id],
            "reference": by_step.get("reference_price", {}).get("p_rounded"),
            "flag": by_step.get("flags", {}).get("flagged", {}).get(bidder_id),
            "preference": [a for a in by_step.get("national_preference", {}).get("adjustments", [])
                           if a["bidder_id"] == bidder_id],
            "rank": ranking.index(bidder_id) + 1 if bidder_id in ranking else None}


def bidder_view(tender_id: str, tender: Tender, bidder_id: str) -> dict[str, Any]:
    """The public view, plus this bidder's deposit (digests), opened envelopes, decision,
    and its part of each lot's evaluation; no other bidder's name or amount."""
    view = public_view(tender_id, tender)
    view["deposit"] = [[p, d.hex()] for p, _, d in tender.deposits.get(bidder_id, [])]
    view["opened"] = {p: v[0] for p, v in tender.opened.get(bidder_id, {}).items()}
    decision = tender.decisions.get(bidder_id)
    view["admission"] = None if decision is None else {"admitted": decision[0], "reason": decision[1]}
    view["lapsed"] = bidder_id in tender.lapsed
    view["evaluation"] = {lot: _own(tender, lot, bidder_id) for lot in tender.lots}
    for lot, v in tender.lots.items():
        view["lots"][lot]["won"] = v[0] == "awarded" and v[1] == bidder_id
    return view


def buyer_view(tender_id: str, tender: Tender) -> dict[str, Any]:
    """The public view with identities: deposits (digests only before the opening),
    admission decisions with who decided, each lot's winner and full explain."""
    view = public_view(tender_id, tender)
    view["bidders"] = {b: {"order": tender.orders[b], "digests": {p: d.hex() for p, _, d in envs},
                           "opened": {p: v[0] for p, v in tender.opened.get(b, {}).items()},
                           "decision": tender.decisions.get(b, [None, "", ""])[:3]}
                       for b, envs in tender.deposits.items()}
    view["downloads"] = len(tender.downloads)
    for lot, v in tender.lots.items():
        view["lots"][lot].update(winner=v[1] or None, amount=v[2] or None, reference=v[3] or None,
                                 explain=_explain(tender, lot))
    return view
