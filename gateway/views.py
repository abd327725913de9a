"""The RPC's answer models, declared once (pydantic v2): the document states them and the
tests (and schemathesis) check every answer against them.

Answers are built as plain dicts on the hot paths; these models are their contract:
every key present unless it has a default, money and times in their edge form.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from auction_engine.config import EXTENSION_MODES, IMPROVE_ON, TRIGGERS, VISIBILITIES
from auction_engine.events import UNSUCCESSFUL_REASONS
from auction_engine.money import MAX_DECIMALS

from .models import AUCTION_STATUSES, DURATION_SCHEMA, LOT_STATUSES, PAGE_LIMIT, Identifier

_DECIMAL_OUT = r"^-?[0-9]+(\.[0-9]+)?$"
MoneyOut = Annotated[str, WithJsonSchema({
    "type": "string", "pattern": _DECIMAL_OUT, "examples": ["1234.50"],
    "description": "A decimal string with exactly the auction's `decimals` decimals (negative only for savings)."})]
PercentOut = Annotated[str, WithJsonSchema({"type": "string", "pattern": _DECIMAL_OUT, "examples": ["12.50"]})]
InstantOut = Annotated[str, WithJsonSchema({
    "type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$",
    "format": "date-time", "examples": ["2026-03-02T10:00:00.000000Z"],
    "description": "ISO-8601 UTC with microseconds and `Z`."})]
DurationOut = Annotated[str, WithJsonSchema({"type": "string", "pattern": DURATION_SCHEMA, "examples": ["2m", "0s"],
                                             "description": "The shortest duration string, e.g. `2m` or `1h30m`."})]
RoomToken = Annotated[str, WithJsonSchema({
    "type": "string", "pattern": r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
    "description": "A JWT (HS256) for the auction room, scoped to one auction and one bidder or observer, with an "
                   "expiry."})]
Count = Annotated[int, Field(ge=0)]


class View(BaseModel):
    """An answer part: exactly these keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorDetail(View):
    path: str = Field(description="The field's path, e.g. `lots[0].starting_price` or `ttl_s`.")
    message: str


class ErrorBody(View):
    code: str = Field(description="Stable machine code (docs/api.md, error codes).")
    message: str = Field(description="For humans; may change.")
    details: list[ErrorDetail] = Field(default_factory=list, description="Every problem found, with "
                                       "invalid_config, invalid_request and invalid_query.")


class Error(View):
    """Every error answer of the RPC."""

    error: ErrorBody


class BidRulesView(View):
    min_step: MoneyOut
    min_step_percent: PercentOut | None
    max_step: MoneyOut | None
    max_step_percent: PercentOut | None
    improve_on: Literal[IMPROVE_ON]  # type: ignore[valid-type]


class ExtensionPolicyView(View):
    window: DurationOut
    extend_by: DurationOut
    trigger: Literal[TRIGGERS]  # type: ignore[valid-type]
    top_n: int = Field(ge=1)
    mode: Literal[EXTENSION_MODES]  # type: ignore[valid-type]
    max_extensions: Count | None
    hard_close: InstantOut | None
    inactivity_close: DurationOut | None


class LotView(View):
    """A lot's resolved configuration and its live state (anonymised)."""

    lot_id: Identifier
    title: str
    estimate: MoneyOut
    starting_price: MoneyOut
    reserve_price: MoneyOut | None
    rules: BidRulesView
    extension: ExtensionPolicyView
    status: Literal[LOT_STATUSES]  # type: ignore[valid-type]
    close_at: InstantOut = Field(description="The current scheduled close, or the actual one once ended.")
    extensions: Count
    bids: Count = Field(description="Accepted bids.")
    rejected_bids: Count = Field(description="Rejected bids.")
    active_bidders: Count = Field(description="Bidders with a standing bid.")
    best_price: MoneyOut | None


class BidderEntry(View):
    bidder_id: Identifier
    admitted: bool = Field(description="false once revoked")


class AuctionView(View):
    """An auction: its configuration (without pseudonym_secret) and live state."""

    auction_id: Identifier
    title: str
    buyer_ref: str
    currency: str
    decimals: int = Field(ge=0, le=MAX_DECIMALS)
    start: InstantOut
    end: InstantOut
    min_bidders: int = Field(ge=1)
    visibility: Literal[VISIBILITIES]  # type: ignore[valid-type]
    stagger: DurationOut
    lots: list[LotView] = Field(min_length=1)
    status: Literal[AUCTION_STATUSES] = Field(  # type: ignore[valid-type]
        description="closed: every lot ended; open: some lot open; suspended: none open, some suspended; else "
                    "scheduled.")
    admitted_bidders: Count = Field(description="Bidders admitted now.")
    tender_ref: Identifier | None = Field(None, description="The tender whose admitted bidders this auction took "
                                          "(POST /tenders/{tender_id}/auction); absent otherwise.")
    bidders: list[BidderEntry] = Field(default_factory=list, description="Every bidder ever admitted; only in the "
                                       "portal's answers of POST /auctions and GET /auctions/{auction_id}.")


class AuctionSummary(View):
    auction_id: Identifier
    title: str
    buyer_ref: str
    status: Literal[AUCTION_STATUSES]  # type: ignore[valid-type]
    start: InstantOut
    end: InstantOut
    lots: int = Field(ge=1, description="Number of lots.")


class AuctionPage(View):
    auctions: list[AuctionSummary] = Field(max_length=PAGE_LIMIT)
    next: Identifier | None = Field(description="Pass as `after` for the next page; null on the last.")


class BidderToken(View):
    bidder_id: Identifier
    token: RoomToken
    expires_at: InstantOut


class AdmitResult(View):
    auction_id: Identifier
    tokens: list[BidderToken] = Field(min_length=1, description="One per bidder, in request order.")


class RevokeResult(View):
    auction_id: Identifier
    bidder_id: str
    admitted: Literal[False]


class ObserverToken(View):
    auction_id: Identifier
    name: Identifier
    token: RoomToken
    expires_at: InstantOut


class RankedBid(View):
    rank: int = Field(ge=1)
    pseudonym: str
    bidder_id: Identifier | None = Field(description="Only when `identities` is true.")
    price: MoneyOut
    time: InstantOut


class LotResult(View):
    lot_id: Identifier
    title: str
    status: Literal["pending", "awarded", "unsuccessful"]
    reason: Literal[UNSUCCESSFUL_REASONS] | None = Field(description="Why unsuccessful.")  # type: ignore[valid-type]
    winner_pseudonym: str | None
    winner_id: Identifier | None = Field(description="Only when `identities` is true.")
    awarded_price: MoneyOut | None
    estimate: MoneyOut
    starting_price: MoneyOut
    savings: MoneyOut | None = Field(description="estimate - awarded price.")
    savings_percent: PercentOut | None
    ranking: list[RankedBid]
    bids: Count = Field(description="Accepted bids.")
    rejected_bids: Count = Field(description="Rejected bids.")
    extensions: Count
    closed_at: InstantOut | None
    close_reason: Literal["scheduled", "inactivity", "cancelled"] | None


class Results(View):
    auction_id: Identifier
    title: str
    currency: str
    decimals: int = Field(ge=0, le=MAX_DECIMALS)
    final: bool = Field(description="Every lot has ended.")
    lots: list[LotResult]
    awarded_estimate: MoneyOut = Field(description="Sum of the awarded lots' estimates.")
    awarded_total: MoneyOut = Field(description="Sum of the awarded prices.")
    savings: MoneyOut
    savings_percent: PercentOut
    identities: bool = Field(description="Bidder ids are shown: the caller is the portal or the buyer and every lot "
                                         "has ended.")


# -- the lifecycle feed ----------------------------------------------------------------------

class _Entry(View):
    seq: int = Field(ge=1, description="Position in the feed, stable across restarts.")
    time: InstantOut
    auction_id: Identifier


class _LotEntry(_Entry):
    lot_id: Identifier


class AuctionCreated(_Entry):
    type: Literal["AuctionCreated"]


class AuctionClosed(_Entry):
    type: Literal["AuctionClosed"]


class LotOpened(_LotEntry):
    type: Literal["LotOpened"]
    close_at: InstantOut


class LotExtended(_LotEntry):
    type: Literal["LotExtended"]
    close_at: InstantOut
    extensions: int = Field(ge=1)


class LotSuspended(_LotEntry):
    type: Literal["LotSuspended"]
    reason: str


class LotResumed(_LotEntry):
    type: Literal["LotResumed"]
    close_at: InstantOut


class LotClosed(_LotEntry):
    type: Literal["LotClosed"]
    reason: Literal["scheduled", "inactivity"]


class LotCancelled(_LotEntry):
    type: Literal["LotCancelled"]
    reason: str


class LotAwarded(_LotEntry):
    type: Literal["LotAwarded"]
    amount: MoneyOut = Field(description="The awarded price. The feed never names the winner: identities come with "
                                         "the results, once every lot of the auction has ended.")


class LotUnsuccessful(_LotEntry):
    type: Literal["LotUnsuccessful"]
    reason: Literal[UNSUCCESSFUL_REASONS]  # type: ignore[valid-type]


FeedEntry = Annotated[
    AuctionCreated | LotOpened | LotExtended | LotSuspended | LotResumed | LotClosed | LotCancelled | LotAwarded
    | LotUnsuccessful | AuctionClosed, Field(discriminator="type")]


class FeedPage(View):
    events: list[FeedEntry] = Field(max_length=PAGE_LIMIT)
    last_seq: int = Field(ge=0, description="The seq of the last entry, else the `after` used: pass it as the next "
                                            "`after`.")


class Health(View):
    status: Literal["ok"]
    server_time: InstantOut


class Ready(View):
    status: Literal["ready"]
