"""The tender RPC's answer models and public feed entries (pydantic v2), declared once:
the document states them and the tests check every answer against them. Money is a
decimal string in the tender's decimals, instants ISO-8601 UTC, bytes lowercase hex.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from .models import Identifier
from .tender_models import STATUSES, Part, TenderId
from .views import Count, InstantOut, MoneyOut, View

LOT_STATUSES = ("pending", "justification", "awarded", "unsuccessful")

# -- answers --------------------------------------------------------------------------------

Explain = list[dict[str, Any]]
EXPLAIN = ("Every evaluation step with its inputs and result (docs/tenders.md): the kind's own values, amounts "
           "in integer units as each key names them.")


class LotSpecView(View):
    lot_id: TenderId
    estimate: MoneyOut


class TenderLotView(View):
    lot_id: TenderId
    status: Literal[LOT_STATUSES]  # type: ignore[valid-type]
    reason: str = Field(description="Why unsuccessful (else empty).")
    won: bool | None = Field(None, description="(bidder) Whether it won this lot.")
    winner: TenderId | None = Field(None, description="(buyer, commission, auditor) The winner.")
    amount: MoneyOut | None = Field(None, description="(buyer, commission, auditor) The awarded amount.")
    reference: MoneyOut | None = Field(None, description="(buyer, commission, auditor) P, rounded half up.")
    explain: Explain | None = Field(None, description=EXPLAIN)


class Clarification(View):
    question_id: TenderId
    question: str
    answer: str


class PendingQuestion(View):
    question_id: TenderId
    question: str
    answered: bool


class EnvelopeDigest(View):
    part: Part
    sha256: str


class BidderFile(View):
    bidder_id: TenderId
    order: Count = Field(description="Deposit order (a re-deposit takes a new place).")
    envelopes: list[EnvelopeDigest]
    opened: dict[str, str] = Field(description="Part -> `ok`, `undecryptable` or `malformed_offer`.")
    admitted: bool | None
    reason: str
    decided_by: str | None


class AmendmentView(View):
    amendment_id: TenderId
    time: InstantOut = Field(description="When it was published.")
    text: str
    sha256: Annotated[str, Field(pattern="^[0-9a-f]{64}$")] | None = Field(
        description="SHA-256 of the amended file (hex), or null.")
    opening_at: InstantOut = Field(description="The opening after it (moved if fewer than `amendment_days` were "
                                               "left).")


class SetAside(View):
    bidder_id: TenderId
    time: InstantOut = Field(description="The deposit deadline that set it aside.")
    code: Literal["not_confirmed"] = Field(description="Why: made before an amendment and not confirmed.")
    envelopes: list[EnvelopeDigest] = Field(description="Its envelopes' digests; never opened.")


class Admission(View):
    admitted: bool
    reason: str


class OwnEvaluation(View):
    lot_id: TenderId
    steps: Explain
    reference: MoneyOut | None
    flag: str | None
    preference: Explain
    rank: int | None


class TenderView(View):
    """A tender as the caller's role sees it: everyone the public part; a bidder also its
    own file and evaluation; the buyer, the commission and auditors every bidder's."""

    tender_id: TenderId
    buyer_id: TenderId
    status: Literal[STATUSES]  # type: ignore[valid-type]
    opening_at: InstantOut
    validity_until: InstantOut
    ask_until: InstantOut = Field(description="Questions until this instant (inclusive).")
    answer_until: InstantOut = Field(description="Answers until this instant (inclusive).")
    currency: str
    decimals: int = Field(ge=0, le=6)
    parts: list[Part]
    public_key: str = Field(description="The tender's X25519 public key (hex): seal envelopes to it.")
    members: list[TenderId]
    threshold: int = Field(ge=1)
    estimates: list[LotSpecView]
    deposits: Count
    private_key: str | None = Field(description="Once opened: the rebuilt private key (hex), public from then on.")
    lots: list[TenderLotView]
    clarifications: list[Clarification]
    deposit: list[EnvelopeDigest] | None = Field(None, description="(bidder) Its standing deposit.")
    opened: dict[str, str] | None = Field(None, description="(bidder) Its envelopes after the opening.")
    admission: Admission | None = Field(None, description="(bidder) The commission's decision on it.")
    lapsed: bool | None = Field(None, description="(bidder) Its offer lapsed (validity not extended).")
    evaluation: list[OwnEvaluation] | None = Field(None, description="(bidder) Its part of each lot's evaluation.")
    bidders: list[BidderFile] | None = Field(None, description="(buyer, commission, auditor) Every deposit.")
    downloads: Count | None = Field(None, description="(buyer, commission, auditor) Registered downloads.")
    questions: list[PendingQuestion] | None = Field(None, description="(buyer) Every question, without its asker.")
    amendment_days: int = Field(ge=0, description="An amendment with fewer days left moves the opening.")
    amendments: list[AmendmentView] = Field(description="Every amendment, in publication order (public).")
    must_confirm: bool | None = Field(None, description="(bidder) Its deposit predates an amendment: confirm it "
                                                        "before `opening_at` (POST .../confirmations) or it is set "
                                                        "aside, never opened.")
    set_aside: bool | None = Field(None, description="(bidder) Its deposit was set aside at the deadline "
                                                     "(unconfirmed).")
    to_confirm: list[TenderId] | None = Field(None, description="(buyer, commission, auditor) Bidders whose deposit "
                                                                "awaits confirmation, in deposit order.")
    set_aside_offers: list[SetAside] | None = Field(None, description="(buyer, commission, auditor) Deposits set "
                                                                      "aside at the deadline.")


class TenderSummary(View):
    tender_id: TenderId
    buyer_id: TenderId
    status: Literal[STATUSES]  # type: ignore[valid-type]
    opening_at: InstantOut
    lots: int = Field(ge=1)
    deposits: Count


class TenderPage(View):
    tenders: list[TenderSummary]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last.")


class CaseToken(View):
    subject: TenderId
    role: Literal["bidder", "commission"]
    token: Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\."
                                          r"[A-Za-z0-9_-]+$", "description": "A case token (JWT) for this tender."})]
    expires_at: InstantOut


class TokensView(View):
    tender_id: TenderId
    tokens: list[CaseToken] = Field(description="Bidders first, then members, in request order.")


class Receipt(View):
    """Signed by the service (Ed25519) over `DOMAIN || JSON(every field but signature)`
    (keys sorted, no spaces, ASCII); verify it with `auction-replay verify-receipt`."""

    version: Literal[1]
    kind: Literal["deposit", "withdrawal"]
    tender_id: TenderId
    bidder_id: TenderId
    envelopes: list[EnvelopeDigest] = Field(description="Sorted by part; empty for a withdrawal.")
    time_us: int = Field(ge=0, description="The instant of the act, µs since the epoch (UTC).")
    time: InstantOut
    gseq: int = Field(ge=1, description="The journal position of the act's record.")
    key_id: str = Field(description="The first 16 hex digits of the signing public key.")
    signature: str = Field(pattern="^[0-9a-f]{128}$", description="Ed25519, hex.")


class ReceiptKey(View):
    algorithm: Literal["Ed25519"]
    key_id: str
    public_key: str = Field(description="The raw public key, hex.")
    public_key_pem: str = Field(description="SubjectPublicKeyInfo PEM, for `verify-receipt --public-key`.")
    domain: str = Field(description="The signed bytes' prefix.")


class QuestionView(View):
    tender_id: TenderId
    question_id: TenderId
    question: str


class TenderResults(View):
    tender_id: TenderId
    status: Literal[STATUSES]  # type: ignore[valid-type]
    currency: str
    decimals: int = Field(ge=0, le=6)
    lots: list[TenderLotView]
    evaluation: list[OwnEvaluation] | None = Field(None, description="(bidder) Its part of each lot's evaluation.")


class BridgeView(View):
    tender_id: TenderId
    auction_id: Identifier
    bidders: list[TenderId] = Field(description="Admitted to the auction: the tender's admitted bidders. Issue "
                                                "their room tokens with POST /auctions/{auction_id}/bidders.")


# -- the tenders' public feed entries (no bidder, no asker) ---------------------------------

class _TenderEntry(View):
    seq: int = Field(ge=1, description="Position in the feed, stable across restarts.")
    time: InstantOut
    tender_id: TenderId


class TenderPublished(_TenderEntry):
    type: Literal["TenderPublished"]
    opening_at: InstantOut
    validity_until: InstantOut


class DepositsClosed(_TenderEntry):
    type: Literal["DepositsClosed"]
    offers: Count = Field(description="Deposits standing at the deadline.")


class TenderOpened(_TenderEntry):
    type: Literal["TenderOpened"]
    private_key: str = Field(description="The rebuilt private key (hex): anyone may now open the envelopes.")


class TenderLotAwarded(_TenderEntry):
    type: Literal["TenderLotAwarded"]
    lot_id: TenderId
    amount: MoneyOut = Field(description="The awarded amount; the feed never names the winner.")
    reference: MoneyOut = Field(description="P, rounded half up.")


class TenderLotUnsuccessful(_TenderEntry):
    type: Literal["TenderLotUnsuccessful"]
    lot_id: TenderId
    reason: str


class TenderCancelled(_TenderEntry):
    type: Literal["TenderCancelled"]
    reason: str


class QuestionAnswered(_TenderEntry):
    type: Literal["QuestionAnswered"]
    question_id: TenderId
    question: str
    answer: str = Field(description="Published to all; the asker is never named.")


class ExtensionRequested(_TenderEntry):
    type: Literal["ExtensionRequested"]
    days: int = Field(ge=1)
    answer_by: InstantOut


class ExtensionClosed(_TenderEntry):
    type: Literal["ExtensionClosed"]
    validity_until: InstantOut
    lapsed: Count = Field(description="How many offers lapsed (not who).")


class AmendmentPublished(_TenderEntry):
    type: Literal["AmendmentPublished"]
    amendment_id: TenderId
    text: str
    digest: str = Field(pattern="^([0-9a-f]{64})?$", description="SHA-256 of the amended file (hex), or empty.")
    opening_at: InstantOut = Field(description="The opening after it (moved or not).")
    to_confirm: Count = Field(description="How many deposits must be confirmed (not whose).")


FEED_ENTRIES = (TenderPublished, DepositsClosed, TenderOpened, TenderLotAwarded, TenderLotUnsuccessful,
                TenderCancelled, QuestionAnswered, ExtensionRequested, ExtensionClosed,
                AmendmentPublished)
