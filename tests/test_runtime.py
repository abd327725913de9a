"""The trio shell: group commit under concurrent producers, acks only once durable, the
deadline timer (on trio's MockClock), and a disk that fills up or fails mid-run."""

from __future__ import annotations

import errno
import os
import signal
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from factories import END, START, S, config
from journals import Heard

from auction_engine import AdmitBidder, CreateAuction, PlaceBid
from auction_engine.events import BidAccepted, Event, LotAwarded, LotClosed, LotOpened
from auction_engine.journal import FileOps, JournalReader, JournalUnavailable, JournalWriter, SegmentStore, recover
from auction_engine.journal.sync import parse_answers
from auction_engine.journal.writer import SYNC_MODES
from auction_engine.runtime import Runtime
from replay import verify

BIDDERS = [f"b{i:03d}" for i in range(60)]


def mock_clock_us(at: int) -> Callable[[], int]:
    """Engine time from trio's clock (a MockClock in timer tests), `at` on the first call."""
    origin: list[float] = []

    def now() -> int:
        if not origin:
            origin.append(trio.current_time())
        return at + int((trio.current_time() - origin[0]) * 1_000_000)

    return now


async def open_auction(runtime: Runtime, **overrides: object) -> None:
    events = await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS, **overrides)))
    assert type(events.events[0]).__name__ == "AuctionCreated"


async def bid_many(runtime: Runtime, bidder: str, count: int, acked: list[tuple[str, str, object]]) -> None:
    for n in range(count):
        cid = f"{bidder}-{n}"
        events = await runtime.submit(PlaceBid, "A1", "L1", bidder, 99_000_000 - len(acked) * 100 - n, cid)
        acked.append((bidder, cid, type(events[-1]).__name__))


async def bid_until_refused(runtime: Runtime, bidder: str, count: int, acked: list[tuple[str, str, object]],
                            refused: list[str]) -> None:
    """`bid_many`, noting the bidder in `refused` once the journal stops taking bids."""
    try:
        await bid_many(runtime, bidder, count, acked)
    except JournalUnavailable as exc:
        assert exc.code == "journal_unavailable"
        refused.append(bidder)


@pytest.mark.parametrize("sync_in", SYNC_MODES)
@pytest.mark.trio
async def test_concurrent_producers_share_fsyncs_and_every_ack_is_durable(tmp_path: Path, sync_in: str) -> None:
    acked: list[tuple[str, str, object]] = []
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S), sync_in=sync_in) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS:
                nursery.start_soon(bid_many, runtime, bidder, 10, acked)
        stats = runtime.writer.stats
        state = runtime.host.state_hash()
    assert len(acked) == 600
    assert stats["records"] >= 600 and stats["batches"] < stats["records"] / 5  # grouped
    journaled, _report = recover(tmp_path)
    assert journaled.host.state_hash() == state
    journaled_ids = {r.command[6] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "PlaceBid"}
    assert journaled_ids == {cid for _, cid, _ in acked}


@pytest.mark.parametrize("sync_in", SYNC_MODES)
@pytest.mark.trio
async def test_an_idle_writer_splits_a_burst_so_that_syncs_overlap_the_work(tmp_path: Path, sync_in: str) -> None:
    """60 producers starting together post in one round: an idle writer syncs half of
    them first, and the halves then mostly stay apart (each one's sync overlapping the
    other's work; timing may merge two groups now and then, and the next idle cut splits
    them again); told never to split, the first batch holds all 60."""
    for split_from, first in ((32, 30), (0, 60)):
        sizes: list[int] = []
        acked: list[tuple[str, str, object]] = []
        directory = tmp_path / f"split-{split_from}"
        async with Runtime.open(directory, clock=mock_clock_us(START + S), sync_in=sync_in,
                                split_from=split_from) as runtime:
            await open_auction(runtime, lot={"starting_price": "1000000.00"})
            runtime.attach(Heard(write=lambda records, _seconds, sizes=sizes: sizes.append(records)))
            async with trio.open_nursery() as nursery:
                for bidder in BIDDERS:
                    nursery.start_soon(bid_many, runtime, bidder, 10, acked)
            state = runtime.host.state_hash()
        assert len(acked) == 600 and sum(sizes) == 600
        assert sizes[0] == first, sizes
        if split_from:
            assert statistics.median(sizes) <= 30 and len(sizes) <= 60, sizes  # split, yet grouped
        journaled, _report = recover(directory)
        assert journaled.host.state_hash() == state


@pytest.mark.trio
async def test_the_next_group_is_sent_behind_the_batch_in_flight(tmp_path: Path) -> None:
    """With the sync process, a group of records as large as the batch in flight goes to
    the disk behind it (its fdatasync follows at once), and everything stays in order and
    durable; `pipeline=False` never does so; the thread sync takes one batch at a time."""
    for sync_in, pipeline in (("process", True), ("process", False), ("thread", True)):
        directory = tmp_path / f"{sync_in}-{pipeline}"
        journaled, report = recover(directory)
        writer = JournalWriter(SegmentStore(directory, report.position), sync_in=sync_in, pipeline=pipeline)
        runtime = Runtime(journaled, writer, report, mock_clock_us(START + S))
        acked: list[tuple[str, str, object]] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await open_auction(runtime, lot={"starting_price": "1000000.00"})
            async with trio.open_nursery() as producers:
                for bidder in BIDDERS:
                    producers.start_soon(bid_many, runtime, bidder, 10, acked)
            state = runtime.host.state_hash()
            await writer.close()
        assert len(acked) == 600 and writer.stats["records"] == 601
        if sync_in == "process" and pipeline:
            assert writer.stats["pipelined"] > 0
        else:
            assert writer.stats["pipelined"] == 0
        recovered, _report = recover(directory)
        assert recovered.host.state_hash() == state
        assert verify(directory).ok


class FailingWrite(FileOps):
    """Fails the `nth` write (ENOSPC, nothing written), then every later one."""

    def __init__(self, nth: int) -> None:
        self.nth = nth
        self.writes = 0

    def write(self, fd: int, data: bytes) -> None:
        self.writes += 1
        if self.writes >= self.nth:
            raise OSError(errno.ENOSPC, "injected: no space left on device")
        super().write(fd, data)


@pytest.mark.trio
async def test_a_second_batch_that_cannot_be_written_leaves_the_first_durable_and_answered(tmp_path: Path) -> None:
    """60 producers post together: the idle writer sends 30, and the other 30 go behind
    them at once. That second write fails: the first 30 are still made durable and
    acknowledged, every other bid is refused, and the journal holds exactly those."""
    acked: list[tuple[str, str, object]] = []
    refused: list[str] = []
    # writes: the segment header, the auction's creation, the first 30 bids, the second 30
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S), ops=FailingWrite(4)) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS:
                nursery.start_soon(bid_until_refused, runtime, bidder, 5, acked, refused)
        assert runtime.writer.failure is not None and runtime.writer.stats["batches"] == 2
    assert len(acked) == 30 and len(refused) == 60
    present = [r.command[6] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "PlaceBid"]
    assert sorted(present) == sorted(cid for _, cid, _ in acked)
    assert verify(tmp_path).ok


@pytest.mark.trio
async def test_a_batch_that_cannot_follow_the_ones_in_flight_lets_them_finish(tmp_path: Path) -> None:
    """One batch syncs and a second was sent behind it; when the first is durable, a third
    cannot be written (ENOSPC): the first two are still made durable and answered, the
    third is lost, and intake has stopped."""
    _journaled, report = recover(tmp_path)
    writer = JournalWriter(SegmentStore(tmp_path, report.position, ops=FailingWrite(4)))  # header, 1, 2, then 3
    results: dict[int, str] = {}

    async def wait(gseq: int) -> None:
        try:
            await writer.wait_durable(gseq)
            results[gseq] = "durable"
        except JournalUnavailable:
            results[gseq] = "lost"

    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        writer.append([b"record 1"], 1)
        await trio.testing.wait_all_tasks_blocked()  # the first batch is syncing
        writer.append([b"record 2"], 2)  # as many as the batch in flight: sent behind it
        assert writer.stats["pipelined"] == 1
        writer.append([b"record 3"], 3)  # cut once the first is durable: its write fails
        for gseq in (1, 2, 3):
            nursery.start_soon(wait, gseq)
    assert results == {1: "durable", 2: "durable", 3: "lost"}
    assert writer.failure is not None and writer.failure.errno == errno.ENOSPC
    with pytest.raises(JournalUnavailable):
        writer.check()


def test_the_sync_processs_answers_are_read_however_they_arrive() -> None:
    assert parse_answers(b"\0\0") == (2, None, b"")
    ok, error, rest = parse_answers(b"\0E2")  # an answer, and a failure cut short
    assert (ok, error, rest) == (1, None, b"E2")
    ok, error, rest = parse_answers(rest + b"8;\0")  # the failure, then a later answer
    assert ok == 0 and error is not None and error.errno == errno.ENOSPC and rest == b""
    ok, error, _rest = parse_answers(b"\0garbage")
    assert ok == 1 and error is not None and "sync process ended" in str(error)


@pytest.mark.trio
async def test_the_timer_opens_and_closes_lots_at_their_deadlines(tmp_path: Path, autojump_clock: object) -> None:
    seen: list[Event] = []
    opened, awarded = trio.Event(), trio.Event()

    def listen(events: list[Event]) -> None:
        seen.extend(events)
        if any(type(e) is LotOpened for e in events):
            opened.set()
        if any(type(e) is LotAwarded for e in events):
            awarded.set()

    # durability "none" writes in place: a worker thread would let the MockClock jump ahead
    async with Runtime.open(tmp_path, clock=mock_clock_us(START - 60 * S), durability="none") as runtime:
        runtime.attach(Heard(events=listen))
        await open_auction(runtime)
        with trio.fail_after(3600):
            await opened.wait()
        assert runtime.clock() >= START  # not a moment early
        await runtime.submit(PlaceBid, "A1", "L1", "b001", 90_000)
        with trio.fail_after(2 * 3600):
            await awarded.wait()
        assert runtime.clock() >= END
        timed = [(type(e), e.time) for e in seen if type(e) in (LotOpened, LotClosed, LotAwarded)]
        assert timed == [(LotOpened, START), (LotClosed, END), (LotAwarded, END)]
        assert runtime.engine.next_deadline() is None
    assert verify(tmp_path).ok


class FillingDisk(FileOps):
    """A disk with `room` bytes left: the write that passes it writes what fits, then fails
    with ENOSPC (as write(2) does); `broken_truncate` also refuses the clean-up."""

    def __init__(self, room: int, *, code: int = errno.ENOSPC, broken_truncate: bool = False) -> None:
        self.room = room
        self.code = code
        self.broken_truncate = broken_truncate

    def write(self, fd: int, data: bytes) -> None:
        if len(data) > self.room:
            super().write(fd, data[:self.room])
            self.room = 0
            raise OSError(self.code, "injected: " + ("no space left on device" if self.code == errno.ENOSPC else
                                                      "input/output error"))
        self.room -= len(data)
        super().write(fd, data)

    def truncate(self, fd: int, size: int) -> None:
        if self.broken_truncate:
            raise OSError(errno.EIO, "injected: truncate failed")
        super().truncate(fd, size)


@pytest.mark.parametrize("sync_in", SYNC_MODES)
@pytest.mark.parametrize(("code", "broken_truncate"), [(errno.ENOSPC, False), (errno.ENOSPC, True),
                                                       (errno.EIO, False)])
@pytest.mark.trio
async def test_a_full_or_failing_disk_stops_intake_and_loses_nothing_acknowledged(
        tmp_path: Path, code: int, broken_truncate: bool, sync_in: str) -> None:
    acked: list[tuple[str, str, object]] = []
    refused: list[str] = []
    disk = FillingDisk(40_000, code=code, broken_truncate=broken_truncate)
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S), ops=disk, sync_in=sync_in) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS[:20]:
                nursery.start_soon(bid_until_refused, runtime, bidder, 50, acked, refused)
        assert refused and runtime.writer.failure is not None
        with pytest.raises(JournalUnavailable):  # intake stays stopped
            await runtime.submit(AdmitBidder, "A1", "late")
    assert 0 < len(acked) < 1000
    journaled, report = recover(tmp_path)
    assert (report.torn is not None) == broken_truncate
    present = {r.command[6] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "PlaceBid"}
    assert {cid for _, cid, _ in acked} <= present  # every acknowledged bid survived
    accepted = [e for e in journaled.engine.auction("A1").lots["L1"].book.ranked()]
    assert accepted and all(isinstance(a.bidder_id, str) for a in accepted)
    assert verify(tmp_path).ok


@pytest.mark.trio
async def test_a_restart_continues_the_same_journal(tmp_path: Path) -> None:
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S)) as runtime:
        await open_auction(runtime)
        first = await runtime.submit(PlaceBid, "A1", "L1", "b001", 90_000, "x")
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + 2 * S)) as runtime:
        assert runtime.recovery.records == 2  # the creation (the lot opened in it) and the bid
        again = await runtime.execute(PlaceBid(runtime.now(), "A1", "L1", "b001", 80_000, "x"))
        assert again.duplicate and again.events == [e for e in first if type(e) is BidAccepted]
        await runtime.submit(PlaceBid, "A1", "L1", "b002", 80_000, "y")
    result = verify(tmp_path)
    assert result.ok and result.records == 3


@pytest.mark.parametrize("sync_in", SYNC_MODES)
@pytest.mark.trio
async def test_batches_that_fill_segments_go_on_in_the_next_one(tmp_path: Path, sync_in: str) -> None:
    acked: list[tuple[str, str, object]] = []
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S), segment_size=4096, sync_in=sync_in) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS[:30]:
                nursery.start_soon(bid_many, runtime, bidder, 10, acked)
        state = runtime.host.state_hash()
    segments = sorted(tmp_path.glob("*.journal"))
    assert len(acked) == 300 and len(segments) > 10
    journaled, report = recover(tmp_path)
    assert journaled.host.state_hash() == state and report.torn is None
    assert verify(tmp_path).ok


@pytest.mark.trio
async def test_the_sync_process_ending_stops_intake_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    acked: list[tuple[str, str, object]] = []
    refused: list[str] = []

    async def producer(bidder: str) -> None:
        try:
            await bid_many(runtime, bidder, 1000, acked)
        except JournalUnavailable as exc:
            assert "sync process" in str(exc)
            refused.append(bidder)

    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S)) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        pid = runtime.writer.sync_pid
        assert pid is not None
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS[:10]:
                nursery.start_soon(producer, bidder)
            while len(acked) < 100:
                await trio.sleep(0.001)
            os.kill(pid, signal.SIGKILL)
        assert sorted(refused) == BIDDERS[:10]
        with pytest.raises(JournalUnavailable):
            await runtime.submit(AdmitBidder, "A1", "late")
    present = {r.command[6] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "PlaceBid"}
    assert {cid for _, cid, _ in acked} <= present  # every acknowledged bid is in the journal
    assert verify(tmp_path).ok


NEWCOMERS = [f"n{i:03d}" for i in range(40)]  # bidders each AdmitBidder really admits (journaled)


@pytest.mark.parametrize("durability", ["fsync", "none"])
@pytest.mark.trio
async def test_a_writer_that_stops_answers_every_posted_command(tmp_path: Path, durability: str) -> None:
    """Cancelled with no IO error, the writer still answers every command posted: durable,
    or lost (JournalUnavailable); nothing waits forever, and intake stays stopped."""
    journaled, report = recover(tmp_path)
    writer = JournalWriter(SegmentStore(tmp_path, report.position, durability=durability))
    runtime = Runtime(journaled, writer, report, mock_clock_us(START + S))
    answers: dict[str, list[object]] = {}
    scope = trio.CancelScope()

    async def run_writer() -> None:
        with scope:
            await writer.run()

    async def execute(bidder: str) -> None:
        try:
            answers.setdefault(bidder, []).append(await runtime.execute(AdmitBidder(runtime.now(), "A1", bidder)))
        except JournalUnavailable as exc:
            answers.setdefault(bidder, []).append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_writer)
            await open_auction(runtime)
            await trio.testing.wait_all_tasks_blocked()  # the writer idles, waiting for records
            scope.cancel()
            for bidder in NEWCOMERS[20:]:  # posted as the writer stops: it has not run since the cancel
                runtime.post(AdmitBidder(runtime.now(), "A1", bidder),
                             answers.setdefault(bidder, []).append, answers.setdefault(bidder, []).append)
            for bidder in NEWCOMERS[:20]:
                nursery.start_soon(execute, bidder)
    assert sorted(answers) == NEWCOMERS and all(len(a) == 1 for a in answers.values())
    with pytest.raises(JournalUnavailable):
        runtime.post(AdmitBidder(runtime.now(), "A1", "late"), print, print)
    durable = {b for b, (a,) in answers.items() if not isinstance(a, JournalUnavailable)}
    admitted = {r.command[3] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "AdmitBidder"}
    assert durable <= admitted and admitted <= set(NEWCOMERS)


@pytest.mark.trio
async def test_a_sync_process_that_ends_while_idle_shows_at_once(tmp_path: Path) -> None:
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S)) as runtime:
        await open_auction(runtime)
        writer = runtime.writer
        assert writer.healthy and writer.sync_pid is not None
        os.kill(writer.sync_pid, signal.SIGKILL)
        with trio.fail_after(10):
            while writer.healthy:  # what /readyz reports
                await trio.sleep(0.01)
        assert writer.trouble() == "the journal's sync process ended"
        with pytest.raises(JournalUnavailable):
            await runtime.submit(AdmitBidder, "A1", "late")
    assert verify(tmp_path).ok


@pytest.mark.trio
async def test_a_sync_process_that_cannot_start_fails_the_start(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with trio.fail_after(10), pytest.raises(ExceptionGroup) as info:  # out of the runtime's nursery
        async with Runtime.open(tmp_path) as runtime:
            await runtime.submit(AdmitBidder, "A1", "b1")
    assert info.group_contains(FileNotFoundError, depth=1)


class FailingSync(FileOps):
    """A device whose fsync fails from the `fails_at`-th call on (the writer then uses its
    sync thread: `FileOps.sync` is overridden)."""

    def __init__(self, fails_at: int) -> None:
        self.calls = 0
        self.fails_at = fails_at

    def sync(self, fd: int) -> None:
        self.calls += 1
        if self.calls >= self.fails_at:
            raise OSError(errno.EIO, "injected: fsync failed")
        super().sync(fd)


@pytest.mark.parametrize("fails_at", [4, 5, 6, 7, 8])
@pytest.mark.trio
async def test_a_draining_writer_that_fails_answers_its_held_back_records_as_durable(tmp_path: Path,
                                                                                     fails_at: int) -> None:
    """While draining (a checkpoint due), a durable batch waits for the next one before it
    is answered; if the next one's fsync fails, the held one is still answered as durable:
    exactly the bids in the journal were acknowledged, none reported lost."""
    acked: list[tuple[str, str, object]] = []
    lost: list[str] = []
    async with Runtime.open(tmp_path, clock=mock_clock_us(START + S), ops=FailingSync(fails_at)) as runtime:
        await open_auction(runtime, lot={"starting_price": "1000000.00"})
        runtime.writer.drain = True  # as when a checkpoint is due (none is: checkpoint_every is 0)
        async with trio.open_nursery() as nursery:
            for bidder in BIDDERS:
                nursery.start_soon(bid_until_refused, runtime, bidder, 20, acked, lost)
        assert runtime.writer.failure is not None and lost
    present = {r.command[6] for r, _ in JournalReader(tmp_path).records() if r.command[0] == "PlaceBid"}
    assert present == {cid for _, cid, _ in acked}
