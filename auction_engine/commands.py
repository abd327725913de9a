"""Commands: what the shell asks of the core, named in the imperative.

Every command carries `now`, the engine time in µs since the epoch (UTC), read once by
the shell; the core never reads a clock. Commands are journaled and replayed as they are.
Money is in minor units (see `money.parse_amount` for the edge form).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._records import typed_records
from .config import AuctionConfig, ConfigError
from .kind import Tick

__all__ = [
    "COMMAND_TYPES", "AdmitBidder", "Cancel", "Command", "CreateAuction", "PlaceBid", "Resume", "RevokeBidder",
    "Suspend", "Tick",
]


class CreateAuction(NamedTuple):
    """Create an auction from a validated configuration."""

    now: int
    config: AuctionConfig


class AdmitBidder(NamedTuple):
    """Admit a bidder to every lot of an auction (again, after a revocation)."""

    now: int
    auction_id: str
    bidder_id: str


class RevokeBidder(NamedTuple):
    """Stop a bidder from bidding; its accepted bids stay binding and ranked."""

    now: int
    auction_id: str
    bidder_id: str
    reason: str = ""


class PlaceBid(NamedTuple):
    """A bid of `amount` minor units on one lot. `client_bid_id` is the bidder's own
    name for the bid (journaled, so a retry can be answered with the first outcome);
    the core does not read it. An edge passes an amount string that did not parse as
    sent (the core rejects it `invalid_amount`, counted and journaled like any refusal)."""

    now: int
    auction_id: str
    lot_id: str
    bidder_id: str
    amount: int | str
    client_bid_id: str = ""


class Suspend(NamedTuple):
    """Suspend one lot, or every open or scheduled lot when `lot_id` is None."""

    now: int
    auction_id: str
    lot_id: str | None = None
    reason: str = ""


class Resume(NamedTuple):
    """Resume one suspended lot, or every suspended lot when `lot_id` is None."""

    now: int
    auction_id: str
    lot_id: str | None = None


class Cancel(NamedTuple):
    """Cancel one lot, or every lot not yet closed when `lot_id` is None."""

    now: int
    auction_id: str
    lot_id: str | None = None
    reason: str = ""


Command = CreateAuction | AdmitBidder | RevokeBidder | PlaceBid | Suspend | Resume | Cancel | Tick
COMMAND_TYPES: tuple[type[Command], ...] = (
    CreateAuction, AdmitBidder, RevokeBidder, PlaceBid, Suspend, Resume, Cancel, Tick,
)
typed_records(*COMMAND_TYPES)


def encode_create(command: CreateAuction) -> list[object]:
    """A CreateAuction as the journal holds it: its configuration as a plain dict."""
    return ["CreateAuction", command.now, command.config.to_dict()]


def decode_create(fields: tuple[object, ...]) -> CreateAuction:
    """`encode_create`'s fields back (after the name); ValueError for a bad configuration."""
    try:
        return CreateAuction(fields[0], AuctionConfig.from_dict(_lists(fields[1])))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ValueError(f"invalid configuration: {exc}") from None


def _lists(value: Any) -> Any:
    """msgpack's tuples back to the lists a configuration is written with."""
    if type(value) is tuple or type(value) is list:
        return [_lists(v) for v in value]
    if type(value) is dict:
        return {k: _lists(v) for k, v in value.items()}
    return value
