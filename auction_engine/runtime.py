"""The trio shell around the core: command -> core -> journal -> acknowledgement; timers.

`Runtime.open(directory)` recovers the host (every procedure kind) from its journal and
runs the group-commit writer and the deadline timer in a nursery. `submit(CommandType,
*fields)` stamps the command with the wall clock (never earlier than the host's time),
runs it at once, and returns its events only once its records (and every earlier one) are
durable. Data flows one way: the writer reports each batch to the runtime, which hands it
to the consumers `attach`ed in that order (rooms, feed, metrics): events in journal order
once durable, and one snapshot per changed lot per batch, taken as the batch is cut (the
state of its last record) and delivered once it is durable.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from .checkpointer import Checkpointer
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
from .journal.checkpoint import Part
from .journal.format import FormatError, Record, decode_event, encode_events
from .journal.recovery import RecordHook
from .journal.sequencer import Journaled, Submission
from .journal.store import DEFAULT_SEGMENT_SIZE, FileOps
from .journal.writer import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY, DEFAULT_SPLIT_FROM, DEFAULT_SYNC_IN
from .ranking import LotSnapshot

# The journal's names that the gateway needs are re-exported: the gateway reaches the
# journal only through this module (a contract in .importlinter).
__all__ = ["FormatError", "JournalUnavailable", "Part", "Record", "Runtime", "Submission", "decode_event",
           "encode_events", "wall_clock_us"]

MAX_TIMER_SLEEP = 60.0  # seconds: the timer re-reads the clock at least this often


def wall_clock_us() -> int:
    """Microseconds since the epoch, UTC: the engine's time."""
    return time.time_ns() // 1000




class Consumer:
    """A part of the service that follows the durable journal. The runtime calls the
    consumers in the order given to `attach`, on its own task; override what you need."""

    def on_events(self, events: list[Event]) -> None:
        """One command's events (its due ticks' first), once durable, in journal order."""

    def on_views(self, snapshots: list[LotSnapshot]) -> None:
        """A snapshot of each lot a durable batch changed (after that batch's events)."""

    def on_write(self, records: int, seconds: float) -> None:
        """A write + fsync of `records` records became durable, `seconds` after its cut."""

    def on_failure(self, exc: BaseException) -> None:
        """The journal failed: intake stopped until a restart."""

    def on_checkpoint(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        """A recovery checkpoint as of record `gseq` was written, or failed with `error`."""


def _overridden(consumers: Sequence[Consumer], name: str) -> tuple[Callable[..., None], ...]:
    return tuple(getattr(c, name) for c in consumers if getattr(type(c), name) is not getattr(Consumer, name))

# Events that change what a lot's viewers see (BidRejected: the observers' count).
LOT_EVENTS = frozenset({BidAccepted, BidRejected, LotOpened, LotExtended, LotSuspended, LotResumed, LotClosed,
                        LotCancelled, LotAwarded, LotUnsuccessful})


class Runtime:
    """One engine process's command path. Build it with `Runtime.open`."""

    def __init__(self, journaled: Journaled, writer: JournalWriter, report: RecoveryReport,
                 clock: Callable[[], int] = wall_clock_us, *, checkpoint_dir: Path | None = None,
                 checkpoint_every: int = 0, parts: Sequence[checkpoint.Part] = ()) -> None:
        self.journaled = journaled
        self.host = journaled.host
        self.engine = journaled.engine  # the auction kind: its views and results
        self.writer = writer
        self.recovery = report
        self.clock = clock
        self.consumers: tuple[Consumer, ...] = ()
        self._on_events: tuple[Callable[[list[Event]], None], ...] = ()
        self._on_views: tuple[Callable[[list[LotSnapshot]], None], ...] = ()
        self._deadline_moved = trio.Event()
        # (gseq, a submission and its (on_durable, on_lost) | snapshots and None), in journal order
        self._to_publish: deque[tuple[int, Submission | list[LotSnapshot], Any]] = deque()
        self._dirty: set[tuple[str, str]] = set()  # lots changed since the last snapshot
        writer.listener = self
        self.checkpoints = Checkpointer(journaled, writer, clock, checkpoint_dir, checkpoint_every, parts,
                                        report.checkpoint, self._checkpoint_ended)

    @classmethod
    @asynccontextmanager
    async def open(cls, directory: str | os.PathLike[str], *, durability: str = "fsync",
                   segment_size: int = DEFAULT_SEGMENT_SIZE, max_batch: int = DEFAULT_MAX_BATCH,
                   max_delay: float = DEFAULT_MAX_DELAY, clock: Callable[[], int] = wall_clock_us,
                   ops: FileOps | None = None, on_record: RecordHook | None = None,
                   sync_in: str = DEFAULT_SYNC_IN, split_from: int = DEFAULT_SPLIT_FROM, pipeline: bool = True,
                   checkpoint_every: int = 0, parts: Sequence[checkpoint.Part] = ()) -> AsyncIterator[Runtime]:
        """Recover from `directory` (`on_record` sees every replayed record), run the
        writer and the timer; flush on exit. `checkpoint_every` > 0: start from the newest
        usable checkpoint, write one (from a forked child) once at least that many records
        were added since the last and everything applied is durable, and one on a clean
        exit; `parts`: the caller's state derived through `on_record`, kept in them (a
        start from a checkpoint shows `on_record` only the records after it, so whatever
        the caller derives from records must be a part; after a checkpoint given up
        midway, the parts are emptied and `on_record` sees every record from the first).
        `pipeline=False`: the writer never sends a batch behind the one being synced (see
        `JournalWriter`)."""
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be 0 (never) or more, not {checkpoint_every}")
        journaled, report = recover(directory, on_record, checkpoints=checkpoint_every > 0, parts=parts)
        gc.collect()
        gc.freeze()  # what recovery built lives long: keep it out of every later collection
        store = SegmentStore(directory, report.position, segment_size=segment_size, durability=durability,
                             ops=ops)
        writer = JournalWriter(store, max_batch=max_batch, max_delay=max_delay, sync_in=sync_in,
                               split_from=split_from, pipeline=pipeline)
        runtime = cls(journaled, writer, report, clock, checkpoint_dir=Path(directory),
                      checkpoint_every=checkpoint_every, parts=parts)
        async with runtime.running():
            yield runtime

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Runtime]:
        """Run the writer, the timer and the checkpoints; flush on exit (`open` does it; a
        runtime on another journal of record, built with its own writer, enters this)."""
        writer, runtime = self.writer, self
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            nursery.start_soon(runtime._timer)
            nursery.start_soon(runtime.checkpoints.watch)
            try:
                yield runtime
            finally:
                with trio.CancelScope(shield=True):
                    await writer.close()
                    await runtime.checkpoints.final()
                nursery.cancel_scope.cancel()

    def attach(self, *consumers: Consumer) -> None:
        """The consumers of the durable journal, in the order they are called (once)."""
        if self.consumers:
            raise RuntimeError("consumers are attached once")
        self.consumers = consumers
        self._on_events = _overridden(consumers, "on_events")
        self._on_views = _overridden(consumers, "on_views")

    def now(self) -> int:
        """The time for the next command: the clock, but never before the host's time."""
        return max(self.clock(), self.host.now)

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
        host = self.host
        before = host.deadline_bound()  # the timer sleeps until the earliest deadline at most
        submission = self.journaled.submit(command)
        if submission.frames:
            self._to_publish.append((submission.last_gseq, submission, (on_durable, on_lost)))
            dirty = self._dirty
            for event in submission.events:
                if type(event) in LOT_EVENTS:
                    dirty.add((event[1], event[2]))  # type: ignore[misc]  # (auction_id, lot_id)
            writer.append(submission.frames, submission.last_gseq)  # last: it may cut a batch (`batch_cut`)
        elif self._to_publish:  # nothing new to write: answered in turn
            self._to_publish.append((self.journaled.gseq, submission, (on_durable, on_lost)))
        else:  # everything posted so far is durable and published
            on_durable(submission)
        if host.deadline_bound() != before:  # perhaps earlier: let the timer look again
            self._deadline_moved.set()
        return submission

    async def serve_case(self, case_id: str) -> None:
        """A room of the case opens: this runtime holds every case (a gateway that follows
        only the cases it serves overrides this)."""

    def release_case(self, case_id: str) -> None:
        """The case's last room connection closed (see `serve_case`)."""

    def deadlines_moved(self) -> None:
        """Cases came in from elsewhere (`Journaled.adopt`): the timer looks at the deadlines again."""
        self._deadline_moved.set()

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

    # -- what the writer reports (journal.writer.WriterListener) -------------------------------

    def batch_cut(self, last_gseq: int, everything: bool) -> None:
        """As a batch is cut: if it ends with the latest record, the engine's state is the
        batch's; snapshot every lot changed since the last snapshot, to publish with it."""
        if not everything or not self._dirty or not self._on_views:
            return
        snapshots = []
        for aid, lid in self._dirty:
            with contextlib.suppress(QueryError):  # a refused bid naming no real lot, beside a due tick
                snapshots.append(self.engine.lot_snapshot(aid, lid))
        self._dirty.clear()
        self._to_publish.append((last_gseq, snapshots, None))

    def batch_written(self, records: int, seconds: float) -> None:
        for consumer in self.consumers:
            consumer.on_write(records, seconds)

    def batch_durable(self, records: int = 0, seconds: float = 0.0) -> None:
        """Once a batch is durable: answer its posters and hand its events and snapshots
        to the consumers, in journal order, once each; then a checkpoint may begin (the
        consumers keep the checkpoint's parts up to date)."""
        self._publish()
        self.checkpoints.after_batch()

    def writer_failed(self, exc: BaseException) -> None:
        self._lose(exc)
        for consumer in self.consumers:
            consumer.on_failure(exc)

    def writer_stopped(self) -> None:
        self._lose()

    def _checkpoint_ended(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        for consumer in self.consumers:
            consumer.on_checkpoint(written, gseq, seconds, error)

    def _publish(self) -> None:
        durable = self.writer.durable_gseq
        queue = self._to_publish
        while queue and queue[0][0] <= durable:
            _gseq, item, callbacks = queue.popleft()
            if type(item) is Submission:
                callbacks[0](item)
                if item.frames:
                    for on_events in self._on_events:
                        on_events(item.events)
            else:
                for on_views in self._on_views:
                    on_views(item)  # type: ignore[arg-type]

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

    async def _timer(self) -> None:
        """Tick at each deadline (openings, closes, awards) as the wall clock reaches it."""
        while True:
            deadline = self.host.next_deadline()
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
                if not await self.writer.until_available():
                    return  # intake has stopped for good; the service reports it
