"""Group commit: one trio task turns every pending record into one write and one fsync.

Producers `append` framed records (never blocking) and `await wait_durable(gseq)`. The
writer task takes everything pending (up to `max_batch` records, after waiting up to
`max_delay` for more), hands it to a worker thread for the write and the fsync (in place when durability is "none"), and
releases every waiter of the batch. While one batch is syncing the next one gathers. The
first IO error stops intake for good: every waiter and later caller gets
`JournalUnavailable`, and nothing that was acknowledged is lost.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
import time
from typing import Any

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from .store import SegmentStore

DEFAULT_MAX_BATCH = 8192  # records per write + fsync
DEFAULT_MAX_DELAY = 0.0  # seconds to wait for more records once one is pending


class JournalUnavailable(Exception):
    """The journal cannot take records any more (disk full, IO error, closed); `code` is
    `journal_unavailable`. Outcomes not yet acknowledged are unknown until a restart."""

    code = "journal_unavailable"


class JournalWriter:
    """The single writer of a `SegmentStore`; run `run()` in a nursery."""

    def __init__(self, store: SegmentStore, *, max_batch: int = DEFAULT_MAX_BATCH,
                 max_delay: float = DEFAULT_MAX_DELAY) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_delay = max_delay
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
        self.stats: dict[str, Any] = {"batches": 0, "records": 0, "sync_seconds": 0.0}
        self.on_batch: list[Any] = []  # callables(records: int, seconds: float) once a batch is durable
        self.on_failure: list[Any] = []  # callables(exc) when intake stops for good
        self.on_cut: list[Any] = []  # callables(last_gseq: int, everything: bool) as a batch is taken

    def check(self) -> None:
        """Raise `JournalUnavailable` if records can no longer be taken (call it before
        changing any state whose records would then have nowhere to go)."""
        if self.failure is not None or self._closing:
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
        if self.failure is not None:
            return f"the journal stopped after an IO error: {self.failure}"
        return "the journal is closed"

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until `close()`; on an IO error, fail every waiter and return."""
        task_status.started()
        sync = _SyncThread(self.store) if self.store.durable else None
        try:
            await self._write_batches(sync)
        finally:  # returned, failed or cancelled: no record becomes durable any more
            self._stopped = True
            self._release()
            if sync is not None:
                sync.close()

    async def _write_batches(self, sync: _SyncThread | None) -> None:
        while True:
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
            batch = self._pending[:self.max_batch]
            del self._pending[:self.max_batch]
            last = self.durable_gseq + len(batch)
            for cut_hook in self.on_cut:  # `everything`: the batch ends with the latest record
                cut_hook(last, not self._pending)
            started = time.perf_counter()
            try:
                if sync is not None:  # the fsync waits for the disk: in a thread, so intake goes on
                    await sync.append(batch)
                else:  # no fsync: a copy into the page cache, done in place
                    self.store.append(batch)
                    await trio.lowlevel.checkpoint()
            except BaseException as exc:  # an OSError usually; anything else fails loudly too
                self.failure = exc
                self._pending.clear()
                for failure_hook in self.on_failure:
                    failure_hook(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            elapsed = time.perf_counter() - started
            self.durable_gseq = last
            self.stats["batches"] += 1
            self.stats["records"] += len(batch)
            self.stats["sync_seconds"] += elapsed
            for hook in self.on_batch:
                hook(len(batch), elapsed)
            self._release()

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


class _SyncThread:
    """The thread that makes batches durable: the store's blocking write and fsync run
    there while the trio thread goes on. One long-lived thread, handed each batch and
    answering through a pipe that the writer task waits on directly (about half the
    hand-off cost of `trio.to_thread.run_sync`, measured: a thread from its cache, a
    limiter, and a hop through trio's entry queue for every batch)."""

    def __init__(self, store: SegmentStore) -> None:
        self.store = store
        self._go_read, self._go_write = os.pipe()  # a byte: a batch (or the stop) is ready
        self._done_read, self._done_write = os.pipe()  # a byte: the batch is durable (or failed)
        self._batch: list[bytes] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="journal-sync", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            os.read(self._go_read, 1)
            batch = self._batch
            if batch is None:
                return
            try:
                self.store.append(batch)
            except BaseException as exc:  # handed to the writer task, which stops the journal
                self._error = exc
            os.write(self._done_write, b"\0")

    async def append(self, batch: list[bytes]) -> None:
        """`store.append(batch)` in the thread; raises what it raised."""
        self._batch = batch
        os.write(self._go_write, b"\0")
        with trio.CancelScope(shield=True):  # the thread has the batch: its end is awaited, as to_thread does
            await trio.lowlevel.wait_readable(self._done_read)
        os.read(self._done_read, 1)
        error, self._error = self._error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop the thread (it is idle: every append has been awaited)."""
        self._batch = None
        os.write(self._go_write, b"\0")
        self._thread.join()
        for fd in (self._go_read, self._go_write, self._done_read, self._done_write):
            os.close(fd)
