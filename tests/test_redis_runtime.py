"""The runtime with Redis as its journal of record: the same state as the file journal,
recovery of every case at start, durability refused, fencing, a Redis restart survived."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from factories import S
from redis_local import case_frames, commands, local_redis

from auction_engine import PlaceBid
from auction_engine.cluster import ClusterError, Layout, Leases, StreamJournal, connect, rebuild
from auction_engine.cluster.local import LocalRedis
from auction_engine.cluster.serving import RedisOptions, open_runtime
from auction_engine.cluster.writer import CaseBook, frame_case
from auction_engine.runtime import JournalUnavailable, Runtime
from gateway.settings import SettingsError, load_settings

L = Layout()


def mixed() -> list[Any]:
    """Two auctions' commands interleaved by time (A2's a second after A1's)."""
    one = commands("A1", 4)
    two = [c._replace(now=c.now + S // 2) for c in commands("A2", 3)]
    return sorted(one + two, key=lambda c: c.now)


async def run_all(runtime: Runtime, cmds: list[Any]) -> None:
    for command in cmds:
        await runtime.execute(command)


@pytest.mark.trio
async def test_same_state_as_the_file_journal_and_recovered(redis_server: LocalRedis, tmp_path: Path) -> None:
    async with Runtime.open(tmp_path / "journal", clock=lambda: 0) as runtime:
        await run_all(runtime, mixed())
        file_hash, file_gseq = runtime.host.state_hash(), runtime.journaled.gseq
    options = RedisOptions(redis_server.url, lease_ms=2000, engine_id="e1")
    async with open_runtime(options, clock=lambda: 0) as runtime:
        assert runtime.recovery.records == 0
        await run_all(runtime, mixed())
        assert runtime.host.state_hash() == file_hash
        assert runtime.writer.durable_gseq == file_gseq == 11  # 9 commands and the 2 lots' opening ticks
        assert sorted(runtime.writer.book.held) == ["A1", "A2"]  # type: ignore[attr-defined]
    seen: list[tuple[str, int]] = []
    async with open_runtime(options, lambda record, _events: seen.append((record.auction_id, record.gseq)),
                            clock=lambda: 0) as runtime:
        assert runtime.recovery.records == 11
        assert runtime.recovery.auctions == 2
        assert runtime.recovery.state_hash == file_hash
        assert [g for _c, g in seen] == list(range(1, 12))  # the order they were applied in
        events = await runtime.submit(PlaceBid, "A1", "L1", "bob", 50_000, "late")
        assert type(events[-1]).__name__ == "BidAccepted"
        assert runtime.writer.durable_gseq == 12
    async with connect(redis_server.url) as client:
        _journaled, report = await rebuild(StreamJournal(client), "A1")
        assert report.records == 7 and report.last_gseq == 12


def test_frame_case_reads_the_head() -> None:
    _j, frames = case_frames("Z-9", 2)
    assert [frame_case(f) for batch in frames for f in batch] == [("Z-9", 1), ("Z-9", 2), ("Z-9", 3), ("Z-9", 4)]


@pytest.mark.trio
async def test_a_redis_that_cannot_promise_durability_is_refused(tmp_path: Path) -> None:
    for server in local_redis(tmp_path / "r", extra=("--appendfsync", "everysec")):
        with pytest.raises(ClusterError) as refused:
            async with open_runtime(RedisOptions(server.url)):
                pass
        assert refused.value.code == "not_durable"
        async with open_runtime(RedisOptions(server.url, unsafe=True, engine_id="e1"), clock=lambda: 0) as runtime:
            await run_all(runtime, commands("A1", 1))
            assert runtime.writer.durable_gseq == 3  # create, the opening tick, the bid


@pytest.mark.trio
async def test_a_moved_fence_stops_the_journal_and_nothing_is_written(redis_server: LocalRedis) -> None:
    options = RedisOptions(redis_server.url, lease_ms=60_000, engine_id="e1")
    async with open_runtime(options, clock=lambda: 0) as runtime:
        cmds = commands("A1", 3)
        await run_all(runtime, cmds[:2])
        async with connect(redis_server.url) as client:  # another engine takes the case over
            await client.delete([L.lease("A1")])
            other = await Leases(client).claim("A1", "e2", 60_000)
            assert other.token == 2
            with pytest.raises(JournalUnavailable):
                await runtime.execute(cmds[2])
            assert "stale_token" in str(runtime.writer.failure)
            assert runtime.writer.trouble() is not None
            with pytest.raises(JournalUnavailable):
                await runtime.execute(cmds[3])
            assert await client.xlen(L.journal("A1")) == 3  # create, opening tick, first bid


@pytest.mark.trio
async def test_a_redis_restart_refuses_then_resumes_losing_nothing(redis_server: LocalRedis) -> None:
    options = RedisOptions(redis_server.url, lease_ms=60_000, engine_id="e1")
    cmds = commands("A1", 4)
    async with open_runtime(options, clock=lambda: 0) as runtime:
        await run_all(runtime, cmds[:2])
        redis_server.stop()
        answered: list[int] = []

        async def bid() -> None:
            answered.append((await runtime.execute(cmds[2])).last_gseq)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bid)
            with trio.fail_after(10):
                while runtime.writer.trouble() is None:
                    await trio.sleep(0.005)  # polling the condition: the writer saw the outage
            with pytest.raises(JournalUnavailable) as refused:
                await runtime.execute(cmds[3])
            assert refused.value.code == "journal_unavailable"
            hash_during = runtime.host.state_hash()
            redis_server.start()
        assert answered == [4]
        assert runtime.host.state_hash() == hash_during
        await runtime.execute(cmds[3])
        assert runtime.writer.durable_gseq == 5
    async with open_runtime(options, clock=lambda: 0) as runtime:
        assert runtime.recovery.records == 5


def test_redis_settings_are_checked_and_read_from_the_environment() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env={}, overrides={"redis_url": "http://127.0.0.1:6379", "redis_namespace": "a:b",
                                         "redis_lease_ms": 10, "redis_engine_id": "e|1"})
    assert {path for path, _ in exc.value.problems} == {
        "override:redis_url", "override:redis_namespace", "override:redis_lease_ms", "override:redis_engine_id"}
    settings = load_settings(env={"AUCTION_ENGINE_REDIS_URL": "redis://10.0.0.5:6379/2",
                                  "AUCTION_ENGINE_REDIS_UNSAFE": "true"})
    assert (settings.redis_url, settings.redis_unsafe, settings.redis_lease_ms) == ("redis://10.0.0.5:6379/2", True,
                                                                                   5000)
    assert load_settings(env={}).redis_url is None  # the file journal, as before


async def damage(url: str) -> None:
    """A string where a case's stream belongs."""
    async with connect(url) as client:
        await client.set(L.journal("X1"), b"not a stream")


def serve_redis(tmp_path: Path, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auction_engine.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                           "--data-dir", str(tmp_path / "data"), "--redis", url, *flags],
                          capture_output=True, text=True, timeout=120)


def test_serve_refuses_a_redis_that_is_not_durable_unreachable_or_damaged(tmp_path: Path) -> None:
    for server in local_redis(tmp_path / "r", extra=("--appendonly", "no")):
        done = serve_redis(tmp_path, server.url)
        assert done.returncode == 5, done.stderr
        assert "Redis: not_durable: appendonly='no'" in done.stderr
    for server in local_redis(tmp_path / "d"):
        trio.run(damage, server.url)
        done = serve_redis(tmp_path, server.url)
        assert done.returncode == 4, done.stderr
        assert "Redis: wrong_type at ae:{X1}:journal" in done.stderr
        port = server.port
    done = serve_redis(tmp_path, f"redis://127.0.0.1:{port}/0")  # that server has stopped
    assert done.returncode == 3, done.stderr
    assert "Redis: unreachable:" in done.stderr


@pytest.mark.trio
async def test_an_expired_lease_is_claimed_again_only_while_no_one_else_took_the_case(
        redis_server: LocalRedis) -> None:
    options = RedisOptions(redis_server.url, lease_ms=60_000, engine_id="e1")
    cmds = commands("A1", 3)
    async with open_runtime(options, clock=lambda: 0) as runtime, connect(redis_server.url) as client:
        await run_all(runtime, cmds[:2])
        await client.delete([L.lease("A1")])  # expired (Redis away longer than the ttl, say)
        await runtime.execute(cmds[2])  # refused lease_lost, claimed again (token 2), appended
        entries = [e async for e in StreamJournal(client).entries("A1")]
        assert [(e.record.aseq, e.token) for e in entries] == [(1, 1), (2, 1), (3, 1), (4, 2)]
        await client.set(L.lease("A2"), b"e2|7")  # another engine holds a new case: the journal stops
        with pytest.raises(JournalUnavailable):
            await runtime.execute(commands("A2", 0)[0]._replace(now=cmds[2].now))
        assert "held" in str(runtime.writer.failure)
        assert not await client.exists([L.journal("A2")])


@pytest.mark.trio
async def test_a_lease_naming_this_engine_is_its_own_and_no_other(redis_server: LocalRedis) -> None:
    """A claim whose answer was lost, or this engine's other task claiming the same case at
    once: the lease names this engine (ids are unique among live processes), so it is
    taken as is, token and all; a lease naming another engine is refused."""
    async with connect(redis_server.url) as client:
        leases = Leases(client)
        book = CaseBook(leases, "e1", 60_000)
        won = await leases.claim("A3", "e1", 60_000)  # as if its answer had been lost on the way back
        assert await book.claim("A3") == won
        await leases.claim("A4", "e2", 60_000)
        with pytest.raises(ClusterError) as other:
            await book.claim("A4")
        assert other.value.code == "held"


@pytest.mark.trio
async def test_two_claims_of_a_case_at_once_get_one_lease(redis_server: LocalRedis) -> None:
    """The writer and the engine role may claim a lapsed case at the same moment: one
    claim goes to Redis, both get its lease (one fencing token)."""
    async with connect(redis_server.url) as client:
        book = CaseBook(Leases(client), "e1", 60_000)
        got: list[object] = []

        async def claim() -> None:
            got.append(await book.claim("A5"))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(claim)
        assert len(got) == 3 and got[0] == got[1] == got[2]
        assert await client.get("ae:{A5}:fence") == b"1"
