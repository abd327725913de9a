"""Recovery checkpoints of a running engine: when to take one, the forked child that
writes it, and the one written at a clean exit (the file format and the start from one
are in journal/checkpoint.py and journal/recovery.py; docs/journal-format.md)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from .journal import JournalWriter, checkpoint
from .journal.format import FRAME
from .journal.sequencer import Journaled
from .journal.store import Position

CHECKPOINT_WAIT = 30.0  # seconds a clean exit waits for a checkpoint being written
CHECKPOINT_TIMEOUT = 600.0  # seconds after which a checkpoint process is deemed stuck and killed
DRAIN_PUBLISHES = 2  # publications a due checkpoint may drain the writer for before it waits
DRAIN_BACKOFF = 5.0  # seconds before draining again, when the load never paused


class Checkpointer:
    """Takes a checkpoint every `every` records (0: never) of a runtime's journaled
    engine, into `directory`, with the host's `parts`; `start`: the gseq of the checkpoint
    recovery started from. Hooked to the writer's batches (after the runtime's publish)."""

    def __init__(self, journaled: Journaled, writer: JournalWriter, clock: Callable[[], int],
                 directory: Path | None = None, every: int = 0, parts: Sequence[checkpoint.Part] = (),
                 start: int | None = None,
                 on_ended: Callable[[bool, int, float, str], None] | None = None) -> None:
        self.journaled = journaled
        self.writer = writer
        self.clock = clock
        self.directory = directory
        self.every = every if directory is not None else 0
        self.parts = parts
        self.child: checkpoint.Child | None = None
        self.stats: dict[str, Any] = {"written": 0, "failed": 0, "deferred": 0, "last_gseq": start,
                                      "last_seconds": 0.0, "last_error": ""}
        # (written: bool, gseq, seconds, error) as each checkpoint ends
        self.on_ended = on_ended or (lambda written, gseq, seconds, error: None)
        self._due_at = (start or 0) + every  # the gseq from which a checkpoint is due
        self._not_before = 0.0  # monotonic time before which none is begun (after a failure, a deferral)
        self._failures = 0  # in a row
        self._drained = 0  # publications while draining for a due checkpoint
        self._child_started = trio.Event()
        self._child_ended = trio.Event()  # set when the running child (if any) is reaped

    async def idle(self) -> None:
        """Return once no checkpoint child is running (at once if none is)."""
        while self.child is not None:
            await self._child_ended.wait()

    def _last_record(self) -> tuple[Position, tuple[int, int, bytes]] | None:
        """Where the next record goes and (segment, offset, SHA-256) of the last one, if
        this writer made it durable (else None: nothing new to checkpoint)."""
        frame = self.writer.last_frame
        if not frame:
            return None
        pos = self.writer.store.position
        position = Position(pos.index, pos.size, pos.next_gseq, pos.records)
        return position, (pos.index, pos.size - len(frame), hashlib.sha256(frame[FRAME.size:]).digest())

    def after_batch(self, _records: int = 0, _seconds: float = 0.0) -> None:
        """After a batch is published: begin a checkpoint (a forked child) if one is due
        and everything applied is durable. If one is due but records are in flight, have
        the writer drain (see `JournalWriter.drain`) so that such a moment comes; if it
        does not come within DRAIN_PUBLISHES publications (clients that keep sending), stop
        draining and try again DRAIN_BACKOFF seconds later."""
        if not self.every or self.directory is None or self.child is not None:
            return
        j = self.journaled
        writer = self.writer
        if j.gseq < self._due_at or writer.failure is not None or time.monotonic() < self._not_before:
            return
        if j.gseq != writer.durable_gseq:
            if not writer.drain:
                writer.drain = True
                self._drained = 0
            else:
                self._drained += 1
                if self._drained >= DRAIN_PUBLISHES:  # the load never pauses: later
                    writer.drain = False
                    self._not_before = time.monotonic() + DRAIN_BACKOFF
                    self.stats["deferred"] += 1
            return
        writer.drain = False
        last = self._last_record()
        if last is None:
            return
        try:
            self.child = checkpoint.fork_write(self.directory, j, last[0], last[1], self.parts,
                                                           self.clock())
            self._child_ended = trio.Event()
        except OSError as exc:  # no fork now (memory, process limit)
            self._ended(False, j.gseq, 0.0, f"cannot start the checkpoint process: {exc}")
            return
        self._child_started.set()

    def status(self) -> dict[str, Any]:
        """Checkpoints written, failed and deferred (the load never paused) since the
        start, the newest one's last record, how long it took, and the last failure."""
        return dict(self.stats)

    async def watch(self) -> None:
        """Reap each checkpoint child as it ends (its error pipe reaches end of file), or
        kill it after CHECKPOINT_TIMEOUT; never blocks the event loop."""
        while True:
            await self._child_started.wait()
            self._child_started = trio.Event()
            child = self.child
            if child is None:
                continue
            with trio.move_on_after(CHECKPOINT_TIMEOUT) as waited:
                await trio.lowlevel.wait_readable(child.errors)
            if waited.cancelled_caught:
                child.stop(f"the checkpoint process took over {CHECKPOINT_TIMEOUT:.0f} s: killed")
            await self._reaped(child)

    async def _reaped(self, child: checkpoint.Child) -> None:
        """Wait (without blocking) until `child` has ended, and count it."""
        while (written := child.poll()) is None:
            await trio.sleep(0.005)
        if self.child is child:
            self.child = None
            self._child_ended.set()
            self._ended(written, child.gseq, child.seconds, child.error)

    def _ended(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        stats = self.stats
        if written:
            stats.update(written=stats["written"] + 1, last_gseq=gseq, last_seconds=seconds)
            self._due_at = gseq + self.every
            self._failures = 0
        else:  # tried again after a quarter of the interval and a growing delay (1 s, 2 s, ... 5 min)
            stats.update(failed=stats["failed"] + 1, last_error=error)
            self._due_at = self.journaled.gseq + max(1, self.every // 4)
            self._not_before = time.monotonic() + min(2.0 ** self._failures, 300.0)
            self._failures += 1
        self.on_ended(written, gseq, seconds, error)

    async def final(self) -> None:
        """On a clean exit (the journal flushed): let a running checkpoint child finish
        (or kill it after CHECKPOINT_WAIT), then write one of the final state here if
        records were added since the newest one."""
        if not self.every or self.directory is None:
            return
        child = self.child
        if child is not None:
            with trio.move_on_after(CHECKPOINT_WAIT):
                await self.idle()
            if self.child is child:  # stuck: the next start does without it
                child.stop(f"the checkpoint process was still running {CHECKPOINT_WAIT:.0f} s after the exit began")
                with trio.move_on_after(5.0):  # the watcher reaps it (unless the kernel cannot kill it yet)
                    await self.idle()
        j = self.journaled
        last = self._last_record()
        if last is None or j.gseq <= (self.stats["last_gseq"] or 0) \
                or j.gseq != self.writer.durable_gseq or self.writer.failure is not None:
            return
        started = time.monotonic()
        try:
            pieces = checkpoint.encode(j, last[0], last[1], self.parts, self.clock())
            await trio.to_thread.run_sync(checkpoint.write, self.directory, pieces, j.gseq)
        except Exception as exc:  # the journal is flushed: the next start only replays more
            self._ended(False, j.gseq, time.monotonic() - started, f"{type(exc).__name__}: {exc}")
            return
        self._ended(True, j.gseq, time.monotonic() - started, "")
