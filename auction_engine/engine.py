"""The engine: many auctions, one deterministic state machine, no IO: the auction kind.

`handle(command) -> events` first applies every opening and close due at or before the
command's `now` (a `Tick` naming an auction: only that auction's), then the command. The
same commands in the same order give the same events and the same `state_hash()`, whatever
ticks came between them. `next_deadline()` tells the shell when to send the next `Tick`.
It is the platform's auction kind (`kind.Kind`): its cases are auctions.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack

from .auction import Auction, Lot
from .clock import BID_REFUSED, OPEN, SCHEDULED
from .commands import (
    COMMAND_TYPES,
    AdmitBidder,
    Cancel,
    Command,
    CreateAuction,
    PlaceBid,
    Resume,
    RevokeBidder,
    Suspend,
    Tick,
    decode_create,
    encode_create,
)
from .edge import event_to_dict
from .engine_state import SNAPSHOT_STATE_FORMAT, load_engine
from .events import (
    EVENT_TYPES,
    FEED_EVENTS,
    AuctionClosed,
    BidAccepted,
    BidRejected,
    CommandRejected,
    Event,
    LotAwarded,
    LotClosed,
    LotExtended,
    LotOpened,
    LotUnsuccessful,
)
from .kind import ClockRegression, Codec, RetryKey
from .money import MAX_AMOUNT, amount_problem, format_amount
from .order_book import SEQ_BITS, SEQ_LIMIT
from .portal import PortalCommands
from .ranking import (
    AuctionResults,
    BidderView,
    LotSnapshot,
    ObserverView,
    auction_results,
    bidder_view,
    lot_outcome,
    lot_snapshot,
    observer_view,
)
from .timeutil import format_instant

_new_tuple = tuple.__new__
STATE_FORMAT = 2  # bump when canonical() changes shape: old hashes stop matching on purpose

class QueryError(LookupError):
    """A query named something that does not exist, or asked too early; see `code`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


_HeapEntry = tuple[int, int, int, Lot, Auction]  # (deadline, lot key, version, lot, auction)


# Rejections that leave the state untouched (no lot to count them on): not journaled.
_NO_CHANGE_BID_CODES = frozenset({"malformed", "unknown_auction", "unknown_lot"})


class Engine(PortalCommands):
    """Every auction of one process. Not thread-safe: one owner calls it."""

    name: ClassVar[str] = "auction"
    codec: ClassVar[Codec] = Codec(tuple(c for c in COMMAND_TYPES if c is not Tick), EVENT_TYPES,
                                   encoders={CreateAuction: encode_create}, decoders={CreateAuction: decode_create},
                                   public=FEED_EVENTS)

    def __init__(self) -> None:
        self._auctions: dict[str, Auction] = {}
        self._heap: list[_HeapEntry] = []
        self._now = 0
        self._lot_keys = 0
        self._handlers: dict[type, Callable[[Any, list[Event]], None]] = {
            PlaceBid: self._place_bid, CreateAuction: self._create, AdmitBidder: self._admit,
            RevokeBidder: self._revoke, Suspend: self._suspend, Resume: self._resume,
            Cancel: self._cancel, Tick: _no_op,
        }

    # -- commands ------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """The time of the latest command, in µs."""
        return self._now

    def handle(self, command: Command) -> list[Event]:
        """Apply what is due at `command.now`, then `command`; return what happened."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a command: {command!r:.200}")
        now = command.now
        if type(now) is not int:
            raise TypeError(f"command time must be int µs, got {now!r:.40}")
        if now < self._now:
            raise ClockRegression(f"command at {now} µs is before the engine time {self._now} µs")
        self._now = now
        events: list[Event] = []
        if handler is _no_op and command.case_id is not None:  # type: ignore[union-attr]
            self._advance_auction(command.case_id, now, events)  # type: ignore[union-attr]
            return events
        heap = self._heap
        if heap and heap[0][0] <= now:
            self._advance(now, events)
        handler(command, events)
        if heap and heap[0][0] <= now:  # a new auction can be due already
            self._advance(now, events)
        return events

    def tick(self, now: int) -> list[Event]:
        """Apply every opening, close and award due at or before `now`."""
        return self.handle(Tick(now))

    # -- as a procedure kind (kind.Kind) -----------------------------------------------------

    @staticmethod
    def case_of(command: Command) -> object:
        """The auction a command is about (a Tick's is None unless scoped)."""
        if type(command) is CreateAuction:
            return command.config.auction_id
        return command[1]

    @staticmethod
    def event_case(event: Event) -> str:
        return event.auction_id

    def has_case(self, case_id: str) -> bool:
        return case_id in self._auctions

    def public_event(self, event: Event) -> dict[str, Any]:
        """A lifecycle event as the feed shows it: money in the auction's decimals, no bidder."""
        entry = event_to_dict(event, self._auctions[event.auction_id].config.decimals)
        entry.pop("bidder_id", None)
        return entry

    def cases(self) -> list[str]:
        return list(self._auctions)

    @staticmethod
    def changes_state(events: list[Event]) -> bool:
        """True unless the outcome is only refusals that change nothing."""
        for e in events:
            if type(e) is CommandRejected:
                continue
            if type(e) is BidRejected and e.code in _NO_CHANGE_BID_CODES:
                continue
            return True
        return False

    @staticmethod
    def retry_key(command: Command) -> RetryKey | None:
        """A bid with a client_bid_id is answered once: a retry gets the first outcome.
        ValueError for a client_bid_id that is not a string (a damaged journal)."""
        if type(command) is not PlaceBid:
            return None
        cid = command.client_bid_id
        if type(cid) is not str:
            raise ValueError("client_bid_id must be a string")
        return (command.auction_id, command.bidder_id, cid) if cid else None

    def case_states(self) -> list[list[object]]:
        return self.auction_states()

    @staticmethod
    def hash_of(case_states: list[list[object]]) -> str:
        return state_hash_of(case_states)

    def due(self, now: int) -> bool:
        """True if a deadline is due at or before `now` (`next_deadline() <= now`), cheaply:
        the heap's first entry is never later than the next deadline (entries go stale
        only by deadlines moving later)."""
        heap = self._heap
        if not heap or heap[0][0] > now:
            return False
        deadline = self.next_deadline()
        return deadline is not None and deadline <= now

    def deadline_bound(self) -> int | None:
        """A time at or before `next_deadline()` (None if there is none), in O(1)."""
        heap = self._heap
        return heap[0][0] if heap else None

    def next_deadline(self) -> int | None:
        """The earliest instant at which some lot changes by itself, or None."""
        heap = self._heap
        while heap:
            at, _key, version, lot, auction = heap[0]
            current = lot.clock.deadline()
            if version == lot.heap_version and current == at:
                return at
            heapq.heappop(heap)  # stale, or moved later: keep only the live deadline
            if version == lot.heap_version:
                lot.heap_at = None
                self._schedule(lot, auction)
        return None

    # -- the hot path: a bid ---------------------------------------------------------------

    def _place_bid(self, cmd: PlaceBid, events: list[Event]) -> None:
        now, auction_id, lot_id, bidder_id, amount, _client_bid_id = cmd
        if type(auction_id) is not str or type(lot_id) is not str or type(bidder_id) is not str:
            events.append(BidRejected(now, str(auction_id)[:64], str(lot_id)[:64], str(bidder_id)[:64], amount,
                                      "malformed", "auction_id, lot_id and bidder_id must be strings"))
            return
        auction = self._auctions.get(auction_id)
        if auction is None:
            return _reject(events, cmd, None, "unknown_auction", f"no auction {auction_id!r:.70}")
        lot = auction.lots.get(lot_id)
        if lot is None:
            return _reject(events, cmd, None, "unknown_lot", f"auction {auction_id!r} has no lot {lot_id!r:.70}")
        if bidder_id not in auction.admitted:
            return _reject(events, cmd, lot, "not_admitted", f"bidder {bidder_id!r:.70} is not admitted")
        clock = lot.clock
        if clock.status != OPEN:  # = not allows(status, "bid"), inlined on the hot path
            code, message = BID_REFUSED[clock.status]
            since = clock.open_at if clock.status == SCHEDULED else (clock.suspended_at or clock.closed_at or 0)
            return _reject(events, cmd, lot, code, message.format(format_instant(since)))
        if type(amount) is not int or not 0 < amount <= MAX_AMOUNT:
            return _reject(events, cmd, lot, "invalid_amount", amount_problem(amount, auction.config.decimals))
        config = lot.config
        if amount > config.starting_price:
            return _reject(events, cmd, lot, "above_starting_price",
                           f"the starting price is {self._money(auction, config.starting_price)}")
        book = lot.book
        rules = config.rules
        previous = book.entry(bidder_id)
        if rules.improve_on == "own":
            base = None if previous is None else previous[0] >> SEQ_BITS
        else:
            base = book.best
        if base is not None:  # not the first bid it is measured against: the steps apply
            step = base - amount
            required = lot.fixed_step or rules.required_step(base)
            if step < required:
                return _reject(events, cmd, lot, "insufficient_step",
                               f"bid at most {self._money(auction, base - required)} "
                               f"({self._money(auction, required)} under {self._money(auction, base)})")
            if lot.bounded:
                allowed = rules.allowed_step(base)
                if allowed is not None and step > allowed:
                    return _reject(events, cmd, lot, "step_too_large",
                                   f"bid at least {self._money(auction, base - allowed)} "
                                   f"(at most {self._money(auction, allowed)} under {self._money(auction, base)})")
        seq = auction.bid_seq + 1
        if seq >= SEQ_LIMIT:
            raise OverflowError("the auction's bid sequence is exhausted")
        auction.bid_seq = seq
        rank = book.place(bidder_id, amount, now, seq, previous)
        lot.bids += 1
        # tuple.__new__ builds the same BidAccepted as its constructor, without the Python-level __new__
        events.append(_new_tuple(BidAccepted, (now, auction_id, lot_id, bidder_id, amount, seq, rank, book.best)))
        if clock.on_accepted_bid(now, rank):
            events.append(LotExtended(now, auction_id, lot_id, clock.close_at, clock.extensions))

    @staticmethod
    def _money(auction: Auction, minor: int) -> str:
        return f"{format_amount(minor, auction.config.decimals)} {auction.config.currency}"

    # -- the clock -------------------------------------------------------------------------

    def _schedule(self, lot: Lot, auction: Auction) -> None:
        """Make sure the heap fires the lot at its deadline (entries only move later)."""
        at = lot.clock.deadline()
        if at is None or (lot.heap_at is not None and lot.heap_at <= at):
            return
        lot.heap_version += 1
        lot.heap_at = at
        heapq.heappush(self._heap, (at, lot.key, lot.heap_version, lot, auction))

    def _advance(self, now: int, events: list[Event]) -> None:
        """Fire every lot deadline at or before `now`, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _key, version, lot, auction = heapq.heappop(heap)
            if version != lot.heap_version:
                continue  # superseded by an earlier entry for the same lot
            lot.heap_at = None
            clock = lot.clock
            current = clock.deadline()
            if current is None:
                continue  # suspended or cancelled since
            if current > at:  # extended, or bid on (inactivity) since: fire later
                self._schedule(lot, auction)
                continue
            assert current == at, "a lot deadline moved earlier without being rescheduled"
            self._fire(at, auction, lot, events)

    def _advance_auction(self, auction_id: object, now: int, events: list[Event]) -> None:
        """Fire the deadlines at or before `now` of one auction only, in time order
        (ties: lot order, as in the heap). Its heap entries go stale and are skipped."""
        auction = self._auctions.get(auction_id) if type(auction_id) is str else None
        if auction is None:
            return
        while True:
            due = [(at, lot.key, lot) for lot in auction.lots.values()
                   if (at := lot.clock.deadline()) is not None and at <= now]
            if not due:
                return
            at, _key, lot = min(due, key=lambda d: (d[0], d[1]))
            self._fire(at, auction, lot, events)

    def _fire(self, at: int, auction: Auction, lot: Lot, events: list[Event]) -> None:
        """Open or close a lot whose deadline `at` has come."""
        aid, lid = auction.config.auction_id, lot.config.lot_id
        clock = lot.clock
        if clock.fire(at) == OPEN:
            events.append(LotOpened(at, aid, lid, clock.close_at))
            self._schedule(lot, auction)
        else:
            events.append(LotClosed(at, aid, lid, clock.close_reason or "scheduled"))
            self._conclude(at, auction, lot, events)

    def _conclude(self, at: int, auction: Auction, lot: Lot, events: list[Event]) -> None:
        """Award a lot that has just ended, and close the auction after its last lot."""
        aid, lid = auction.config.auction_id, lot.config.lot_id
        status, reason = lot_outcome(auction, lot)
        if status == "awarded":
            winner = next(lot.book.ranked(1))
            events.append(LotAwarded(at, aid, lid, winner.bidder_id, winner.price))
        else:
            events.append(LotUnsuccessful(at, aid, lid, reason or "no_bids"))
        if auction.all_final():
            auction.finished = True
            events.append(AuctionClosed(at, aid))

    # -- queries ---------------------------------------------------------------------------

    def auction_ids(self) -> list[str]:
        """Every auction id, in creation order."""
        return list(self._auctions)

    def auction(self, auction_id: str) -> Auction:
        """The live state of one auction (read it, do not change it)."""
        auction = self._auctions.get(auction_id)
        if auction is None:
            raise QueryError("unknown_auction", f"no auction {auction_id!r:.70}")
        return auction

    def _lot(self, auction: Auction, lot_id: str) -> Lot:
        lot = auction.lots.get(lot_id)
        if lot is None:
            raise QueryError("unknown_lot", f"auction {auction.config.auction_id!r} has no lot {lot_id!r:.70}")
        return lot

    def bidder_view(self, auction_id: str, lot_id: str, bidder_id: str) -> BidderView:
        """What `bidder_id` may see of a lot; never another bidder's identity."""
        auction = self.auction(auction_id)
        if bidder_id not in auction.pseudonyms:
            raise QueryError("unknown_bidder", f"{bidder_id!r:.70} was never admitted to {auction_id!r}")
        return bidder_view(auction, self._lot(auction, lot_id), bidder_id)

    def observer_view(self, auction_id: str, lot_id: str) -> ObserverView:
        """The anonymised view of a lot for the buyer and the commission."""
        auction = self.auction(auction_id)
        return observer_view(auction, self._lot(auction, lot_id))

    def lot_snapshot(self, auction_id: str, lot_id: str) -> LotSnapshot:
        """A snapshot of a lot from which every viewer's view derives (see ranking.py)."""
        auction = self.auction(auction_id)
        return lot_snapshot(auction, self._lot(auction, lot_id))

    def results(self, auction_id: str, *, reveal: bool = False) -> AuctionResults:
        """Results so far; identities only with `reveal`, and only once every lot ended."""
        auction = self.auction(auction_id)
        if reveal and not auction.finished:
            raise QueryError("results_not_final", "identities are revealed only after every lot has ended")
        return auction_results(auction, reveal=reveal)

    def canonical_state(self) -> list[object]:
        """The whole logical state as plain values (documented in docs/core.md)."""
        auctions = sorted(self._auctions.values(), key=lambda a: a.config.auction_id)
        return [STATE_FORMAT, [a.canonical() for a in auctions]]

    def state_hash(self) -> str:
        """SHA-256 (hex) of the msgpack encoding of `canonical_state()`."""
        return hashlib.sha256(msgpack.packb(self.canonical_state())).hexdigest()

    def auction_states(self) -> list[list[object]]:
        """Each auction's part of `canonical_state()` (see `state_hash_of`)."""
        return [a.canonical() for a in self._auctions.values()]

    # -- snapshots -------------------------------------------------------------------------

    def dump_state(self) -> list[object]:
        """The complete state as plain msgpack-able values (lists, maps with str keys, str,
        int, bool, None), for recovery snapshots: `load_state` rebuilds an engine that gives
        the same events as this one for any later commands, and the same `state_hash()`.
        ``[SNAPSHOT_STATE_FORMAT, now, lot_keys, [Auction.dump(), ...]]`` in creation order."""
        return [SNAPSHOT_STATE_FORMAT, self._now, self._lot_keys, [a.dump() for a in self._auctions.values()]]

    @classmethod
    def load_state(cls, state: object) -> Engine:
        """The engine `dump_state()` described, as is or after a msgpack round trip (lists,
        str keys); raise `StateError` naming the first field that is not what it wrote."""
        return load_engine(cls(), state)


def state_hash_of(auction_states: list[list[object]]) -> str:
    """The `state_hash()` of an engine holding exactly these auctions (their
    `auction_states()`, in any order: e.g. gathered from engines that each replayed some)."""
    ordered = sorted(auction_states, key=lambda state: state[0])  # type: ignore[arg-type,return-value]
    return hashlib.sha256(msgpack.packb([STATE_FORMAT, ordered])).hexdigest()


def _no_op(command: Tick, events: list[Event]) -> None:
    """A tick only lets time pass, which `handle` has already done."""


def _reject(events: list[Event], cmd: PlaceBid, lot: Lot | None, code: str, message: str) -> None:
    if lot is not None:
        lot.rejected += 1
    events.append(BidRejected(cmd.now, cmd.auction_id, cmd.lot_id, cmd.bidder_id, cmd.amount, code, message))
