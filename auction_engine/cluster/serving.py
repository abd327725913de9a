"""One engine serving every case of a Redis namespace: recovery at start, then the runtime.

`open_runtime(options, on_record)` connects, refuses a Redis that cannot promise
durability (`check_durability`, unless `unsafe`), claims every case of the namespace
(waiting out the leases of a crashed engine), rebuilds them all into one host through the
verifier, and runs a `Runtime` whose writer appends to the cases' streams (writer.py).

The replay order: every case's records merged by (record time, gseq, case id). One
engine's records carry one global gseq that grows with time (the runtime never stamps a
command before the host's time), so this is exactly the order they were applied in: the
same records, byte for byte those a file journal would hold, replayed in the same order,
give the same state hash. The gseq carries on after the highest one found.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ..journal.format import JournalCorruption
from ..journal.recovery import RecordHook, RecoveryReport
from ..journal.sequencer import Journaled
from ..journal.store import Position
from ..journal.verifier import Verifier
from ..runtime import Runtime, wall_clock_us
from . import connect
from .durability import check_durability
from .layout import ClusterError
from .lease import Client, Leases
from .recovery import survey
from .stream import APPEND, Entry, StreamJournal
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

    def engine(self) -> str:
        return self.engine_id or f"{socket.gethostname()}-{os.getpid()}"


async def recover_cases(journal: StreamJournal, book: CaseBook, on_record: RecordHook | None = None) -> \
        tuple[Journaled, RecoveryReport]:
    """Claim every case of the namespace, then replay them all into one host in the
    module's order. `ClusterError`: a damaged or foreign-typed stream (its code), a case
    another engine keeps holding (`held`)."""
    started = time.perf_counter()
    found = await survey(journal)
    for problem in found.problems:
        if problem.code != "foreign_key":
            raise problem
        logger.warning("ignored: %s", problem)
    for case_id in found.cases:  # first: nobody appends to a case once it is claimed
        await book.claim_waiting(case_id, 3 * book.ttl_ms)
    streams: list[list[Entry]] = []
    for case_id in found.cases:
        streams.append([entry async for entry in journal.entries(case_id)])
    verifier = Verifier(contiguous=False)
    records = 0
    ordered = heapq.merge(*streams, key=lambda e: (e.record.time, e.record.gseq, e.record.auction_id))
    for entry in ordered:
        try:
            events = verifier.feed(entry.record)
        except JournalCorruption as exc:
            raise ClusterError(exc.code, exc.message, key=journal.layout.journal(entry.record.auction_id),
                               entry=entry.entry_id) from None
        if on_record is not None:
            on_record(entry.record, events)
        records += 1
    j = verifier.journaled
    report = RecoveryReport(records, len(found.cases), None, Position(0, 0, j.gseq + 1), j.host.state_hash(),
                            time.perf_counter() - started)
    return j, report


@asynccontextmanager
async def open_runtime(options: RedisOptions, on_record: RecordHook | None = None,
                       clock: Callable[[], int] = wall_clock_us) -> AsyncIterator[Runtime]:
    """A running `Runtime` on Redis (see the module docstring); its leases are released
    on a clean exit. `ClusterError` at start: `unreachable`, `not_durable`,
    `too_few_replicas`, `config_unreadable` (the durability check), `held`, or a stream's
    damage (its code)."""
    client: Client = connect(options.url)
    started = False
    try:
        async with client:
            try:
                how = await check_durability(client, replicas=options.replicas, unsafe=options.unsafe)
            except UNREACHABLE as exc:
                raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {exc}") from None
            journal = open_journal(client, options.namespace, options.replicas, options.wait_ms)
            await client.script_load(APPEND)  # the writer's pipelines call it by SHA
            book = CaseBook(Leases(client, journal.layout), options.engine(), options.lease_ms)
            journaled, report = await recover_cases(journal, book, on_record)
            logger.info("recovered from Redis (%s): %s", how, report.summary())
            writer = RedisWriter(journal, book, journaled.gseq, max_batch=options.max_batch)
            runtime = Runtime(journaled, writer, report, clock)
            async with runtime.running():
                started = True
                yield runtime
    except UNREACHABLE as exc:
        if started:
            raise
        raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {exc}") from None
    except BaseExceptionGroup as group:  # the client's task group wraps what failed: say it plainly
        alone = single(group)
        if isinstance(alone, ClusterError):
            raise alone from None
        if isinstance(alone, UNREACHABLE) and not started:
            raise ClusterError("unreachable", f"Redis at {options.url} cannot be reached: {alone}") from None
        raise


def single(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (else `exc` itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
