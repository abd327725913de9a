"""The order book of one lot: each bidder's standing bid, in a sorted ladder.

A bidder's standing is its latest accepted bid (always its lowest, as every bid must
improve). The ladder is ordered by (price, bid sequence); the sequence grows with engine
time, so this is the (price, time, sequence) order: an equal price never outranks.

The ladder is a plain sorted list while it is small (bisect, insert and delete in C:
measured three times faster than a SortedList with 50 bidders, twice with 5,000; in a
long list a bidder moving up a few places shifts just the entries it passes) and
becomes a SortedList once it passes `SMALL_LADDER` entries (a list's insert moves every
later entry: past about 15,000 that costs more than the SortedList). Either way it holds
the same keys in the same order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import NamedTuple

from sortedcontainers import SortedList

SEQ_BITS = 40  # a ladder key is price << SEQ_BITS | seq: one int, the cheapest thing to sort
SEQ_LIMIT = 1 << SEQ_BITS
SMALL_LADDER = 8192  # entries a plain list holds before the ladder becomes a SortedList
SHIFT_MAX = 256  # in a long list, a move up by at most this many places shifts them (see `place`)
SHIFT_FROM = 512  # entries from which moving a bidder up shifts (below, delete + insert is cheaper)


class Standing(NamedTuple):
    """A bidder's standing bid on a lot."""

    bidder_id: str
    price: int
    time: int
    seq: int


class OrderBook:
    """Standing bids of one lot; rank 1 is the lowest price, earliest on ties."""

    __slots__ = ("_ladder", "_sorted", "_standing", "best")

    def __init__(self) -> None:
        self._ladder: list[int] = []  # while small; then None, and `_sorted` holds the keys
        self._sorted: SortedList | None = None
        self._standing: dict[str, tuple[int, int]] = {}  # bidder -> (ladder key, time)
        # The lowest standing price, or None with no bids. Bids only improve and are never
        # withdrawn, so it only falls; a retraction rule would have to recompute it.
        self.best: int | None = None

    def place(self, bidder_id: str, price: int, time: int, seq: int, previous: tuple[int, int] | None) -> int:
        """Make (price, time, seq) the bidder's standing bid; return its rank.
        `previous` is `self.entry(bidder_id)`, which the caller has already read."""
        key = price << SEQ_BITS | seq
        self._standing[bidder_id] = (key, time)
        best = self.best
        if best is None or price < best:
            self.best = price
        ladder = self._ladder
        if self._sorted is None:
            if previous is not None:
                old = bisect_left(ladder, previous[0])
                if key < previous[0] and len(ladder) > SHIFT_FROM:  # moving up (bids only improve):
                    at = bisect_left(ladder, key, 0, old)  # shift just the entries it passes, not
                    if old - at <= SHIFT_MAX:  # the whole tail twice (delete, then insert)
                        ladder[at + 1:old + 1] = ladder[at:old]
                        ladder[at] = key
                        return at + 1
                del ladder[old]
                at = bisect_left(ladder, key)
                ladder.insert(at, key)
                return at + 1
            if len(ladder) >= SMALL_LADDER:
                self._sorted = SortedList(ladder)
                self._ladder = []
                return self._place_sorted(key, previous)
            at = bisect_left(ladder, key)
            ladder.insert(at, key)
            return at + 1
        return self._place_sorted(key, previous)

    def _place_sorted(self, key: int, previous: tuple[int, int] | None) -> int:
        ladder = self._sorted
        assert ladder is not None
        if previous is not None:
            ladder.remove(previous[0])
        ladder.add(key)
        rank: int = ladder.bisect_left(key) + 1
        return rank

    def entry(self, bidder_id: str) -> tuple[int, int] | None:
        """The bidder's raw standing (ladder key, time), for the hot path; see `price_of`."""
        return self._standing.get(bidder_id)

    def price_of(self, bidder_id: str) -> int | None:
        """The bidder's standing price, or None if it has not bid."""
        own = self._standing.get(bidder_id)
        return None if own is None else own[0] >> SEQ_BITS

    def standing(self, bidder_id: str) -> Standing | None:
        """The bidder's standing bid, or None if it has not bid."""
        own = self._standing.get(bidder_id)
        return None if own is None else _standing(bidder_id, *own)

    def rank_of(self, bidder_id: str) -> int | None:
        """The bidder's rank (1 is best), or None if it has not bid."""
        own = self._standing.get(bidder_id)
        if own is None:
            return None
        if self._sorted is None:
            return bisect_left(self._ladder, own[0]) + 1
        rank: int = self._sorted.bisect_left(own[0]) + 1
        return rank

    def __len__(self) -> int:
        """The number of bidders with a standing bid."""
        return len(self._standing)

    def ranked(self, limit: int | None = None) -> Iterator[Standing]:
        """Standing bids in rank order, the first `limit` of them (all by default)."""
        owner = {key: (bidder_id, time) for bidder_id, (key, time) in self._standing.items()}
        keys: Iterator[int]
        if self._sorted is None:
            keys = iter(self._ladder) if limit is None else islice(self._ladder, limit)
        else:
            keys = iter(self._sorted) if limit is None else self._sorted.islice(0, limit)
        for key in keys:
            yield _standing(owner[key][0], key, owner[key][1])

    # -- snapshots (`Engine.dump_state` / `load_state`): never on the hot path -------------

    def dump(self) -> tuple[bool, list[Standing]]:
        """Whether the ladder is a SortedList, and every standing bid in the order the
        bidders first bid (the book's whole state: the ladder and `best` derive from it)."""
        return self._sorted is not None, [_standing(b, key, time) for b, (key, time) in self._standing.items()]

    @classmethod
    def restore(cls, standings: Iterable[Standing], sorted_ladder: bool) -> OrderBook:
        """The book `dump()` described. The caller checks that bidders and sequence
        numbers are distinct (a ladder key per bidder) and that prices are positive."""
        book = cls()
        for bidder_id, price, time, seq in standings:
            book._standing[bidder_id] = (price << SEQ_BITS | seq, time)
        keys = sorted(key for key, _time in book._standing.values())
        if sorted_ladder:
            book._sorted = SortedList(keys)
        else:
            book._ladder = keys
        book.best = keys[0] >> SEQ_BITS if keys else None  # bids only improve: the lowest standing price
        return book


def _standing(bidder_id: str, key: int, time: int) -> Standing:
    return Standing(bidder_id, key >> SEQ_BITS, time, key & (SEQ_LIMIT - 1))
