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
import errno
import heapq
import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Protocol

import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from .store import SegmentStore

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

    def __init__(self, store: SegmentStore, *, max_batch: int = DEFAULT_MAX_BATCH,
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
        self._sync: _Sync | None = None
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
        sync: _Sync
        if not self.store.durable:
            sync = _NoSync(self.store)
        elif self.store.syncs_elsewhere and self.sync_in == "process":
            sync = _SyncProcess(self.store)  # if it cannot start, neither does the writer
            self.sync_pid = sync.pid
        else:
            sync = _SyncThread(self.store)
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

    async def _write_batches(self, sync: _Sync) -> None:
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

    def _pipelining(self, sync: _Sync) -> bool:
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

    def _start(self, sync: _Sync, *, idle: bool = False, second: bool = False) -> list[bytes]:
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


class _Sync(Protocol):
    """Makes batches durable, in order: `start(batch)` hands one over and returns at once
    (or raises, nothing written); `await finish()` returns once the oldest one is
    durable, or raises what failed. `overlaps`: the trio thread goes on while a batch
    syncs. `pipelines`: a second batch may follow the one in flight (`add`, where
    `can_add` allows)."""

    overlaps: bool
    pipelines: bool

    def start(self, batch: list[bytes]) -> None: ...

    def can_add(self, batch: list[bytes]) -> bool: ...

    def add(self, batch: list[bytes]) -> None: ...

    async def finish(self) -> None: ...

    def alive(self) -> bool: ...

    def close(self) -> None: ...


class _OneAtATime:
    """A sync that takes one batch at a time."""

    pipelines = False

    def can_add(self, batch: list[bytes]) -> bool:
        return False

    def add(self, batch: list[bytes]) -> None:
        raise RuntimeError("this sync takes one batch at a time")


class _NoSync(_OneAtATime):
    """Durability "none": a copy into the page cache, done at once."""

    overlaps = False

    def __init__(self, store: SegmentStore) -> None:
        self.store = store

    def start(self, batch: list[bytes]) -> None:
        self.store.append(batch)

    async def finish(self) -> None:
        await trio.lowlevel.checkpoint()

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _SyncThread(_OneAtATime):
    """A thread that makes batches durable: the store's blocking write and fsync run
    there while the trio thread goes on (the mode for a store whose `FileOps` overrides
    `sync`, or `sync_in="thread"`). One long-lived thread, handed each batch and answering
    through a pipe that the writer task waits on directly (about half the hand-off cost of
    `trio.to_thread.run_sync`, measured: a thread from its cache, a limiter, and a hop
    through trio's entry queue for every batch)."""

    overlaps = True

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

    def start(self, batch: list[bytes]) -> None:
        self._batch = batch
        os.write(self._go_write, b"\0")

    async def finish(self) -> None:
        with trio.CancelScope(shield=True):  # the thread has the batch: its end is awaited, as to_thread does
            await trio.lowlevel.wait_readable(self._done_read)
        os.read(self._done_read, 1)
        error, self._error = self._error, None
        if error is not None:
            raise error

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread (it is idle: every batch has been awaited)."""
        self._batch = None
        os.write(self._go_write, b"\0")
        self._thread.join()
        for fd in (self._go_read, self._go_write, self._done_read, self._done_write):
            os.close(fd)


# The sync process: fdatasync on the segment the writer hands over (SCM_RIGHTS). A request
# is one byte (b"S"); one fdatasync answers every request read with it (each was written
# before it): b"\0" each, or b"E", the errno and b";". Ends when the writer closes
# its end or goes away; never by a signal meant for the service (its own session; SIGINT,
# SIGTERM and SIGHUP ignored), so a graceful shutdown can still flush.
_SYNCER = """
import os, signal, socket, sys
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
sock = socket.socket(fileno=int(sys.argv[1]))
fd = -1
while True:
    try:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 1)
    except OSError:  # the writer is gone
        break
    if not msg:
        break
    if fds:
        if fd >= 0:
            os.close(fd)
        fd = fds[0]
    try:
        os.fdatasync(fd)
        answer = b"\\0" * len(msg)
    except OSError as exc:
        answer = b"E%d;" % (exc.errno or 5)
    try:
        sock.sendall(answer)
    except OSError:  # the writer is gone
        break
"""


class _SyncProcess:
    """A small child process that makes batches durable (the default). The trio thread
    writes each batch into the page cache itself (a copy, quick) and asks the child for
    the fdatasync, which holds no lock of this process: the trio thread never waits for
    the sync, nor the sync for the GIL (a sync thread needs it after every fsync, and gets
    it only when the busy trio thread lets go). The child is handed each segment's file
    description over a Unix socket (fdatasync flushes the file, whoever wrote it); it
    exits when this end closes, also when this process is killed.

    A second batch may follow the one in flight (`add`): written behind it, its request
    waits in the socket, and the child starts that fdatasync as the first one ends,
    without waiting for the trio thread to hear of it and hand the next batch over."""

    overlaps = True
    pipelines = True

    def __init__(self, store: SegmentStore) -> None:
        self.store = store
        self._sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SYNCER, str(child.fileno())],
                pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True)
        except BaseException:
            self._sock.close()
            raise
        finally:
            child.close()
        self.pid = self._proc.pid
        self._segment = -1  # the segment whose file the child holds
        # In flight, oldest first: [batch, its first record not yet durable, (fd, records,
        # bytes) written and being synced]
        self._flight: deque[list[Any]] = deque()
        self._answers = 0  # answers received and not yet taken (b"\0" each)
        self._error: OSError | None = None  # a failure received behind them
        self._partial = b""  # the start of a failure's answer (what came so far)

    def start(self, batch: list[bytes]) -> None:
        """Write the batch (its part that fits the segment) and ask for the sync."""
        entry: list[Any] = [batch, 0, (0, 0, 0)]
        self._flight.append(entry)
        try:
            self._write_head(entry)
        except BaseException:
            self._flight.pop()
            raise

    def can_add(self, batch: list[bytes]) -> bool:
        """Whether `batch` may follow the one in flight: that one is written whole, and
        this one fits behind it in the same segment."""
        if len(self._flight) != 1:
            return False
        first, durable, (_fd, records, _size) = self._flight[0]
        return durable + records == len(first) and self.store.fits(batch)

    add = start  # (after `can_add`)

    def _write_head(self, entry: list[Any]) -> None:
        store = self.store
        head = entry[2] = store.write_head(entry[0], entry[1])
        fd = head[0]
        index = store.position.index
        try:
            try:
                if index != self._segment:
                    socket.send_fds(self._sock, [b"S"], [fd])
                    self._segment = index
                else:
                    self._sock.send(b"S")
            except OSError as exc:
                raise _ended(exc) from exc
        except BaseException:
            store.cut_back(fd, store.position.size + store.unsynced - head[2])  # this write only
            raise

    async def finish(self) -> None:
        """Wait for the oldest batch's sync; a batch that filled its segment goes on in the
        next one (never with a second batch in flight: see `can_add`)."""
        store = self.store
        entry = self._flight[0]
        while True:
            fd, records, size = entry[2]
            try:
                while not self._answers:
                    if self._error is not None:
                        raise self._error
                    with trio.CancelScope(shield=True):  # the child has the request: its answer is awaited
                        await trio.lowlevel.wait_readable(self._sock)
                    self._receive()
                self._answers -= 1
            except BaseException:
                store.cut_back(fd, store.position.size)
                raise
            store.advance(records, size)
            entry[1] += records
            if entry[1] >= len(entry[0]):
                store.batches += 1
                self._flight.popleft()
                return
            self._write_head(entry)

    def _receive(self) -> None:
        """Count the answers that came; keep a failure that follows them."""
        try:
            answer = self._sock.recv(64)
        except OSError as exc:
            self._error = _ended(exc)
            return
        if not answer:  # the child is gone
            self._error = _ended(None)
            return
        ok, error, self._partial = parse_answers(self._partial + answer)
        self._answers += ok
        if error is not None:
            self._error = error

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """Let the child end and reap it: it is idle once every sync has been awaited; if
        the writer stopped with a request unanswered (a failure), it is killed instead of
        awaited (nothing it could still do is acknowledged). One stuck in an fdatasync
        that never returns is left to the init process."""
        self._sock.close()
        if self._flight:
            self._proc.kill()
        try:
            self._proc.wait(timeout=1 if self._flight else 5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)


def parse_answers(data: bytes) -> tuple[int, OSError | None, bytes]:
    """What the sync process sent, as read so far: how many syncs it reports done (b"\0"
    each), then the failure that follows them (b"E", the errno, b";"), if any, and the
    start of one not all read yet (to read on from)."""
    rest = data.lstrip(b"\0")
    ok = len(data) - len(rest)
    if not rest:
        return ok, None, b""
    failure = re.match(rb"E(\d{1,4});", rest)
    if failure is not None:
        code = int(failure[1])
        return ok, OSError(code, f"fdatasync: {os.strerror(code)}"), b""
    if re.fullmatch(rb"E\d{0,4}", rest):
        return ok, None, rest
    return ok, _ended(None), b""


def _ended(cause: OSError | None) -> OSError:
    """The error when the sync process is gone (killed, or it failed to start)."""
    how = f" ({cause})" if cause is not None else ""
    return OSError(errno.EIO, f"the journal's sync process ended{how}: outcomes not yet durable are unknown")
