"""The trio shell around the core: command -> core -> journal -> acknowledgement; timers.

`Runtime.open(directory)` recovers the engine from its journal and runs the group-commit
writer and the deadline timer in a nursery. `submit(CommandType, *fields)` stamps the
command with the wall clock (never earlier than the engine's time), runs it through the
core at once, and returns its events only once its records (and every earlier one) are
durable. Listeners see events in journal order, after they are durable; view listeners
get one snapshot per changed lot per batch, taken as the batch is cut (so it shows
exactly the state of the batch's last record) and delivered once the batch is durable.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .commands import Command, Tick
from .engine import QueryError
from .events import (
    BidAccepted,
    BidRejected,
    Event,
    LotAwarded,
    LotCancelled,
    LotClosed,
    LotExtended,
    LotOpened,
    LotResumed,
    LotSuspended,
    LotUnsuccessful,
)
from .journal import JournalUnavailable, JournalWriter, RecoveryReport, SegmentStore, checkpoint, recover
from .journal.format import FRAME
from .journal.recovery import RecordHook
from .journal.sequencer import Journaled, Submission
from .journal.store import DEFAULT_SEGMENT_SIZE, FileOps, Position
from .journal.writer import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY, DEFAULT_SPLIT_FROM, DEFAULT_SYNC_IN
from .ranking import LotSnapshot

MAX_TIMER_SLEEP = 60.0  # seconds: the timer re-reads the clock at least this often
CHECKPOINT_WAIT = 30.0  # seconds a clean exit waits for a checkpoint being written
CHECKPOINT_TIMEOUT = 600.0  # seconds after which a checkpoint process is deemed stuck and killed
DRAIN_PUBLISHES = 2  # publications a due checkpoint may drain the writer for before it waits
DRAIN_BACKOFF = 5.0  # seconds before draining again, when the load never paused
FRAME_SIZE = FRAME.size


def wall_clock_us() -> int:
    """Microseconds since the epoch, UTC: the engine's time."""
    return time.time_ns() // 1000


Listener = Callable[[list[Event]], None]
ViewListener = Callable[[list[LotSnapshot]], None]
# Events that change what a lot's viewers see (BidRejected: the observers' count).
LOT_EVENTS = frozenset({BidAccepted, BidRejected, LotOpened, LotExtended, LotSuspended, LotResumed, LotClosed,
                        LotCancelled, LotAwarded, LotUnsuccessful})


class Runtime:
    """One engine process's command path. Build it with `Runtime.open`."""

    def __init__(self, journaled: Journaled, writer: JournalWriter, report: RecoveryReport,
                 clock: Callable[[], int] = wall_clock_us) -> None:
        self.journaled = journaled
        self.engine = journaled.engine
        self.writer = writer
        self.recovery = report
        self.clock = clock
        self.listeners: list[Listener] = []
        self.view_listeners: list[ViewListener] = []
        self._deadline_moved = trio.Event()
        # (gseq, a submission and its (on_durable, on_lost) | snapshots and None), in journal order
        self._to_publish: deque[tuple[int, Submission | list[LotSnapshot], Any]] = deque()
        self._dirty: set[tuple[str, str]] = set()  # lots changed since the last snapshot
        writer.on_cut.append(self._snapshot)
        writer.on_batch.append(self._publish)
        writer.on_batch.append(self._maybe_checkpoint)  # after the listeners (they keep `parts` up to date)
        self.checkpoint_every = 0  # see `open`
        self._directory: Path | None = None
        self._parts: Sequence[checkpoint.Part] = ()
        self._due_at = 0  # the gseq from which a checkpoint is due (set by `_checkpoints`)
        self._not_before = 0.0  # monotonic time before which none is begun (after a failure, a deferral)
        self._failures = 0  # in a row
        self._drained = 0  # publications while draining for a due checkpoint
        self._child_started = trio.Event()
        self._checkpoint_child: checkpoint.Child | None = None
        self.checkpoint_stats: dict[str, Any] = {"written": 0, "failed": 0, "deferred": 0,
                                                 "last_gseq": report.checkpoint, "last_seconds": 0.0,
                                                 "last_error": ""}
        # callables(written: bool, gseq, seconds, error) as each checkpoint ends
        self.on_checkpoint: list[Callable[[bool, int, float, str], None]] = []
        writer.on_failure.append(self._lose)
        writer.on_stop.append(self._lose)

    @classmethod
    @asynccontextmanager
    async def open(cls, directory: str | os.PathLike[str], *, durability: str = "fsync",
                   segment_size: int = DEFAULT_SEGMENT_SIZE, max_batch: int = DEFAULT_MAX_BATCH,
                   max_delay: float = DEFAULT_MAX_DELAY, clock: Callable[[], int] = wall_clock_us,
                   ops: FileOps | None = None, on_record: RecordHook | None = None,
                   sync_in: str = DEFAULT_SYNC_IN, split_from: int = DEFAULT_SPLIT_FROM,
                   checkpoint_every: int = 0, parts: Sequence[checkpoint.Part] = ()) -> AsyncIterator[Runtime]:
        """Recover from `directory` (`on_record` sees every replayed record), run the
        writer and the timer; flush on exit. `checkpoint_every` > 0: start from the newest
        usable checkpoint, write one (from a forked child) once at least that many records
        were added since the last and everything applied is durable, and one on a clean
        exit; `parts`: the caller's state derived through `on_record`, kept in them (a
        start from a checkpoint shows `on_record` only the records after it, so whatever
        the caller derives from records must be a part; after a checkpoint given up
        midway, the parts are emptied and `on_record` sees every record from the first)."""
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be 0 (never) or more, not {checkpoint_every}")
        journaled, report = recover(directory, on_record, checkpoints=checkpoint_every > 0, parts=parts)
        gc.collect()
        gc.freeze()  # what recovery built lives long: keep it out of every later collection
        store = SegmentStore(directory, report.position, segment_size=segment_size, durability=durability,
                             ops=ops)
        writer = JournalWriter(store, max_batch=max_batch, max_delay=max_delay, sync_in=sync_in,
                             split_from=split_from)
        runtime = cls(journaled, writer, report, clock)
        runtime._checkpoints(Path(directory), checkpoint_every, parts)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            nursery.start_soon(runtime._timer)
            nursery.start_soon(runtime._watch_checkpoints)
            try:
                yield runtime
            finally:
                with trio.CancelScope(shield=True):
                    await writer.close()
                    await runtime._final_checkpoint()
                nursery.cancel_scope.cancel()

    def now(self) -> int:
        """The time for the next command: the clock, but never before the engine's time."""
        return max(self.clock(), self.engine.now)

    async def submit(self, command_type: type[Any], *fields: Any) -> list[Event]:
        """Run `command_type(now, *fields)`; return its events once they are durable.
        Raises `JournalUnavailable` once the journal has failed (the outcome is unknown)."""
        return (await self.execute(command_type(self.now(), *fields))).events

    async def execute(self, command: Command, on_durable: Callable[[Submission], None] | None = None) -> Submission:
        """`post` the command and wait: return the submission once it is durable, or raise
        `JournalUnavailable`. `on_durable(submission)`, if given, runs first, as in `post`."""
        task = trio.lowlevel.current_task()
        outcome: list[Submission | JournalUnavailable] = []
        parked = False

        def durable(submission: Submission) -> None:
            if on_durable is not None:
                on_durable(submission)
            outcome.append(submission)
            if parked:
                trio.lowlevel.reschedule(task)

        def lost(error: JournalUnavailable) -> None:
            outcome.append(error)
            if parked:
                trio.lowlevel.reschedule(task)

        def abort(_raise_cancel: Any) -> trio.lowlevel.Abort:
            nonlocal parked
            parked = False  # cancelled: the answer, when it comes, wakes nobody
            return trio.lowlevel.Abort.SUCCEEDED

        self.post(command, durable, lost)
        if not outcome:  # parked until answered (cheaper than an Event)
            parked = True
            await trio.lowlevel.wait_task_rescheduled(abort)
        if isinstance(outcome[0], JournalUnavailable):
            raise outcome[0]
        return outcome[0]

    def post(self, command: Command, on_durable: Callable[[Submission], None],
             on_lost: Callable[[JournalUnavailable], None]) -> Submission:
        """Run a command already stamped with its time (at or after the engine's) and return
        at once. `on_durable(submission)` runs once its records and every earlier one are
        durable, in journal order, before the listeners and the views of that batch (so an
        answer queued there goes out first); `on_lost(error)` runs instead if the journal
        fails first (the outcome is then unknown until a restart). A bid repeating a
        journaled client_bid_id gets its first outcome (`duplicate` is set), changes
        nothing, and is answered after everything posted before it. Raises
        `JournalUnavailable` (nothing changed) if the journal has already stopped. The
        callbacks must not raise."""
        writer = self.writer
        writer.check()  # before the core changes anything
        engine = self.engine
        before = engine.deadline_bound()  # the timer sleeps until the earliest deadline at most
        submission = self.journaled.submit(command)
        if submission.frames:
            writer.append(submission.frames, submission.last_gseq)
            self._to_publish.append((submission.last_gseq, submission, (on_durable, on_lost)))
            dirty = self._dirty
            for event in submission.events:
                if type(event) in LOT_EVENTS:
                    dirty.add((event[1], event[2]))  # type: ignore[misc]  # (auction_id, lot_id)
        elif self._to_publish:  # nothing new to write: answered in turn
            self._to_publish.append((self.journaled.gseq, submission, (on_durable, on_lost)))
        else:  # everything posted so far is durable and published
            on_durable(submission)
        if engine.deadline_bound() != before:  # perhaps earlier: let the timer look again
            self._deadline_moved.set()
        return submission

    async def durable_snapshots(self, auction_id: str) -> list[LotSnapshot] | None:
        """Snapshots of every lot of an auction showing only durable state: now if
        everything applied is durable; else None, and the lots are marked so that the view
        listeners get them with the next batch."""
        auction = self.engine.auction(auction_id)
        while True:
            if self.journaled.gseq == self.writer.durable_gseq:
                return [self.engine.lot_snapshot(auction_id, lot_id) for lot_id in auction.lots]
            if self.writer.pending:  # the next cut takes them, and snapshots the marked lots
                self._dirty.update((auction_id, lot_id) for lot_id in auction.lots)
                return None
            await self.writer.wait_durable(self.journaled.gseq)  # a batch in flight: wait for it

    def _snapshot(self, last_gseq: int, everything: bool) -> None:
        """As a batch is cut: if it ends with the latest record, the engine's state is the
        batch's; snapshot every lot changed since the last snapshot, to publish with it."""
        if not everything or not self._dirty or not self.view_listeners:
            return
        snapshots = []
        for aid, lid in self._dirty:
            with contextlib.suppress(QueryError):  # a refused bid naming no real lot, beside a due tick
                snapshots.append(self.engine.lot_snapshot(aid, lid))
        self._dirty.clear()
        self._to_publish.append((last_gseq, snapshots, None))

    def _publish(self, _records: int = 0, _seconds: float = 0.0) -> None:
        """Once a batch is durable: hand its events and snapshots to the listeners, in
        journal order, once each."""
        durable = self.writer.durable_gseq
        queue = self._to_publish
        while queue and queue[0][0] <= durable:
            _gseq, item, callbacks = queue.popleft()
            if type(item) is Submission:
                callbacks[0](item)
                if item.frames:
                    for listener in self.listeners:
                        listener(item.events)
            else:
                for view_listener in self.view_listeners:
                    view_listener(item)  # type: ignore[arg-type]

    def _lose(self, _exc: BaseException | None = None) -> None:
        """The journal has failed or stopped: every posted command not yet durable is lost
        to its poster."""
        try:
            self.writer.check()
            error = JournalUnavailable("the journal stopped")
        except JournalUnavailable as exc:  # its own account of the failure
            error = exc
        queue = self._to_publish
        while queue:
            _gseq, item, callbacks = queue.popleft()
            if type(item) is Submission:
                callbacks[1](error)

    def _checkpoints(self, directory: Path, every: int, parts: Sequence[checkpoint.Part]) -> None:
        self.checkpoint_every = every
        self._directory = directory
        self._parts = parts
        self._due_at = (self.recovery.checkpoint or 0) + every

    def _last_record(self) -> tuple[Position, tuple[int, int, bytes]] | None:
        """Where the next record goes and (segment, offset, SHA-256) of the last one, if
        this writer made it durable (else None: nothing new to checkpoint)."""
        frame = self.writer.last_frame
        if not frame:
            return None
        pos = self.writer.store.position
        position = Position(pos.index, pos.size, pos.next_gseq, pos.records)
        return position, (pos.index, pos.size - len(frame), hashlib.sha256(frame[FRAME_SIZE:]).digest())

    def _maybe_checkpoint(self, _records: int = 0, _seconds: float = 0.0) -> None:
        """After a batch is published: begin a checkpoint (a forked child) if one is due
        and everything applied is durable. If one is due but records are in flight, have
        the writer drain (see `JournalWriter.drain`) so that such a moment comes; if it
        does not come within DRAIN_PUBLISHES publications (clients that keep sending), stop
        draining and try again DRAIN_BACKOFF seconds later."""
        if not self.checkpoint_every or self._directory is None or self._checkpoint_child is not None:
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
                    self.checkpoint_stats["deferred"] += 1
            return
        writer.drain = False
        last = self._last_record()
        if last is None:
            return
        try:
            self._checkpoint_child = checkpoint.fork_write(self._directory, j, last[0], last[1], self._parts,
                                                           self.clock())
        except OSError as exc:  # no fork now (memory, process limit)
            self._checkpoint_ended(False, j.gseq, 0.0, f"cannot start the checkpoint process: {exc}")
            return
        self._child_started.set()

    def checkpoint_status(self) -> dict[str, Any]:
        """Checkpoints written, failed and deferred (the load never paused) since the
        start, the newest one's last record, how long it took, and the last failure."""
        return dict(self.checkpoint_stats)

    async def _watch_checkpoints(self) -> None:
        """Reap each checkpoint child as it ends (its error pipe reaches end of file), or
        kill it after CHECKPOINT_TIMEOUT; never blocks the event loop."""
        while True:
            await self._child_started.wait()
            self._child_started = trio.Event()
            child = self._checkpoint_child
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
        if self._checkpoint_child is child:
            self._checkpoint_child = None
            self._checkpoint_ended(written, child.gseq, child.seconds, child.error)

    def _checkpoint_ended(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        stats = self.checkpoint_stats
        if written:
            stats.update(written=stats["written"] + 1, last_gseq=gseq, last_seconds=seconds)
            self._due_at = gseq + self.checkpoint_every
            self._failures = 0
        else:  # tried again after a quarter of the interval and a growing delay (1 s, 2 s, ... 5 min)
            stats.update(failed=stats["failed"] + 1, last_error=error)
            self._due_at = self.journaled.gseq + max(1, self.checkpoint_every // 4)
            self._not_before = time.monotonic() + min(2.0 ** self._failures, 300.0)
            self._failures += 1
        for hook in self.on_checkpoint:
            hook(written, gseq, seconds, error)

    async def _final_checkpoint(self) -> None:
        """On a clean exit (the journal flushed): let a running checkpoint child finish
        (or kill it after CHECKPOINT_WAIT), then write one of the final state here if
        records were added since the newest one."""
        if not self.checkpoint_every or self._directory is None:
            return
        child = self._checkpoint_child
        if child is not None:
            with trio.move_on_after(CHECKPOINT_WAIT):
                while self._checkpoint_child is child:
                    await trio.sleep(0.01)
            if self._checkpoint_child is child:  # stuck: the next start does without it
                child.stop(f"the checkpoint process was still running {CHECKPOINT_WAIT:.0f} s after the exit began")
                with trio.move_on_after(5.0):  # the watcher reaps it (unless the kernel cannot kill it yet)
                    while self._checkpoint_child is child:
                        await trio.sleep(0.01)
        j = self.journaled
        last = self._last_record()
        if last is None or j.gseq <= (self.checkpoint_stats["last_gseq"] or 0) \
                or j.gseq != self.writer.durable_gseq or self.writer.failure is not None:
            return
        started = time.monotonic()
        try:
            pieces = checkpoint.encode(j, last[0], last[1], self._parts, self.clock())
            await trio.to_thread.run_sync(checkpoint.write, self._directory, pieces, j.gseq)
        except Exception as exc:  # the journal is flushed: the next start only replays more
            self._checkpoint_ended(False, j.gseq, time.monotonic() - started, f"{type(exc).__name__}: {exc}")
            return
        self._checkpoint_ended(True, j.gseq, time.monotonic() - started, "")

    async def _timer(self) -> None:
        """Tick at each deadline (openings, closes, awards) as the wall clock reaches it."""
        while True:
            deadline = self.engine.next_deadline()
            self._deadline_moved = trio.Event()
            if deadline is None:
                await self._deadline_moved.wait()
                continue
            delay = (deadline - self.clock()) / 1e6
            if delay > 0:
                with trio.move_on_after(min(delay, MAX_TIMER_SLEEP)):
                    await self._deadline_moved.wait()
                continue
            try:
                await self.execute(Tick(self.now()))
            except JournalUnavailable:
                return  # intake has stopped; the service reports it
