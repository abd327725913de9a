"""Flagged offers (Tunisia art. 65): a justification request, the answer, the decision.

At `CloseAdmission` a lot whose retained offers include flagged ones not yet accepted
waits ("justification"): each flagged bidder may answer (the digest of its justification
file) by `answer_by`; the commission accepts or rejects each. An offer still unanswered
at `answer_by` is rejected (`no_justification`). Once every flagged offer is decided the
lot is evaluated again without the rejected ones (P moves): new flags ask again.
"""

from __future__ import annotations

from typing import Any

from .dialogue import MAX_TEXT, refuse
from .messages import (
    DecideJustification,
    JustificationDecided,
    JustificationRequested,
    JustifyOffer,
    OfferJustified,
    TenderLotAwarded,
    TenderLotUnsuccessful,
)
from .tender import DAY, Tender, lot_outcome

JUSTIFICATION = "justification"  # a lot's status while flagged offers wait


def decide_lot(tender: Tender, tid: str, lot_id: str, now: int, events: list[Any]) -> None:
    """Evaluate a lot: award it, declare it unsuccessful, or ask flagged bidders to justify."""
    lot = tender.lots[lot_id]
    winner, reason, reference, explain = lot_outcome(tender, lot_id)
    decided = tender.justifications.setdefault(lot_id, {})
    flagged: dict[str, str] = next((s["flagged"] for s in explain if s["step"] == "flags"), {})
    pending = tuple(sorted(b for b in flagged if decided.get(b, [b"", ""])[1] != "accepted"))
    if winner is not None and pending:
        answer_by = now + tender.spec.justification_days * DAY
        for bidder in pending:
            decided[bidder] = [b"", "", "", ""]
        lot[0] = JUSTIFICATION
        tender.answer_by[lot_id] = answer_by
        events.append(JustificationRequested(now, tid, lot_id, pending, answer_by))
    elif winner is None:
        lot[0], lot[4] = "unsuccessful", reason
        events.append(TenderLotUnsuccessful(now, tid, lot_id, reason))
    else:
        lot[:4] = ["awarded", winner.bidder_id, winner.amount, reference]
        events.append(TenderLotAwarded(now, tid, lot_id, winner.bidder_id, winner.amount, reference))


def waiting(tender: Tender, lot_id: str) -> dict[str, list[Any]]:
    """The flagged offers of a lot still to decide."""
    return {b: v for b, v in tender.justifications.get(lot_id, {}).items() if v[1] == ""}


def expire(tender: Tender, tid: str, at: int, events: list[Any]) -> None:
    """At `answer_by`: unanswered flagged offers are rejected; decided lots are evaluated."""
    for lot_id in [lot for lot, when in tender.answer_by.items() if when == at]:
        del tender.answer_by[lot_id]  # no deadline any more: the commission decides what was answered
        for bidder, entry in waiting(tender, lot_id).items():
            if not entry[0]:
                entry[1:] = ["rejected", "", "no_justification"]
                events.append(JustificationDecided(at, tid, lot_id, bidder, False, "no_justification"))
        if not waiting(tender, lot_id):
            decide_lot(tender, tid, lot_id, at, events)


def justify(cmd: JustifyOffer, tender: Tender) -> Any:
    lot = tender.lots.get(cmd.lot_id) if type(cmd.lot_id) is str else None
    if lot is None or lot[0] != JUSTIFICATION or cmd.lot_id not in tender.answer_by:
        return refuse(cmd, "no_justification_asked")
    entry = waiting(tender, cmd.lot_id).get(cmd.bidder_id)
    if entry is None:
        return refuse(cmd, "not_flagged")
    if entry[0]:
        return refuse(cmd, "already_justified")
    if type(cmd.digest) is not bytes or len(cmd.digest) != 32:
        return refuse(cmd, "malformed")
    entry[0] = cmd.digest
    return OfferJustified(cmd.now, cmd.tender_id, cmd.lot_id, cmd.bidder_id, cmd.digest)


def decide(cmd: DecideJustification, tender: Tender) -> Any:
    if cmd.member_id not in tender.spec.members:
        return refuse(cmd, "not_a_member")
    lot = tender.lots.get(cmd.lot_id) if type(cmd.lot_id) is str else None
    if lot is None or lot[0] != JUSTIFICATION:
        return refuse(cmd, "no_justification_asked")
    entry = waiting(tender, cmd.lot_id).get(cmd.bidder_id)
    if entry is None:
        return refuse(cmd, "not_flagged")
    if type(cmd.accepted) is not bool or type(cmd.reason) is not str or len(cmd.reason) > MAX_TEXT \
            or (not cmd.accepted and not cmd.reason.strip()):
        return refuse(cmd, "reason_required")
    entry[1:] = ["accepted" if cmd.accepted else "rejected", cmd.member_id, cmd.reason]
    events: list[Any] = [JustificationDecided(cmd.now, cmd.tender_id, cmd.lot_id, cmd.bidder_id, cmd.accepted,
                                              cmd.reason)]
    if not waiting(tender, cmd.lot_id):
        decide_lot(tender, cmd.tender_id, cmd.lot_id, cmd.now, events)
    return events
