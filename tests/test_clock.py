"""The lot clock: exact boundaries of opening, close, window, inactivity, suspension."""

from __future__ import annotations

import pytest
from factories import END, START, S, bid, config, engine_with, kinds

from auction_engine import Cancel, CreateAuction, Engine, PlaceBid, Resume, Suspend, Tick
from auction_engine.events import BidAccepted, LotClosed, LotExtended, LotResumed

M = 60 * S
EXT = {"window": "2m", "extend_by": "2m"}


def extension(events: list[object]) -> LotExtended | None:
    found = [e for e in events if isinstance(e, LotExtended)]
    return found[0] if found else None


def test_opening_is_inclusive() -> None:
    engine = engine_with(opened=False)
    assert kinds(bid(engine, START - 1, "alice", 1)) == ["BidRejected"]
    assert kinds(bid(engine, START, "alice", 1)) == ["LotOpened", "BidAccepted"]


def test_close_is_exclusive_and_stamped_when_due() -> None:
    engine = engine_with()
    assert kinds(bid(engine, END - 1, "alice", 90_000)) == ["BidAccepted"]
    events = bid(engine, END, "bob", 80_000)
    assert kinds(events) == ["LotClosed", "LotAwarded", "AuctionClosed", "BidRejected"]
    assert all(e.time == END for e in events)
    assert events[-1].code == "lot_closed"


def test_late_bid_after_an_unticked_close_is_rejected() -> None:
    engine = engine_with()
    events = bid(engine, END + 5 * M, "alice", 90_000)
    assert isinstance(events[0], LotClosed) and events[0].time == END
    assert events[-1].code == "lot_closed"


@pytest.mark.parametrize(("offset", "extends"), [(2 * M, True), (2 * M + 1, False), (1, True)])
def test_window_includes_its_start(offset: int, extends: bool) -> None:
    engine = engine_with(extension={"window": "2m", "extend_by": "3m"})
    events = bid(engine, END - offset, "alice", 90_000)
    assert (extension(events) is not None) == extends


def test_from_bid_extends_to_bid_time_plus_extend_by() -> None:
    engine = engine_with(extension=EXT)
    ext = extension(bid(engine, END - 30 * S, "alice", 90_000))
    assert ext is not None and ext.close_at == END + 90 * S and ext.extensions == 1
    # the new close is exclusive too
    assert kinds(bid(engine, END + 90 * S - 1, "bob", 90_000)) == ["BidAccepted", "LotExtended"]


def test_from_bid_never_moves_the_close_earlier() -> None:
    engine = engine_with(extension={"window": "5m", "extend_by": "1m"})
    assert extension(bid(engine, END - 4 * M, "alice", 90_000)) is None  # bid + 1m is before the close
    assert engine.auction("A1").lots["L1"].clock.extensions == 0


def test_from_close_adds_to_the_close() -> None:
    engine = engine_with(extension={**EXT, "mode": "from_close"})
    ext = extension(bid(engine, END - 110 * S, "alice", 90_000))
    assert ext is not None and ext.close_at == END + 2 * M


def test_max_extensions_and_hard_close_cap() -> None:
    engine = engine_with(extension={**EXT, "max_extensions": 2})
    for i, t in enumerate((END - 1 * S, END + 100 * S, END + 200 * S)):
        ext = extension(bid(engine, t, "alice", 90_000 - i * 100))
        assert (ext is not None) == (i < 2)
    assert engine.next_deadline() == END + 100 * S + 2 * M

    engine = engine_with(extension={**EXT, "hard_close": "2026-03-02T11:03:00Z"})
    e1 = extension(bid(engine, END - 1 * S, "alice", 90_000))
    e2 = extension(bid(engine, END + 110 * S, "alice", 89_000))
    assert e1 is not None and e1.close_at == END + 119 * S
    assert e2 is not None and e2.close_at == END + 3 * M  # capped
    assert extension(bid(engine, END + 3 * M - 1, "alice", 88_000)) is None  # at the hard close already
    assert kinds(bid(engine, END + 3 * M, "bob", 80_000))[-1] == "BidRejected"


@pytest.mark.parametrize(("trigger", "top_n", "extends"), [
    ("any_bid", 1, [True, True, True]),
    ("new_best", 1, [True, False, True]),
    ("top_n", 2, [True, True, False]),
])
def test_triggers(trigger: str, top_n: int, extends: list[bool]) -> None:
    engine = engine_with(extension={**EXT, "trigger": trigger, "top_n": top_n})
    got = []
    for t, bidder, amount in ((END - 60 * S, "alice", 90_000), (END - 50 * S, "bob", 95_000),
                              (END - 40 * S, "carol", 99_000)):
        got.append(extension(bid(engine, t, bidder, amount)) is not None)
    # alice leads (rank 1); bob ranks 2; carol ranks 3 (new_best: only alice; top 2: alice and bob)
    if trigger == "new_best":
        got[2] = extension(bid(engine, END - 30 * S, "carol", 89_000)) is not None
    assert got == extends


def test_inactivity_close_is_exclusive_and_restarts_with_each_bid() -> None:
    engine = engine_with(extension={"inactivity_close": "10m"})
    assert engine.next_deadline() == START + 10 * M
    bid(engine, START + 10 * M - 1, "alice", 90_000)
    assert engine.next_deadline() == START + 20 * M - 1
    events = bid(engine, START + 20 * M - 1, "bob", 80_000)
    assert kinds(events) == ["LotClosed", "LotAwarded", "AuctionClosed", "BidRejected"]
    assert events[0].reason == "inactivity"
    assert engine.results("A1").lots[0].close_reason == "inactivity"


def test_scheduled_close_comes_first_when_earlier_than_inactivity() -> None:
    engine = engine_with(extension={"inactivity_close": "2h"})
    bid(engine, END - 1 * M, "alice", 90_000)
    [closed, *_] = engine.tick(END)
    assert isinstance(closed, LotClosed) and closed.reason == "scheduled"


def test_suspension_preserves_remaining_time_with_extensions() -> None:
    engine = engine_with(extension={**EXT, "hard_close": "2026-03-02T11:10:00Z", "inactivity_close": "2h"})
    bid(engine, END - 30 * S, "alice", 90_000)  # extends to END + 90 s
    engine.handle(Suspend(END, "A1", None, "network incident"))
    assert engine.next_deadline() is None
    assert kinds(bid(engine, END + 1 * M, "bob", 80_000)) == ["BidRejected"]
    [resumed] = engine.handle(Resume(END + 48 * M, "A1"))
    assert isinstance(resumed, LotResumed) and resumed.close_at == END + 48 * M + 90 * S
    clock = engine.auction("A1").lots["L1"].clock
    assert clock.hard_close == END + 10 * M + 48 * M
    assert kinds(bid(engine, END + 48 * M + 90 * S - 1, "bob", 80_000)) == ["BidAccepted", "LotExtended"]


def test_suspended_scheduled_lot_opens_later() -> None:
    engine = engine_with(opened=False)
    engine.handle(Suspend(START - 10 * M, "A1"))
    engine.handle(Resume(START - 5 * M, "A1"))
    assert engine.next_deadline() == START + 5 * M
    assert kinds(engine.tick(START + 5 * M)) == ["LotOpened"]
    assert engine.auction("A1").lots["L1"].clock.close_at == END + 5 * M


def test_stagger_and_deadline_order() -> None:
    lots = [{"lot_id": f"L{i}", "estimate": "9", "starting_price": "9"} for i in range(3)]
    engine = engine_with(lots=lots, stagger="10m")
    closes = []
    while (deadline := engine.next_deadline()) is not None:
        closes += [(e.lot_id, e.time) for e in engine.tick(deadline) if isinstance(e, LotClosed)]
    assert closes == [("L0", END), ("L1", END + 10 * M), ("L2", END + 20 * M)]


def test_cancel_concludes_the_lot() -> None:
    engine = engine_with()
    bid(engine, START + 1, "alice", 90_000)
    events = engine.handle(Cancel(START + 2, "A1", "L1", "need withdrawn"))
    assert kinds(events) == ["LotCancelled", "LotUnsuccessful", "AuctionClosed"]
    assert events[1].reason == "cancelled"
    assert kinds(engine.handle(Cancel(START + 3, "A1")))  == ["CommandRejected"]


def test_ticks_do_not_change_outcomes() -> None:
    """The same commands with and without extra ticks give the same events and state."""
    cfg = config(extension={**EXT, "inactivity_close": "20m"}, min_bidders=2)
    commands = [CreateAuction(START - M, cfg)] + [
        PlaceBid(START + i * 7 * M + (i % 3), "A1", "L1", ("alice", "bob", "carol")[i % 3], 99_000 - i * 500)
        for i in range(9)
    ] + [PlaceBid(END - 1, "A1", "L1", "bob", 50_000)]
    sparse, dense = Engine(), Engine()
    sparse_events = [e for c in commands for e in sparse.handle(c)]
    dense_events = []
    t = START - M
    for command in commands:
        while t + 17 * S < command.now:
            t += 17 * S
            dense_events += dense.handle(Tick(t))
        dense_events += dense.handle(command)
    assert sparse_events == dense_events
    assert sparse.state_hash() == dense.state_hash()
    final = END + 3 * M
    assert sparse.tick(final) == dense.tick(final)
    assert sparse.state_hash() == dense.state_hash()


def test_awarded_at_close_with_events_in_order() -> None:
    engine = engine_with()
    bid(engine, START + 1, "alice", 90_000)
    [accepted] = bid(engine, START + 2, "bob", 85_000)
    assert isinstance(accepted, BidAccepted)
    events = engine.tick(END + 1)
    assert kinds(events) == ["LotClosed", "LotAwarded", "AuctionClosed"]
    assert (events[1].bidder_id, events[1].amount, events[1].time) == ("bob", 85_000, END)
