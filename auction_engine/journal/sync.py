"""Where a batch's fdatasync runs: the writer's sync strategies (`JournalWriter`'s).

`SyncProcess` (the default) writes on the trio thread and has a small child process
fdatasync each batch, answering over a socket, so a second batch can follow the one in
flight; `SyncThread` writes and syncs in a worker thread, one batch at a time; `NoSync`
writes in place (durability "none"). docs/operations.md says when each applies.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import subprocess
import sys
import threading
from collections import deque
from typing import Any, Protocol

import trio

from .store import SegmentStore


class Sync(Protocol):
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


class OneAtATime:
    """A sync that takes one batch at a time."""

    pipelines = False

    def can_add(self, batch: list[bytes]) -> bool:
        return False

    def add(self, batch: list[bytes]) -> None:
        raise RuntimeError("this sync takes one batch at a time")


class NoSync(OneAtATime):
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


class SyncThread(OneAtATime):
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


class SyncProcess:
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
