"""One engine serving every case of a Redis namespace: recovery at start, then the runtime.

`open_runtime(options, on_record)` connects, refuses a Redis that cannot promise
durability (`check_durability`, unless `unsafe`), claims every case of the namespace
(waiting out the leases of a crashed engine), rebuilds each in its own host through the
verifier (cases may have been written by engines with different clocks: each is replayed
on its own, as `CaseHosts` then runs it), and runs a `Runtime` whose writer appends to
the cases' streams (writer.py). The records are handed to `on_record` (the feed, the
revocations) merged by (record time, gseq, case id): for one engine's records, the order
they were applied in. The gseq carries on after the highest one found; a case whose
records ran ahead of it goes on from its own (`Journaled.adopt`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from ..case_hosts import CaseHosts
from ..journal.recovery import RecordHook, RecoveryReport
from ..journal.sequencer import Journaled
from ..journal.store import Position
from ..runtime import Runtime, wall_clock_us
from . import connect
from .cache import CaseCache, rebuild_cached
from .durability import check_durability
from .engine_role import EngineRole
from .follower import Follower
from .layout import ClusterError, Layout
from .lease import Client, Leases
from .recovery import Replayed, in_applied_order, rebuild, survey
from .remote import RemoteRuntime
from .rendezvous import Registry, owner
from .stream import APPEND, StreamJournal
from .writer import UNREACHABLE, CaseBook, RedisWriter, open_journal

logger = logging.getLogger("auction_engine.cluster")


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """How `serve --redis` uses Redis (docs/operations.md, "Running with Redis")."""

    url: str
    namespace: str = "ae"
    lease_ms: int = 5000
    engine_id: str = ""  # "" : host name and process id
    unsafe: bool = False
    replicas: int = 0
    wait_ms: int = 1000
    max_batch: int = 8192
    cache_dir: str = ""  # an engine's local snapshots of its cases ("": none)

    def engine(self) -> str:
        return self.engine_id or f"{socket.gethostname()}-{os.getpid()}"


async def recover_cases(journal: StreamJournal, book: CaseBook, on_record: RecordHook | None = None) -> \
        tuple[Journaled, RecoveryReport]:
    """Claim every case of the namespace, then rebuild each from its stream in its own
    host (`adopt`ed into one `CaseHosts`). `on_record` hears every record in the module's
    order. `ClusterError`: a damaged or foreign-typed stream (its code), a case another
    engine keeps holding (`held`)."""
    started = time.perf_counter()
    found = await survey(journal)
    for problem in found.problems:
        if problem.code != "foreign_key":
            raise problem
        logger.warning("ignored: %s", problem)
    for case_id in found.cases:  # first: nobody appends to a case once it is claimed
        await book.claim_waiting(case_id, 3 * book.ttl_ms)
    journaled = Journaled(CaseHosts())
    replays: list[Replayed] = []
    for case_id in found.cases:
        replayed: Replayed = []
        alone, _ = await rebuild(journal, case_id, replayed=replayed)
        journaled.adopt(case_id, alone)
        replays.append(replayed)
    ordered = in_applied_order(replays)
    for record, events in ordered:
        if on_record is not None:
            on_record(record, events)
    records = len(ordered)
    journaled.gseq = max((replay[-1][0].gseq for replay in replays if replay), default=0)
    report = RecoveryReport(records, len(found.cases), None, Position(0, 0, journaled.gseq + 1),
                            journaled.host.state_hash(), time.perf_counter() - started)
    return journaled, report


@asynccontextmanager
async def open_runtime(options: RedisOptions, on_record: RecordHook | None = None,
                       clock: Callable[[], int] = wall_clock_us) -> AsyncIterator[Runtime]:
    """A running `Runtime` on Redis (see the module docstring); its leases are released
    on a clean exit. `ClusterError` at start: `unreachable`, `not_durable`,
    `too_few_replicas`, `config_unreadable` (the durability check), `held`, or a stream's
    damage (its code)."""
    client: Client = connect(options.url)
    async with _connected(options, client) as serving:
        journal = open_journal(client, options.namespace, options.replicas, options.wait_ms)
        await client.script_load(APPEND)  # the writer's pipelines call it by SHA
        book = CaseBook(Leases(client, journal.layout), options.engine(), options.lease_ms)
        journaled, report = await recover_cases(journal, book, on_record)
        logger.info("recovered from Redis: %s", report.summary())
        writer = RedisWriter(journal, book, journaled.gseq, max_batch=options.max_batch)
        runtime = Runtime(journaled, writer, report, clock)
        async with runtime.running():
            serving.set()
            yield runtime


def single(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (else `exc` itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


@asynccontextmanager
async def open_engine(options: RedisOptions, on_record: RecordHook | None = None,
                      clock: Callable[[], int] = wall_clock_us) -> AsyncIterator[Runtime]:
    """A running `Runtime` of the engine role (engine_role.py): it holds the cases
    rendezvous hashing gives it among the live engines (taken at start if their leases
    are free; the others as they lapse), takes the gateways' commands from its inbox, and
    publishes answers and the feed. `ClusterError` as `open_runtime`, and `lost` once its
    journal stopped (a fencing refusal: restart it)."""
    client: Client = connect(options.url)
    engine_id = options.engine()
    async with _connected(options, client) as serving:
        journal = open_journal(client, options.namespace, options.replicas, options.wait_ms)
        await client.script_load(APPEND)
        book = CaseBook(Leases(client, journal.layout), engine_id, options.lease_ms)
        registry = Registry(client, journal.layout)
        cache = CaseCache(Path(options.cache_dir)) if options.cache_dir else None
        beat_ms = max(options.lease_ms // 3, 1)
        live = await registry.beat(engine_id, 3 * beat_ms)
        started = time.perf_counter()
        found = await survey(journal)
        journaled = Journaled(CaseHosts())
        for case_id in found.cases:
            if owner(case_id, live) != engine_id:
                continue
            try:
                await book.claim(case_id)
            except ClusterError as exc:
                if exc.code != "held":
                    raise
                continue  # a crashed engine's: taken once its lease lapses (the role's membership rounds)
            alone, _ = await rebuild_cached(journal, case_id, cache)
            journaled.adopt(case_id, alone)
        records = 0  # (an engine serves no feed: nothing derives state from the records)
        report = RecoveryReport(records, len(journaled.chains), None, Position(0, 0, 1),
                                journaled.host.state_hash(), time.perf_counter() - started)
        logger.info("engine %s starts with %d of %d cases (%d live engines; %d from local snapshots)", engine_id,
                    len(journaled.chains), len(found.cases), len(live), cache.used if cache else 0)
        writer = RedisWriter(journal, book, 0, max_batch=options.max_batch)
        runtime = Runtime(journaled, writer, report, clock)
        role = EngineRole(runtime, journal, book, registry, engine_id, lambda: connect(options.url), beat_ms=beat_ms,
                          cache=cache)
        writer.redis.on_durable = role.durable
        runtime.role = role  # type: ignore[attr-defined]  # (metrics and tests read it)
        try:
            async with runtime.running(), trio.open_nursery() as nursery:
                await nursery.start(role.run)
                serving.set()
                yield runtime
                nursery.cancel_scope.cancel()
            if writer.failure is None:  # a clean stop, everything durable: snapshot what it held
                for case in sorted(role.ready):
                    role.snapshot(case)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0), contextlib.suppress(*UNREACHABLE):
                await registry.leave(engine_id)


@asynccontextmanager
async def open_gateway(options: RedisOptions, on_record: RecordHook | None = None,
                       clock: Callable[[], int] = wall_clock_us, *, timeout_s: float = 1.0,
                       every_case: bool = True) -> AsyncIterator[RemoteRuntime]:
    """A running `RemoteRuntime` (remote.py): every case (or, not `every_case`, those its
    rooms serve) replicated from Redis (records handed to `on_record` at start), commands
    forwarded to the cases' engines."""
    client: Client = connect(options.url)
    async with _connected(options, client, check=False) as serving:
        journal = StreamJournal(client, Layout(options.namespace))
        follower = Follower(journal, lambda: connect(options.url), every_case=every_case)
        runtime = RemoteRuntime(follower, Registry(client, journal.layout), options.engine(), timeout_s=timeout_s,
                                clock=clock, on_record=on_record)
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            serving.set()
            yield runtime
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _connected(options: RedisOptions, client: Client, *, check: bool = True) -> AsyncIterator[trio.Event]:
    """Inside the client, its durability checked (`check`). Until the caller sets the event
    it is given (serving), Redis out of reach is said plainly: `ClusterError("unreachable")`."""
    serving = trio.Event()
    try:
        async with client:
            if check:
                try:
                    how = await check_durability(client, replicas=options.replicas, unsafe=options.unsafe)
                except UNREACHABLE as exc:
                    raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {exc}") from None
                logger.info("Redis durability: %s", how)
            yield serving
    except UNREACHABLE as exc:
        if serving.is_set():
            raise
        raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {exc}") from None
    except BaseExceptionGroup as group:
        alone = single(group)
        if isinstance(alone, ClusterError):
            raise alone from None
        if isinstance(alone, UNREACHABLE) and not serving.is_set():
            raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {alone}") from None
        raise
