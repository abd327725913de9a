"""Portal commands: each refusal code, and that a refusal changes nothing."""

from __future__ import annotations

import pytest
from factories import END, START, S, config, engine_with

from auction_engine import (
    COMMAND_REJECTION_CODES,
    AdmitBidder,
    Cancel,
    CreateAuction,
    Engine,
    PlaceBid,
    Resume,
    RevokeBidder,
    Suspend,
)
from auction_engine.commands import Command
from auction_engine.events import CommandRejected

T = START + 10 * S


@pytest.mark.parametrize(("command", "code"), [
    (CreateAuction(T, config()), "auction_exists"),
    (AdmitBidder(T, "A9", "dave"), "unknown_auction"),
    (AdmitBidder(T, "A1", "bad id!"), "malformed"),
    (AdmitBidder(T, "A1", "alice"), "already_admitted"),
    (RevokeBidder(T, "A1", "dave"), "unknown_bidder"),
    (RevokeBidder(T, "A1", 42), "malformed"),  # type: ignore[arg-type]
    (Suspend(T, "A1", "L9"), "unknown_lot"),
    (Suspend(T, "A1", None, "x" * 501), "malformed"),
    (Suspend(T, ["A1"]), "malformed"),  # type: ignore[arg-type]
    (Resume(T, "A1"), "not_suspended"),
    (Resume(T, "A1", "L1"), "not_suspended"),
    (Cancel(T, "A1", 7), "malformed"),  # type: ignore[arg-type]
])
def test_refusals(command: Command, code: str) -> None:
    engine = engine_with()
    before = engine.state_hash()
    [refused] = engine.handle(command)
    assert isinstance(refused, CommandRejected) and refused.code == code, refused
    assert code in COMMAND_REJECTION_CODES
    assert refused.command == type(command).__name__
    assert engine.state_hash() == before


def test_revoked_twice_and_finished_auction() -> None:
    engine = engine_with()
    engine.handle(RevokeBidder(T, "A1", "bob"))
    assert engine.handle(RevokeBidder(T, "A1", "bob"))[0].code == "not_admitted"
    engine.tick(END)
    for command in (AdmitBidder(END, "A1", "dave"), Suspend(END, "A1"), Resume(END, "A1"), Cancel(END, "A1")):
        assert engine.handle(command)[0].code == "auction_finished"


def test_suspend_and_cancel_need_a_live_lot() -> None:
    engine = engine_with(lots=[{"lot_id": "L1", "estimate": "9", "starting_price": "9"},
                               {"lot_id": "L2", "estimate": "9", "starting_price": "9"}])
    engine.handle(Cancel(T, "A1", "L1"))
    assert engine.handle(Suspend(T, "A1", "L1"))[0].code == "not_suspendable"
    assert engine.handle(Cancel(T, "A1", "L1"))[0].code == "not_cancellable"
    engine.handle(Suspend(T, "A1", "L2"))
    assert engine.handle(Suspend(T, "A1"))[0].code == "not_suspendable"  # no lot left to suspend
    assert [e.lot_id for e in engine.handle(Resume(T + 1, "A1"))] == ["L2"]


@pytest.mark.parametrize("overrides", [{}, {"extension": {"inactivity_close": "5s"}}])
def test_ends_in_past(overrides: dict[str, object]) -> None:
    engine = Engine()
    late = END if not overrides else START + 5 * S
    [refused] = engine.handle(CreateAuction(late, config(**overrides)))
    assert isinstance(refused, CommandRejected) and refused.code == "ends_in_past"
    [created, *_] = Engine().handle(CreateAuction(late - 1, config(**overrides)))
    assert type(created).__name__ == "AuctionCreated"


def test_creation_after_start_opens_lots_at_start() -> None:
    events = Engine().handle(CreateAuction(START + 5 * S, config()))
    opened = [e for e in events if type(e).__name__ == "LotOpened"]
    assert [e.time for e in opened] == [START]


def test_cancelled_while_suspended_reports_its_cancellation() -> None:
    engine = engine_with()
    engine.handle(Suspend(T, "A1", "L1"))
    engine.handle(Cancel(T + 10 * S, "A1", "L1"))
    clock = engine.auction("A1").lots["L1"].clock
    assert (clock.suspended_at, clock.suspended_from, clock.closed_at) == (None, None, T + 10 * S)
    [rejected] = engine.handle(PlaceBid(T + 20 * S, "A1", "L1", "alice", 1))
    assert rejected.code == "lot_cancelled" and "10:00:20" in rejected.message
    assert engine.observer_view("A1", "L1").close_at == T + 10 * S
