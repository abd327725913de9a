"""The tender kind's events (past tense), as the journal names them.

Every event carries `time` (µs) first and the tender id second. `PUBLIC`: those the feed
shows. A refusal is `TenderRefused` with a stable code; it is answered, not journaled.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class TenderPublished(NamedTuple):
    time: int
    tender_id: str
    opening_at: int
    validity_until: int


class TenderRefused(NamedTuple):
    """A command refused with a stable `code`; nothing changed."""

    time: int
    tender_id: str
    actor: str
    command: str
    code: str


class OfferDeposited(NamedTuple):
    time: int
    tender_id: str
    bidder_id: str
    digests: tuple[tuple[str, bytes], ...]


class OfferWithdrawn(NamedTuple):
    time: int
    tender_id: str
    bidder_id: str


class DepositsClosed(NamedTuple):
    time: int
    tender_id: str
    offers: int


class RateRecorded(NamedTuple):
    time: int
    tender_id: str
    currency: str
    rate: str


class ShareAccepted(NamedTuple):
    time: int
    tender_id: str
    member_id: str
    shares: int


class TenderOpened(NamedTuple):
    """The key is rebuilt: from here anyone can open every deposited envelope."""

    time: int
    tender_id: str
    private_key: bytes


class EnvelopeOpened(NamedTuple):
    """`content`: the plaintext of a financial envelope (b"" for other parts)."""

    time: int
    tender_id: str
    bidder_id: str
    part: str
    plaintext_digest: bytes
    content: bytes


class EnvelopeUnreadable(NamedTuple):
    """`code`: "undecryptable" or "malformed_offer"."""

    time: int
    tender_id: str
    bidder_id: str
    part: str
    code: str


class AdmissionDecided(NamedTuple):
    time: int
    tender_id: str
    member_id: str
    bidder_id: str
    admitted: bool
    reason: str


class TenderLotAwarded(NamedTuple):
    """`amount`: the best offer, corrected and converted (minor units); `reference`: P rounded."""

    time: int
    tender_id: str
    lot_id: str
    bidder_id: str
    amount: int
    reference: int


class TenderLotUnsuccessful(NamedTuple):
    """`reason`: no_offers, none_admitted, all_rejected, offers_expired or cancelled."""

    time: int
    tender_id: str
    lot_id: str
    reason: str


class TenderCancelled(NamedTuple):
    time: int
    tender_id: str
    reason: str


class FileDownloaded(NamedTuple):
    time: int
    tender_id: str
    bidder_id: str


class QuestionAsked(NamedTuple):
    """No asker here: the event is what the buyer's queue and the journal's outcome show."""

    time: int
    tender_id: str
    question_id: str
    text: str


class QuestionAnswered(NamedTuple):
    """Published to all, and sent the same day to every bidder who downloaded the file."""

    time: int
    tender_id: str
    question_id: str
    question: str
    answer: str


class ExtensionRequested(NamedTuple):
    time: int
    tender_id: str
    days: int
    answer_by: int


class ExtensionAnswered(NamedTuple):
    time: int
    tender_id: str
    bidder_id: str
    accepted: bool


class ExtensionClosed(NamedTuple):
    """At `answer_by`: the validity now ends at `validity_until`; `lapsed`: the bidders who
    did not accept (their offers are no longer retained)."""

    time: int
    tender_id: str
    validity_until: int
    lapsed: tuple[str, ...]


class JustificationRequested(NamedTuple):
    """Flagged offers of a lot (abnormally low or excessive) must be justified by `answer_by`."""

    time: int
    tender_id: str
    lot_id: str
    bidders: tuple[str, ...]
    answer_by: int


class OfferJustified(NamedTuple):
    time: int
    tender_id: str
    lot_id: str
    bidder_id: str
    digest: bytes


class JustificationDecided(NamedTuple):
    time: int
    tender_id: str
    lot_id: str
    bidder_id: str
    accepted: bool
    reason: str


class AmendmentPublished(NamedTuple):
    """Published to all; `opening_at`: the opening after it (moved if fewer than the
    tender's `amendment_days` were left); `to_confirm`: how many deposits must be confirmed."""

    time: int
    tender_id: str
    amendment_id: str
    text: str
    digest: bytes
    opening_at: int
    to_confirm: int


class OfferConfirmed(NamedTuple):
    time: int
    tender_id: str
    bidder_id: str


class OfferSetAside(NamedTuple):
    """At the deposit deadline: a deposit not opened; `code`: "not_confirmed" (it predates
    an amendment and was not confirmed)."""

    time: int
    tender_id: str
    bidder_id: str
    code: str


class DraftSaved(NamedTuple):
    """Never public: a draft is its buyer's alone."""

    time: int
    tender_id: str
    buyer_id: str


class DraftDiscarded(NamedTuple):
    time: int
    tender_id: str


EVENTS: tuple[type[Any], ...] = (TenderPublished, TenderRefused, OfferDeposited, OfferWithdrawn, DepositsClosed,
                                 RateRecorded, ShareAccepted, TenderOpened, EnvelopeOpened, EnvelopeUnreadable,
                                 AdmissionDecided, TenderLotAwarded, TenderLotUnsuccessful, TenderCancelled,
                                 FileDownloaded, QuestionAsked, QuestionAnswered, ExtensionRequested,
                                 ExtensionAnswered, ExtensionClosed, JustificationRequested, OfferJustified,
                                 JustificationDecided, AmendmentPublished, OfferConfirmed, OfferSetAside, DraftSaved,
                                 DraftDiscarded)
PUBLIC: frozenset[type[Any]] = frozenset({TenderPublished, DepositsClosed, TenderOpened, TenderLotAwarded,
                                          TenderLotUnsuccessful, TenderCancelled, QuestionAnswered,
                                          ExtensionRequested, ExtensionClosed, AmendmentPublished})
