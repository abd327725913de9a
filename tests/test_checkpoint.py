"""Recovery checkpoints: a start goes on from the newest one that matches the journal and
replays only the records after it; one that does not match (damaged, foreign, past the
journal's end, missing a host part) is skipped and reported, never trusted; the result is
always the state a replay from the first record gives."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio.testing
from factories import START, S, config
from journals import Heard, SteppedSync

from auction_engine import AdmitBidder, CreateAuction, PlaceBid, RevokeBidder
from auction_engine.checkpointer import DRAIN_PUBLISHES
from auction_engine.journal import JournalReader, recover
from auction_engine.journal import checkpoint as ckpt
from auction_engine.journal.format import SegmentHeader, frame
from auction_engine.journal.store import Position
from auction_engine.journal.writer import MAX_DRAIN_MERGES
from auction_engine.runtime import Runtime

BIDDERS = [f"b{i:02d}" for i in range(12)]


def clock_from(at: int) -> object:
    ticks = iter(range(at, at + 10**12, 1000))
    return lambda: next(ticks)


async def run_bids(directory: Path, rounds: int, *, checkpoint_every: int = 1, create: bool = True,
                   parts: tuple[ckpt.Part, ...] = ()) -> tuple[str, dict[str, object]]:
    """Bid `rounds` rounds (each bidder once a round, awaiting each ack: always quiet), then
    close; return the state hash and the checkpoint counts."""
    async with Runtime.open(directory, clock=clock_from(START + S), checkpoint_every=checkpoint_every,
                            parts=parts) as runtime:
        if create:
            await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS,
                                                                      lot={"starting_price": "1000000.00"})))
        best = runtime.engine.auction("A1").lots["L1"].book.best or 100_000_000
        for r in range(rounds):
            for n, bidder in enumerate(BIDDERS):
                best -= 100
                await runtime.submit(PlaceBid, "A1", "L1", bidder, best, f"{bidder}-{runtime.journaled.gseq}-{r}-{n}")
        if create:
            await runtime.submit(RevokeBidder, "A1", BIDDERS[-1])
            await runtime.submit(AdmitBidder, "A1", BIDDERS[-1])
        await runtime.checkpoints.idle()
        state = runtime.host.state_hash()
    return state, runtime.checkpoints.stats


def full_replay_hash(directory: Path) -> str:
    return recover(directory)[1].state_hash


@pytest.mark.trio
async def test_a_clean_exit_leaves_a_checkpoint_and_the_next_start_replays_nothing(tmp_path: Path) -> None:
    state, stats = await run_bids(tmp_path, 5, checkpoint_every=10_000)  # none periodic: only at exit
    assert stats["written"] == 1
    journaled, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint == journaled.gseq == report.records and report.replayed == 0
    assert report.state_hash == state == full_replay_hash(tmp_path)
    replayed = recover(tmp_path)[0].bids
    assert journaled.bids.keys() == replayed.keys() and all(type(v) is bytes for v in journaled.bids.values())
    for key, outcome in replayed.items():  # packed until a retry needs one, then the same events
        assert journaled._outcome(key, journaled.bids[key]) == outcome and journaled.bids[key] == outcome
    async with Runtime.open(tmp_path, clock=clock_from(START + 2 * S), checkpoint_every=10_000) as runtime:
        assert runtime.recovery.checkpoint == journaled.gseq
        aid, bidder, cid = next(iter(replayed))
        retry = await runtime.execute(PlaceBid(runtime.now(), aid, "L1", bidder, 1, cid))
        assert retry.duplicate and tuple(retry.events) == replayed[aid, bidder, cid]
    assert "from the checkpoint at record" in report.summary()


@pytest.mark.trio
async def test_checkpoints_written_under_load_by_a_child_give_the_replayed_state(tmp_path: Path) -> None:
    state, stats = await run_bids(tmp_path, 20, checkpoint_every=50)
    assert stats["written"] >= 3 and stats["failed"] == 0, stats
    assert len(ckpt.candidates(tmp_path)) == ckpt.KEEP  # older ones removed
    for path in ckpt.candidates(tmp_path):  # each one is the state of the journal's prefix it names
        start = ckpt.decode(path.read_bytes())
        prefix = tmp_path / f"prefix-{start.gseq}"
        prefix.mkdir()
        keep = start.gseq
        records = [r for r, _ in JournalReader(tmp_path).records()][:keep]
        (prefix / "00000000.journal").write_bytes(SegmentHeader("engine", 0, 1).encode()
                                                 + b"".join(frame(r.payload) for r in records))
        assert full_replay_hash(prefix) == start.state_hash
        shutil.rmtree(prefix)
    # more records after the newest checkpoint: replayed on top of it
    state2, _stats = await run_bids(tmp_path, 3, checkpoint_every=10_000, create=False)
    journaled, report = recover(tmp_path, checkpoints=True)
    assert report.state_hash == state2 == full_replay_hash(tmp_path) != state
    assert report.checkpoint == journaled.gseq  # the exit wrote one


@pytest.mark.trio
async def test_an_unusable_checkpoint_is_skipped_reported_and_never_trusted(tmp_path: Path) -> None:
    state, _stats = await run_bids(tmp_path, 5, checkpoint_every=30)
    newest, older = ckpt.candidates(tmp_path)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x40
    newest.write_bytes(bytes(data))
    journaled, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint == ckpt.gseq_of(older) and "SHA-256" in report.skipped[0]
    assert report.state_hash == state and report.replayed == journaled.gseq - ckpt.gseq_of(older)
    older.unlink()
    journaled, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint is None and report.state_hash == state and len(report.skipped) == 1


@pytest.mark.trio
async def test_a_checkpoint_of_another_journal_is_skipped(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    await run_bids(first, 5, checkpoint_every=10_000)
    state, _stats = await run_bids(second, 6, checkpoint_every=0)  # another clock, other records
    (second / ckpt.DIRECTORY).mkdir()
    theirs = ckpt.candidates(first)[0]
    gseq = ckpt.gseq_of(theirs)
    shutil.copy(theirs, second / ckpt.DIRECTORY / theirs.name)
    journaled, report = recover(second, checkpoints=True)
    assert journaled.gseq > gseq
    assert report.checkpoint is None and "last record" in report.skipped[0], report.skipped
    assert report.state_hash == state


@pytest.mark.trio
async def test_checkpoints_past_the_journals_end_are_removed_at_start(tmp_path: Path) -> None:
    await run_bids(tmp_path, 5, checkpoint_every=10_000)
    newest = ckpt.candidates(tmp_path)[0]
    segment = sorted(tmp_path.glob("*.journal"))[-1]
    records = [where.offset for _r, where in JournalReader(tmp_path).records()]
    with open(segment, "r+b") as f:  # the journal loses its last 5 records (an operator's repair)
        f.truncate(records[-5])
    (tmp_path / ckpt.DIRECTORY / "00000000000000000001.checkpoint.partial").write_bytes(b"half")
    _journaled, report = recover(tmp_path)  # checkpoints off: still removed
    assert newest.name in report.removed and not newest.exists()
    assert not list((tmp_path / ckpt.DIRECTORY).glob("*.partial"))
    assert report.state_hash == full_replay_hash(tmp_path)


class Counted:
    """A host part: counts the records it was shown (as a feed would collect events)."""

    name = "counted"

    def __init__(self) -> None:
        self.seen = 0
        self.loads: list[object] = []

    def dump(self) -> object:
        return self.seen

    def load(self, data: object | None) -> None:
        self.loads.append(data)
        self.seen = 0 if data is None else int(data)  # type: ignore[call-overload]


@pytest.mark.trio
async def test_host_parts_go_into_checkpoints_and_come_back(tmp_path: Path) -> None:
    part = Counted()

    def on_record(_record: object, _events: object) -> None:
        part.seen += 1

    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=10_000, parts=(part,),
                            on_record=on_record) as runtime:
        runtime.attach(Heard(events=lambda _events: setattr(part, "seen", part.seen + 1)))
        await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS)))
        for n, bidder in enumerate(BIDDERS):
            await runtime.submit(PlaceBid, "A1", "L1", bidder, 90_000_000 - n * 1000, f"c{n}")
        gseq = runtime.journaled.gseq
    assert part.seen == gseq
    again = Counted()
    _journaled, report = recover(tmp_path, on_record=lambda *_: None, checkpoints=True, parts=(again,))
    assert report.checkpoint == gseq and again.seen == gseq and again.loads == [gseq]
    # a host part the checkpoint lacks: skipped, the part emptied and rebuilt by the replay
    other = Counted()
    other.name = "other"
    rebuilt = Counted()

    def count(_record: object, _events: object) -> None:
        rebuilt.seen += 1

    _journaled, report = recover(tmp_path, on_record=count, checkpoints=True, parts=(other,))
    assert report.checkpoint is None and "'other'" in report.skipped[0] and other.loads == [None]
    assert rebuilt.seen == gseq


@pytest.mark.trio
async def test_live_events_come_in_journal_order_so_a_feed_numbers_them_alike_after_any_start(
        tmp_path: Path) -> None:
    """One tick fires deadlines of two auctions at interleaved times (the service was
    down): its records group the events by auction, and the live listeners get them in
    that order too, so the feed built live, from a checkpoint and from the first record
    is the same sequence."""
    from factories import config_dict

    from auction_engine import AuctionConfig, Tick
    from gateway.feed import Feed

    def kinds(feed: Feed) -> list[tuple[str, str, str | None]]:
        return [(type(e).__name__, e.auction_id, getattr(e, "lot_id", None)) for e in feed.entries]

    live = Feed()
    now = [START - 3600 * S]
    async with Runtime.open(tmp_path, clock=lambda: now[0], checkpoint_every=10**6, parts=(live,),
                            on_record=lambda _r, events: live.on_events(events)) as runtime:
        runtime.attach(live)
        first = config_dict(auction_id="A1", stagger="20m")
        first["lots"].append({"lot_id": "L2", "title": "Lot 2", "estimate": "1200.00", "starting_price": "1000.00"})
        await runtime.execute(CreateAuction(runtime.now(), AuctionConfig.from_dict(first)))
        await runtime.execute(CreateAuction(runtime.now(), AuctionConfig.from_dict(
            config_dict(auction_id="A2", end="2026-03-02T11:10:00Z"))))
        now[0] = START + 2 * 3600 * S  # every deadline has passed: A1/L1 11:00, A2/L1 11:10, A1/L2 11:20
        await runtime.execute(Tick(runtime.now()))
    assert [k for k in kinds(live) if k[0] == "LotClosed"] == [("LotClosed", "A1", "L1"), ("LotClosed", "A1", "L2"),
                                                               ("LotClosed", "A2", "L1")]
    started, report = Feed(), None
    _j, report = recover(tmp_path, on_record=lambda _r, events: started.on_events(events), checkpoints=True,
                         parts=(started,))
    replayed = Feed()
    recover(tmp_path, on_record=lambda _r, events: replayed.on_events(events), parts=(replayed,))
    assert report.checkpoint is not None
    assert kinds(started) == kinds(replayed) == kinds(live) and len(live.entries) == 13


class Fragile(Counted):
    """A host part whose checkpointed form no longer loads (say, after an upgrade)."""

    name = "counted"

    def load(self, data: object | None) -> None:
        self.loads.append(data)
        if data is not None:
            raise ValueError("not the shape this release expects")
        self.seen = 0


@pytest.mark.trio
async def test_a_part_that_does_not_load_makes_its_checkpoint_skipped_not_the_start_fail(tmp_path: Path) -> None:
    part = Counted()
    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=10_000, parts=(part,)) as runtime:
        await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS)))
        await runtime.submit(PlaceBid, "A1", "L1", BIDDERS[0], 90_000_000, "c0")
    fragile = Fragile()
    _journaled, report = recover(tmp_path, on_record=lambda *_: None, checkpoints=True, parts=(fragile,))
    assert report.checkpoint is None and "not the shape" in report.skipped[0]
    assert fragile.loads == [0, None]  # tried, then emptied for the replay from the first record


def reseal(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite a checkpoint with its body changed and a valid seal (a buggy writer)."""
    data = path.read_bytes()
    body = msgpack.unpackb(data[ckpt.HEAD.size:-32], raw=False)
    change(body)
    packed = msgpack.packb(body, use_bin_type=True)
    head = ckpt.HEAD.pack(ckpt.MAGIC, ckpt.VERSION, 0, len(packed))
    path.write_bytes(head + packed + hashlib.sha256(head + packed).digest())


@pytest.mark.trio
async def test_a_checkpoint_whose_position_does_not_follow_its_last_record_is_refused(tmp_path: Path) -> None:
    state, _stats = await run_bids(tmp_path, 3, checkpoint_every=10_000)
    path = ckpt.candidates(tmp_path)[0]

    def later(body: dict[str, Any]) -> None:
        body["position"][1] += 10  # past real bytes: records would be skipped

    reseal(path, later)
    _journaled, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint is None and "does not end where its position says" in report.skipped[0]
    assert report.state_hash == state


class StuckInChild:
    """A part whose dump never returns in a forked checkpoint child (it waits to be
    killed) and returns at once in the service itself: the test kills a child that is
    certainly still running, however loaded the machine."""

    name = "stuck"

    def __init__(self) -> None:
        self.service = os.getpid()

    def dump(self) -> object:
        while os.getpid() != self.service:  # the child: until SIGKILL (or the watchdog's)
            time.sleep(60)
        return None

    def load(self, data: object | None) -> None:
        pass


@pytest.mark.trio
async def test_a_killed_checkpoint_process_is_counted_and_the_clean_exit_still_writes_one(tmp_path: Path) -> None:
    ended: list[tuple[bool, int, str]] = []
    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=5,
                            parts=[StuckInChild()]) as runtime:
        runtime.attach(Heard(checkpoint=lambda written, gseq, _s, error: ended.append((written, gseq, error))))
        await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS)))
        for n, bidder in enumerate(BIDDERS[:5]):
            await runtime.submit(PlaceBid, "A1", "L1", bidder, 90_000_000 - n * 1000, f"c{n}")
            if runtime.checkpoints.child is not None:
                os.kill(runtime.checkpoints.child.pid, signal.SIGKILL)
                break
        await runtime.checkpoints.idle()
        gseq = runtime.journaled.gseq
    assert ended[0][0] is False and "signal 9" in ended[0][2] and runtime.checkpoints.stats["failed"] == 1
    assert ended[-1][:2] == (True, gseq)  # at the exit, though no record came after the failed one
    assert ckpt.gseq_of(ckpt.candidates(tmp_path)[0]) == gseq


@pytest.mark.trio
async def test_checkpoints_are_taken_under_unbroken_lock_stepped_load(tmp_path: Path) -> None:
    """60 producers bidding without a pause (split into two alternating groups): a due
    checkpoint makes the writer drain until everything applied is durable. Each fdatasync
    is held until every producer that can bid has (so the batches are what they are on
    any machine) and the last checkpoint child has ended (a slow fork delays none)."""
    bidders = [f"p{i:02d}" for i in range(60)]
    taken: list[int] = []
    ops = SteppedSync()
    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=100, ops=ops) as runtime:
        runtime.attach(Heard(checkpoint=lambda written, gseq, _s, error: taken.append(gseq if written else -1)))

        async def bid(bidder: str, k: int) -> None:
            for n in range(30):
                await runtime.submit(PlaceBid, "A1", "L1", bidder, 99_000_000 - (n * 60 + k) * 100, f"{bidder}-{n}")

        async def step() -> None:
            while True:
                go = await ops.held()
                await trio.testing.wait_all_tasks_blocked()
                await runtime.checkpoints.idle()
                go.set()

        try:
            async with trio.open_nursery() as stepper:
                stepper.start_soon(step)
                await runtime.execute(CreateAuction(runtime.now(), config(bidders=bidders,
                                                                          lot={"starting_price": "1000000.00"})))
                async with trio.open_nursery() as nursery:
                    for k, bidder in enumerate(bidders):
                        nursery.start_soon(bid, bidder, k)
                await runtime.checkpoints.idle()
                stepper.cancel_scope.cancel()
        finally:
            ops.release()
        stats = runtime.checkpoints.status()
        state = runtime.host.state_hash()
    # Every due checkpoint was drained for and taken, none put off: each within two rounds
    # of the 60 producers after it fell due (a round to notice, one to reach the quiet moment).
    assert stats["deferred"] == stats["failed"] == 0 and -1 not in taken, (taken, stats)
    gaps = [b - a for a, b in zip([0, *taken[:-2]], taken[:-1], strict=True)]  # the last: the exit's
    assert all(100 <= gap <= 100 + 2 * len(bidders) for gap in gaps), taken
    assert len(taken) - 1 >= 1801 // (100 + 2 * len(bidders)) and taken[-1] == 1801, taken
    for path in ckpt.candidates(tmp_path):
        start = ckpt.decode(path.read_bytes())
        assert start.journaled.host.state_hash() == start.state_hash
    _journaled, report = recover(tmp_path, checkpoints=True)
    assert report.state_hash == state == full_replay_hash(tmp_path)


@pytest.mark.trio
async def test_a_checkpoint_that_cannot_start_leaks_nothing_and_backs_off(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise OSError(12, "injected: cannot allocate memory")

    monkeypatch.setattr(ckpt.os, "fork", no_fork)
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(OSError):
            ckpt.fork_write(tmp_path, recover(tmp_path)[0], Position(0, 0, 1), (0, 0, bytes(32)), (), 0)
    assert len(os.listdir("/proc/self/fd")) == fds  # its pipe closed each time
    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=4) as runtime:
        await runtime.execute(CreateAuction(runtime.now(), config(bidders=BIDDERS)))
        for n in range(40):
            await runtime.submit(PlaceBid, "A1", "L1", BIDDERS[n % 12], 90_000_000 - n * 1000, f"c{n}")
        stats = runtime.checkpoints.status()
    assert stats["failed"] == 1 and "cannot allocate memory" in stats["last_error"], stats  # then it waits
    assert stats["written"] == 0


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ckpt.write(tmp_path, [b"head", None], 7)  # type: ignore[list-item]
    assert list((tmp_path / ckpt.DIRECTORY).iterdir()) == []


@pytest.mark.trio
async def test_under_load_that_never_pauses_a_due_checkpoint_is_put_off_not_drained_for(tmp_path: Path) -> None:
    """A client that keeps sending without waiting for its answers: a new bid arrives
    while every batch syncs (each fdatasync is held until it is posted), so draining never
    gets to a moment when nothing is in flight. It stops after DRAIN_PUBLISHES
    publications, each holding back MAX_DRAIN_MERGES batches, and the checkpoint is put
    off (deferred), none begun; every bid is still answered."""
    ops = SteppedSync()
    answered: list[int] = []
    posted = 0
    async with Runtime.open(tmp_path, clock=clock_from(START + S), checkpoint_every=50, ops=ops) as runtime:
        writer, stats = runtime.writer, runtime.checkpoints.stats
        try:
            runtime.post(CreateAuction(runtime.now(), config(bidders=BIDDERS, lot={"starting_price": "1000000.00"})),
                         lambda _s: None, lambda _e: None)
            drain_from = 0  # the batches durable when draining began
            for n in range(200):
                go = await ops.held()  # a batch syncs; the one before it is published
                if writer.drain and not drain_from:
                    drain_from = writer.stats["batches"]
                    assert runtime.journaled.gseq >= 50 and stats["deferred"] == 0
                if stats["deferred"]:
                    break
                runtime.post(PlaceBid(runtime.now(), "A1", "L1", BIDDERS[n % 12], 99_000_000 - n * 100, f"f{n}"),
                             lambda _s: answered.append(1), lambda _e: None)
                posted += 1
                go.set()
            assert drain_from and writer.stats["batches"] - drain_from == DRAIN_PUBLISHES * (MAX_DRAIN_MERGES + 1)
            assert stats["deferred"] == 1 and stats["written"] == 0 and runtime.checkpoints.child is None, stats
            assert not writer.drain
        finally:
            ops.release()
        await writer.wait_durable(runtime.journaled.gseq)
    assert len(answered) == posted
