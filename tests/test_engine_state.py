"""Engine snapshots: `Engine.load_state` of `dump_state()`, through msgpack, continues exactly
as the original engine would (same events for every later command, same `state_hash()`,
same dump); anything `dump_state` could not have written raises `StateError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journals import stream_commands

from auction_engine import (
    AuctionConfig,
    ClockRegression,
    CreateAuction,
    Engine,
    PlaceBid,
    Resume,
    Suspend,
    Tick,
    order_book,
)
from auction_engine.clock import OPEN, SUSPENDED
from auction_engine.commands import Command
from auction_engine.engine import SNAPSHOT_STATE_FORMAT
from auction_engine.events import LotClosed, LotExtended, LotOpened, LotResumed
from auction_engine.kind import StateError
from auction_engine.timeutil import parse_instant

S = 1_000_000
T0 = parse_instant("2026-03-02T10:00:00Z")
COMMANDS = 3000  # per seeded stream: about 30 auctions of 1-4 lots
SLOW = os.environ.get("HYPOTHESIS_PROFILE") == "slow"
STATE_SETTINGS = settings(max_examples=100 if SLOW else 12, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
FUZZ_SETTINGS = settings(max_examples=1000 if SLOW else 150, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


def round_trip(state: object) -> Any:
    """`state` through msgpack and back, decoded as a snapshot reader would."""
    return msgpack.unpackb(msgpack.packb(state), raw=False, use_list=True, strict_map_key=True)


def reload(engine: Engine) -> Engine:
    """A new engine from `engine`'s dump after a msgpack round trip; same hash, same dump."""
    state = round_trip(engine.dump_state())
    loaded = Engine.load_state(state)
    assert loaded.state_hash() == engine.state_hash()
    assert round_trip(loaded.dump_state()) == state
    return loaded


def tail(engine: Engine) -> list[Command]:
    """Resume every suspended lot, then run every auction to its end."""
    now = engine.now
    commands: list[Command] = []
    for aid in engine.auction_ids():
        if any(lot.clock.status == SUSPENDED for lot in engine.auction(aid).lots.values()):
            commands.append(Resume(now, aid))
    commands.append(Tick(now + 10**6 * S))
    return commands


def run_split(commands: list[Command], splits: set[int]) -> tuple[Engine, Engine]:
    """Run `commands` through one engine, and through one replaced by its reload before
    command #k for each k in `splits`; then the `tail`. Events must be equal throughout."""
    original, restored = Engine(), Engine()

    def send(i: int, command: Command) -> None:
        expected = original.handle(command)
        assert restored.handle(command) == expected, f"command #{i}: {command!r:.300}"

    for i, command in enumerate(commands):
        if i in splits:
            restored = reload(restored)
        send(i, command)
    if len(commands) in splits:
        restored = reload(restored)
    compare(original, restored)
    for i, command in enumerate(tail(original), len(commands)):
        send(i, command)
    assert original.next_deadline() is None
    compare(original, restored)
    return original, restored


def compare(original: Engine, restored: Engine) -> None:
    """Everything observable is the same."""
    assert restored.state_hash() == original.state_hash()
    assert restored.next_deadline() == original.next_deadline()
    assert restored.now == original.now
    assert round_trip(restored.dump_state()) == round_trip(original.dump_state())
    assert restored.auction_ids() == original.auction_ids()
    for aid in original.auction_ids():
        auction = original.auction(aid)
        assert restored.results(aid) == original.results(aid)
        if auction.finished:
            assert restored.results(aid, reveal=True) == original.results(aid, reveal=True)
        for lid in auction.lots:
            assert restored.observer_view(aid, lid) == original.observer_view(aid, lid)
            for bidder in auction.pseudonyms:
                assert restored.bidder_view(aid, lid, bidder) == original.bidder_view(aid, lid, bidder)


# -- a restored engine continues as the original -----------------------------------------------


@STATE_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), fractions=st.lists(st.floats(0, 1), min_size=1, max_size=3),
       small_ladder=st.sampled_from([3, order_book.SMALL_LADDER]))
def test_a_restored_engine_gives_the_same_events_as_the_original(
        seed: int, fractions: list[float], small_ladder: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(order_book, "SMALL_LADDER", small_ladder)  # 3: most ladders become SortedLists
        commands = stream_commands(seed, COMMANDS)
        run_split(commands, {int(f * len(commands)) for f in fractions})


def interesting_splits(commands: list[Command]) -> dict[str, list[int]]:
    """Split points (command indexes) at which the engine holds each kind of state worth
    restoring, or just before each kind of event the heap must get right."""
    probe = Engine()
    found: dict[str, list[int]] = {}

    def note(kind: str, i: int) -> None:
        if len(found.setdefault(kind, [])) < 3:
            found[kind].append(i)

    for i, command in enumerate(commands):
        for aid in probe.auction_ids():
            for lot in probe.auction(aid).lots.values():
                clock = lot.clock
                if clock.status == OPEN and lot.book._sorted is not None:
                    note("open lot with a SortedList ladder", i)
                if clock.status == SUSPENDED:
                    note(f"lot suspended while {clock.suspended_from}", i)
                if clock.status == OPEN and clock.policy.inactivity_close and clock.extensions and lot.bids:
                    note("open lot with inactivity close, bids and extensions", i)
        for happened in probe.handle(command):
            kind = type(happened).__name__
            if isinstance(happened, LotClosed):
                kind += f" {happened.reason}"
            if isinstance(happened, (LotClosed, LotExtended, LotOpened, LotResumed)):
                note(f"just before {kind}", i)
    return found


def test_restores_at_the_interesting_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_book, "SMALL_LADDER", 3)
    commands = stream_commands(20260302, COMMANDS)
    found = interesting_splits(commands)
    assert set(found) >= {
        "open lot with a SortedList ladder", "lot suspended while open", "lot suspended while scheduled",
        "open lot with inactivity close, bids and extensions", "just before LotClosed inactivity",
        "just before LotClosed scheduled", "just before LotExtended", "just before LotOpened",
        "just before LotResumed",
    }, found
    _original, restored = run_split(commands, {i for points in found.values() for i in points})
    assert any(lot.book._sorted is not None for aid in restored.auction_ids()
               for lot in restored.auction(aid).lots.values())


def config(auction_id: str, *, lots: int = 2, inactivity: str | None = None) -> AuctionConfig:
    return AuctionConfig.from_dict({
        "auction_id": auction_id, "title": "t", "currency": "MAD", "decimals": 2,
        "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T10:10:00Z",
        "bidders": ["acme", "globex"], "pseudonym_secret": f"secret-of-{auction_id}-0123456789",
        "extension": {"window": "1m", "extend_by": "1m", "inactivity_close": inactivity},
        "lots": [{"lot_id": f"L{i + 1}", "estimate": "1000.00", "starting_price": "1000.00"} for i in range(lots)],
    })


def test_equal_deadlines_fire_in_creation_order_after_a_restore() -> None:
    # "Z" is created first: its lots have the smaller keys, so on equal deadlines they close
    # first, although its id sorts last. Bids on the L1s move their inactivity deadlines
    # later (the original's heap keeps stale entries), a suspension moves A/L2's.
    commands: list[Command] = [
        CreateAuction(T0 - S, config("Z", inactivity="2m")), CreateAuction(T0 - S, config("A", inactivity="2m")),
        PlaceBid(T0 + 30 * S, "Z", "L1", "acme", 90_000), PlaceBid(T0 + 30 * S, "A", "L1", "acme", 90_000),
        Suspend(T0 + 40 * S, "A", "L2"), Resume(T0 + 45 * S, "A", "L2"),
    ]
    run_split(commands, {2, 4, 5, 6})
    engine = Engine()
    for command in commands:
        engine.handle(command)
    events = reload(engine).handle(Tick(T0 + 3600 * S))
    assert [(e.auction_id, e.lot_id, e.time, e.reason) for e in events if isinstance(e, LotClosed)] == [
        ("Z", "L2", T0 + 120 * S, "inactivity"), ("A", "L2", T0 + 125 * S, "inactivity"),
        ("Z", "L1", T0 + 150 * S, "inactivity"), ("A", "L1", T0 + 150 * S, "inactivity"),
    ]


def test_a_restored_engine_keeps_its_time_and_the_dump_needs_no_msgpack() -> None:
    engine = Engine()
    engine.handle(CreateAuction(T0 - S, config("X")))
    engine.handle(Tick(T0 + 5 * S))
    loaded = Engine.load_state(engine.dump_state())  # as is: lists and str keys already
    assert loaded.state_hash() == engine.state_hash() and loaded.now == T0 + 5 * S
    with pytest.raises(ClockRegression):
        loaded.handle(Tick(T0 + 4 * S))
    assert Engine.load_state(round_trip(Engine().dump_state())).dump_state() == Engine().dump_state()


# -- garbage is refused ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dumped() -> Any:
    """A dump with several auctions, bids, a suspended lot and a closed one. Layout:
    state [format, now, lot_keys, auctions]; auction [config, admitted, pseudonyms,
    finished, bid_seq, lots]; lot [lot_id, key, status, ... (see Lot.dump), standings];
    standing [bidder_id, price, time, seq]."""
    engine = Engine()
    for command in stream_commands(11, 600):
        engine.handle(command)
    state = round_trip(engine.dump_state())
    statuses = {lot[2] for auction in state[3] for lot in auction[5]}
    assert {"open", "suspended", "closed"} <= statuses, statuses
    return state


def lot_where(state: Any, test: Callable[[list[Any]], bool]) -> list[Any]:
    return next(lot for auction in state[3] for lot in auction[5] if test(lot))


def auction_where(state: Any, test: Callable[[list[Any]], bool]) -> list[Any]:
    return next(auction for auction in state[3] if test(auction))


def set_item(*path: int | str, value: object) -> Callable[[Any], None]:
    def mutate(state: Any) -> None:
        for step in path[:-1]:
            state = state[step]
        state[path[-1]] = value
    return mutate


def on_lot(test: Callable[[list[Any]], bool], index: int, value: object) -> Callable[[Any], None]:
    def mutate(state: Any) -> None:
        lot_where(state, test)[index] = value
    return mutate


def duplicate_first_auction(state: Any) -> None:
    copy = round_trip(state[3][0])
    for lot in copy[5]:
        lot[1] += state[2]  # new lot keys, as if created last
    state[2] += len(copy[5])
    state[3].append(copy)


def with_bids(lot: list[Any]) -> bool:
    return len(lot[15]) >= 2


GARBAGE: dict[str, Callable[[Any], None]] = {
    "format number": set_item(0, value=SNAPSHOT_STATE_FORMAT + 1),
    "format as a string": set_item(0, value=str(SNAPSHOT_STATE_FORMAT)),
    "now as a string": set_item(1, value="2026-03-02T10:00:00Z"),
    "lot_keys short of the lots": set_item(2, value=1),
    "auctions as a map": set_item(3, value={"a": 1}),
    "truncated auction": lambda s: s[3][0].pop(),
    "truncated lot list": lambda s: s[3][0][5].pop(),
    "truncated lot": lambda s: s[3][0][5][0].pop(),
    "truncated standing": lambda s: lot_where(s, with_bids)[15][0].pop(),
    "config not a map": set_item(3, 0, 0, value=[1]),
    "bad config": set_item(3, 0, 0, "start", value="yesterday"),
    "config without its secret": lambda s: s[3][0][0].pop("pseudonym_secret"),
    "config with a null secret": set_item(3, 0, 0, "pseudonym_secret", value=None),
    "duplicate auction": duplicate_first_auction,
    "admitted stranger": lambda s: s[3][0][1].append("stranger"),
    "admitted twice": lambda s: s[3][0][1].append(s[3][0][2][0][0]),
    "pseudonym twice": lambda s: auction_where(s, lambda a: len(a[2]) >= 2)[2][1].__setitem__(
        1, auction_where(s, lambda a: len(a[2]) >= 2)[2][0][1]),
    "pseudonym not a string": lambda s: s[3][0][2][0].__setitem__(1, 7),
    "pseudonym pair truncated": lambda s: s[3][0][2][0].pop(),
    "finished as 0": set_item(3, 0, 3, value=0),
    "bid_seq below a standing seq": lambda s: auction_where(s, lambda a: a[4] > 0).__setitem__(4, 0),
    "lot id": set_item(3, 0, 5, 0, 0, value="L99"),
    "lot key": set_item(3, 0, 5, 0, 1, value=10**6),
    "status": set_item(3, 0, 5, 0, 2, value="paused"),
    "close before open": lambda s: s[3][0][5][0].__setitem__(4, s[3][0][5][0][3]),
    "open_at beyond year 9999": set_item(3, 0, 5, 0, 3, value=2**63),
    "extensions negative": set_item(3, 0, 5, 0, 6, value=-1),
    "extensions as bool": set_item(3, 0, 5, 0, 6, value=False),
    "suspended without suspended_at": on_lot(lambda lot: lot[2] == "suspended", 8, None),
    "suspended from closed": on_lot(lambda lot: lot[2] == "suspended", 9, "closed"),
    "open with a closed_at": on_lot(lambda lot: lot[2] == "open", 10, T0),
    "closed for no reason": on_lot(lambda lot: lot[2] == "closed", 11, None),
    "bids as a float": on_lot(with_bids, 12, 1.0),
    "fewer bids than standing": on_lot(with_bids, 12, 1),
    "sorted flag as None": on_lot(with_bids, 14, None),
    "standing of a stranger": lambda s: lot_where(s, with_bids)[15][0].__setitem__(0, "stranger"),
    "standing twice": lambda s: lot_where(s, with_bids)[15].append(lot_where(s, with_bids)[15][0]),
    "standing price zero": lambda s: lot_where(s, with_bids)[15][0].__setitem__(1, 0),
    "standing price as str": lambda s: lot_where(s, with_bids)[15][0].__setitem__(1, "12.50"),
    "standing in the future": lambda s: lot_where(s, with_bids)[15][0].__setitem__(2, s[1] + 1),
    "same seq twice": lambda s: lot_where(s, with_bids)[15][1].__setitem__(3, lot_where(s, with_bids)[15][0][3]),
}


@pytest.mark.parametrize("state", [None, 1, "state", b"state", {}, [], [SNAPSHOT_STATE_FORMAT, 0, 0],
                                   [SNAPSHOT_STATE_FORMAT, 0, 0, [], None], [True, 0, 0, []],
                                   [SNAPSHOT_STATE_FORMAT, -1, 0, []], [SNAPSHOT_STATE_FORMAT, 0, -1, []]])
def test_what_is_not_a_state_is_refused(state: object) -> None:
    with pytest.raises(StateError):
        Engine.load_state(state)


@pytest.mark.parametrize("name", GARBAGE)
def test_a_corrupted_state_is_refused(dumped: Any, name: str) -> None:
    assert Engine.load_state(round_trip(dumped)).dump_state() == dumped
    state = round_trip(dumped)
    GARBAGE[name](state)
    with pytest.raises(StateError) as info:
        Engine.load_state(state)
    assert str(info.value).startswith(("format", "now", "lot_keys", "auctions"))  # names the field


def leaves(value: Any) -> Iterator[tuple[Any, int | str]]:
    """Every (container, index or key) of a nested state, containers included."""
    items = enumerate(value) if isinstance(value, list) else value.items()
    for key, item in items:
        yield value, key
        if isinstance(item, (list, dict)):
            yield from leaves(item)


JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.integers(-3, 3), st.text(max_size=8),
    st.binary(max_size=4), st.sampled_from(["open", "closed", "scheduled", "suspended", "cancelled", "L1",
                                            "acme", "inactivity", "2026-03-02T10:00:00Z", "1m"]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@FUZZ_SETTINGS
@given(data=st.data())
def test_a_randomly_damaged_state_is_refused_or_gives_a_working_engine(dumped: Any, data: st.DataObject) -> None:
    state = round_trip(dumped)
    for _ in range(data.draw(st.integers(1, 3))):
        places = list(leaves(state))
        if not places:
            break
        container, key = places[data.draw(st.integers(0, len(places) - 1))]
        if isinstance(container, list) and isinstance(key, int) and data.draw(st.booleans()):
            del container[key:]  # truncate
        elif isinstance(container, dict) and data.draw(st.booleans()):
            del container[key]
        else:
            container[key] = data.draw(JUNK)
    try:
        engine = Engine.load_state(state)
    except StateError:
        return
    # Accepted: a damage that leaves a consistent state (another price, time, count...).
    # The engine must work.
    assert Engine.load_state(round_trip(engine.dump_state())).state_hash() == engine.state_hash()
    for command in tail(engine):
        engine.handle(command)
    for aid in engine.auction_ids():
        engine.results(aid, reveal=engine.auction(aid).finished)
        for lid in engine.auction(aid).lots:
            engine.observer_view(aid, lid)
            for bidder in engine.auction(aid).pseudonyms:
                engine.bidder_view(aid, lid, bidder)
