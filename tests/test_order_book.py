"""The order book's ladder: a plain list while small, a SortedList past SMALL_LADDER; the
same ranks and order either way."""

from __future__ import annotations

import random

import pytest

from auction_engine import order_book
from auction_engine.order_book import SEQ_BITS, OrderBook


@pytest.mark.parametrize(("small", "shift_from", "shift_max"), [
    (4, 512, 256),  # a SortedList past 4 entries
    (8192, 512, 256),  # a plain list, delete + insert (40 bidders)
    (8192, 8, 5),  # a plain list, moves of up to 5 places shifted, longer ones delete + insert
    (8192, 0, 10_000),  # a plain list, every move up shifted
])
def test_ranks_and_order_are_those_of_a_sorted_ladder_whatever_its_size(
        monkeypatch: pytest.MonkeyPatch, small: int, shift_from: int, shift_max: int) -> None:
    monkeypatch.setattr(order_book, "SMALL_LADDER", small)
    monkeypatch.setattr(order_book, "SHIFT_FROM", shift_from)
    monkeypatch.setattr(order_book, "SHIFT_MAX", shift_max)
    rng = random.Random(small + shift_from)
    book = OrderBook()
    reference: dict[str, int] = {}  # bidder -> ladder key
    for seq in range(1, 3001):
        bidder = f"b{rng.randrange(40)}"
        previous = book.entry(bidder)
        price = rng.randrange(1, 10_000) if previous is None else max(1, (previous[0] >> SEQ_BITS) - rng.randrange(50))
        # (an unchanged price gives a higher key: the ladder must handle a move down too)
        rank = book.place(bidder, price, seq * 10, seq, previous)
        reference[bidder] = price << SEQ_BITS | seq
        ladder = sorted(reference.values())
        assert rank == ladder.index(reference[bidder]) + 1
        if book._sorted is None:
            assert book._ladder == ladder
        assert book.best == min(reference.values()) >> SEQ_BITS
    assert (book._sorted is not None) == (small == 4)
    assert len(book) == len(reference)
    assert [s.bidder_id for s in book.ranked()] == sorted(reference, key=reference.__getitem__)
    assert [s.bidder_id for s in book.ranked(3)] == sorted(reference, key=reference.__getitem__)[:3]
    for bidder, key in reference.items():
        assert book.rank_of(bidder) == sorted(reference.values()).index(key) + 1
        assert book.price_of(bidder) == key >> SEQ_BITS
