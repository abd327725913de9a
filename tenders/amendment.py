"""Amendments to a tender's file (art. 10 §3): published to all, they may move the opening.

An amendment published with fewer than `amendment_days` left before the opening moves the
opening (and the offers' validity, counted from it) so that exactly `amendment_days`
remain. Every deposit standing when an amendment is published must then be confirmed
(`ConfirmOffer`) before the deposit deadline; a deposit still unconfirmed then is set
aside (`OfferSetAside(not_confirmed)`): never opened, kept by its digests for the minutes.
"""

from __future__ import annotations

from typing import Any

from .dialogue import MAX_TEXT, refuse
from .messages import AmendmentPublished, ConfirmOffer, OfferConfirmed, OfferSetAside, PublishAmendment
from .tender import CANCELLED, DAY, PUBLISHED, Tender, is_id

NOT_CONFIRMED = "not_confirmed"  # the code of a deposit set aside at the deadline


def _closed(cmd: Any, tender: Tender) -> Any:
    return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "deposit_closed")


def amend(cmd: PublishAmendment, tender: Tender) -> Any:
    if cmd.buyer_id != tender.spec.buyer_id:
        return refuse(cmd, "not_the_buyer")
    if tender.status != PUBLISHED:
        return _closed(cmd, tender)
    if (not is_id(cmd.amendment_id) or type(cmd.text) is not str or len(cmd.text) > MAX_TEXT
            or type(cmd.digest) is not bytes or len(cmd.digest) not in (0, 32)
            or not (cmd.text.strip() or cmd.digest)):
        return refuse(cmd, "malformed")
    if any(a[0] == cmd.amendment_id for a in tender.amendments):
        return refuse(cmd, "amendment_exists")
    least = cmd.now + tender.spec.amendment_days * DAY
    if tender.opening_at < least:  # too close to the opening: move it (and the validity with it)
        tender.validity_until += least - tender.opening_at
        tender.opening_at = least
    tender.unconfirmed.update(dict.fromkeys(b for b in tender.deposits if b not in tender.unconfirmed))
    tender.amendments.append([cmd.amendment_id, cmd.now, cmd.text, cmd.digest, tender.opening_at])
    return AmendmentPublished(cmd.now, cmd.tender_id, cmd.amendment_id, cmd.text, cmd.digest, tender.opening_at,
                              len(tender.unconfirmed))


def confirm(cmd: ConfirmOffer, tender: Tender) -> Any:
    if tender.status != PUBLISHED:
        return _closed(cmd, tender)
    if cmd.bidder_id not in tender.deposits:
        return refuse(cmd, "nothing_to_confirm")
    if cmd.bidder_id not in tender.unconfirmed:
        return refuse(cmd, "already_confirmed")
    del tender.unconfirmed[cmd.bidder_id]
    return OfferConfirmed(cmd.now, cmd.tender_id, cmd.bidder_id)


def set_aside(tender: Tender, tender_id: str, at: int) -> list[Any]:
    """At the deposit deadline: every deposit still unconfirmed leaves the deposits."""
    events: list[Any] = []
    for bidder in tender.unconfirmed:
        tender.set_aside[bidder] = [at, NOT_CONFIRMED, [[p, d] for p, _, d in tender.deposits.pop(bidder)]]
        del tender.orders[bidder]
        events.append(OfferSetAside(at, tender_id, bidder, NOT_CONFIRMED))
    tender.unconfirmed.clear()
    return events
