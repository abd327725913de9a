"""Model-based test: 100,000 seeded commands through the real `Engine` and the naive model.

A `random.Random(seed)` generator drives a handful of auctions with varied rules at a
time (new ones are created as time passes): mostly valid bids that walk prices down, plus
invalid bids, ticks, admissions and revocations, suspensions and resumptions, a few
cancellations, and time that moves by small steps, big jumps and exact landings on
deadlines and extension-window starts. Events are compared on every command (rejection
messages blanked), `state_hash()` every 100 commands, and views and results at the end.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from typing import Any

import pytest

from auction_engine import (
    AdmitBidder,
    AuctionConfig,
    Cancel,
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
from auction_engine.events import (
    Event,
    LotAwarded,
    LotCancelled,
    LotClosed,
    LotUnsuccessful,
)
from auction_engine.money import format_amount
from auction_engine.ranking import snapshot_bidder_view
from auction_engine.testing import normalise
from auction_engine.testing.naive import (
    NaiveAuction,
    NaiveEngine,
    NaiveLot,
    NaiveQueryError,
    maximum_step,
    minimum_step,
)
from auction_engine.timeutil import format_duration, format_instant, parse_instant

S = 1_000_000  # one second in µs
T0 = parse_instant("2026-03-02T10:00:00Z")
COMMANDS = int(os.environ.get("MODEL_STREAM_COMMANDS", 100_000))
HASH_EVERY = 100
RUNNING = 4  # auctions kept running at any time
POOL = tuple(f"bidder-{i:02d}" for i in range(12))
INVALID_AMOUNTS: tuple[object, ...] = (0, -1, -(10**9), True, False, "100", "12.50", 1.5, None, 10**30)




class Stream:
    """Generates commands from the model's state and feeds both engines."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.engine = Engine()
        self.model = NaiveEngine()
        self.now = T0
        self.sent = 0
        self.created = 0
        self.tally: Counter[str] = Counter()
        self.commands: list[Command] = []  # every command sent, in order
        self.events: list[Event] = []  # every event of the engine, in order

    # -- feeding both ----------------------------------------------------------------------

    def send(self, command: Command) -> list[Event]:
        expected = self.model.handle(command)
        actual = self.engine.handle(command)
        if normalise(actual) != normalise(expected):
            pytest.fail(f"command #{self.sent} (seed {self.seed}): {command!r}\nengine: {actual}\nmodel:  {expected}")
        self.sent += 1
        self.commands.append(command)
        self.events += actual
        if self.sent % HASH_EVERY == 0:
            assert self.engine.state_hash() == self.model.state_hash(), f"state differs after command #{self.sent}"
            assert self.engine.next_deadline() == self.model.next_deadline()
        for happened in expected:
            detail = getattr(happened, "code", "")
            if isinstance(happened, (LotClosed, LotUnsuccessful)):
                detail = happened.reason
            self.tally[f"{type(happened).__name__} {detail}".strip()] += 1
        return expected

    # -- what exists ---------------------------------------------------------------------------

    def running(self) -> list[NaiveAuction]:
        return [a for a in self.model.auctions.values() if not a.finished]

    def lots(self, *states: str) -> list[tuple[NaiveAuction, NaiveLot]]:
        return [(a, lot) for a in self.running() for lot in a.lots if lot.status in states]

    # -- configurations --------------------------------------------------------------------------

    def config(self, auction_id: str, start: int) -> AuctionConfig:
        rng = self.rng
        decimals = rng.choice([0, 2, 2, 3])
        end = start + rng.choice([60, 120, 300, 600]) * S
        stagger = rng.choice([0, 0, 10 * S, 45 * S])
        n_lots = rng.randint(1, 4)
        last_close = end + (n_lots - 1) * stagger

        def rules() -> dict[str, Any]:
            min_step = rng.choice([0, 1, 100, 2500])
            min_pct = rng.choice([None, None, "0.01", "0.1", "0.5"])
            max_step = rng.choice([None, None, max(min_step, 1) * rng.choice([5, 50, 1000])])
            max_pct = rng.choice([None, None, "5", "20"])
            return {
                "min_step": format_amount(min_step, decimals),
                "min_step_percent": min_pct,
                "max_step": None if max_step is None else format_amount(max_step, decimals),
                "max_step_percent": max_pct,
                "improve_on": rng.choice(["own", "best"]),
            }

        def extension() -> dict[str, Any]:
            window = rng.choice([0, 1 * S, 5 * S, 30 * S, 30 * S])
            return {
                "window": format_duration(window),
                "extend_by": format_duration(rng.choice([1 * S, 10 * S, 30 * S]) if window else 0),
                "trigger": rng.choice(["any_bid", "new_best", "top_n"]),
                "top_n": rng.randint(1, 3),
                "mode": rng.choice(["from_bid", "from_close"]),
                "max_extensions": rng.choice([None, None, 0, 3, 20]),
                "hard_close": rng.choice([None, format_instant(last_close + rng.choice([0, 60 * S, 300 * S]))]),
                "inactivity_close": rng.choice([None, None, None, "20s", "90s"]),
            }

        lots = []
        for i in range(n_lots):
            starting = rng.choice([10**4, 10**6, 10**8, 10**10]) + rng.randint(0, 999)
            lot: dict[str, Any] = {
                "lot_id": f"L{i + 1}",
                "title": f"Lot {i + 1}",
                "estimate": format_amount(starting + rng.randint(-starting // 10, starting // 10), decimals),
                "starting_price": format_amount(starting, decimals),
            }
            if rng.random() < 0.3:
                lot["reserve_price"] = format_amount(rng.randint(starting // 2, starting), decimals)
            if rng.random() < 0.3:
                lot["rules"] = rules()
            if rng.random() < 0.3:
                lot["extension"] = extension()
            lots.append(lot)
        return AuctionConfig.from_dict({
            "auction_id": auction_id,
            "title": f"Stream auction {auction_id}",
            "currency": "MAD",
            "decimals": decimals,
            "start": format_instant(start),
            "end": format_instant(end),
            "stagger": format_duration(stagger),
            "bidders": rng.sample(POOL, rng.randint(0, 6)),
            "min_bidders": rng.choice([1, 1, 2, 3]),
            "visibility": rng.choice(["rank", "rank_and_best", "ladder"]),
            "pseudonym_secret": f"stream-secret-{auction_id}-{rng.getrandbits(64):016x}",
            "rules": rules(),
            "extension": extension(),
            "lots": lots,
        })

    def create(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.03 and self.model.auctions:  # an existing id: auction_exists
            auction_id = rng.choice(list(self.model.auctions))
            start = self.now
        elif roll < 0.06:  # over before it is created: ends_in_past
            self.created += 1
            auction_id = f"S-{self.created:04d}"
            start = self.now - 3600 * S
        else:
            self.created += 1
            auction_id = f"S-{self.created:04d}"
            start = self.now + rng.choice([0, 0, 1, 5 * S, 60 * S, -10 * S])
        config = self.config(auction_id, start)
        self.send(CreateAuction(self.now, config))

    # -- bids ------------------------------------------------------------------------------------

    def valid_amount(self, lot: NaiveLot, bidder: str) -> int:
        """A random step down from the bid's base, within the lot's steps (usually small)."""
        rng = self.rng
        rules = lot.config.rules
        if rules.improve_on == "own":
            own = lot.latest.get(bidder)
            base = None if own is None else own.price
        else:
            base = lot.best()
        if base is None:
            start = lot.config.starting_price
            return start - int(start * rng.random() ** 4 / 20)
        least = minimum_step(rules, base)
        most = maximum_step(rules, base)
        if most is None:
            most = least * 5 + 10
        if most < least:
            return base - least  # no valid step here: step_too_large
        return base - (least + int((most - least) * rng.random() ** 6))

    def bid(self) -> None:
        rng = self.rng
        candidates = self.lots("open") or self.lots("scheduled", "suspended")
        if not candidates:
            self.send(Tick(self.now))
            return
        auction, lot = rng.choice(candidates)
        aid, lid = auction.config.auction_id, lot.config.lot_id
        bidder = rng.choice(auction.admitted) if auction.admitted else rng.choice(POOL)
        roll = rng.random()
        amount: object
        if roll < 0.92:
            amount = self.valid_amount(lot, bidder)
        elif roll < 0.95:
            amount = rng.choice(INVALID_AMOUNTS)
        elif roll < 0.97:
            amount = lot.config.starting_price + rng.choice([0, 1, 1000])
        else:
            amount = self.valid_amount(lot, bidder) + rng.choice([1, 2, 100])  # short of the step
        roll = rng.random()
        if roll < 0.01:
            bidder = rng.choice([b for b in POOL if b not in auction.admitted] or ["nobody"])
        elif roll < 0.015:
            lid = "L9"
        elif roll < 0.02:
            aid = "S-9999"
        elif roll < 0.022:  # malformed
            self.send(PlaceBid(self.now, aid, lid, rng.choice([None, 7]), amount))  # type: ignore[arg-type]
            return
        self.send(PlaceBid(self.now, aid, lid, bidder, amount))  # type: ignore[arg-type]

    # -- the rest --------------------------------------------------------------------------------

    def admit_or_revoke(self) -> None:
        rng = self.rng
        auctions = self.running() if rng.random() < 0.95 else list(self.model.auctions.values())
        if not auctions:
            return
        auction = rng.choice(auctions)
        aid = auction.config.auction_id
        bidder = rng.choice(POOL)
        if rng.random() < 0.6:
            self.send(AdmitBidder(self.now, aid, bidder))
        else:
            self.send(RevokeBidder(self.now, aid, bidder, rng.choice(["", "exclusion"])))

    def incident(self) -> None:
        rng = self.rng
        suspended = self.lots("suspended")
        if suspended and rng.random() < 0.6:
            auction, lot = rng.choice(suspended)
            lot_id = None if rng.random() < 0.2 else lot.config.lot_id
            self.send(Resume(self.now, auction.config.auction_id, lot_id))
            return
        running = self.lots("scheduled", "open")
        if not running:
            return
        auction, lot = rng.choice(running)
        lot_id = None if rng.random() < 0.2 else lot.config.lot_id
        if rng.random() < 0.05:
            self.send(Cancel(self.now, auction.config.auction_id, lot_id, "annulé"))
        elif rng.random() < 0.05:  # refused: not_suspended, unknown_lot, or a malformed reason
            self.send(rng.choice([
                Resume(self.now, auction.config.auction_id, lot.config.lot_id),
                Suspend(self.now, auction.config.auction_id, "L9"),
                Suspend(self.now, auction.config.auction_id, None, 5),  # type: ignore[arg-type]
            ]))
        else:
            self.send(Suspend(self.now, auction.config.auction_id, lot_id, "incident"))

    def advance(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.40:
            return
        if roll < 0.90:
            self.now += rng.randint(1, 20_000)
        elif roll < 0.985:
            self.now += rng.randint(20_000, 500_000)
        elif roll < 0.9885:
            deadline = self.model.next_deadline()
            if deadline is not None:
                self.now = max(self.now, deadline + rng.choice([-1, 0, 0, 0, 1]))
        elif roll < 0.9995:
            windows = [lot.close_at - lot.config.extension.window for _a, lot in self.lots("open")
                       if lot.config.extension.window and lot.close_at - lot.config.extension.window >= self.now]
            if windows:  # the start of the next extension window
                self.now = max(self.now, min(windows) + rng.choice([-1, 0, 0, 1]))
        else:
            self.now += rng.randint(30 * S, 300 * S)

    def step(self) -> None:
        rng = self.rng
        if len(self.running()) < RUNNING or rng.random() < 0.0005:
            self.create()
            return
        self.advance()
        roll = rng.random()
        if roll < 0.85:
            self.bid()
        elif roll < 0.90:
            self.send(Tick(self.now))
        elif roll < 0.93:  # a tick scoped to one auction, as the journal records them
            self.send(Tick(self.now, rng.choice(self.running() or list(self.model.auctions.values()))
                           .config.auction_id))
        elif roll < 0.97:
            self.admit_or_revoke()
        else:
            self.incident()

    # -- the end -----------------------------------------------------------------------------------

    def compare_everything(self) -> None:
        engine, model = self.engine, self.model
        assert engine.state_hash() == model.state_hash()
        assert engine.canonical_state() == model.canonical_state()
        assert engine.next_deadline() == model.next_deadline()
        for aid, auction in model.auctions.items():
            assert engine.results(aid) == model.results(aid)
            try:
                revealed = model.results(aid, reveal=True)
            except NaiveQueryError as exc:
                with pytest.raises(QueryError) as info:
                    engine.results(aid, reveal=True)
                assert info.value.code == exc.code == "results_not_final"
            else:
                assert engine.results(aid, reveal=True) == revealed
            for lot in auction.lots:
                lid = lot.config.lot_id
                assert engine.observer_view(aid, lid) == model.observer_view(aid, lid)
                snapshot = engine.lot_snapshot(aid, lid)
                for bidder, name in auction.ever:
                    view = model.bidder_view(aid, lid, bidder)
                    assert engine.bidder_view(aid, lid, bidder) == view
                    assert snapshot_bidder_view(snapshot, name) == view


def test_a_long_seeded_stream_agrees_with_the_model() -> None:
    stream = Stream(seed=20260302)
    while stream.sent < COMMANDS:
        stream.step()
    stream.compare_everything()
    # Resume what is suspended, let every auction run to its end, and compare once more.
    for auction in sorted({a.config.auction_id for a, _lot in stream.lots("suspended")}):
        stream.send(Resume(stream.now, auction))
    stream.now += 10**6 * S
    stream.send(Tick(stream.now))
    assert stream.model.next_deadline() is None
    stream.compare_everything()

    # Every lot that ended has exactly one outcome, right after its LotClosed or LotCancelled.
    outcomes: Counter[tuple[str, str]] = Counter()
    for before, after in zip(stream.events, stream.events[1:], strict=False):
        if isinstance(before, (LotClosed, LotCancelled)):
            assert isinstance(after, (LotAwarded, LotUnsuccessful)), (before, after)
            assert (after.auction_id, after.lot_id, after.time) == (before.auction_id, before.lot_id, before.time)
        if isinstance(after, (LotAwarded, LotUnsuccessful)):
            assert isinstance(before, (LotClosed, LotCancelled)), (before, after)
            outcomes[after.auction_id, after.lot_id] += 1
    every_lot = {(aid, lot.config.lot_id) for aid, a in stream.model.auctions.items() for lot in a.lots}
    assert set(outcomes) == every_lot and set(outcomes.values()) == {1}

    # The outcome never depends on how often the shell ticks: without the ticks (but a last
    # global one), every auction gets the same events in the same order, and the engine
    # ends in the same state. (Across auctions the order may differ: a scoped tick applies
    # one auction's closes before another's earlier ones.)
    untick = Engine()
    replayed: list[Event] = []
    for command in stream.commands:
        if type(command) is not Tick:
            replayed += untick.handle(command)
    replayed += untick.handle(Tick(stream.now))

    def by_auction(events: list[Event]) -> dict[str, list[Event]]:
        out: dict[str, list[Event]] = {}
        for happened in normalise(events):
            out.setdefault(happened.auction_id, []).append(happened)
        return out

    assert by_auction(replayed) == by_auction(stream.events)
    assert untick.state_hash() == stream.engine.state_hash()

    # The stream really exercised the rules (so that agreeing means something).
    tally = stream.tally
    assert stream.sent >= COMMANDS
    assert tally["BidAccepted"] > 40_000, tally
    for kind in ("LotExtended", "LotClosed scheduled", "LotClosed inactivity", "LotAwarded", "LotResumed",
                 "LotCancelled", "AuctionClosed", "BidderRevoked", "LotUnsuccessful no_bids",
                 "LotUnsuccessful too_few_bidders", "LotUnsuccessful above_reserve", "LotUnsuccessful cancelled",
                 "BidRejected insufficient_step", "BidRejected step_too_large", "BidRejected invalid_amount",
                 "BidRejected above_starting_price", "BidRejected lot_closed", "BidRejected lot_suspended",
                 "BidRejected not_admitted", "BidRejected unknown_lot", "BidRejected unknown_auction",
                 "BidRejected malformed", "CommandRejected ends_in_past", "CommandRejected auction_exists",
                 "CommandRejected already_admitted", "CommandRejected not_suspended"):
        assert tally[kind] > 0, (kind, tally)
