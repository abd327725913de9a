"""The trio shell around the core: command -> core -> journal -> acknowledgement; timers.

`Runtime.open(directory)` recovers the engine from its journal and runs the group-commit
writer and the deadline timer in a nursery. `submit(CommandType, *fields)` stamps the
command with the wall clock (never earlier than the engine's time), runs it through the
core at once, and returns its events only once its records (and every earlier one) are
durable. Listeners see events in journal order, after they are durable.
"""

from __future__ import annotations

import gc
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from .commands import Command, Tick
from .events import Event
from .journal import JournalUnavailable, JournalWriter, RecoveryReport, SegmentStore, recover
from .journal.sequencer import Journaled, Submission
from .journal.store import DEFAULT_SEGMENT_SIZE, FileOps
from .journal.writer import DEFAULT_MAX_BATCH, DEFAULT_MAX_DELAY

MAX_TIMER_SLEEP = 60.0  # seconds: the timer re-reads the clock at least this often


def wall_clock_us() -> int:
    """Microseconds since the epoch, UTC: the engine's time."""
    return time.time_ns() // 1000


Listener = Callable[[list[Event]], None]


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
        self._deadline_moved = trio.Event()
        self._to_publish: deque[tuple[int, list[Event]]] = deque()

    @classmethod
    @asynccontextmanager
    async def open(cls, directory: str | os.PathLike[str], *, durability: str = "fsync",
                   segment_size: int = DEFAULT_SEGMENT_SIZE, max_batch: int = DEFAULT_MAX_BATCH,
                   max_delay: float = DEFAULT_MAX_DELAY, clock: Callable[[], int] = wall_clock_us,
                   ops: FileOps | None = None) -> AsyncIterator[Runtime]:
        """Recover from `directory`, run the writer and the timer; flush on exit."""
        journaled, report = recover(directory)
        gc.collect()
        gc.freeze()  # what recovery built lives long: keep it out of every later collection
        store = SegmentStore(directory, report.position, segment_size=segment_size, durability=durability,
                             ops=ops)
        writer = JournalWriter(store, max_batch=max_batch, max_delay=max_delay)
        runtime = cls(journaled, writer, report, clock)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            nursery.start_soon(runtime._timer)
            try:
                yield runtime
            finally:
                with trio.CancelScope(shield=True):
                    await writer.close()
                nursery.cancel_scope.cancel()

    def now(self) -> int:
        """The time for the next command: the clock, but never before the engine's time."""
        return max(self.clock(), self.engine.now)

    async def submit(self, command_type: type[Any], *fields: Any) -> list[Event]:
        """Run `command_type(now, *fields)`; return its events once they are durable.
        Raises `JournalUnavailable` once the journal has failed (the outcome is unknown)."""
        return (await self.execute(command_type(self.now(), *fields))).events

    async def execute(self, command: Command) -> Submission:
        """Run a command already stamped with its time (at or after the engine's); return
        once durable. A bid repeating a journaled client_bid_id gets its first outcome
        back (`duplicate` is set) and changes nothing."""
        writer = self.writer
        writer.check()  # before the core changes anything
        before = self.engine.next_deadline()
        submission = self.journaled.submit(command)
        if submission.frames:
            writer.append(submission.frames, submission.last_gseq)
            self._to_publish.append((submission.last_gseq, submission.events))
        if self.engine.next_deadline() != before:
            self._deadline_moved.set()
        await writer.wait_durable(submission.last_gseq)
        self._publish()
        return submission

    def _publish(self) -> None:
        """Hand durable events to the listeners, in journal order, once each."""
        durable = self.writer.durable_gseq
        queue = self._to_publish
        while queue and queue[0][0] <= durable:
            _gseq, events = queue.popleft()
            for listener in self.listeners:
                listener(events)

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
