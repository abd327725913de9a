"""Group commit: one trio task turns every pending record into one write and one fsync.

Producers `append` framed records (never blocking) and `await wait_durable(gseq)`. The
writer task takes everything pending (up to `max_batch` records, after waiting up to
`max_delay` for more) and has it made durable: written by the trio thread and synced by a
small child process (`sync_in="process"`, the default), or written and synced by a
worker thread (`"thread"`, and for a store whose `FileOps` overrides `sync`), or written
in place with no sync (durability "none"). While one batch is syncing the next one
gathers; once one is durable the next is handed over at once, then the finished one's
waiters are released and its listeners run. An idle writer that finds a burst pending
(`split_from` records or more: producers that all waited on the same batch) takes half
of it first, so that from then on one half's sync overlaps the other half's work (see
`_start`). The first IO error stops intake for good:
every waiter and later caller gets `JournalUnavailable`, and nothing that was acknowledged
is lost. Everything the writer has to say goes to one `WriterListener`, its owner (the
runtime), in order: a batch cut, a write made durable, a batch published, a failure, the
stop (cancelled or closed: the owner answers what it posted).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import time
from collections import deque
from typing import Any, Protocol

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from .store import Position, SegmentStore
from .sync import NoSync, Sync, SyncProcess, SyncThread

DEFAULT_MAX_BATCH = 8192  # records per write + fsync
DEFAULT_MAX_DELAY = 0.0  # seconds to wait for more records once one is pending
DEFAULT_SPLIT_FROM = 32  # an idle writer finding this many records pending syncs half of them first (0: never)
MAX_DRAIN_MERGES = 4  # batches held back in a row while draining (see JournalWriter.drain)
SYNC_MODES = ("process", "thread")  # where the fdatasync of a batch runs
DEFAULT_SYNC_IN = "process"


class JournalUnavailable(Exception):
    """The journal cannot take records any more (disk full, IO error, closed); `code` is
    `journal_unavailable`. Outcomes not yet acknowledged are unknown until a restart."""

    code = "journal_unavailable"


class WriterListener(Protocol):
    """What a writer tells its owner, on the writer's task, in this order for each batch."""

    def batch_cut(self, last_gseq: int, everything: bool) -> None:
        """A batch ending at `last_gseq` was taken (`everything`: nothing is left pending)."""

    def batch_written(self, records: int, seconds: float) -> None:
        """A write + fsync of `records` records is durable, `seconds` after its cut."""

    def batch_durable(self, records: int, seconds: float) -> None:
        """Durable records are published (with the batches a drain held back: `drain`)."""

    def writer_failed(self, exc: BaseException) -> None:
        """Intake stopped for good: nothing in flight or pending will be durable."""

    def writer_stopped(self) -> None:
        """`run` has returned: nothing more becomes durable."""


class Store(Protocol):
    """Where a writer's batches go: a `SegmentStore`, or another journal of record whose
    writer subclass supplies its own `Sync` (`_open_sync`)."""

    position: Position  # where the next record goes (`next_gseq`: the writer starts after it)
    durable: bool

    def close(self) -> None: ...


class Unheard:
    """The listener of a writer nobody listens to."""

    def batch_cut(self, last_gseq: int, everything: bool) -> None:
        pass

    def batch_written(self, records: int, seconds: float) -> None:
        pass

    def batch_durable(self, records: int, seconds: float) -> None:
        pass

    def writer_failed(self, exc: BaseException) -> None:
        pass

    def writer_stopped(self) -> None:
        pass


class JournalWriter:
    """The single writer of a `SegmentStore`; run `run()` in a nursery. `listener` (its
    owner: settable until `run`) hears of every batch."""

    def __init__(self, store: Store, *, max_batch: int = DEFAULT_MAX_BATCH,
                 max_delay: float = DEFAULT_MAX_DELAY, sync_in: str = DEFAULT_SYNC_IN,
                 split_from: int = DEFAULT_SPLIT_FROM, pipeline: bool = True,
                 listener: WriterListener | None = None) -> None:
        if sync_in not in SYNC_MODES:
            raise ValueError(f"sync_in must be one of {SYNC_MODES}, not {sync_in!r}")
        if split_from < 0:
            raise ValueError(f"split_from must be 0 (never) or more, not {split_from}")
        self.store = store
        self.sync_in = sync_in
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.split_from = split_from
        self.durable_gseq = store.position.next_gseq - 1
        self.failure: BaseException | None = None
        self._pending: list[bytes] = []
        self._pending_gseq = self.durable_gseq  # gseq of the last pending record
        self._wakeup = trio.Event()
        # Tasks parked in wait_durable: [gseq, order, task or None once cancelled], by gseq.
        # Each is woken once, when its record is durable (or never will be): no task is
        # woken for a batch that does not hold its record.
        self._waiters: list[list[Any]] = []
        self._order = itertools.count()
        self._closing = False
        self._stopped = False  # `run` has returned: nothing more becomes durable
        self.stats: dict[str, Any] = {"batches": 0, "records": 0, "sync_seconds": 0.0, "pipelined": 0}
        self.listener: WriterListener = listener or Unheard()
        self._cut_gseq = self.durable_gseq  # gseq of the last record taken into a batch
        self.sync_pid: int | None = None  # the sync process's, while `run` runs with one
        self._sync: Sync | None = None
        self.last_frame = b""  # the last durable record's frame (written since this writer started)
        # Drain: a durable batch is published only once the next one (cut at once, as
        # always) is durable too, up to MAX_DRAIN_MERGES in a row, so that producers that
        # alternate (a split burst) end up all waiting on one batch and everything applied
        # is durable when its hooks run (the moment a recovery checkpoint needs).
        self.drain = False
        self._held = 0  # durable records whose hooks and waiters wait for the next batch (draining)
        self.pipeline = pipeline  # a second batch may follow the one in flight (see `_write_batches`)
        self._flight: deque[tuple[list[bytes], float]] = deque()  # batches handed to the sync, oldest first
        self._second_at = 0  # pending records at which `append` cuts a second batch (0: not now)
        self._second_error: BaseException | None = None  # a second batch failed to go

    def check(self) -> None:
        """Raise `JournalUnavailable` if records can no longer be taken (call it before
        changing any state whose records would then have nowhere to go)."""
        if self.failure is not None or self._second_error is not None or self._closing or self._stopped:
            raise JournalUnavailable(self._reason())

    def append(self, frames: list[bytes], last_gseq: int) -> None:
        """Queue consecutive records ending at `last_gseq`; returns at once."""
        self.check()
        if not frames:
            return
        if last_gseq - len(frames) != self._pending_gseq:
            raise RuntimeError(f"records out of order: {len(frames)} ending at {last_gseq} "
                               f"after {self._pending_gseq}")
        self._pending += frames
        self._pending_gseq = last_gseq
        wakeup = self._wakeup
        if not wakeup.is_set():
            wakeup.set()
        if self._second_at and len(self._pending) >= self._second_at:
            self._cut_second()  # as many as the batch in flight: they follow it (see `_write_batches`)

    @property
    def pending(self) -> bool:
        """True while records wait to be taken into a batch."""
        return bool(self._pending)

    async def wait_durable(self, gseq: int) -> None:
        """Return once every record up to `gseq` is on disk; raise if it never will be."""
        if self.durable_gseq >= gseq:
            return
        if self.failure is not None or self._stopped:
            raise JournalUnavailable(self._reason())
        entry = [gseq, next(self._order), current_task()]
        heapq.heappush(self._waiters, entry)

        def abort(_raise_cancel: Any) -> Abort:
            entry[2] = None  # stays in the heap, skipped when its batch is done
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)
        if self.durable_gseq < gseq:
            raise JournalUnavailable(self._reason())

    def _reason(self) -> str:
        failure = self.failure or self._second_error
        if failure is not None:
            return f"the journal stopped after an IO error: {failure}"
        return "the journal is closed"

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until `close()`; on an IO error, fail every waiter and return."""
        sync = self._open_sync()
        self._sync = sync
        task_status.started()
        try:
            await self._write_batches(sync)
        finally:  # returned, failed or cancelled: no record becomes durable any more
            self._stopped = True
            self._publish_held()
            self._release()
            try:
                sync.close()
            finally:
                self.sync_pid = None
                self.listener.writer_stopped()

    def _open_sync(self) -> Sync:
        """The sync for this writer's store (another journal of record overrides it)."""
        store = self.store
        assert isinstance(store, SegmentStore), store
        if not store.durable:
            return NoSync(store)
        if store.syncs_elsewhere and self.sync_in == "process":
            sync = SyncProcess(store)  # if it cannot start, neither does the writer
            self.sync_pid = sync.pid
            return sync
        return SyncThread(store)

    async def until_available(self) -> bool:
        """After `JournalUnavailable`: wait until records can be taken again and return
        True, or return False at once if they never will (a file journal's failure is for
        good: a restart is needed)."""
        return False

    @property
    def healthy(self) -> bool:
        """True while records can be taken and made durable (see `trouble`)."""
        return self.trouble() is None

    def trouble(self) -> str | None:
        """Why records cannot be taken and made durable now (failed, closing or stopped,
        not started, the sync process gone), or None."""
        failure = self.failure or self._second_error
        if failure is not None:
            return str(failure)
        if self._closing or self._stopped:
            return "the journal is closed"
        if self._sync is None:
            return "the journal is not running"
        if not self._sync.alive():
            return "the journal's sync process ended"
        return None

    async def _write_batches(self, sync: Sync) -> None:
        """Once a batch is durable, the next one (what gathered meanwhile) is cut and handed
        to `sync` before this one is published, so the disk works while the listeners run.
        With a sync that `pipelines`, the next batch does not even wait for that: once as
        many records are pending as the batch in flight holds (producers that answer in
        groups, or a steady stream), `append` cuts it and sends it behind (`_cut_second`),
        so the sync process goes from one fdatasync to the next without waiting for this
        busy thread to hear of the first one's end."""
        flight = self._flight  # (batch, when it was cut), oldest first
        merged = 0  # batches held back in a row (draining)
        while True:
            if not flight:
                if not self._pending:
                    if self._closing:
                        break
                    await self._wakeup.wait()
                    self._wakeup = trio.Event()
                    continue
                if self.max_delay > 0 and len(self._pending) < self.max_batch:
                    with trio.move_on_after(self.max_delay):
                        while len(self._pending) < self.max_batch and not self._closing:
                            await self._wakeup.wait()
                            self._wakeup = trio.Event()
                try:
                    flight.append((self._start(sync, idle=True), time.perf_counter()))
                except BaseException as exc:  # an OSError usually; anything else fails loudly too
                    self._fail(exc)
                    return
            if len(flight) == 1 and self._pipelining(sync):
                self._second_at = len(flight[0][0])
                if len(self._pending) >= self._second_at:
                    self._cut_second()
            try:
                await sync.finish()
            except BaseException as exc:
                self._second_at = 0
                self._publish_held()  # durable: answered as such before intake stops
                self._fail(exc)
                return
            self._second_at = 0
            batch, started = flight.popleft()
            elapsed = time.perf_counter() - started
            self.durable_gseq += len(batch)
            self.last_frame = batch[-1]
            self.stats["batches"] += 1
            self.stats["records"] += len(batch)
            self.stats["sync_seconds"] += elapsed
            self.listener.batch_written(len(batch), elapsed)
            done = self._held + len(batch)
            error = self._second_error  # a second batch that could not go: this one is durable, then stop
            if error is None and self._pending and (
                    not flight or (self._pipelining(sync) and sync.can_add(self._pending[:self.max_batch]))):
                try:  # the next batch goes to the disk now, before this one is published
                    flight.append((self._start(sync, second=bool(flight)), time.perf_counter()))
                except BaseException as exc:
                    if flight:  # the batch in flight is finished first, then the writer stops
                        self._second_error = exc
                    else:
                        error = exc
            if error is None and flight and self.drain and merged < MAX_DRAIN_MERGES:
                self._held, merged = done, merged + 1  # published with the next one: see `drain`
                continue
            self._held = merged = 0
            self.listener.batch_durable(done, elapsed)
            self._release()
            if error is not None:
                self._fail(error)
                return

    def _pipelining(self, sync: Sync) -> bool:
        """Whether a second batch may follow the one in flight (not while draining, nor
        when told to gather with `max_delay`)."""
        return sync.pipelines and self.pipeline and not self.drain and self.max_delay <= 0

    def _cut_second(self) -> None:
        """Cut the next batch and send it behind the one in flight (from `append`, or the
        writer task if enough was already pending). If it cannot go, the writer stops once
        the batch in flight is durable."""
        self._second_at = 0
        sync = self._sync
        if sync is None or self._second_error is not None or not sync.can_add(self._pending[:self.max_batch]):
            return
        try:
            self._flight.append((self._start(sync, second=True), time.perf_counter()))
        except BaseException as exc:
            self._second_error = exc

    def _publish_held(self) -> None:
        """Run the batch hooks for durable records held back by a drain (see `drain`)."""
        done, self._held = self._held, 0
        if done:
            self.listener.batch_durable(done, 0.0)

    def _start(self, sync: Sync, *, idle: bool = False, second: bool = False) -> list[bytes]:
        """Cut the next batch (what is pending, up to `max_batch`) and hand it to `sync`.

        `idle`: nothing was in flight. Finding `split_from` records or more pending then
        means producers that waited on one batch all answered in the same round while the
        disk had nothing to do; syncing them together again would keep them in lock-step,
        the disk and the CPU taking turns. So the first half goes alone: while it syncs,
        the second half waits (it would have anyway) and is cut the moment the first is
        durable, and the first half's producers then work during the second half's sync.
        The two groups stay apart from then on (a batch is cut as the previous one ends,
        not idle), and each record still waits for at most two syncs. Not when the sync
        overlaps nothing (durability "none") or the writer is told to gather (`max_delay`)."""
        take = self.max_batch
        if idle and self.split_from and sync.overlaps and self.max_delay <= 0 \
                and len(self._pending) >= self.split_from:
            take = min(take, (len(self._pending) + 1) // 2)
        batch = self._pending[:take]
        del self._pending[:take]
        self._cut_gseq += len(batch)
        self.listener.batch_cut(self._cut_gseq, not self._pending)  # not pending: it ends with the latest
        if second:
            sync.add(batch)
            self.stats["pipelined"] += 1
        else:
            sync.start(batch)
        return batch

    def _fail(self, exc: BaseException) -> None:
        """Stop intake for good: nothing in flight or pending will be durable."""
        self.failure = exc
        self._pending.clear()
        self.listener.writer_failed(exc)
        if not isinstance(exc, Exception):
            raise exc

    def _release(self) -> None:
        """Wake every waiter whose record is durable (all of them once the writer stopped)."""
        waiters = self._waiters
        durable = self.durable_gseq
        everyone = self.failure is not None or self._stopped
        while waiters and (everyone or waiters[0][0] <= durable):
            task = heapq.heappop(waiters)[2]
            if task is not None:
                reschedule(task)

    async def close(self) -> None:
        """Flush what is pending, then let `run` return (graceful shutdown)."""
        self._closing = True
        self._wakeup.set()
        with contextlib.suppress(JournalUnavailable):  # if failed, the files stay as the failure left them
            await self.wait_durable(self._pending_gseq)
        self.store.close()
