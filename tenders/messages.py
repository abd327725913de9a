"""The tender kind's commands (imperative) and their journal codec; its events (past)
are in events.py and re-exported here, as the journal names them both.

Commands carry `now` (µs) first and the tender id second; a refusal is a `TenderRefused`
event with a stable code, never an exception. Money is in minor units, percentages and
rates are decimal strings (exact), keys and ciphertexts are bytes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .events import (  # re-exported: the kind's vocabulary in one import
    EVENTS,
    PUBLIC,
    AdmissionDecided,
    AmendmentPublished,
    DepositsClosed,
    DraftDiscarded,
    DraftSaved,
    EnvelopeOpened,
    EnvelopeUnreadable,
    ExtensionAnswered,
    ExtensionClosed,
    ExtensionRequested,
    FileDownloaded,
    JustificationDecided,
    JustificationRequested,
    OfferConfirmed,
    OfferDeposited,
    OfferJustified,
    OfferSetAside,
    OfferWithdrawn,
    QuestionAnswered,
    QuestionAsked,
    RateRecorded,
    ShareAccepted,
    TenderCancelled,
    TenderLotAwarded,
    TenderLotUnsuccessful,
    TenderOpened,
    TenderPublished,
    TenderRefused,
)

PARTS = ("admin", "technical", "financial")  # the envelopes a tender may ask for
FINANCIAL = "financial"


class TenderSpec(NamedTuple):
    """A tender as published. `lots`: (lot id, estimate in minor units); `share_digests`:
    SHA-256 of each member's share, in `members` order (member i holds Shamir index i+1);
    `parts`: the envelopes asked for ("financial" always); percentages as strings, ""
    for an unset threshold."""

    buyer_id: str
    opening_at: int
    lots: tuple[tuple[str, int], ...]
    public_key: bytes
    members: tuple[str, ...]
    share_digests: tuple[bytes, ...]
    threshold: int
    currency: str = "MAD"
    decimals: int = 2
    parts: tuple[str, ...] = ("admin", "financial")
    validity_days: int = 75
    preference: str = "15"
    exemption: str = "30"
    abnormally_low: str = ""
    excessive: str = ""
    ask_days: int = 7  # art. 10: questions until this many days before the opening
    answer_days: int = 3  # art. 10: answers until this many days before the opening
    justification_days: int = 7  # a flagged offer's time to justify itself (TN art. 65: no number)
    amendment_days: int = 7  # an amendment leaves at least this many days before the opening


class PublishTender(NamedTuple):
    now: int
    tender_id: str
    spec: TenderSpec


class DepositOffer(NamedTuple):
    """`envelopes`: (part, ciphertext, SHA-256 of the ciphertext) for each part asked."""

    now: int
    tender_id: str
    bidder_id: str
    envelopes: tuple[tuple[str, bytes, bytes], ...]
    client_id: str = ""


class WithdrawOffer(NamedTuple):
    now: int
    tender_id: str
    bidder_id: str
    client_id: str = ""


class RecordRate(NamedTuple):
    """The buyer records a currency's reference rate (art. 19): tender units per unit."""

    now: int
    tender_id: str
    buyer_id: str
    currency: str
    rate: str


class SubmitShare(NamedTuple):
    now: int
    tender_id: str
    member_id: str
    share: bytes


class DecideAdmission(NamedTuple):
    """A member's administrative and technical decision on a bidder; `established`: in
    Morocco; `moroccan_share`: for a groupement, the percent its Moroccan members hold."""

    now: int
    tender_id: str
    member_id: str
    bidder_id: str
    admitted: bool
    reason: str = ""
    established: bool = True
    moroccan_share: str = ""


class CloseAdmission(NamedTuple):
    """End the administrative and technical evaluation: every lot is evaluated and decided."""

    now: int
    tender_id: str
    member_id: str


class CancelTender(NamedTuple):
    now: int
    tender_id: str
    buyer_id: str
    reason: str


class RegisterDownload(NamedTuple):
    """A bidder downloaded the tender's file: it may ask questions and hears every answer."""

    now: int
    tender_id: str
    bidder_id: str


class AskQuestion(NamedTuple):
    """A clarification request (art. 10); the asker is never shown to anyone else."""

    now: int
    tender_id: str
    bidder_id: str
    question_id: str
    text: str


class AnswerQuestion(NamedTuple):
    now: int
    tender_id: str
    buyer_id: str
    question_id: str
    text: str


class RequestExtension(NamedTuple):
    """The buyer asks the bidders to extend their offers' validity by `days` (art. 16),
    answering by `answer_by` (before the validity ends)."""

    now: int
    tender_id: str
    buyer_id: str
    days: int
    answer_by: int


class AnswerExtension(NamedTuple):
    now: int
    tender_id: str
    bidder_id: str
    accepted: bool


class JustifyOffer(NamedTuple):
    """A flagged bidder's answer: the SHA-256 of its justification file (kept off the journal)."""

    now: int
    tender_id: str
    bidder_id: str
    lot_id: str
    digest: bytes


class DecideJustification(NamedTuple):
    now: int
    tender_id: str
    member_id: str
    lot_id: str
    bidder_id: str
    accepted: bool
    reason: str = ""


class PublishAmendment(NamedTuple):
    """The buyer amends the tender's file: its text and/or the SHA-256 of the amended file
    (b"" for none). Deposits standing then must be confirmed again (`ConfirmOffer`)."""

    now: int
    tender_id: str
    buyer_id: str
    amendment_id: str
    text: str
    digest: bytes = b""


class ConfirmOffer(NamedTuple):
    """A bidder confirms its deposit made before an amendment: else it is not opened."""

    now: int
    tender_id: str
    bidder_id: str


class DraftTender(NamedTuple):
    """The buyer saves (or replaces) a draft: private to it until `PublishTender` (same id)
    publishes it. `spec.public_key` may be b"" and `spec.share_digests` () until then."""

    now: int
    tender_id: str
    spec: TenderSpec


class DiscardDraft(NamedTuple):
    now: int
    tender_id: str
    buyer_id: str


COMMANDS: tuple[type[Any], ...] = (PublishTender, DepositOffer, WithdrawOffer, RecordRate, SubmitShare,
                                   DecideAdmission, CloseAdmission, CancelTender, RegisterDownload, AskQuestion,
                                   AnswerQuestion, RequestExtension, AnswerExtension, JustifyOffer,
                                   DecideJustification, PublishAmendment, ConfirmOffer, DraftTender, DiscardDraft)


def encode_publish(command: PublishTender | DraftTender) -> list[Any]:
    return [type(command).__name__, command.now, command.tender_id, list(command.spec)]


def tuples(value: Any) -> Any:
    if type(value) in (list, tuple):
        return tuple(tuples(v) for v in value)
    return value


SPEC_FIELDS_V1 = 18  # journals written before `amendment_days` hold 18 spec fields: the rest default


def decode_publish(fields: tuple[Any, ...]) -> PublishTender:
    """The command `encode_publish` wrote; ValueError for another shape (the kind checks values)."""
    if (len(fields) != 3 or type(fields[2]) not in (list, tuple)
            or not SPEC_FIELDS_V1 <= len(fields[2]) <= len(TenderSpec._fields)):
        raise ValueError(f"PublishTender takes now, tender id and {SPEC_FIELDS_V1} to "
                         f"{len(TenderSpec._fields)} spec fields")
    return PublishTender(fields[0], fields[1], TenderSpec(*tuples(fields[2])))


def decode_draft(fields: tuple[Any, ...]) -> DraftTender:
    """The draft `encode_publish` wrote (drafts came after every spec field: the whole spec)."""
    if len(fields) != 3 or type(fields[2]) not in (list, tuple) or len(fields[2]) != len(TenderSpec._fields):
        raise ValueError(f"DraftTender takes now, tender id and {len(TenderSpec._fields)} spec fields")
    return DraftTender(fields[0], fields[1], TenderSpec(*tuples(fields[2])))


__all__ = [
    "AdmissionDecided", "AmendmentPublished", "AnswerExtension", "AnswerQuestion", "AskQuestion", "COMMANDS",
    "CancelTender", "CloseAdmission", "ConfirmOffer", "DecideAdmission", "DecideJustification",
    "DepositOffer", "DepositsClosed", "DiscardDraft", "DraftDiscarded", "DraftSaved", "DraftTender", "EVENTS",
    "EnvelopeOpened", "EnvelopeUnreadable", "ExtensionAnswered", "ExtensionClosed", "ExtensionRequested",
    "FINANCIAL", "FileDownloaded", "JustificationDecided", "JustificationRequested", "JustifyOffer",
    "OfferConfirmed", "OfferDeposited", "OfferJustified", "OfferSetAside", "OfferWithdrawn", "PARTS",
    "PUBLIC", "PublishAmendment", "PublishTender", "QuestionAnswered", "QuestionAsked", "RateRecorded",
    "RecordRate", "RegisterDownload", "RequestExtension", "SPEC_FIELDS_V1", "ShareAccepted", "SubmitShare",
    "TenderCancelled", "TenderLotAwarded", "TenderLotUnsuccessful", "TenderOpened", "TenderPublished",
    "TenderRefused", "TenderSpec", "WithdrawOffer", "decode_draft", "decode_publish", "encode_publish",
    "tuples",
]
