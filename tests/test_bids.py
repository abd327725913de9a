"""Bid validation: every rejection code, the order of checks, steps and their rounding."""

from __future__ import annotations

import pytest
from factories import END, START, S, bid, engine_with, kinds
from hypothesis import given, reject
from hypothesis import strategies as st

from auction_engine import REJECTION_CODES, Cancel, ConfigError, Engine, PlaceBid, RevokeBidder, Suspend
from auction_engine.events import BidAccepted, BidRejected

OPEN = START + 60 * S


def code(events: list[object]) -> str:
    rejected = [e for e in events if isinstance(e, BidRejected)]
    assert len(rejected) == 1, events
    return rejected[0].code


def test_accepted_bid_event() -> None:
    engine = engine_with()
    [accepted] = bid(engine, OPEN, "alice", 100_000)
    assert accepted == BidAccepted(OPEN, "A1", "L1", "alice", 100_000, 1, 1, 100_000)


@pytest.mark.parametrize(("args", "expected"), [
    (("A2", "L1", "alice", 90_000), "unknown_auction"),
    (("A1", "L9", "alice", 90_000), "unknown_lot"),
    (("A1", "L1", "mallory", 90_000), "not_admitted"),
    (("A1", "L1", "alice", 0), "invalid_amount"),
    (("A1", "L1", "alice", -5), "invalid_amount"),
    (("A1", "L1", "alice", True), "invalid_amount"),
    (("A1", "L1", "alice", "900.00"), "invalid_amount"),
    (("A1", "L1", "alice", 900.0), "invalid_amount"),
    (("A1", "L1", "alice", None), "invalid_amount"),
    (("A1", "L1", "alice", 100_001), "above_starting_price"),
    ((["A1"], "L1", "alice", 1), "malformed"),
    (("A1", {"x": 1}, "alice", 1), "malformed"),
    (("A1", "L1", None, 1), "malformed"),
])
def test_rejection_codes(args: tuple[object, ...], expected: str) -> None:
    engine = engine_with()
    before = engine.state_hash()
    assert code(engine.handle(PlaceBid(OPEN, *args))) == expected  # type: ignore[arg-type]
    assert expected in REJECTION_CODES
    # a rejection changes nothing but the lot's rejected count
    lot = engine.auction("A1").lots["L1"]
    assert lot.bids == 0 and len(lot.book) == 0
    if expected in ("unknown_auction", "unknown_lot", "malformed"):
        assert engine.state_hash() == before


def test_bid_at_exactly_the_starting_price_is_accepted() -> None:
    assert kinds(bid(engine_with(), OPEN, "alice", 100_000)) == ["BidAccepted"]


def test_revoked_bidder_is_not_admitted_but_keeps_its_standing() -> None:
    engine = engine_with()
    bid(engine, OPEN, "alice", 90_000)
    engine.handle(RevokeBidder(OPEN + 1, "A1", "alice", "fraud inquiry"))
    assert code(bid(engine, OPEN + 2, "alice", 80_000)) == "not_admitted"
    assert engine.auction("A1").lots["L1"].book.price_of("alice") == 90_000


def test_lot_state_codes() -> None:
    engine = engine_with(opened=False,
                         lots=[{"lot_id": f"L{i}", "estimate": "9", "starting_price": "9"} for i in (1, 2, 3)])
    assert code(bid(engine, START - 1, "alice", 100, "L1")) == "lot_not_open"
    engine.handle(Suspend(OPEN, "A1", "L1"))
    engine.handle(Cancel(OPEN, "A1", "L2"))
    assert code(bid(engine, OPEN, "alice", 100, "L1")) == "lot_suspended"
    assert code(bid(engine, OPEN, "alice", 100, "L2")) == "lot_cancelled"
    assert code(bid(engine, END, "alice", 100, "L3")[-1:]) == "lot_closed"


def test_checks_run_in_the_documented_order() -> None:
    engine = engine_with(opened=False)
    # not admitted beats lot_not_open, which beats invalid_amount
    assert code(bid(engine, START - 1, "mallory", -1)) == "not_admitted"
    assert code(bid(engine, START - 1, "alice", -1)) == "lot_not_open"
    assert code(bid(engine, OPEN, "alice", -1)) == "invalid_amount"
    bid(engine, OPEN, "alice", 90_000)
    assert code(bid(engine, OPEN, "alice", 100_001)) == "above_starting_price"
    assert list(REJECTION_CODES)[:4] == ["malformed", "unknown_auction", "unknown_lot", "not_admitted"]


def test_own_mode_steps_from_own_previous_bid() -> None:
    engine = engine_with(rules={"min_step": "10.00", "max_step": "100.00"})
    bid(engine, OPEN, "alice", 90_000)
    assert code(bid(engine, OPEN, "alice", 89_001)) == "insufficient_step"
    assert code(bid(engine, OPEN, "alice", 90_000)) == "insufficient_step"
    assert code(bid(engine, OPEN, "alice", 91_000)) == "insufficient_step"  # going up
    assert code(bid(engine, OPEN, "alice", 79_999)) == "step_too_large"
    assert kinds(bid(engine, OPEN, "alice", 89_000)) == ["BidAccepted"]  # exactly the minimum step
    assert kinds(bid(engine, OPEN, "alice", 79_000)) == ["BidAccepted"]  # exactly the maximum step
    # bob's first bid only has to be under the starting price; it need not lead
    [accepted] = bid(engine, OPEN, "bob", 99_999)
    assert isinstance(accepted, BidAccepted) and accepted.rank == 2 and accepted.best == 79_000


def test_first_bid_ignores_the_max_step() -> None:
    engine = engine_with(rules={"max_step": "1.00"})
    assert kinds(bid(engine, OPEN, "alice", 1)) == ["BidAccepted"]


def test_best_mode_steps_from_the_best_price() -> None:
    engine = engine_with(rules={"min_step": "5.00", "improve_on": "best"})
    bid(engine, OPEN, "alice", 90_000)
    assert code(bid(engine, OPEN, "bob", 89_501)) == "insufficient_step"
    assert code(bid(engine, OPEN, "bob", 90_000)) == "insufficient_step"  # equal to best
    assert kinds(bid(engine, OPEN, "bob", 89_500)) == ["BidAccepted"]
    assert code(bid(engine, OPEN, "alice", 89_001)) == "insufficient_step"  # must beat bob, not herself


def test_percent_steps_round_in_the_bidders_disfavour() -> None:
    # min 0.5 % of 1001.01 = 5.00505 -> 5.01 (up); max 2 % of 1001.01 = 20.0202 -> 20.02 (down)
    engine = engine_with(lot={"starting_price": "2000.00"}, rules={"min_step_percent": "0.5", "max_step_percent": "2"})
    bid(engine, OPEN, "alice", 100_101)
    assert code(bid(engine, OPEN, "alice", 100_101 - 500)) == "insufficient_step"
    assert code(bid(engine, OPEN, "alice", 100_101 - 2003)) == "step_too_large"
    assert kinds(bid(engine, OPEN, "alice", 100_101 - 2002)) == ["BidAccepted"]
    engine = engine_with(lot={"starting_price": "2000.00"}, rules={"min_step_percent": "0.5"})
    bid(engine, OPEN, "alice", 100_101)
    assert kinds(bid(engine, OPEN, "alice", 100_101 - 501)) == ["BidAccepted"]


def test_larger_minimum_and_smaller_maximum_apply() -> None:
    engine = engine_with(rules={"min_step": "3.00", "min_step_percent": "1", "max_step": "50.00",
                                "max_step_percent": "10"})
    bid(engine, OPEN, "alice", 100_000)  # 1 % = 10.00 > 3.00; 10 % = 100.00 > 50.00
    assert code(bid(engine, OPEN, "alice", 99_001)) == "insufficient_step"
    assert code(bid(engine, OPEN, "alice", 94_999)) == "step_too_large"
    assert kinds(bid(engine, OPEN, "alice", 99_000)) == ["BidAccepted"]
    engine = engine_with(rules={"min_step": "3.00", "min_step_percent": "1"})
    bid(engine, OPEN, "alice", 10_000)  # 1 % = 1.00 < 3.00
    assert code(bid(engine, OPEN, "alice", 9_701)) == "insufficient_step"
    assert kinds(bid(engine, OPEN, "alice", 9_700)) == ["BidAccepted"]


def test_messages_say_what_would_pass() -> None:
    engine = engine_with(rules={"min_step": "10.00"})
    bid(engine, OPEN, "alice", 90_000)
    [rejected] = bid(engine, OPEN, "alice", 89_500)
    assert isinstance(rejected, BidRejected) and "at most 890.00 MAD" in rejected.message


def test_ties_rank_the_earlier_bid_first() -> None:
    engine = engine_with()
    bid(engine, OPEN, "alice", 90_000)
    [carol] = bid(engine, OPEN + 5, "carol", 80_000)
    [bob] = bid(engine, OPEN + 10, "bob", 80_000)
    assert isinstance(carol, BidAccepted) and isinstance(bob, BidAccepted)
    assert (carol.rank, bob.rank) == (1, 2)
    [again] = bid(engine, OPEN + 10, "alice", 80_000)  # same time as bob: the sequence decides
    assert isinstance(again, BidAccepted) and again.rank == 3
    assert engine.results("A1").lots[0].ranking[0].pseudonym == engine.auction("A1").pseudonyms["carol"]


def test_nothing_a_bidder_sends_raises() -> None:
    engine = engine_with()
    weird: list[object] = [None, 1.5, b"x", ["L1"], {"a": 1}, "", "L1" * 1000, float("nan"), 10**100, -(10**100)]
    for field in range(1, 5):
        for value in weird:
            args: list[object] = [OPEN, "A1", "L1", "alice", 50_000]
            args[field] = value
            events = engine.handle(PlaceBid(*args))  # type: ignore[arg-type]
            assert len(events) == 1
    assert engine.handle(PlaceBid(OPEN, "A1", "L1", "alice", 50_000))[0].__class__ is BidAccepted


def test_engine_rejects_a_clock_going_backwards() -> None:
    engine = Engine()
    engine.tick(100)
    from auction_engine import ClockRegression
    with pytest.raises(ClockRegression):
        engine.tick(99)


@given(st.integers(0, 5_000), st.one_of(st.none(), st.sampled_from(["0.5", "1", "2.25", "10"])),
       st.one_of(st.none(), st.integers(1, 50_000)), st.one_of(st.none(), st.sampled_from(["3", "7.5", "20"])),
       st.integers(2_000, 100_000))
def test_bid_bounds_are_exactly_what_the_engine_accepts(min_step: int, min_percent: str | None,
                                                       max_step: int | None, max_percent: str | None,
                                                       first: int) -> None:
    """`BidRules.bid_bounds` (the one rule the demo and benchmarks use) against the engine:
    both ends are accepted, one minor unit past either is refused."""
    rules = {"min_step": f"{min_step / 100:.2f}", "min_step_percent": min_percent,
             "max_step": None if max_step is None else f"{max_step / 100:.2f}", "max_step_percent": max_percent}
    try:
        engine = engine_with(rules=rules, lot={"starting_price": "1000.00"})
    except ConfigError:
        reject()  # rules the configuration refuses (a maximum under the minimum)
    config = engine.auction("A1").config.lots[0]
    assert bid(engine, OPEN, "alice", first)[-1].__class__ is BidAccepted
    low, high = config.rules.bid_bounds(config.starting_price, first)
    for amount, ok in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
        if low > high or amount <= 0 or amount > config.starting_price:
            continue
        probe = engine_with(rules=rules, lot={"starting_price": "1000.00"})
        bid(probe, OPEN, "alice", first)
        outcome = bid(probe, OPEN + 1, "alice", amount)[-1]
        assert (type(outcome) is BidAccepted) == ok, (amount, low, high, outcome)
