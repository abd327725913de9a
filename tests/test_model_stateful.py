"""Model-based test: the real `Engine` against the naive reference model, step by step.

A Hypothesis `RuleBasedStateMachine` applies every command to both
`auction_engine.testing.naive.NaiveEngine` (written from docs/core.md) and the real
`Engine`, and after every step compares the events (rejection messages blanked),
`next_deadline()`, `state_hash()`, every bidder view, every observer view and the
results. Time moves by small and large jumps and lands exactly on the instants where the
clock rules change (openings, closes, window starts, inactivity deadlines, hard closes).

Default run: well under a minute. `HYPOTHESIS_PROFILE=slow` runs many more and longer
programs (the settings live here because tests/conftest.py is shared).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from auction_engine import (
    AdmitBidder,
    AuctionConfig,
    Cancel,
    ClockRegression,
    CreateAuction,
    Engine,
    PlaceBid,
    QueryError,
    Resume,
    RevokeBidder,
    Suspend,
    Tick,
)
from auction_engine.commands import Command
from auction_engine.events import BidRejected, CommandRejected, Event
from auction_engine.money import format_amount
from auction_engine.ranking import BidderView
from auction_engine.testing import normalise
from auction_engine.testing.naive import NaiveAuction, NaiveClockRegression, NaiveEngine, NaiveLot, NaiveQueryError
from auction_engine.timeutil import format_duration, format_instant, parse_instant

S = 1_000_000  # one second in µs
T0 = parse_instant("2026-03-02T10:00:00Z")
AUCTION_IDS = ("A-1", "A-2", "A-3", "A-4", "A-5")
LOT_IDS = ("L1", "L2", "L3")
BIDDERS = ("acme", "globex", "initech", "umbrella", "hooli")  # never a substring of ids, statuses or pseudonyms
NEVER_ADMITTED = "stranger"
SECRETS = ("secret-0123456789abcdef", "another-secret-fedcba9876543210")
TITLES = ("Lot", "Fourniture de matériel informatique", "")  # non-ASCII goes through the config digest

SLOW = os.environ.get("HYPOTHESIS_PROFILE") == "slow"
STATEFUL_SETTINGS = settings(
    max_examples=5000 if SLOW else 600,
    stateful_step_count=150 if SLOW else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

OFTEN = st.sampled_from([True] * 9 + [False])  # the usual case, with a few exceptions


# -- comparison helpers ------------------------------------------------------------------------



def same_answer(engine: Engine, model: NaiveEngine, query: str, *args: str, **kwargs: bool) -> Any:
    """Ask both the same query: equal answers, or query errors with the same code."""
    try:
        expected = getattr(model, query)(*args, **kwargs)
    except NaiveQueryError as exc:
        with pytest.raises(QueryError) as info:
            getattr(engine, query)(*args, **kwargs)
        assert info.value.code == exc.code, (query, args)
        return None
    actual = getattr(engine, query)(*args, **kwargs)
    assert actual == expected, f"\n{query}{args}\nengine: {actual}\nmodel:  {expected}"
    return expected


def strings_in(value: object) -> list[str]:
    """Every string held anywhere in a view (dataclasses, tuples)."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in strings_in(getattr(value, f.name))]
    if isinstance(value, (tuple, list)):
        return [s for item in value for s in strings_in(item)]
    return []


# -- configurations --------------------------------------------------------------------------------

PERCENTS = ("0.000001", "0.5", "1", "2.5", "10", "33.333333", "100")
WINDOWS = (0, 0, 250_000, 1 * S, 5 * S, 30 * S)
EXTEND_BYS = (1, 500_000, 1 * S, 5 * S, 30 * S)
INACTIVITY = (1 * S, 3 * S, 10 * S, 40 * S)  # 10 s and 40 s are durations too: ties with the close


def draw_rules(draw: st.DrawFn, decimals: int) -> dict[str, Any]:
    """Every field of `rules`, so that a lot's own rules never mix with the auction's
    into an invalid pair (null is the default)."""
    min_step = draw(st.sampled_from([0, 0, 1, 5, 50, 1000]))
    min_pct = draw(st.sampled_from([None, None, 0, 1, 2, 3]))
    max_step = None
    if draw(st.booleans()):
        max_step = max(min_step, 1) * draw(st.sampled_from([1, 2, 10, 1000]))
    max_pct = None
    if draw(st.booleans()):
        max_pct = draw(st.integers(min_pct or 0, len(PERCENTS) - 1))
    return {
        "min_step": format_amount(min_step, decimals) if min_step or draw(st.booleans()) else None,
        "min_step_percent": None if min_pct is None else PERCENTS[min_pct],
        "max_step": None if max_step is None else format_amount(max_step, decimals),
        "max_step_percent": None if max_pct is None else PERCENTS[max_pct],
        "improve_on": draw(st.sampled_from(["own", "best", None])),
    }


def draw_extension(draw: st.DrawFn, last_close: int) -> dict[str, Any]:
    ext: dict[str, Any] = {}
    window = draw(st.sampled_from(WINDOWS))
    if window:
        ext["window"] = format_duration(window)
        ext["extend_by"] = format_duration(draw(st.sampled_from(EXTEND_BYS)))
    if draw(st.booleans()):
        ext["trigger"] = draw(st.sampled_from(["any_bid", "new_best", "top_n"]))
        ext["top_n"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        ext["mode"] = draw(st.sampled_from(["from_bid", "from_close"]))
    if draw(st.booleans()):
        ext["max_extensions"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 2)) == 0:
        ext["hard_close"] = format_instant(last_close + draw(st.sampled_from([0, 1, 2 * S, 20 * S])))
    if draw(st.integers(0, 2)) == 0:
        ext["inactivity_close"] = format_duration(draw(st.sampled_from(INACTIVITY)))
    return ext


@st.composite
def auction_configs(draw: st.DrawFn, auction_id: str, now: int, *, long: bool = False) -> AuctionConfig:
    """A valid configuration whose times are around `now` (sometimes already started,
    sometimes already over); a `long` one lasts at least 40 s."""
    start = now + draw(st.sampled_from([0, -20 * S, 3 * S, -200 * S, -1, 0, 1, 20 * S]))
    durations = [200 * S, 40 * S, 1000 * S] if long else [200 * S, 40 * S, 10 * S, 1, 2 * S, 40 * S, 1000 * S]
    end = start + draw(st.sampled_from(durations))
    stagger = draw(st.sampled_from([0, 0, 1, 3 * S, 20 * S]))
    n_lots = draw(st.integers(1, 3))
    decimals = draw(st.sampled_from([0, 2, 3]))
    last_close = end + (n_lots - 1) * stagger
    lots = []
    for i in range(n_lots):
        starting = draw(st.sampled_from([1, 7, 100, 999, 10_000, 123_457, 10**9]) | st.integers(1, 10**6))
        lot: dict[str, Any] = {
            "lot_id": LOT_IDS[i],
            "title": draw(st.sampled_from(TITLES)),
            "estimate": format_amount(draw(st.integers(1, 2 * starting)), decimals),
            "starting_price": format_amount(starting, decimals),
        }
        if draw(st.integers(0, 2)) == 0:
            lot["reserve_price"] = format_amount(draw(st.integers(1, starting)), decimals)
        if draw(st.integers(0, 2)) == 0:
            lot["rules"] = draw_rules(draw, decimals)
        if draw(st.integers(0, 2)) == 0:
            lot["extension"] = draw_extension(draw, last_close)
        lots.append(lot)
    data = {
        "auction_id": auction_id,
        "title": draw(st.sampled_from(TITLES)),
        "currency": "MAD",
        "decimals": decimals,
        "start": format_instant(start),
        "end": format_instant(end),
        "stagger": format_duration(stagger),
        "bidders": draw(st.lists(st.sampled_from(BIDDERS), unique=True, min_size=draw(st.sampled_from([3, 2, 0])),
                                 max_size=4)),
        "min_bidders": draw(st.sampled_from([1, 1, 2, 3])),
        "visibility": draw(st.sampled_from(["rank", "rank_and_best", "ladder"])),
        "pseudonym_secret": draw(st.sampled_from(SECRETS)),
        "rules": draw_rules(draw, decimals),
        "extension": draw_extension(draw, last_close),
        "lots": lots,
    }
    return AuctionConfig.from_dict(data)


# -- amounts ---------------------------------------------------------------------------------------

INVALID_AMOUNTS: tuple[object, ...] = (0, -1, -(10**6), True, False, "100", "1.00", 1.0, None, 10**30, -(10**30))


def step_bounds(lot: NaiveLot, bidder: object) -> tuple[int | None, int, int | None]:
    """(base, least step, largest step or None) of a bid by `bidder` on `lot` now,
    computed here again (the tests' own arithmetic, not the model's)."""
    rules = lot.config.rules
    own = lot.latest.get(bidder) if isinstance(bidder, str) else None
    best = min((b.price for b in lot.latest.values()), default=None)
    base = (None if own is None else own.price) if rules.improve_on == "own" else best
    if base is None:
        return None, 1, None
    low = [rules.min_step, 1]
    if rules.min_step_percent is not None:
        pct = rules.min_step_percent
        low.append(-(-base * pct.numerator // (100 * pct.denominator)))
    high = []
    if rules.max_step is not None:
        high.append(rules.max_step)
    if rules.max_step_percent is not None:
        pct = rules.max_step_percent
        high.append(base * pct.numerator // (100 * pct.denominator))
    return base, max(low), min(high) if high else None


def amount_choices(lot: NaiveLot | None, bidder: object) -> list[object]:
    """Amounts worth trying for `bidder` on `lot`: around every step boundary."""
    if lot is None:
        return [1, 100]
    start = lot.config.starting_price
    choices: list[object] = [start, start + 1, max(start - 1, 1), 1, max(start // 2, 1)]
    own = lot.latest.get(bidder) if isinstance(bidder, str) else None
    best = min((b.price for b in lot.latest.values()), default=None)
    base, least, most = step_bounds(lot, bidder)
    for price in (base, best, None if own is None else own.price):
        if price is not None:
            choices += [price, price - 1, price + 1]
    if base is not None:
        choices += [base - least, base - least + 1, base - least - 1, base - 2 * least, base - 7 * least]
        if most is not None:
            choices += [base - most, base - most - 1, base - most + 1, base - (least + most) // 2]
    return choices


def likely_valid_amounts(lot: NaiveLot, bidder: str) -> list[int]:
    """Amounts that pass the step rules when they can (and walk the price down)."""
    start = lot.config.starting_price
    base, least, most = step_bounds(lot, bidder)
    if base is None:
        return [start, max(start - 1, 1), max(start * 9 // 10, 1)]
    top = least * 3 if most is None else most
    return [max(amount, 1) for amount in (base - least, base - least, base - (least + top) // 2, base - top)]


# -- the machine -----------------------------------------------------------------------------------

class EngineVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine()
        self.model = NaiveEngine()
        self.now = T0
        self.steps = 0

    # helpers

    def run(self, command: Command) -> list[Event]:
        note(f"{command!r}")
        self.steps += 1
        expected = self.model.handle(command)
        actual = self.engine.handle(command)
        for happened in expected:
            note(f"    {happened!r}")
            detail = getattr(happened, "code", None) or getattr(happened, "reason", "")
            event(f"{type(happened).__name__} {detail:.20}")
        assert normalise(actual) == normalise(expected), f"\nengine: {actual}\nmodel:  {expected}"
        return expected

    def auctions(self) -> list[NaiveAuction]:
        return list(self.model.auctions.values())

    def interesting_instants(self) -> list[int]:
        """The nearest instants where the rules of some lot change: openings, closes,
        window starts, inactivity deadlines, hard closes, the last instant a bid makes the
        inactivity deadline the close (each also 1 µs either side)."""
        instants = []
        for auction in self.auctions():
            for lot in auction.lots:
                if lot.is_final():
                    continue
                points = [lot.open_at, lot.close_at, lot.close_at - lot.config.extension.window]
                if lot.idle_deadline is not None:
                    points.append(lot.idle_deadline)
                if lot.config.extension.inactivity_close is not None:  # a bid here: idle deadline == close
                    points.append(lot.close_at - lot.config.extension.inactivity_close)
                if lot.hard_close is not None:
                    points.append(lot.hard_close)
                for p in points:
                    instants += [p - 1, p, p + 1]
        return sorted({i for i in instants if i >= self.now})[:6]  # the nearest ones

    def find_lot(self, auction_id: object, lot_id: object) -> NaiveLot | None:
        auction = next((a for a in self.auctions() if a.config.auction_id == auction_id), None)
        return None if auction is None else auction.lot(lot_id)

    def pick_auction_id(self, data: st.DataObject) -> object:
        known = [a.config.auction_id for a in self.auctions()]
        return data.draw(st.sampled_from(known) if known and data.draw(OFTEN) else
                         st.sampled_from(["A-404", *AUCTION_IDS]), label="auction_id")

    def pick_lot_id(self, data: st.DataObject, auction_id: object) -> object:
        auction = next((a for a in self.auctions() if a.config.auction_id == auction_id), None)
        if auction is not None and data.draw(OFTEN):
            return data.draw(st.sampled_from([lot.config.lot_id for lot in auction.lots]), label="lot_id")
        return data.draw(st.sampled_from(["L1", "L9"]), label="lot_id")

    def pick_bidder(self, data: st.DataObject, auction_id: object) -> object:
        auction = next((a for a in self.auctions() if a.config.auction_id == auction_id), None)
        if auction is not None and auction.admitted and data.draw(OFTEN):
            return data.draw(st.sampled_from(auction.admitted), label="bidder_id")
        return data.draw(st.sampled_from([*BIDDERS, NEVER_ADMITTED]), label="bidder_id")

    # rules: auctions and bidders

    @initialize(data=st.data(), started=st.sampled_from([0, 1, 5 * S, 30 * S]))
    def first_auction(self, data: st.DataObject, started: int) -> None:
        """An auction, created `started` µs after its start (but before its end)."""
        config = data.draw(auction_configs(AUCTION_IDS[0], self.now, long=True), label="config")
        self.now = min(config.start + started, config.end - 1)  # nothing was sent yet: any time will do
        idle = [lot.extension.inactivity_close for lot in config.lots]
        if all(limit is not None and config.start + limit <= self.now for limit in idle):
            self.now = config.start  # not already closed for inactivity
        self.run(CreateAuction(self.now, config))

    @rule(data=st.data())
    def create_auction(self, data: st.DataObject) -> None:
        auction_id = data.draw(st.sampled_from(AUCTION_IDS), label="new auction_id")
        self.run(CreateAuction(self.now, data.draw(auction_configs(auction_id, self.now), label="config")))

    @rule(data=st.data(), admit=st.booleans())
    def admit_or_revoke(self, data: st.DataObject, admit: bool) -> None:
        auction_id = self.pick_auction_id(data)
        if admit:
            bidder = data.draw(st.sampled_from([*BIDDERS, NEVER_ADMITTED]), label="bidder_id")
            self.run(AdmitBidder(self.now, auction_id, bidder))  # type: ignore[arg-type]
        else:
            bidder = self.pick_bidder(data, auction_id)
            reason = data.draw(st.sampled_from(["", "fraude", "x" * 500]), label="reason")
            self.run(RevokeBidder(self.now, auction_id, bidder, reason))  # type: ignore[arg-type]

    # rules: bids

    def open_lots(self) -> list[tuple[NaiveAuction, NaiveLot]]:
        """Open lots (as of the last command) with an admitted bidder."""
        return [(a, lot) for a in self.auctions() for lot in a.lots if lot.status == "open" and a.admitted]

    def bid_on(self, data: st.DataObject, auction: NaiveAuction, lot: NaiveLot, *, likely_valid: bool) -> None:
        """A bid by an admitted bidder on `lot`, of an amount near a step boundary."""
        bidder = data.draw(st.sampled_from(auction.admitted), label="bidder_id")
        amounts = likely_valid_amounts(lot, bidder) if likely_valid else amount_choices(lot, bidder)
        amount = data.draw(st.sampled_from(amounts), label="amount")
        self.run(PlaceBid(self.now, auction.config.auction_id, lot.config.lot_id, bidder, amount))  # type: ignore[arg-type]

    def bid_open_lots(self, data: st.DataObject) -> None:
        """One to three bids on open lots, a little time apart, everything compared after each."""
        for i in range(data.draw(st.integers(1, 3), label="bids")):
            lots = self.open_lots()
            if not lots:
                return
            if i:
                self.now += data.draw(st.sampled_from([0, 1, 1000, 100_000, S]), label="later")
                self.same_deadline_and_state()
                self.same_views_and_results()
            auction, lot = data.draw(st.sampled_from(lots), label="open lot")
            self.bid_on(data, auction, lot, likely_valid=data.draw(st.booleans(), label="likely valid"))

    @precondition(lambda self: self.open_lots())
    @rule(data=st.data())
    def bid(self, data: st.DataObject) -> None:
        self.bid_open_lots(data)

    @precondition(lambda self: self.open_lots())
    @rule(data=st.data())
    def bid_again(self, data: st.DataObject) -> None:
        self.bid_open_lots(data)

    @precondition(lambda self: self.open_lots())
    @rule(data=st.data())
    def bid_once_more(self, data: st.DataObject) -> None:
        self.bid_open_lots(data)

    @precondition(lambda self: any(lot.config.extension.window for _a, lot in self.open_lots()))
    @rule(data=st.data())
    def bid_in_an_extension_window(self, data: st.DataObject) -> None:
        """Jump into [close - window, close] of an open lot (its ends most often) and bid."""
        auction, lot = data.draw(st.sampled_from([(a, lot) for a, lot in self.open_lots()
                                                  if lot.config.extension.window]), label="open lot")
        window_start = lot.close_at - lot.config.extension.window
        at = data.draw(st.sampled_from([window_start, window_start + 1, (window_start + lot.close_at) // 2,
                                        lot.close_at - 1, lot.close_at, window_start - 1]), label="at")
        self.now = max(self.now, at)
        self.bid_on(data, auction, lot, likely_valid=True)

    @rule(data=st.data())
    def any_bid(self, data: st.DataObject) -> None:
        """A bid on any (or no) auction, lot and bidder, with any amount; sometimes after
        a jump to the nearest instant where a lot's rules change."""
        if data.draw(st.booleans(), label="jump first"):
            instants = self.interesting_instants()
            if instants:
                self.now = data.draw(st.sampled_from(instants), label="jump to")
        auction_id = self.pick_auction_id(data)
        lot_id = self.pick_lot_id(data, auction_id)
        bidder = self.pick_bidder(data, auction_id)
        amount: object
        if data.draw(OFTEN):
            amount = data.draw(st.sampled_from(amount_choices(self.find_lot(auction_id, lot_id), bidder)),
                               label="amount")
        else:
            amount = data.draw(st.sampled_from(INVALID_AMOUNTS), label="invalid amount")
        self.run(PlaceBid(self.now, auction_id, lot_id, bidder, amount))  # type: ignore[arg-type]

    # rules: the buyer's incidents

    def lots_in(self, *states: str) -> list[tuple[str, str]]:
        return [(a.config.auction_id, lot.config.lot_id) for a in self.auctions() for lot in a.lots
                if lot.status in states]

    @precondition(lambda self: self.lots_in("scheduled", "open"))
    @rule(data=st.data(), whole_auction=st.sampled_from([False, False, True]))
    def suspend_a_running_lot(self, data: st.DataObject, whole_auction: bool) -> None:
        auction_id, lot_id = data.draw(st.sampled_from(self.lots_in("scheduled", "open")), label="lot")
        self.run(Suspend(self.now, auction_id, None if whole_auction else lot_id, "incident"))

    @precondition(lambda self: self.lots_in("suspended"))
    @rule(data=st.data(), whole_auction=st.sampled_from([False, False, True]),
          later=st.sampled_from([0, 1, 999, 2 * S, 60 * S]))
    def resume_a_suspended_lot(self, data: st.DataObject, whole_auction: bool, later: int) -> None:
        self.now += later
        auction_id, lot_id = data.draw(st.sampled_from(self.lots_in("suspended")), label="lot")
        self.run(Resume(self.now, auction_id, None if whole_auction else lot_id))

    @rule(data=st.data())
    def suspend_resume_or_cancel(self, data: st.DataObject) -> None:
        """Any of the three on any (or no) auction, one lot or all, often refused."""
        kind = data.draw(st.sampled_from(["suspend", "resume", "cancel", "cancel"]), label="kind")
        auction_id = self.pick_auction_id(data)
        lot_id = None if data.draw(st.integers(0, 2)) == 0 else self.pick_lot_id(data, auction_id)
        reason = data.draw(st.sampled_from(["", "incident réseau", "x" * 500, "x" * 501]), label="reason")
        if kind == "suspend":
            self.run(Suspend(self.now, auction_id, lot_id, reason))  # type: ignore[arg-type]
        elif kind == "resume":
            self.run(Resume(self.now, auction_id, lot_id))  # type: ignore[arg-type]
        else:
            self.run(Cancel(self.now, auction_id, lot_id, reason))  # type: ignore[arg-type]

    @rule(data=st.data())
    def malformed_command(self, data: st.DataObject) -> None:
        """A bid or a portal command with a field of the wrong type (or an invalid id)."""
        auction_id = self.pick_auction_id(data)
        lot_id = self.pick_lot_id(data, auction_id)
        bidder = self.pick_bidder(data, auction_id)
        junk = data.draw(st.sampled_from([None, 42, b"A-1", ("L1",), []]), label="junk")
        field = data.draw(st.sampled_from(["auction_id", "lot_id", "bidder_id"]), label="malformed field")
        ids: dict[str, object] = {"auction_id": auction_id, "lot_id": lot_id, "bidder_id": bidder, field: junk}
        command = data.draw(st.sampled_from([
            PlaceBid(self.now, ids["auction_id"], ids["lot_id"], ids["bidder_id"], 1),  # type: ignore[arg-type]
            AdmitBidder(self.now, junk, "acme"),  # type: ignore[arg-type]
            AdmitBidder(self.now, auction_id, junk),  # type: ignore[arg-type]
            AdmitBidder(self.now, auction_id, "-starts-with-a-dash"),  # type: ignore[arg-type]
            AdmitBidder(self.now, auction_id, "x" * 65),  # type: ignore[arg-type]
            RevokeBidder(self.now, auction_id, junk),  # type: ignore[arg-type]
            RevokeBidder(self.now, auction_id, "acme", junk),  # type: ignore[arg-type]
            Suspend(self.now, auction_id, junk),  # type: ignore[arg-type]
            Resume(self.now, junk),  # type: ignore[arg-type]
            Cancel(self.now, auction_id, None, junk),  # type: ignore[arg-type]
        ]), label="command")
        self.run(command)

    # rules: time

    @rule(data=st.data(), scoped=st.booleans())
    def tick(self, data: st.DataObject, scoped: bool) -> None:
        """A tick for every auction, or for one (known or not) as the journal records them."""
        self.run(Tick(self.now, self.pick_auction_id(data) if scoped else None))  # type: ignore[arg-type]

    @rule(data=st.data(), tick=st.booleans())
    def advance(self, data: st.DataObject, tick: bool) -> None:
        """Move time: a little, a lot, exactly to (or 1 µs around) the next deadline, or to
        one of the nearest instants where a lot's rules change; then maybe tick."""
        kind = data.draw(st.sampled_from(["little", "little", "little", "lot", "deadline", "instant", "instant"]),
                         label="advance")
        deadline = self.model.next_deadline()
        instants = self.interesting_instants()
        if kind == "little":
            self.now += data.draw(st.sampled_from([1, 2, 999, 250_000, 1 * S, 3 * S]), label="by")
        elif kind == "lot":
            self.now += data.draw(st.sampled_from([10 * S, 30 * S, 200 * S, 1000 * S]), label="by")
        elif kind == "deadline" and deadline is not None:
            self.now = max(self.now, deadline + data.draw(st.sampled_from([0, -1, 1]), label="offset"))
        elif instants:
            self.now = data.draw(st.sampled_from(instants), label="jump to")
        if tick:
            self.run(Tick(self.now))

    def teardown(self) -> None:
        event(f"commands: {min(self.steps // 10 * 10, 100)}+")
        accepted = sum(a.last_seq for a in self.auctions())
        event(f"accepted bids: {min(accepted // 5 * 5, 20)}+")

    # invariants

    @invariant()
    def same_deadline_and_state(self) -> None:
        assert self.engine.next_deadline() == self.model.next_deadline()
        assert self.engine.canonical_state() == self.model.canonical_state()
        assert self.engine.state_hash() == self.model.state_hash()

    @invariant()
    def same_views_and_results(self) -> None:
        engine, model = self.engine, self.model
        for auction in self.auctions():
            aid = auction.config.auction_id
            for lot in auction.lots:
                lid = lot.config.lot_id
                same_answer(engine, model, "observer_view", aid, lid)
                for bidder, _name in auction.ever:
                    view = same_answer(engine, model, "bidder_view", aid, lid, bidder)
                    assert isinstance(view, BidderView)
                    # Anonymity: no bidder view holds any bidder id, not even the viewer's own.
                    for text in strings_in(view):
                        for someone in (*BIDDERS, NEVER_ADMITTED):
                            assert someone not in text, (view, someone)
            same_answer(engine, model, "results", aid)
            same_answer(engine, model, "results", aid, reveal=True)

    @invariant()
    def same_query_errors(self) -> None:
        engine, model = self.engine, self.model
        same_answer(engine, model, "results", "A-404")
        same_answer(engine, model, "results", "A-404", reveal=True)
        same_answer(engine, model, "observer_view", "A-404", "L1")
        same_answer(engine, model, "bidder_view", "A-404", "L1", "acme")
        for auction in self.auctions()[:1]:
            aid = auction.config.auction_id
            same_answer(engine, model, "observer_view", aid, "L9")
            same_answer(engine, model, "bidder_view", aid, "L1", NEVER_ADMITTED)
            for bidder, _name in auction.ever[:1]:
                same_answer(engine, model, "bidder_view", aid, "L9", bidder)


EngineVersusModel.TestCase.settings = STATEFUL_SETTINGS
TestEngineVersusModel = EngineVersusModel.TestCase


# -- a few fixed checks of the model itself and of the harness ----------------------------------

def small_config(**overrides: Any) -> AuctionConfig:
    """One lot of 100.00 MAD, one bidder, open from T0 for 60 s."""
    data: dict[str, Any] = {
        "auction_id": "A-1", "title": "t", "currency": "MAD", "start": format_instant(T0),
        "end": format_instant(T0 + 60 * S), "bidders": ["acme"], "pseudonym_secret": SECRETS[0],
        "lots": [{"lot_id": "L1", "title": "", "estimate": "100.00", "starting_price": "100.00"}],
    }
    data.update(overrides)
    return AuctionConfig.from_dict(data)


def test_both_refuse_a_clock_regression() -> None:
    engine, model = Engine(), NaiveEngine()
    engine.handle(Tick(T0))
    model.handle(Tick(T0))
    with pytest.raises(ClockRegression):
        engine.handle(Tick(T0 - 1))
    with pytest.raises(NaiveClockRegression):
        model.handle(Tick(T0 - 1))


def test_the_normaliser_blanks_only_messages() -> None:
    rejected = BidRejected(1, "A", "L", "b", 5, "lot_closed", "the lot closed at ...")
    assert normalise([rejected]) == [rejected._replace(message="")]
    assert normalise([rejected]) != [rejected._replace(message="", code="lot_not_open")]


def test_a_malformed_bid_on_an_existing_lot_changes_nothing() -> None:
    """docs/core.md, Bids: "a malformed bid changes nothing at all", not even the rejected
    count of the lot it names (an earlier version of the doc said it counted)."""
    engine, model = Engine(), NaiveEngine()
    for command in (CreateAuction(T0, small_config()), PlaceBid(T0 + 1, "A-1", "L1", None, 100)):  # type: ignore[arg-type]
        assert normalise(engine.handle(command)) == normalise(model.handle(command))
    assert engine.state_hash() == model.state_hash()
    assert model.observer_view("A-1", "L1").rejected_bids == 0
    assert engine.observer_view("A-1", "L1").rejected_bids == 0


def test_an_auction_already_closed_by_inactivity_is_refused() -> None:
    """docs/core.md, Commands: CreateAuction is refused `ends_in_past` when "every lot would
    already be closed, at its scheduled close or for inactivity". Created 10 s after its
    start with inactivity_close 5 s, its only lot could not have had a bid and closed for
    inactivity 5 s before the creation; 1 µs earlier than 5 s after start, it is created."""
    config = small_config(extension={"inactivity_close": "5s"})
    expected = [CommandRejected(T0 + 5 * S, "CreateAuction", "A-1", "ends_in_past", "")]
    assert normalise(NaiveEngine().handle(CreateAuction(T0 + 5 * S, config))) == expected
    assert normalise(Engine().handle(CreateAuction(T0 + 5 * S, config))) == expected
    engine, model = Engine(), NaiveEngine()
    created = normalise(model.handle(CreateAuction(T0 + 5 * S - 1, config)))
    assert normalise(engine.handle(CreateAuction(T0 + 5 * S - 1, config))) == created
    assert [type(e).__name__ for e in created] == ["AuctionCreated", "BidderAdmitted", "LotOpened"]
    assert engine.next_deadline() == model.next_deadline() == T0 + 5 * S
