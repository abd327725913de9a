"""A tender as each role sees it, in edge form (gateway/tender_models.py's `TenderView`).

Built on the kind's views (tenders/views.py): a bidder gets `bidder_view` (its own file
and evaluation), the buyer, the commission and auditors `buyer_view` (every bidder), and
the buyer also the questions, never their askers. Money becomes decimal strings in the
tender's decimals, instants ISO-8601, bytes hex.
"""

from __future__ import annotations

from typing import Any

from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from tenders import Tenders
from tenders.tender import DAY, Tender

FULL_ROLES = ("portal", "buyer", "commission", "auditor")  # who sees every bidder's file


def _money(value: int | None, decimals: int) -> str | None:
    return None if value is None else format_amount(value, decimals)


def summary(tender_id: str, tender: Tender) -> dict[str, Any]:
    return {"tender_id": tender_id, "buyer_id": tender.spec.buyer_id, "status": tender.status,
            "opening_at": format_instant(tender.opening_at), "lots": len(tender.spec.lots),
            "deposits": len(tender.deposits)}


def tender_view(kind: Tenders, tender_id: str, role: str, subject: str | None) -> dict[str, Any]:
    """The tender as `role` (with `subject`, a bidder's id) sees it."""
    tender = kind.tenders[tender_id]
    spec, d = tender.spec, tender.spec.decimals
    out: dict[str, Any] = {
        "tender_id": tender_id, "buyer_id": spec.buyer_id, "status": tender.status,
        "opening_at": format_instant(tender.opening_at), "validity_until": format_instant(tender.validity_until),
        "ask_until": format_instant(tender.opening_at - spec.ask_days * DAY),
        "answer_until": format_instant(tender.opening_at - spec.answer_days * DAY),
        "currency": spec.currency, "decimals": d, "parts": list(spec.parts), "public_key": spec.public_key.hex(),
        "members": list(spec.members), "threshold": spec.threshold,
        "estimates": [{"lot_id": lot, "estimate": format_amount(e, d)} for lot, e in spec.lots],
        "deposits": len(tender.deposits), "private_key": tender.private_key.hex() or None,
        "amendment_days": spec.amendment_days,
        "amendments": [{"amendment_id": a, "time": format_instant(at), "text": text, "sha256": digest.hex() or None,
                        "opening_at": format_instant(opening)} for a, at, text, digest, opening in tender.amendments]}
    if role == "bidder":
        assert subject is not None
        view = kind.bidder_view(tender_id, subject)
        out["deposit"] = [{"part": p, "sha256": h} for p, h in view["deposit"]]
        out["opened"] = view["opened"]
        out["admission"] = view["admission"]
        out["lapsed"] = view["lapsed"]
        out["must_confirm"] = subject in tender.unconfirmed
        out["set_aside"] = subject in tender.set_aside
        out["evaluation"] = [{"lot_id": lot, "steps": e["steps"], "reference": _money(e["reference"], d),
                              "flag": e["flag"], "preference": e["preference"], "rank": e["rank"]}
                             for lot, e in view["evaluation"].items()]
        out["lots"] = [{"lot_id": lot, "status": v["status"], "reason": v["reason"], "won": v["won"]}
                       for lot, v in view["lots"].items()]
    else:
        view = kind.buyer_view(tender_id)
        out["bidders"] = [{"bidder_id": b, "order": v["order"],
                           "envelopes": [{"part": p, "sha256": h} for p, h in sorted(v["digests"].items())],
                           "opened": v["opened"], "admitted": v["decision"][0], "reason": v["decision"][1],
                           "decided_by": v["decision"][2] or None} for b, v in view["bidders"].items()]
        out["downloads"] = view["downloads"]
        out["to_confirm"] = list(tender.unconfirmed)
        out["set_aside_offers"] = [{"bidder_id": b, "time": format_instant(at), "code": code,
                                    "envelopes": [{"part": p, "sha256": d.hex()} for p, d in sorted(envs)]}
                                   for b, (at, code, envs) in tender.set_aside.items()]
        out["lots"] = [{"lot_id": lot, "status": v["status"], "reason": v["reason"], "winner": v["winner"],
                        "amount": _money(v["amount"], d), "reference": _money(v["reference"], d),
                        "explain": v["explain"]} for lot, v in view["lots"].items()]
        if role in ("portal", "buyer"):
            out["questions"] = [{"question_id": q, "question": v[1], "answered": bool(v[2])}
                                for q, v in tender.questions.items()]
    out["clarifications"] = view["clarifications"]
    return out


def results(kind: Tenders, tender_id: str, role: str, subject: str | None) -> dict[str, Any]:
    """Each lot's outcome and its evaluation: every step for the buyer, the commission and
    auditors; a bidder's own steps and rank for a bidder."""
    view = tender_view(kind, tender_id, role, subject)
    keep = ("tender_id", "status", "currency", "decimals", "lots") + (("evaluation",) if role == "bidder" else ())
    return {k: view[k] for k in keep}
