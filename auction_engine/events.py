"""Events: what the core decided, named in the past tense, with the rejection codes.

`time` is the engine time of the decision in µs; for openings, closes and awards it is
the exact instant they were due, which may precede the command that applied them.
A bidder's mistake is a `BidRejected` with a stable code, never an exception.
"""

from __future__ import annotations

from typing import NamedTuple

from ._records import typed_records

# Stable rejection codes, in the order the checks run (the first failing check wins).
REJECTION_CODES: dict[str, str] = {
    "malformed": "the command's fields have the wrong types",
    "unknown_auction": "no auction has this id",
    "unknown_lot": "the auction has no lot with this id",
    "not_admitted": "the bidder is not admitted to the auction, or was revoked",
    "lot_not_open": "the lot has not opened yet",
    "lot_suspended": "the lot is suspended",
    "lot_closed": "the lot has closed (a bid at the exact close instant is late)",
    "lot_cancelled": "the lot was cancelled",
    "invalid_amount": "the amount is not a positive number of minor units",
    "above_starting_price": "the amount is above the lot's starting (ceiling) price",
    "insufficient_step": "the bid does not improve enough on the price it is measured from",
    "step_too_large": "the bid improves by more than the maximum step",
}

# Codes of commands other than bids (CommandRejected).
COMMAND_REJECTION_CODES: dict[str, str] = {
    "malformed": "the command's fields have the wrong types",
    "auction_exists": "an auction with this id already exists",
    "ends_in_past": "every lot of the new auction would close before its creation",
    "unknown_auction": "no auction has this id",
    "unknown_lot": "the auction has no lot with this id",
    "unknown_bidder": "the bidder was never admitted to this auction",
    "already_admitted": "the bidder is already admitted",
    "not_admitted": "the bidder is not admitted (already revoked)",
    "too_many_bidders": "the auction has as many bidders as pseudonyms",
    "not_suspendable": "the lot is not scheduled or open",
    "not_suspended": "the lot is not suspended",
    "not_cancellable": "the lot has already closed or been cancelled",
    "auction_finished": "every lot of the auction has closed",
}


class AuctionCreated(NamedTuple):
    time: int
    auction_id: str


class BidderAdmitted(NamedTuple):
    time: int
    auction_id: str
    bidder_id: str
    pseudonym: str


class BidderRevoked(NamedTuple):
    time: int
    auction_id: str
    bidder_id: str
    reason: str


class LotOpened(NamedTuple):
    time: int
    auction_id: str
    lot_id: str
    close_at: int


class BidAccepted(NamedTuple):
    """`seq` is the engine-wide bid sequence that breaks ties; `rank` is the bid's rank
    after it (1 is best); `best` is the lot's best price after it."""

    time: int
    auction_id: str
    lot_id: str
    bidder_id: str
    amount: int
    seq: int
    rank: int
    best: int


class BidRejected(NamedTuple):
    """`amount` is what was sent, whatever its type; `code` is one of REJECTION_CODES."""

    time: int
    auction_id: str
    lot_id: str
    bidder_id: str
    amount: object
    code: str
    message: str


class LotExtended(NamedTuple):
    """The close moved to `close_at`; `extensions` counts them so far."""

    time: int
    auction_id: str
    lot_id: str
    close_at: int
    extensions: int


class LotSuspended(NamedTuple):
    time: int
    auction_id: str
    lot_id: str
    reason: str


class LotResumed(NamedTuple):
    """The lot runs again; its close moved by the suspension's length to `close_at`."""

    time: int
    auction_id: str
    lot_id: str
    close_at: int


class LotClosed(NamedTuple):
    """`reason`: "scheduled" (the close time came) or "inactivity"."""

    time: int
    auction_id: str
    lot_id: str
    reason: str


class LotCancelled(NamedTuple):
    time: int
    auction_id: str
    lot_id: str
    reason: str


class LotAwarded(NamedTuple):
    time: int
    auction_id: str
    lot_id: str
    bidder_id: str
    amount: int


class LotUnsuccessful(NamedTuple):
    """`reason`: "no_bids", "too_few_bidders", "above_reserve" or "cancelled"."""

    time: int
    auction_id: str
    lot_id: str
    reason: str


class AuctionClosed(NamedTuple):
    """Every lot has been awarded or declared unsuccessful."""

    time: int
    auction_id: str


class CommandRejected(NamedTuple):
    """A command other than a bid was refused; `code` is one of COMMAND_REJECTION_CODES."""

    time: int
    command: str
    auction_id: str
    code: str
    message: str


Event = (
    AuctionCreated | BidderAdmitted | BidderRevoked | LotOpened | BidAccepted | BidRejected | LotExtended
    | LotSuspended | LotResumed | LotClosed | LotCancelled | LotAwarded | LotUnsuccessful | AuctionClosed
    | CommandRejected
)
EVENT_TYPES: tuple[type[Event], ...] = (
    AuctionCreated, BidderAdmitted, BidderRevoked, LotOpened, BidAccepted, BidRejected, LotExtended,
    LotSuspended, LotResumed, LotClosed, LotCancelled, LotAwarded, LotUnsuccessful, AuctionClosed,
    CommandRejected,
)
UNSUCCESSFUL_REASONS = ("no_bids", "too_few_bidders", "above_reserve", "cancelled")
# What the portals' lifecycle feed shows of an auction (an award without its winner).
FEED_EVENTS: frozenset[type[Event]] = frozenset({
    AuctionCreated, LotOpened, LotExtended, LotSuspended, LotResumed, LotClosed, LotCancelled, LotAwarded,
    LotUnsuccessful, AuctionClosed})
typed_records(*EVENT_TYPES)
