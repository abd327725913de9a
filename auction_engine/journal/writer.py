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
import time
from typing import Any

import trio

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
        self._batch_done = trio.Event()
        self._closing = False
        self._limiter = trio.CapacityLimiter(1)
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
        self._wakeup.set()

    @property
    def pending(self) -> bool:
        """True while records wait to be taken into a batch."""
        return bool(self._pending)

    async def wait_durable(self, gseq: int) -> None:
        """Return once every record up to `gseq` is on disk; raise if it never will be."""
        while self.durable_gseq < gseq:
            if self.failure is not None:
                raise JournalUnavailable(self._reason())
            await self._batch_done.wait()

    def _reason(self) -> str:
        if self.failure is not None:
            return f"the journal stopped after an IO error: {self.failure}"
        return "the journal is closed"

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until `close()`; on an IO error, fail every waiter and return."""
        task_status.started()
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
                if self.store.durable:  # the fsync waits for the disk: in a thread, so intake goes on
                    await trio.to_thread.run_sync(self.store.append, batch, limiter=self._limiter)
                else:  # no fsync: a copy into the page cache, done in place
                    self.store.append(batch)
                    await trio.lowlevel.checkpoint()
            except BaseException as exc:  # an OSError usually; anything else fails loudly too
                self.failure = exc
                self._pending.clear()
                for failure_hook in self.on_failure:
                    failure_hook(exc)
                self._release()
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
        self._release()

    def _release(self) -> None:
        self._batch_done.set()
        self._batch_done = trio.Event()

    async def close(self) -> None:
        """Flush what is pending, then let `run` return (graceful shutdown)."""
        self._closing = True
        self._wakeup.set()
        with contextlib.suppress(JournalUnavailable):  # if failed, the files stay as the failure left them
            await self.wait_durable(self._pending_gseq)
        self.store.close()
