"""The live state of one auction and of its lots, owned and mutated by the Engine.

An auction keeps its configuration, the bidders admitted now, and the pseudonym of every
bidder ever admitted (in admission order); a lot keeps its clock, its order book and its
counts. Nothing here reads time or does IO.
"""

from __future__ import annotations

import hashlib
import json

from .clock import FINAL, LotClock
from .config import AuctionConfig, LotConfig
from .order_book import OrderBook
from .ranking import pseudonym


class Lot:
    """One lot: clock, book, counts, and the engine's bookkeeping for its deadline."""

    __slots__ = ("config", "clock", "book", "bids", "rejected", "key", "heap_version", "heap_at",
                 "fixed_step", "bounded")

    def __init__(self, auction: AuctionConfig, config: LotConfig, index: int, key: int) -> None:
        self.config = config
        self.clock = LotClock(config.extension, auction.start, auction.initial_close(index))
        self.book = OrderBook()
        self.bids = 0  # accepted bids
        self.rejected = 0  # rejected bids that named this lot
        self.key = key  # engine-wide creation order: breaks ties between equal deadlines
        self.heap_version = 0  # the engine's deadline heap holds at most one live entry per lot
        self.heap_at: int | None = None
        rules = config.rules  # two shortcuts for the hot path:
        self.fixed_step = 0 if rules.min_step_percent else rules.required_step(0)  # 0: depends on the price
        self.bounded = rules.max_step is not None or rules.max_step_percent is not None

    def canonical(self) -> list[object]:
        """The lot's logical state as plain values, for `Engine.state_hash`."""
        c = self.clock
        return [
            self.config.lot_id, c.status, c.open_at, c.close_at, c.hard_close, c.extensions,
            c.inactivity_deadline(), c.suspended_at, c.suspended_from, c.closed_at, c.close_reason,
            self.bids, self.rejected, [list(s) for s in self.book.ranked()],
        ]

    def dump(self) -> list[object]:
        """The lot's complete state as plain values, for `Engine.dump_state` (the heap
        bookkeeping excepted; `fixed_step` and `bounded` derive from the config)."""
        c = self.clock
        sorted_ladder, standings = self.book.dump()
        return [
            self.config.lot_id, self.key, c.status, c.open_at, c.close_at, c.hard_close, c.extensions,
            c.active_since, c.suspended_at, c.suspended_from, c.closed_at, c.close_reason,
            self.bids, self.rejected, sorted_ladder, [list(s) for s in standings],
        ]


class Auction:
    """One auction: its lots in configuration order, its bidders and their pseudonyms."""

    __slots__ = ("config", "lots", "admitted", "pseudonyms", "finished", "config_digest", "bid_seq")

    def __init__(self, config: AuctionConfig, first_lot_key: int) -> None:
        self.config = config
        self.lots = {lc.lot_id: Lot(config, lc, i, first_lot_key + i) for i, lc in enumerate(config.lots)}
        self.admitted: set[str] = set()
        self.pseudonyms: dict[str, str] = {}  # every bidder ever admitted, in admission order
        self.finished = False
        self.bid_seq = 0  # the last accepted bid's sequence number: orders ties, per auction
        canonical_config = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
        self.config_digest = hashlib.sha256(canonical_config.encode()).hexdigest()

    def admit(self, bidder_id: str) -> str:
        """Admit a bidder (its pseudonym is kept if it was admitted before); return it."""
        name = self.pseudonyms.get(bidder_id)
        if name is None:
            name = self.pseudonyms[bidder_id] = pseudonym(self.config.pseudonym_secret, len(self.pseudonyms))
        self.admitted.add(bidder_id)
        return name

    def all_final(self) -> bool:
        """True once every lot has closed or been cancelled."""
        return all(lot.clock.status in FINAL for lot in self.lots.values())

    def canonical(self) -> list[object]:
        """The auction's logical state as plain values, for `Engine.state_hash`."""
        return [
            self.config.auction_id, self.config_digest, sorted(self.admitted),
            [[b, p] for b, p in self.pseudonyms.items()], self.finished,
            self.bid_seq, [lot.canonical() for lot in self.lots.values()],
        ]

    def dump(self) -> list[object]:
        """The auction's complete state as plain values, for `Engine.dump_state`
        (`config_digest` derives from the config)."""
        return [
            self.config.to_dict(), sorted(self.admitted), [[b, p] for b, p in self.pseudonyms.items()],
            self.finished, self.bid_seq, [lot.dump() for lot in self.lots.values()],
        ]
