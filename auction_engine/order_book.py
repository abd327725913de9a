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

    __slots__ = ("_ladder", "_standing", "_owner")

    def __init__(self) -> None:
        self._ladder: SortedList = SortedList()
        self._standing: dict[str, tuple[int, int]] = {}  # bidder -> (ladder key, time)
        self._owner: dict[int, str] = {}  # ladder key -> bidder

    def place(self, bidder_id: str, price: int, time: int, seq: int) -> int:
        """Make (price, time, seq) the bidder's standing bid; return its rank."""
        key = price << SEQ_BITS | seq
        ladder = self._ladder
        old = self._standing.get(bidder_id)
        if old is not None:
            ladder.remove(old[0])
            del self._owner[old[0]]
        ladder.add(key)
        self._owner[key] = bidder_id
        self._standing[bidder_id] = (key, time)
        rank: int = ladder.bisect_left(key) + 1
        return rank

    def price_of(self, bidder_id: str) -> int | None:
        """The bidder's standing price, or None if it has not bid."""
        own = self._standing.get(bidder_id)
        return None if own is None else own[0] >> SEQ_BITS

    def standing(self, bidder_id: str) -> Standing | None:
        """The bidder's standing bid, or None if it has not bid."""
        own = self._standing.get(bidder_id)
        return None if own is None else _standing(bidder_id, *own)

    def best(self) -> int | None:
        """The lowest standing price, or None with no bids."""
        return self._ladder[0] >> SEQ_BITS if self._ladder else None

    def rank_of(self, bidder_id: str) -> int | None:
        """The bidder's rank (1 is best), or None if it has not bid."""
        own = self._standing.get(bidder_id)
        return None if own is None else self._ladder.bisect_left(own[0]) + 1

    def __len__(self) -> int:
        """The number of bidders with a standing bid."""
        return len(self._ladder)

    def ranked(self, limit: int | None = None) -> Iterator[Standing]:
        """Standing bids in rank order, the first `limit` of them (all by default)."""
        keys = self._ladder if limit is None else self._ladder.islice(0, limit)
        standing = self._standing
        owner = self._owner
        for key in keys:
            bidder_id = owner[key]
            yield _standing(bidder_id, key, standing[bidder_id][1])


def _standing(bidder_id: str, key: int, time: int) -> Standing:
    return Standing(bidder_id, key >> SEQ_BITS, time, key & (SEQ_LIMIT - 1))
