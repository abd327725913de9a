"""The order book of one lot: each bidder's standing bid, in a sorted ladder.

A bidder's standing is its latest accepted bid (always its lowest, as every bid must
improve). The ladder is ordered by (price, bid sequence); the sequence grows with engine
time, so this is the (price, time, sequence) order: an equal price never outranks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from sortedcontainers import SortedList

SEQ_BITS = 40  # a ladder key is price << SEQ_BITS | seq: one int, the cheapest thing to sort
SEQ_LIMIT = 1 << SEQ_BITS


class Standing(NamedTuple):
    """A bidder's standing bid on a lot."""

    bidder_id: str
    price: int
    time: int
    seq: int


class OrderBook:
    """Standing bids of one lot; rank 1 is the lowest price, earliest on ties."""

    __slots__ = ("_ladder", "_standing", "best")

    def __init__(self) -> None:
        self._ladder: SortedList = SortedList()
        self._standing: dict[str, tuple[int, int]] = {}  # bidder -> (ladder key, time)
        # The lowest standing price, or None with no bids. Bids only improve and are never
        # withdrawn, so it only falls; a retraction rule would have to recompute it.
        self.best: int | None = None

    def place(self, bidder_id: str, price: int, time: int, seq: int, previous: tuple[int, int] | None) -> int:
        """Make (price, time, seq) the bidder's standing bid; return its rank.
        `previous` is `self.entry(bidder_id)`, which the caller has already read."""
        key = price << SEQ_BITS | seq
        ladder = self._ladder
        if previous is not None:
            ladder.remove(previous[0])
        ladder.add(key)
        self._standing[bidder_id] = (key, time)
        if self.best is None or price < self.best:
            self.best = price
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
        return None if own is None else self._ladder.bisect_left(own[0]) + 1

    def __len__(self) -> int:
        """The number of bidders with a standing bid."""
        return len(self._ladder)

    def ranked(self, limit: int | None = None) -> Iterator[Standing]:
        """Standing bids in rank order, the first `limit` of them (all by default)."""
        owner = {key: (bidder_id, time) for bidder_id, (key, time) in self._standing.items()}
        keys = self._ladder if limit is None else self._ladder.islice(0, limit)
        for key in keys:
            yield _standing(owner[key][0], key, owner[key][1])


def _standing(bidder_id: str, key: int, time: int) -> Standing:
    return Standing(bidder_id, key >> SEQ_BITS, time, key & (SEQ_LIMIT - 1))
