"""Journals for tests: commands from the seeded model stream, written as an engine would."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import trio
from test_model_stream import Stream

from auction_engine.cli import write_journal
from auction_engine.commands import Command
from auction_engine.journal import FileOps, Journaled, Position, SegmentStore
from auction_engine.journal.format import FormatError, encode_command
from auction_engine.runtime import Consumer
from auction_engine.scenario import load_scenario, run_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def stream_commands(seed: int, count: int) -> list[Command]:
    """`count` commands of several interleaved auctions (the model stream's generator)."""
    stream = Stream(seed)
    while stream.sent < count:
        stream.step()
    return stream.commands


def journalable(command: Command) -> bool:
    """False for what the journal refuses (amounts beyond 64 bits, in the stream's junk)."""
    try:
        msgpack.packb(encode_command(command))
    except (OverflowError, TypeError, ValueError):
        return False
    return True


def write(directory: Path, commands: list[Command], *, segment_size: int = 64 << 20,
          batch: int = 50) -> Journaled:
    """Run `commands` through a `Journaled` and write its records in batches of `batch`
    commands; commands that cannot be journaled (amounts beyond 64 bits) are skipped."""
    directory.mkdir(parents=True, exist_ok=True)
    journaled = Journaled()
    store = SegmentStore(directory, Position(0, 0, 1), segment_size=segment_size, durability="none")
    pending: list[bytes] = []
    for i, command in enumerate(commands):
        try:
            pending += journaled.submit(command).frames
        except FormatError:
            continue
        if i % batch == batch - 1 and pending:
            store.append(pending)
            pending = []
    if pending:
        store.append(pending)
    store.close()
    return journaled


def scenario_journal(directory: Path, name: str = "seei-supply-2-lots.json") -> Journaled:
    """The journal of an example scenario, as `simulate --journal` writes it."""
    scenario = load_scenario(json.loads((EXAMPLES / name).read_text()))
    journaled = Journaled()
    write_journal(directory, run_scenario(scenario, journal=journaled).frames)
    return journaled


def segment(directory: Path) -> Path:
    """The only segment of a journal directory."""
    (path,) = sorted(directory.glob("*.journal"))
    return path


def reference_verify(path: Path) -> dict[str, object]:
    """`replay.verify`'s result (as `to_dict()`, without `seconds`) computed the plain way:
    `JournalReader.records()` and `Verifier.feed` record by record, every rule in order. The
    fast path (`Verifier.run`) and the shared one (several processes) must agree with it."""
    from auction_engine.journal import JournalCorruption, JournalReader, Verifier
    from replay.verify import AuctionSummary, VerifyResult

    result = VerifyResult(str(path))
    reader = JournalReader(path)
    verifier = Verifier()
    try:
        for record, where in reader.records():
            header = reader.headers[-1]
            if result.records == 0:
                result.kind = reader.headers[0].kind
                verifier.contiguous = result.kind == "engine"
                if result.kind == "export":
                    verifier.journaled.gseq = reader.headers[0].first_gseq - 1
            if header.kind == "export" and record.auction_id != header.auction_id:
                raise JournalCorruption("foreign_record", f"an export of {header.auction_id!r} holds a record of "
                                        f"{record.auction_id!r}", where)
            verifier.feed(record, where)
            result.records += 1
            summary = result.auctions.setdefault(record.auction_id, AuctionSummary(first_gseq=record.gseq))
            summary.records += 1
            summary.head = record.digest.hex()
            summary.last_gseq = record.gseq
    except JournalCorruption as exc:
        result.problem = exc
    result.torn = reader.torn
    result.replayed = verifier.replayed
    if reader.headers and not result.kind:
        result.kind = reader.headers[0].kind
    result.state_hash = verifier.journaled.host.state_hash()
    return plain_result(result.to_dict())


def plain_result(result: dict[str, object]) -> dict[str, object]:
    """A verification result without its timing, to compare."""
    return {k: v for k, v in result.items() if k != "seconds"}


class Heard(Consumer):
    """A runtime consumer made of callables, for tests."""

    def __init__(self, *, events: Callable[[list[Any]], None] | None = None,
                 write: Callable[[int, float], None] | None = None,
                 checkpoint: Callable[[bool, int, float, str], None] | None = None) -> None:
        self._events, self._write, self._checkpoint = events, write, checkpoint

    def on_events(self, events: list[Any]) -> None:
        if self._events is not None:
            self._events(events)

    def on_write(self, records: int, seconds: float) -> None:
        if self._write is not None:
            self._write(records, seconds)

    def on_checkpoint(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        if self._checkpoint is not None:
            self._checkpoint(written, gseq, seconds, error)


class SteppedSync(FileOps):
    """A real fdatasync that waits for the test's go: a test drives the writer batch by
    batch, whatever the machine's load. Each sync (one per batch) hands `held()` an Event
    and waits for it to be set; `release()` lets every sync through from then on. Build
    it in the test's trio run (the writer then uses its sync thread: `sync` is overridden),
    `free` to let syncs go until `hold()`, and release it before the runtime closes (its
    flush syncs too)."""

    def __init__(self, *, free: bool = False) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send, self._arrivals = trio.open_memory_channel[trio.Event](math.inf)
        self._free = free  # True: syncs go at once until `hold()`
        self._issued: list[trio.Event] = []

    def sync(self, fd: int) -> None:  # on the writer's sync thread
        go = trio.from_thread.run_sync(self._arrive, trio_token=self._token)
        if go is not None:
            trio.from_thread.run(go.wait, trio_token=self._token)
        super().sync(fd)

    def _arrive(self) -> trio.Event | None:  # on the trio thread, as `release` is: no race
        if self._free:
            return None
        go = trio.Event()
        self._issued.append(go)
        self._send.send_nowait(go)
        return go

    async def held(self) -> trio.Event:
        """The go of the next sync, once it waits for it: a batch is in flight, and the
        writer has already published the one before (it reached this sync without yielding)."""
        return await self._arrivals.receive()

    def hold(self) -> None:
        """Hold every sync from the next one on (built `free`)."""
        self._free = False

    def release(self) -> None:
        """Let the waiting sync and every later one go."""
        self._free = True
        for go in self._issued:
            go.set()
