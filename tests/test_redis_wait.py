"""WAIT for replicas in the Redis journal writer: a batch is acknowledged only once a
replica confirmed an offset past its records, even when the append that wrote them lost
its answer and a retry on another connection found them already in the stream.

Real redis-server processes on loopback: a primary (AOF, as every test's) and a replica;
the replica is SIGSTOPped so that no WAIT can be confirmed, then SIGCONTed."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from redis_local import case_frames, commands, local_redis

from auction_engine import PlaceBid
from auction_engine.cluster import Client, Layout, Leases, StreamJournal, connect
from auction_engine.cluster.durability import online_replicas
from auction_engine.cluster.lease import RENEW
from auction_engine.cluster.local import LocalRedis
from auction_engine.cluster.serving import RedisOptions, open_runtime
from auction_engine.cluster.stream import APPEND
from auction_engine.cluster.writer import CaseBook, RedisSync
from auction_engine.runtime import JournalUnavailable

L = Layout()


async def poll(predicate: Any, timeout: float = 15.0) -> Any:
    """The first truthy value of `await predicate()`, polled every 5 ms, within `timeout`."""
    with trio.fail_after(timeout):
        while not (found := await predicate()):
            await trio.sleep(0.005)  # polling the condition itself, with a deadline
        return found


async def acked_everything(client: Client) -> bool:
    """Whether the one replica acknowledged the primary's whole replication stream."""
    info = await client.info("replication")
    replica = info.get("slave0")
    return isinstance(replica, dict) and int(replica["offset"]) == int(info["master_repl_offset"])


@asynccontextmanager
async def replicated(primary: LocalRedis, tmp_path: Path) -> AsyncIterator[LocalRedis]:
    """A replica of `primary`, online (in sync); SIGCONTed on the way out if stopped."""
    async with connect(primary.url) as client:
        await client.config_set({"repl-diskless-sync-delay": 0})  # the replica's first copy at once
        # No AOF on the replica: a SIGTERM during its rewrite after the first sync can hang its stop
        replica_of = ("--replicaof", "127.0.0.1", str(primary.port), "--appendonly", "no")
        for replica in local_redis(tmp_path / "replica", replica_of):
            await poll(lambda: _online(client))
            try:
                yield replica
            finally:
                assert replica.process is not None
                replica.process.send_signal(signal.SIGCONT)


async def _online(client: Client) -> bool:
    return await online_replicas(client) >= 1


def stop(replica: LocalRedis) -> None:
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)


async def blocked_wait(admin: Client) -> int | None:
    """The id of a client blocked in WAIT, or None."""
    for info in await admin.client_list():
        if info["cmd"] == "wait" and "b" in str(info["flags"]):
            return int(info["id"])
    return None


@pytest.mark.trio
async def test_a_retry_that_finds_its_batch_landed_waits_for_the_replica(redis_server: LocalRedis,
                                                                         tmp_path: Path) -> None:
    """The gap: the append lands, its connection is cut while WAIT blocks (the replica is
    stopped), the retry on another connection finds the records (`seq_conflict`, read
    back). Its WAIT must still wait for the replica: not acknowledged until SIGCONT."""
    _j, batches = case_frames("A1", 2)
    batch = [f for frames in batches for f in frames]  # create, opening tick, 2 bids: 4 records
    async with replicated(redis_server, tmp_path) as replica, connect(redis_server.url) as client, \
            connect(redis_server.url) as admin, connect(replica.url) as mirror:
        await client.script_load(APPEND)
        journal = StreamJournal(client, replicas=1, wait_ms=1500)
        book = CaseBook(Leases(client), "e1", 60_000)
        sync = RedisSync(journal, book)
        await book.claim("A1")
        await poll(lambda: acked_everything(admin))  # the claim too: an old WAIT offset is confirmed
        stop(replica)
        done = trio.Event()

        async def finish() -> None:
            sync.start(batch)
            await sync.finish()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(finish)
            first = await poll(lambda: blocked_wait(admin))  # the append landed; WAIT blocks
            assert await admin.xlen(L.journal("A1")) == 4
            await admin.client_kill(identifier=first)  # its answer is lost: the writer retries
            await poll(lambda: _refused_or_done(sync, done))
            assert not done.is_set(), "acknowledged while the only replica was stopped"
            assert sync.round_trips >= 1  # the killed try counts none: its answer never came
            assert sync.outage is not None and sync.outage.startswith("not_replicated: WAIT: 0 of 1 replicas")
            assert await admin.xlen(L.journal("A1")) == 4  # retried, never written twice
            assert replica.process is not None
            replica.process.send_signal(signal.SIGCONT)
            with trio.fail_after(15):
                await done.wait()
        assert sync.outage is None
        found = await mirror.xrange(L.journal("A1"), "-", "+")
        assert [bytes(item.field_values[b"r"]) for item in found] == batch  # type: ignore[index]
        assert [item.identifier for item in found] == [f"{n}-0".encode() for n in range(1, 5)]


async def _refused_or_done(sync: RedisSync, done: trio.Event) -> bool:
    return done.is_set() or (sync.outage or "").startswith("not_replicated")


async def pexpires(client: Client) -> int:
    """PEXPIRE calls the primary ran so far (those of scripts included)."""
    stats = await client.info("commandstats")
    entry = stats.get("cmdstat_pexpire")
    return int(entry["calls"]) if isinstance(entry, dict) else 0


@pytest.mark.trio
async def test_a_retry_that_finds_its_batch_landed_writes_before_its_wait(redis_server: LocalRedis,
                                                                          tmp_path: Path) -> None:
    """WAIT waits for the writes of its own connection only. A retry whose append finds
    its records already there (written by a try whose connection was lost) writes
    nothing itself, so the pipeline renews a lease of ours before WAIT: one PEXPIRE,
    one round trip, and once `finish` returns the replica holds every record."""
    _j, batches = case_frames("A1", 2)
    batch = [f for frames in batches for f in frames]
    async with replicated(redis_server, tmp_path) as replica, connect(redis_server.url) as client, \
            connect(redis_server.url) as lost, connect(replica.url) as mirror:
        for script in (APPEND, RENEW):  # as a running engine has them (see the SCRIPT FLUSH below)
            await client.script_load(script)
        sync = RedisSync(StreamJournal(client, replicas=1, wait_ms=5000), CaseBook(Leases(client), "e1", 60_000))
        lease = await sync.book.claim("A1")
        assert await StreamJournal(lost).append(lease, 1, batch) == 4  # the try whose answer was lost
        await lost.pexpire(L.lease("A1"), 10_000)
        before = await pexpires(client)
        sync.start(batch)
        with trio.fail_after(15):
            await sync.finish()
        assert (sync.round_trips, await pexpires(client) - before) == (1, 1)
        assert 10_000 < await client.pttl(L.lease("A1")) <= 60_000  # renewed by the retry's pipeline
        assert await mirror.xlen(L.journal("A1")) == 4  # confirmed by WAIT: no need to wait for it here
        assert await client.xlen(L.journal("A1")) == 4


@pytest.mark.trio
async def test_the_runtime_holds_a_bid_until_a_replica_has_it(redis_server: LocalRedis, tmp_path: Path) -> None:
    """serve --redis with replicas: a stopped replica holds the bid unanswered and new
    commands refused (`journal_unavailable`, state unchanged); once it resumes the same
    bid is acknowledged, written once, and the replica has it. A Redis that forgot the
    scripts (SCRIPT FLUSH) is given them again."""
    options = RedisOptions(redis_server.url, lease_ms=60_000, engine_id="e1", replicas=1, wait_ms=200)
    cmds = commands("A1", 3)
    async with replicated(redis_server, tmp_path) as replica, connect(redis_server.url) as admin, \
            connect(replica.url) as mirror, open_runtime(options, clock=lambda: 0) as runtime:
        for command in cmds[:2]:
            await runtime.execute(command)
        assert await mirror.xlen(L.journal("A1")) == 3  # create, the opening tick, the first bid
        stop(replica)
        answered: list[int] = []

        async def bid() -> None:
            answered.append((await runtime.execute(cmds[2])).last_gseq)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(bid)
            await poll(lambda: _trouble(runtime))
            assert (runtime.writer.trouble() or "").startswith("not_replicated: WAIT: 0 of 1 replicas")
            hash_during = runtime.host.state_hash()
            with pytest.raises(JournalUnavailable) as refused:
                await runtime.execute(cmds[3])
            assert refused.value.code == "journal_unavailable"
            assert (answered, runtime.host.state_hash()) == ([], hash_during)
            assert await admin.xlen(L.journal("A1")) == 4  # on the primary, not acknowledged
            assert replica.process is not None
            replica.process.send_signal(signal.SIGCONT)
        assert answered == [4]
        assert runtime.writer.trouble() is None
        assert await mirror.xlen(L.journal("A1")) == 4
        await admin.script_flush()
        events = await runtime.submit(PlaceBid, "A1", "L1", "bob", 50_000, "after-flush")
        assert type(events[-1]).__name__ == "BidAccepted"
        assert (runtime.writer.durable_gseq, await mirror.xlen(L.journal("A1"))) == (5, 5)


async def _trouble(runtime: Any) -> bool:
    return runtime.writer.trouble() is not None


async def waits(client: Client) -> int:
    """WAIT calls the primary ran so far."""
    entry = (await client.info("commandstats")).get("cmdstat_wait")
    return int(entry["calls"]) if isinstance(entry, dict) else 0


@pytest.mark.trio
async def test_a_start_serves_recovered_records_only_once_a_replica_has_them(redis_server: LocalRedis,
                                                                             tmp_path: Path) -> None:
    """An engine stopped between its append and its WAIT left records no replica has.
    The next engine recovers them as durable (a resent bid would be answered from them),
    so it starts serving only once a WAIT after a write of its own confirmed them."""
    _j, batches = case_frames("A1", 2)
    options = RedisOptions(redis_server.url, lease_ms=60_000, engine_id="e1", replicas=1, wait_ms=200)
    started, leave = trio.Event(), trio.Event()
    seen: dict[str, int] = {}
    async with replicated(redis_server, tmp_path) as replica, connect(redis_server.url) as admin, \
            connect(replica.url) as mirror:
        stop(replica)
        leases = Leases(admin)
        lease = await leases.claim("A1", "e0", 60_000)  # the engine that stopped
        assert await StreamJournal(admin).append(lease, 1, [f for fs in batches for f in fs]) == 4
        await leases.release(lease)

        async def serve() -> None:
            async with open_runtime(options, clock=lambda: 0) as runtime:
                seen["recovered"] = runtime.recovery.records
                started.set()
                await leave.wait()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await poll(lambda: _started_or_waited(started, admin))
            assert not started.is_set(), "serving records no replica confirmed"
            assert replica.process is not None
            replica.process.send_signal(signal.SIGCONT)
            with trio.fail_after(15):
                await started.wait()
            seen["on the replica"] = await mirror.xlen(L.journal("A1"))  # confirmed before the start
            leave.set()
    assert seen == {"recovered": 4, "on the replica": 4}


async def _started_or_waited(started: trio.Event, admin: Client) -> bool:
    """Serving, or a WAIT refused and tried again."""
    return started.is_set() or await waits(admin) >= 2
