"""The room's messages as typed models (msgspec Structs), declared once; docs/protocol.md.

Client messages (`Hello`, `Bid`, `Ping`) are tagged by "type"; each field's rule is its
type, and the Meta description is the text of its `invalid_field` error (protocol.py).
Server messages encode in field order, "type" first; an UNSET field is left out, None
is sent as null. Money is a decimal string, time ISO-8601 UTC.
"""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import UNSET, Meta, Struct, UnsetType

MAX_PING_ID = 64  # characters of a ping id echoed back
CLIENT_BID_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}\Z"


class _Client(Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    """Unknown fields are ignored by the room: a frame with some is read on the checked path."""


class Hello(_Client, frozen=True, tag="hello"):
    """The first message: the room token (a non-string token is read as no token)."""

    token: str | None = None


class Bid(_Client, frozen=True, tag="bid"):
    """A bid; `amount` is passed to the core as sent when it does not parse."""

    client_bid_id: Annotated[str, Meta(pattern=CLIENT_BID_ID_PATTERN,
                                       description="bid.client_bid_id must be 1-64 letters, digits or . _ : @ -")]
    lot: Annotated[str, Meta(min_length=1, max_length=200, description="bid.lot must be the lot's id (a string)")]
    amount: Annotated[str, Meta(max_length=64, description='bid.amount must be a decimal string such as "1234.50"')]


class Ping(_Client, frozen=True, tag="ping"):
    id: Annotated[
        Annotated[int, Meta(ge=-(2**63), le=2**63 - 1, description="ping.id is out of range")]
        | Annotated[str, Meta(max_length=MAX_PING_ID)] | None,
        Meta(description=f"ping.id must be an integer or a string of at most {MAX_PING_ID}")] = None


ClientMessage = Hello | Bid | Ping


# -- server messages ---------------------------------------------------------------------


class _Server(Struct, tag_field="type", kw_only=True):
    pass


class Error(_Server, tag="error"):
    code: str
    message: str
    client_bid_id: str | UnsetType = UNSET


class Reject(_Server, tag="reject"):
    client_bid_id: str | None
    lot: str
    code: str
    message: str
    duplicate: bool | UnsetType = UNSET  # a core's reject says whether the bid was a retry


class Ack(_Server, tag="ack"):
    client_bid_id: str
    lot: str
    amount: str
    time: str
    rank: int
    duplicate: bool
    best_price: str | UnsetType = UNSET  # not in "rank" visibility


class Pong(_Server, tag="pong"):
    id: int | str | None
    server_time: str


class WelcomeLot(Struct, kw_only=True):
    lot_id: str
    title: str
    starting_price: str
    rules: dict[str, Any]
    extension: dict[str, Any]
    estimate: str | UnsetType | None = UNSET  # observers only
    reserve_price: str | UnsetType | None = UNSET


class Welcome(_Server, tag="welcome"):
    connection_id: str
    role: str
    auction_id: str
    title: str
    currency: str
    decimals: int
    visibility: str
    pseudonym: str | None
    start: str
    end: str
    stagger: str
    lots: list[WelcomeLot]
    server_time: str


class Clock(_Server, tag="clock"):
    lot: str
    status: str
    close_at: str
    extensions: int
    server_time: str


class Suspended(_Server, tag="suspended"):
    lot: str
    reason: str
    server_time: str


class Resumed(_Server, tag="resumed"):
    lot: str
    close_at: str
    server_time: str


class Closed(_Server, tag="closed"):
    """An ended lot: the outcome and winner for observers, a bidder's own result otherwise."""

    lot: str
    close_reason: str | None
    server_time: str
    outcome: str
    winner: str | UnsetType = UNSET
    awarded_price: str | UnsetType = UNSET
    rank: int | UnsetType | None = UNSET
    own_price: str | UnsetType | None = UNSET
    unsuccessful_reason: str | UnsetType = UNSET


class LadderLine(Struct, kw_only=True):
    rank: int
    pseudonym: str
    price: str
    own: bool | UnsetType = UNSET  # bidders' ladders only


class BidderView(_Server, tag="view"):
    """A bidder's view of one lot, with exactly the fields its visibility mode allows."""

    lot: str
    status: str
    close_at: str
    extensions: int
    own_price: str | None
    rank: int | None
    active_bidders: int
    best_price: str | UnsetType | None = UNSET  # not in "rank" visibility
    gap: str | UnsetType | None = UNSET
    ladder: list[LadderLine] | UnsetType = UNSET  # "ladder" visibility only


class ObserverView(_Server, tag="view"):
    """The anonymised view of one lot for observers."""

    lot: str
    status: str
    close_at: str
    extensions: int
    active_bidders: int
    bids: int
    rejected_bids: int
    best_price: str | None
    ladder: list[LadderLine]


ServerMessage = (Error | Reject | Ack | Pong | Welcome | Clock | Suspended | Resumed | Closed | BidderView
                 | ObserverView)
