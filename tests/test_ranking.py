"""Pseudonyms, bidder and observer views per visibility mode, anonymity, results."""

from __future__ import annotations

import dataclasses

import pytest
from factories import END, START, S, bid, engine_with

from auction_engine import AdmitBidder, Engine, QueryError, RevokeBidder
from auction_engine.ranking import pseudonym, shown

BIDDERS = ["alice", "bob", "carol"]


def test_pseudonyms_are_a_keyed_permutation() -> None:
    names = [pseudonym("secret-one-0123456789", i) for i in range(5000)]
    assert len(set(names)) == 5000  # unique
    assert all(n.startswith("B-") and len(n) == 6 for n in names)
    assert names != sorted(names)  # admission order does not show
    other = [pseudonym("secret-two-0123456789", i) for i in range(50)]
    assert other != names[:50]
    with pytest.raises(ValueError):
        pseudonym("s", 1 << 20)


def test_pseudonym_is_stable_across_revoke_and_readmit() -> None:
    engine = engine_with()
    before = engine.auction("A1").pseudonyms["bob"]
    engine.handle(RevokeBidder(START + 1, "A1", "bob"))
    [admitted] = engine.handle(AdmitBidder(START + 2, "A1", "bob"))
    assert admitted.pseudonym == before


def run(visibility: str) -> Engine:
    engine = engine_with(visibility=visibility)
    bid(engine, START + 1, "alice", 90_000)
    bid(engine, START + 2, "bob", 85_000)
    bid(engine, START + 3, "carol", 95_000)
    return engine


def test_rank_mode_shows_only_own_standing() -> None:
    engine = run("rank")
    view = engine.bidder_view("A1", "L1", "alice")
    assert (view.rank, view.own_price, view.active_bidders) == (2, 90_000, 3)
    assert view.best_price is None and view.gap is None and view.ladder is None


def test_rank_and_best_mode_adds_best_and_gap() -> None:
    view = run("rank_and_best").bidder_view("A1", "L1", "carol")
    assert (view.rank, view.best_price, view.gap) == (3, 85_000, 10_000)


def test_ladder_mode_marks_own_line() -> None:
    engine = run("ladder")
    view = engine.bidder_view("A1", "L1", "alice")
    assert [(line.rank, line.price, line.own) for line in view.ladder] == [
        (1, 85_000, False), (2, 90_000, True), (3, 95_000, False)]
    names = engine.auction("A1").pseudonyms
    assert [line.pseudonym for line in view.ladder] == [names["bob"], names["alice"], names["carol"]]


def test_view_before_any_bid() -> None:
    view = run("ladder").bidder_view("A1", "L1", "alice")
    assert view.status == "open"
    fresh = engine_with(visibility="ladder").bidder_view("A1", "L1", "alice")
    assert (fresh.rank, fresh.own_price, fresh.best_price, fresh.gap, fresh.ladder) == (None, None, None, None, ())


def _strings(obj: object) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if dataclasses.is_dataclass(obj):
        return [s for f in dataclasses.fields(obj) for s in _strings(getattr(obj, f.name))]
    if isinstance(obj, tuple | list):
        return [s for item in obj for s in _strings(item)]
    return []


@pytest.mark.parametrize("visibility", ["rank", "rank_and_best", "ladder"])
def test_no_view_carries_a_bidder_id(visibility: str) -> None:
    engine = run(visibility)
    views = [engine.bidder_view("A1", "L1", b) for b in BIDDERS]
    views.append(engine.observer_view("A1", "L1"))
    views.append(engine.results("A1"))
    for view in views:
        for text in _strings(view):
            assert not any(b in text for b in BIDDERS), (text, view)


def test_observer_view() -> None:
    view = run("rank").observer_view("A1", "L1")
    assert [line.price for line in view.ladder] == [85_000, 90_000, 95_000]
    assert view.bids == 3 and view.active_bidders == 3 and not any(line.own for line in view.ladder)


def test_results_reveal_only_after_close_and_compute_savings() -> None:
    engine = run("rank")
    with pytest.raises(QueryError) as exc:
        engine.results("A1", reveal=True)
    assert exc.value.code == "results_not_final"
    pending = engine.results("A1").lots[0]
    assert pending.status == "pending" and pending.winner_id is None
    engine.tick(END)
    results = engine.results("A1", reveal=True)
    lot = results.lots[0]
    assert (lot.status, lot.winner_id, lot.awarded_price) == ("awarded", "bob", 85_000)
    assert (lot.estimate, lot.savings, lot.savings_percent) == (120_000, 35_000, "29.17")
    assert [r.bidder_id for r in lot.ranking] == ["bob", "alice", "carol"]
    assert (results.awarded_total, results.savings, results.savings_percent) == (85_000, 35_000, "29.17")
    assert lot.closed_at == END and lot.bids == 3


@pytest.mark.parametrize(("overrides", "bids", "reason"), [
    ({}, [], "no_bids"),
    ({"min_bidders": 2}, [("alice", 90_000)], "too_few_bidders"),
    ({"lot": {"reserve_price": "800.00"}}, [("alice", 90_000), ("bob", 80_001)], "above_reserve"),
])
def test_unsuccessful_reasons(overrides: dict[str, object], bids: list[tuple[str, int]], reason: str) -> None:
    engine = engine_with(**overrides)
    for i, (bidder, amount) in enumerate(bids):
        bid(engine, START + i + 1, bidder, amount)
    events = engine.tick(END)
    assert events[1].reason == reason
    assert engine.results("A1").lots[0].reason == reason


def test_reserve_met_exactly_is_awarded() -> None:
    engine = engine_with(lot={"reserve_price": "800.00"})
    bid(engine, START + 1, "alice", 80_000)
    assert engine.tick(END)[1].__class__.__name__ == "LotAwarded"


def test_query_errors() -> None:
    engine = engine_with()
    for call, code in ((lambda: engine.results("nope"), "unknown_auction"),
                       (lambda: engine.observer_view("A1", "L9"), "unknown_lot"),
                       (lambda: engine.bidder_view("A1", "L1", "mallory"), "unknown_bidder")):
        with pytest.raises(QueryError) as exc:
            call()
        assert exc.value.code == code


def test_state_hash_is_stable_and_sensitive() -> None:
    a, b = engine_with(), engine_with()
    assert a.state_hash() == b.state_hash()
    bid(a, START + S, "alice", 90_000)
    assert a.state_hash() != b.state_hash()
    bid(b, START + S, "alice", 90_000)
    assert a.state_hash() == b.state_hash()


@pytest.mark.parametrize("mode", ["rank", "rank_and_best", "ladder"])
def test_one_visibility_policy_decides_what_a_bidder_sees(mode: str) -> None:
    """`ranking.shown` is the one place: the views follow it (the room's acks, refusals and
    welcome read the same policy)."""
    engine = engine_with(visibility=mode)
    bid(engine, START + S, "alice", 100_000)
    bid(engine, START + 2 * S, "bob", 90_000)
    view = engine.bidder_view("A1", "L1", "alice")
    sees = shown(mode, "bidder")
    assert (view.best_price is not None, view.ladder is not None) == (sees.best_price, sees.ladder)
    assert not sees.estimate and shown(mode, "observer").estimate
    assert sees.amounts_in_refusals == (mode != "rank")
