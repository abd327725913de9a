"""The room's replies built from the core's outcomes: ack, reject, welcome.

Each renders what the connection's role and the auction's visibility allow
(`connection.Connection.sees`, from `ranking.shown`): a reject never carries a core
message that could reveal the best price or name the bidder.
"""

from __future__ import annotations

from auction_engine.config import AuctionConfig
from auction_engine.events import REJECTION_CODES, BidAccepted, BidRejected
from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant

from . import messages as m
from . import protocol as p
from .connection import Connection


def ack(event: BidAccepted, client_bid_id: str, conn: Connection, duplicate: bool) -> m.Ack:
    """The ack of an accepted bid, with the bidder's standing right after it."""
    out = m.Ack(client_bid_id=client_bid_id, lot=event.lot_id, amount=format_amount(event.amount, conn.decimals),
                time=format_instant(event.time), rank=event.rank, duplicate=duplicate)
    if conn.sees.best_price:
        out.best_price = format_amount(event.best, conn.decimals)
    return out


# Core rejection messages that may say more than the bidder may see: the step messages
# name amounts that can reveal the best price (`Shown.amounts_in_refusals`); "not_admitted"
# names the bidder. These get the code's generic text instead.
_STEP_CODES = frozenset({"insufficient_step", "step_too_large"})


def reject(event: BidRejected, client_bid_id: str, conn: Connection, duplicate: bool) -> m.Reject:
    """The reject of a bid the core refused."""
    message = event.message
    if event.code == "not_admitted" or (not conn.sees.amounts_in_refusals and event.code in _STEP_CODES):
        message = REJECTION_CODES[event.code]
    lot = event.lot_id if type(event.lot_id) is str else ""
    out = p.reject(client_bid_id, lot, event.code, message)
    out.duplicate = duplicate
    return out


def welcome(config: AuctionConfig, conn: Connection, now: int) -> m.Welcome:
    """The first server message: who the connection is and the auction's rules."""
    full = config.to_dict()
    lots = []
    for lot in full["lots"]:
        shown = m.WelcomeLot(lot_id=lot["lot_id"], title=lot["title"], starting_price=lot["starting_price"],
                             rules=lot["rules"], extension=lot["extension"])
        if conn.sees.estimate:
            shown.estimate, shown.reserve_price = lot["estimate"], lot["reserve_price"]
        lots.append(shown)
    return m.Welcome(
        connection_id=conn.id, role=conn.role, auction_id=config.auction_id, title=config.title,
        currency=config.currency, decimals=config.decimals, visibility=config.visibility, pseudonym=conn.pseudonym,
        start=full["start"], end=full["end"], stagger=full["stagger"], lots=lots, server_time=format_instant(now),
    )
