"""Rendezvous hashing of cases over live engines, and the heartbeat registry on a real redis-server."""

from __future__ import annotations

from collections import Counter

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from auction_engine.cluster import Registry, connect, owner, weight
from auction_engine.cluster.local import LocalRedis

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
engines_st = st.lists(names, min_size=1, max_size=8, unique=True)
cases_st = st.lists(names, min_size=1, max_size=60, unique=True)


def test_weights_are_pinned() -> None:
    """Every process, of any version, must compute the same owner: the hash is fixed."""
    assert weight("e1", "A1") == 5711598936631729100
    assert owner("A1", ["e1", "e2", "e3"]) == "e2"
    assert owner("A1", []) is None
    assert weight("e1", "1A") != weight("e11", "A")  # the engine's length is part of the hash


@given(engines_st, cases_st, names)
def test_adding_an_engine_moves_only_the_cases_it_takes(engines: list[str], cases: list[str], new: str) -> None:
    if new in engines:
        return
    before = {c: owner(c, engines) for c in cases}
    after = {c: owner(c, [*engines, new]) for c in cases}
    moved = {c for c in cases if before[c] != after[c]}
    assert all(after[c] == new for c in moved)
    assert {c for c in cases if after[c] == new} == moved


@given(engines_st, cases_st, st.data())
def test_removing_an_engine_moves_only_its_cases(engines: list[str], cases: list[str], data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(engines))
    rest = [e for e in engines if e != gone]
    before = {c: owner(c, engines) for c in cases}
    after = {c: owner(c, rest) for c in cases}
    assert {c for c in cases if before[c] != after[c]} == {c for c in cases if before[c] == gone}
    assert all(owner(c, list(reversed(engines))) == before[c] for c in cases)  # order does not matter


def test_cases_spread_over_engines() -> None:
    spread = Counter(owner(f"case-{i}", ["e1", "e2", "e3", "e4"]) for i in range(4000))
    assert sorted(spread) == ["e1", "e2", "e3", "e4"]
    assert all(900 <= n <= 1100 for n in spread.values()), spread


@pytest.mark.trio
async def test_registry_of_live_engines(redis_server: LocalRedis) -> None:
    async with connect(redis_server.url) as client:
        registry = Registry(client)
        assert await registry.beat("e2", 60_000) == ["e2"]
        assert await registry.beat("e1", 60_000) == ["e1", "e2"]
        assert await registry.beat("e3", 30) == ["e1", "e2", "e3"]
        with trio.fail_after(10):
            while "e3" in await registry.live():  # its heartbeat runs out (Redis's clock)
                await trio.sleep(0.005)
        assert await registry.live() == ["e1", "e2"]
        assert sorted(await client.zrange("ae:engines", 0, -1)) == [b"e1", b"e2"]  # the expired one is dropped
        assert await registry.leave("e1") == ["e2"]
        assert await registry.beat("e1", 60_000) == ["e1", "e2"]
