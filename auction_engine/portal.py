"""The portal's commands on auctions: create, admit, revoke, suspend, resume, cancel.

`PortalCommands` is the part of `Engine` that checks and applies them: a refusal is a
`CommandRejected` with a stable code and changes nothing; which lots a move applies to
comes from the clock's transition table (`clock.allows`). The engine owns the state
(`_auctions`, `_lot_keys`) and the deadline heap (`_schedule`, `_conclude`).
"""

from __future__ import annotations

from .auction import Auction, Lot
from .clock import REFUSED, allows, from_states
from .commands import AdmitBidder, Cancel, Command, CreateAuction, Resume, RevokeBidder, Suspend
from .config import ID_PATTERN, MAX_BIDDERS, MAX_TEXT, AuctionConfig
from .events import (
    AuctionCreated,
    BidderAdmitted,
    BidderRevoked,
    CommandRejected,
    Event,
    LotCancelled,
    LotResumed,
    LotSuspended,
)


class PortalCommands:
    """The portal's command handlers, mixed into `Engine` (see the module docstring)."""

    _auctions: dict[str, Auction]
    _lot_keys: int

    def _schedule(self, lot: Lot, auction: Auction) -> None:
        raise NotImplementedError

    def _conclude(self, at: int, auction: Auction, lot: Lot, events: list[Event]) -> None:
        raise NotImplementedError

    def _create(self, cmd: CreateAuction, events: list[Event]) -> None:
        config = cmd.config
        if not isinstance(config, AuctionConfig):
            raise TypeError("CreateAuction.config must be an AuctionConfig (see AuctionConfig.from_dict)")
        aid = config.auction_id
        if aid in self._auctions:
            return _refuse(events, cmd, aid, "auction_exists", f"auction {aid!r} already exists")
        if all(_first_close(config, i) <= cmd.now for i in range(len(config.lots))):
            return _refuse(events, cmd, aid, "ends_in_past", "every lot would close before the auction is created")
        auction = self._auctions[aid] = Auction(config, self._lot_keys)
        self._lot_keys += len(config.lots)
        events.append(AuctionCreated(cmd.now, aid))
        for bidder_id in config.bidders:
            events.append(BidderAdmitted(cmd.now, aid, bidder_id, auction.admit(bidder_id)))
        for lot in auction.lots.values():
            self._schedule(lot, auction)

    def _admit(self, cmd: AdmitBidder, events: list[Event]) -> None:
        auction = self._auction_for(cmd, events)
        if auction is None:
            return
        bidder_id = cmd.bidder_id
        if type(bidder_id) is not str or not ID_PATTERN.fullmatch(bidder_id):
            return _refuse(events, cmd, cmd.auction_id, "malformed",
                           "bidder_id must be 1-64 letters, digits or . _ : @ -")
        if bidder_id in auction.admitted:
            return _refuse(events, cmd, cmd.auction_id, "already_admitted", f"{bidder_id!r} is already admitted")
        if bidder_id not in auction.pseudonyms and len(auction.pseudonyms) >= MAX_BIDDERS:
            return _refuse(events, cmd, cmd.auction_id, "too_many_bidders", f"at most {MAX_BIDDERS} bidders")
        events.append(BidderAdmitted(cmd.now, cmd.auction_id, bidder_id, auction.admit(bidder_id)))

    def _revoke(self, cmd: RevokeBidder, events: list[Event]) -> None:
        auction = self._auction_for(cmd, events)
        if auction is None:
            return
        bidder_id = cmd.bidder_id
        if type(bidder_id) is not str:
            return _refuse(events, cmd, cmd.auction_id, "malformed", "bidder_id must be a string")
        if bidder_id not in auction.admitted:
            code = "not_admitted" if bidder_id in auction.pseudonyms else "unknown_bidder"
            return _refuse(events, cmd, cmd.auction_id, code, f"{bidder_id!r:.70} is not admitted")
        auction.admitted.discard(bidder_id)
        events.append(BidderRevoked(cmd.now, cmd.auction_id, bidder_id, cmd.reason))

    def _suspend(self, cmd: Suspend, events: list[Event]) -> None:
        for auction, lot in self._lots_for(cmd, events, "suspend"):
            lot.clock.suspend(cmd.now)
            events.append(LotSuspended(cmd.now, auction.config.auction_id, lot.config.lot_id, cmd.reason))

    def _resume(self, cmd: Resume, events: list[Event]) -> None:
        for auction, lot in self._lots_for(cmd, events, "resume"):
            lot.clock.resume(cmd.now)
            self._schedule(lot, auction)
            events.append(LotResumed(cmd.now, auction.config.auction_id, lot.config.lot_id, lot.clock.close_at))

    def _cancel(self, cmd: Cancel, events: list[Event]) -> None:
        for auction, lot in self._lots_for(cmd, events, "cancel"):
            lot.clock.cancel(cmd.now)
            events.append(LotCancelled(cmd.now, auction.config.auction_id, lot.config.lot_id, cmd.reason))
            self._conclude(cmd.now, auction, lot, events)

    def _auction_for(self, cmd: AdmitBidder | RevokeBidder | Suspend | Resume | Cancel,
                     events: list[Event]) -> Auction | None:
        """The auction a portal command names, or None after refusing the command."""
        aid = cmd.auction_id
        reason = getattr(cmd, "reason", "")
        lot_id = getattr(cmd, "lot_id", None)
        if type(aid) is not str or type(reason) is not str or len(reason) > MAX_TEXT or not (
            lot_id is None or type(lot_id) is str
        ):
            _refuse(events, cmd, str(aid)[:64], "malformed",
                    f"auction_id and lot_id must be strings, reason a string of at most {MAX_TEXT} characters")
            return None
        auction = self._auctions.get(aid)
        if auction is None:
            _refuse(events, cmd, aid, "unknown_auction", f"no auction {aid!r:.70}")
        elif auction.finished:
            _refuse(events, cmd, aid, "auction_finished", f"every lot of {aid!r} has ended")
            return None
        return auction

    def _lots_for(self, cmd: Suspend | Resume | Cancel, events: list[Event], move: str) -> list[tuple[Auction, Lot]]:
        """The lots a command applies to (one, or all those the move is legal for: the
        clock's table); refuse if none."""
        auction = self._auction_for(cmd, events)
        if auction is None:
            return []
        code = REFUSED[move]
        if cmd.lot_id is None:
            lots = [lot for lot in auction.lots.values() if allows(lot.clock.status, move)]
            if not lots:
                _refuse(events, cmd, cmd.auction_id, code, f"no lot is {' or '.join(from_states(move))}")
            return [(auction, lot) for lot in lots]
        lot = auction.lots.get(cmd.lot_id)
        if lot is None:
            _refuse(events, cmd, cmd.auction_id, "unknown_lot", f"no lot {cmd.lot_id!r:.70}")
            return []
        if not allows(lot.clock.status, move):
            _refuse(events, cmd, cmd.auction_id, code, f"lot {cmd.lot_id!r} is {lot.clock.status}")
            return []
        return [(auction, lot)]


def _first_close(config: AuctionConfig, index: int) -> int:
    """When lot `index` closes if no bid ever comes: its scheduled close, or earlier
    for inactivity."""
    close = config.initial_close(index)
    idle = config.lots[index].extension.inactivity_close
    return close if idle is None else min(close, config.start + idle)


def _refuse(events: list[Event], cmd: Command, auction_id: str, code: str, message: str) -> None:
    events.append(CommandRejected(cmd.now, type(cmd).__name__, auction_id, code, message))

