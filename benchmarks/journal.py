"""Journal benchmark: durable records per second with group commit, against the raw limit of write + fsync.

    python -m benchmarks.journal [--quick] [--producers N] [--auctions N] [--records N] [--repeat N]
                                 [--seed S] [--dir PATH] [--max-batch N] [--max-delay S]
                                 [--sync-in process|thread] [--split-from N] [--no-pipeline]

The workload: a few auctions of one lot each, one bidder per producer task, every bidder
walking its own price down by legitimate steps (`improve_on: own`, so a bid stays valid
whatever the interleaving and the wall-clock time it gets); about 2% of the bids improve
too little and are rejected (`insufficient_step`, journaled too). The bids are built
before any timing. Each repetition then measures, on fresh journal directories:

- durable throughput: `--producers` trio tasks bid through `Runtime` as a room takes a
  WebSocket bidder's bids: `runtime.post(PlaceBid(runtime.now(), ...), on_durable, on_lost)`
  (stamp, core, frame, group commit, fsync, then the callback, in journal order), each
  task parked until its bid's callback wakes it (a bidder awaiting its ack) before its
  next bid; records/s = bids / wall time from the start signal to the last ack. Every
  bid's ack latency is timed (post to wake-up);
- in the same repetition, the raw limit: the exact frames that run wrote (read back from
  its segments), joined into the batches the writer made (sizes from `writer.on_write`),
  each written with os.write + os.fdatasync into a fresh file: records / total seconds;
  ratio = durable / raw;
- the naive baseline: one os.write + os.fdatasync per record (the first records only);
- the journal alone: the same records (what the first repetition's journal holds, read
  back as time, auction, packed command and outcome) made durable again in a fresh
  directory by `--producers` trio tasks, each taking the next record in journal order,
  framing it with the journal's encoder (`Journaled.record`: sequences, chain, msgpack,
  CRCs), `writer.append`, `await writer.wait_durable`, then the next: the journal's own
  cost (encoding, group commit, write, fdatasync, waking the producer) without the core's
  decisions or the runtime, against its raw limit (the same bytes in its own batches);
  the files it writes must equal the original byte for byte;
- the same service run with `durability="none"` (no fsync): its ack latency is the
  baseline of the *added* ack latency (fsync p50/p99 minus no-sync p50/p99, each over the
  pooled acks of every repetition; a difference of two noisy figures, it can come out
  slightly negative).

The service runs keep the garbage collector on with the service's thresholds
(`gateway.app.GC_THRESHOLDS`: full collections kept rare, as `serve` sets them). Then, on
the last repetition's fsync journal: verify-and-replay records/s, the auditors' tool as
`auction-replay verify` runs it (`replay.verify`: framing, CRCs, segment order, sequences,
every chain, re-execution of every record through the core comparing every outcome; an
engine journal's auctions shared by one process per CPU), and the same in one process,
against their raw limit (one process reads the segments, walks the frames,
msgpack-decodes each payload), and for reference `Journaled.submit` producing the same
records with no trio and no IO (the CPU floor of the durable path), interleaved, garbage
collector off, median of `--repeat`; then `recover(dir)` seconds (collector on, as at a
restart), scaled to one million records. Recovery must give the state hash the live
engine had; the benchmark raises if the engine's outcomes, record counts or batch sizes
differ from the workload's.

Each producer waits for its ack before its next bid, so at most `--producers` bids are in
flight and a group-commit batch holds at most that many records.

Human-readable lines go first; the last line is one JSON object: `durable_records_per_s`,
`raw_records_per_s`, `ratio`, `ack_p50_ms` / `ack_p99_ms` (the added ack latency: fsync
minus no-sync), `journal_alone_records_per_s`, `journal_alone_raw_records_per_s`,
`journal_alone_ratio`, `journal_alone_ack_p50_ms` / `_p99_ms` (each record's time from its
framing to its producer's wake-up), `verify_records_per_s`,
`verify_one_process_records_per_s`, ..., `targets` and `details`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import trio

from auction_engine import AuctionConfig, Command, CreateAuction, PlaceBid, format_amount
from auction_engine.events import AuctionCreated, BidRejected, Event
from auction_engine.journal import (
    Journaled,
    JournalReader,
    JournalUnavailable,
    Submission,
    checkpoint,
    recover,
    segment_paths,
)
from auction_engine.journal.format import FRAME, decode_command, decode_event, decode_header
from auction_engine.journal.store import SegmentStore
from auction_engine.journal.writer import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_DELAY,
    DEFAULT_SPLIT_FROM,
    DEFAULT_SYNC_IN,
    SYNC_MODES,
    JournalWriter,
    Unheard,
)
from auction_engine.runtime import Consumer, Runtime, wall_clock_us
from auction_engine.timeutil import format_instant
from gateway.app import GC_THRESHOLDS
from replay.verify import verify as verify_journal
from replay.verify import verify_jobs

SECRET = "benchmark-pseudonym-secret-0123"
LOT_ID = "L1"
DAY_US = 86_400_000_000  # the lots close a day after they open: no close, no extension during the run
MIN_STEP = 100  # minor units (1.00)
REJECT_SHARE = 0.02  # bids sent with too small an improvement (insufficient_step)
CEILING = (1_000_000_00, 10_000_000_00)  # starting prices (minor units): room for ~10^4 steps per bidder

Result = dict[str, Any]
T = TypeVar("T")
Bid = tuple[str, str, int, str]  # auction_id, bidder_id, amount, client_bid_id


# -- the workload ------------------------------------------------------------------------


@dataclass
class Workload:
    """Auctions (built against the wall clock at each run) and each producer's bids."""

    auction_ids: list[str]
    ceilings: list[int]
    bidders: list[list[str]]  # per auction
    streams: list[list[Bid]]  # per producer, in its order
    accepted: int
    rejected: int

    @property
    def bids(self) -> int:
        return self.accepted + self.rejected

    def configs(self, now_us: int) -> list[AuctionConfig]:
        """The auctions, opened a second ago and closing a day later (Runtime stamps bids
        with the wall clock, so the lots must be open now)."""
        start = (now_us // 1_000_000 - 1) * 1_000_000
        return [AuctionConfig.from_dict({
            "auction_id": aid, "title": "journal benchmark", "currency": "EUR",
            "start": format_instant(start), "end": format_instant(start + DAY_US), "bidders": bidders,
            "pseudonym_secret": SECRET, "rules": {"min_step": format_amount(MIN_STEP, 2), "improve_on": "own"},
            "extension": {"window": "2m", "extend_by": "2m", "trigger": "any_bid"},
            "lots": [{"lot_id": LOT_ID, "title": "lot 1", "estimate": format_amount(ceiling * 9 // 10, 2),
                      "starting_price": format_amount(ceiling, 2)}],
        }) for aid, bidders, ceiling in zip(self.auction_ids, self.bidders, self.ceilings, strict=True)]



class Batches(Consumer, Unheard):
    """The size and time of each write + fsync, from the runtime or a bare writer."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.seconds: list[float] = []

    def on_write(self, records: int, seconds: float) -> None:
        self.sizes.append(records)
        self.seconds.append(seconds)

    def batch_written(self, records: int, seconds: float) -> None:
        self.on_write(records, seconds)

def build_workload(producers: int, auctions: int, bids: int, rng: random.Random) -> Workload:
    """Producer i is bidder i of auction i % auctions; it random-walks its own price down."""
    auction_ids = [f"JBENCH-{a:03d}" for a in range(auctions)]
    ceilings = [rng.randrange(*CEILING) for _ in range(auctions)]
    bidders: list[list[str]] = [[] for _ in range(auctions)]
    streams: list[list[Bid]] = []
    accepted = rejected = 0
    for p in range(producers):
        a = p % auctions
        bidder = f"bidder-{p:05d}"
        bidders[a].append(bidder)
        count = bids // producers + (p < bids % producers)
        base: int | None = None
        stream: list[Bid] = []
        for k in range(count):
            cid = f"b{p:05d}-{k:07d}"
            if base is None:  # a first bid: anywhere in the top 5% under the starting price
                amount = ceilings[a] - rng.randrange(ceilings[a] // 20)
            elif rng.random() < REJECT_SHARE:
                stream.append((auction_ids[a], bidder, base - rng.randrange(MIN_STEP), cid))
                rejected += 1
                continue
            else:
                amount = base - MIN_STEP - rng.randrange(MIN_STEP * 2)
            if amount <= 0:
                raise ValueError(f"the generator left the legitimate range (producer {p}, bid {k})")
            base = amount
            stream.append((auction_ids[a], bidder, amount, cid))
            accepted += 1
        streams.append(stream)
    return Workload(auction_ids, ceilings, bidders, streams, accepted, rejected)


# -- the service path: Runtime under trio -----------------------------------------------------


@dataclass
class ServiceRun:
    """One run of the real command path, from the start signal to the last ack."""

    durability: str
    seconds: float
    records: int  # records made durable during the run (one per bid)
    first_record: int  # records written before the run (creations): the run's are after them
    samples_ns: list[int]  # ack latency of every bid
    batch_sizes: list[int]  # records per write (+ fsync) of the group-commit writer
    batch_seconds: list[float]  # each batch's time in the writer (thread hand-off, write, fsync)
    outcomes: Counter[str]
    state_hash: str

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


async def producer(runtime: Runtime, bids: list[Bid], go: trio.Event, samples: list[int],
                   outcomes: Counter[str]) -> None:
    """Bid `bids` one after the other, each once the previous one was acknowledged, the
    way a room takes a bidder's bids: `Runtime.post` (stamp, core, journal) with callbacks
    that answer once the record is durable; here the answer wakes this task, parked
    meanwhile (a bidder awaiting its ack), and the next bid goes."""
    post = runtime.post
    now = runtime.now
    clock = time.perf_counter_ns
    task = trio.lowlevel.current_task()
    answers: list[Submission | JournalUnavailable] = []
    parked = False

    def answer(outcome: Submission | JournalUnavailable) -> None:
        answers.append(outcome)
        if parked:
            trio.lowlevel.reschedule(task)

    await go.wait()
    for auction_id, bidder_id, amount, client_bid_id in bids:
        t0 = clock()
        post(PlaceBid(now(), auction_id, LOT_ID, bidder_id, amount, client_bid_id), answer, answer)
        if not answers:  # not answered at once (a bid is, when it changes nothing): wait for the fsync
            parked = True
            await trio.lowlevel.wait_task_rescheduled(_no_abort)
            parked = False
        outcome = answers.pop()
        samples.append(clock() - t0)
        if isinstance(outcome, JournalUnavailable):
            raise outcome
        for e in outcome.events:
            outcomes[e.code if type(e) is BidRejected else type(e).__name__] += 1


def _no_abort(_raise_cancel: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED  # a posted bid is answered whatever happens: wait for it


@contextlib.contextmanager
def service_gc() -> Iterator[None]:
    """The service's garbage-collection policy (`serve` sets it), for the length of a run."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


async def service_run(directory: Path, work: Workload, durability: str, max_batch: int,
                      max_delay: float, sync_in: str = DEFAULT_SYNC_IN,
                      split_from: int = DEFAULT_SPLIT_FROM, pipeline: bool = True) -> ServiceRun:
    """One run, under the service's garbage-collection policy."""
    with service_gc():
        return await _service_run(directory, work, durability, max_batch, max_delay, sync_in, split_from, pipeline)


async def _service_run(directory: Path, work: Workload, durability: str, max_batch: int,
                       max_delay: float, sync_in: str, split_from: int, pipeline: bool) -> ServiceRun:
    gc.collect()
    async with Runtime.open(directory, durability=durability, max_batch=max_batch, max_delay=max_delay,
                            sync_in=sync_in, split_from=split_from, pipeline=pipeline) as runtime:
        for config in work.configs(wall_clock_us()):
            events = await runtime.submit(CreateAuction, config)
            if type(events[0]) is not AuctionCreated:
                raise RuntimeError(f"auction not created: {events[0]}")
        writer = runtime.writer
        await writer.wait_durable(runtime.journaled.gseq)
        first = writer.stats["records"]
        batches = Batches()
        sizes, seconds = batches.sizes, batches.seconds
        runtime.attach(batches)
        samples: list[int] = []
        outcomes: Counter[str] = Counter()
        go = trio.Event()
        async with trio.open_nursery() as nursery:
            for bids in work.streams:
                nursery.start_soon(producer, runtime, bids, go, samples, outcomes)
            await trio.sleep(0)  # let the producers reach the start line
            t0 = time.perf_counter()
            go.set()
        elapsed = time.perf_counter() - t0
        records = writer.stats["records"] - first
        state_hash = runtime.engine.state_hash()
    return ServiceRun(durability, elapsed, records, first, samples, sizes, seconds, outcomes, state_hash)


def check_run(work: Workload, run: ServiceRun) -> None:
    """Raise if the engine did not make of the bids what the generator intended."""
    expected = Counter({"BidAccepted": work.accepted, "insufficient_step": work.rejected})
    if run.outcomes != +expected:
        raise RuntimeError(f"broken workload: the engine reported {dict(run.outcomes)}, expected {dict(+expected)}")
    if run.records != work.bids or sum(run.batch_sizes) != run.records or len(run.samples_ns) != work.bids:
        raise RuntimeError(f"{run.records} records in {sum(run.batch_sizes)} batched, {len(run.samples_ns)} acks; "
                           f"expected one record and one ack per bid ({work.bids})")


# -- the journal alone: the same records, framed and made durable by concurrent producers ------

Item = tuple[int, str, bytes, list[Event]]  # a record's time, auction, packed command and outcome


@dataclass
class Records:
    """A journal's records as the journal is handed them (in journal order: time, auction,
    packed command, and the outcome the core produced), and the digest of its frames."""

    items: list[Item]
    digest: bytes

    @classmethod
    def read(cls, directory: Path) -> Records:
        pack = msgpack.Packer(use_bin_type=True).pack
        items = [(r.time, r.auction_id, pack(r.command), [decode_event(e) for e in r.outcome])
                 for r, _where in JournalReader(directory).records()]
        return cls(items, frames_digest(journal_frames(directory)[1]))


def frames_digest(frames: list[bytes]) -> bytes:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame)
    return digest.digest()


@dataclass
class JournalRun:
    """The journal alone, from the start signal to the last record durable."""

    seconds: float
    samples_ns: list[int]  # each record's latency: framing, group commit, fsync, wake-up
    batch_sizes: list[int]

    @property
    def records_per_s(self) -> float:
        return len(self.samples_ns) / self.seconds


async def journal_run(directory: Path, items: list[Item], producers: int, args: argparse.Namespace) -> JournalRun:
    """`producers` trio tasks hand the journal records to make durable, each waiting for its
    record before taking the next one: the next record in journal order (an item), framed
    by the journal's encoder (`Journaled.record`: sequences, chain, msgpack, CRCs), then
    `writer.append` and `await writer.wait_durable` (group commit, write, fdatasync). No
    core and no runtime: what the journal itself costs, on what it sits on."""
    _journaled, report = recover(directory)
    batches = Batches()
    writer = JournalWriter(SegmentStore(directory, report.position), max_batch=args.max_batch,
                           max_delay=args.max_delay, sync_in=args.sync_in, split_from=args.split_from,
                           pipeline=args.pipeline, listener=batches)
    encoder = Journaled()
    source = iter(items)
    sizes = batches.sizes
    samples: list[int] = []

    async def producer() -> None:
        record, append, wait, clock = encoder.record, writer.append, writer.wait_durable, time.perf_counter_ns
        for now, auction_id, command, events in source:  # shared: each task takes the next record
            t0 = clock()
            out = Submission(events)
            record(out, now, auction_id, command, events)
            append(out.frames, out.last_gseq)
            await wait(out.last_gseq)
            samples.append(clock() - t0)

    with service_gc():
        gc.collect()
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            t0 = time.perf_counter()
            async with trio.open_nursery() as tasks:
                for _ in range(producers):
                    tasks.start_soon(producer)
            elapsed = time.perf_counter() - t0
            await writer.close()
    return JournalRun(elapsed, samples, sizes)


# -- the raw limits ------------------------------------------------------------------------


def journal_frames(directory: Path) -> tuple[bytes, list[bytes]]:
    """The first segment's header and every framed record of a journal, in order."""
    header = b""
    frames: list[bytes] = []
    unpack = FRAME.unpack_from
    for path in segment_paths(directory):
        data = path.read_bytes()
        _header, offset = decode_header(data)
        header = header or data[:offset]
        while offset < len(data):
            end = offset + FRAME.size + unpack(data, offset)[0]
            frames.append(data[offset:end])
            offset = end
    return header, frames


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def raw_sync(path: Path, header: bytes, batches: Sequence[bytes]) -> float:
    """Seconds to write and fdatasync each batch in turn to a fresh file (its header, like
    a new segment's, written and synced before the clock starts)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, header)
        os.fdatasync(fd)
        t0 = time.perf_counter()
        for data in batches:
            write_all(fd, data)
            os.fdatasync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()


def batched(frames: list[bytes], sizes: Sequence[int]) -> list[bytes]:
    """The frames joined into consecutive batches of the given sizes."""
    out: list[bytes] = []
    start = 0
    for n in sizes:
        out.append(b"".join(frames[start:start + n]))
        start += n
    if start != len(frames):
        raise RuntimeError(f"the batches hold {start} records, the journal {len(frames)}")
    return out


# -- verify, its raw limit, recovery -------------------------------------------------------------


def timed(fn: Callable[[T], int], arg: T) -> tuple[float, int]:
    """Seconds `fn(arg)` takes, with the garbage collector off, and what it returned."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        result = fn(arg)
        return time.perf_counter() - t0, result
    finally:
        gc.enable()


def verify(directory: Path, jobs: int | None = None) -> int:
    """What the auditors' tool does (`replay.verify`, as `auction-replay verify` runs it):
    framing, CRCs, segment order, sequences, every chain, re-execution through the core
    comparing every outcome; shared by one process per CPU (the default), or in one."""
    result = verify_journal(directory, jobs=jobs)
    if not result.ok:
        raise RuntimeError(f"the journal fails verification: {result.problem or result.torn}")
    return result.records


def verify_one_process(directory: Path) -> int:
    return verify(directory, jobs=1)


def read_decode(directory: Path) -> int:
    """The raw limit of verify: read the same segments, walk the frames, msgpack-decode
    every payload (as `unpack_payload` decodes it); nothing checked."""
    unpack = FRAME.unpack_from
    unpackb = msgpack.unpackb
    size = FRAME.size
    count = 0
    for path in segment_paths(directory):
        data = path.read_bytes()
        _header, offset = decode_header(data)
        end = len(data)
        while offset < end:
            start = offset + size
            offset = start + unpack(data, offset)[0]
            unpackb(data[start:offset], use_list=False, raw=False, strict_map_key=True)
            count += 1
    return count


def submit_all(commands: list[Command]) -> int:
    """What the service does per command before any IO: core, sequences, chain, framing."""
    journaled = Journaled()
    submit = journaled.submit
    for command in commands:
        submit(command)
    return journaled.gseq


def verify_throughput(directory: Path, records: int,
                      repeat: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Seconds of verify, of verify in one process, of their raw limit, and (for
    reference) of producing the same records with `Journaled.submit` and no IO,
    interleaved (the files are in the page cache)."""
    commands = [decode_command(record.command) for record, _where in JournalReader(directory).records()]
    verify_s: list[float] = []
    single_s: list[float] = []
    raw_s: list[float] = []
    submit_s: list[float] = []
    for _ in range(repeat):
        seconds, verified = timed(verify, directory)
        verify_s.append(seconds)
        seconds, single = timed(verify_one_process, directory)
        single_s.append(seconds)
        seconds, decoded = timed(read_decode, directory)
        raw_s.append(seconds)
        seconds, produced = timed(submit_all, commands)
        submit_s.append(seconds)
        if not verified == single == decoded == produced == records:
            raise RuntimeError(f"verify counted {verified} records ({single} in one process), the raw read "
                               f"{decoded}, submit produced {produced}; the journal has {records}")
    return verify_s, single_s, raw_s, submit_s


def recovery_times(directory: Path, records: int, state_hash: str, repeat: int) -> list[float]:
    """Seconds of `recover(directory)` (garbage collector on, as at a restart)."""
    seconds: list[float] = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        _journaled, report = recover(directory)
        seconds.append(time.perf_counter() - t0)
        del _journaled
        if report.records != records or report.state_hash != state_hash or report.torn is not None:
            raise RuntimeError(f"recovery gave {report.summary()}; expected {records} records, state {state_hash}")
    return seconds


def checkpoint_times(directory: Path, records: int, state_hash: str,
                     repeat: int) -> tuple[list[float], int, list[float]]:
    """Seconds to encode and write a checkpoint of the whole journal (what the forked child
    does), its size, and seconds of `recover(directory, checkpoints=True)` starting from
    it (nothing left to replay); the checkpoint is removed afterwards."""
    journaled, report = recover(directory)
    last = None
    for _record, where in JournalReader(directory).records():
        last = where
    assert last is not None
    frame_at = Path(last.file).read_bytes()[last.offset:last.offset + FRAME.size]
    length = FRAME.unpack(frame_at)[0]
    payload = Path(last.file).read_bytes()[last.offset + FRAME.size:last.offset + FRAME.size + length]
    index = int(Path(last.file).name[:8])
    where_last = (index, last.offset, hashlib.sha256(payload).digest())
    write_s: list[float] = []
    recover_s: list[float] = []
    size = 0
    try:
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            data = checkpoint.encode(journaled, report.position, where_last, (), wall_clock_us())
            checkpoint.write(directory, data, journaled.gseq)
            write_s.append(time.perf_counter() - t0)
            size = sum(len(piece) for piece in data)
            del data
            gc.collect()
            t0 = time.perf_counter()
            _journaled, again = recover(directory, checkpoints=True)
            recover_s.append(time.perf_counter() - t0)
            del _journaled
            if again.checkpoint != records or again.state_hash != state_hash or again.replayed:
                raise RuntimeError(f"recovery from the checkpoint gave {again.summary()}")
    finally:
        shutil.rmtree(directory / checkpoint.DIRECTORY, ignore_errors=True)
    return write_s, size, recover_s


# -- one repetition ------------------------------------------------------------------------


@dataclass
class Repetition:
    durable: ServiceRun
    nosync: ServiceRun
    raw_s: float
    naive_records: int
    naive_s: float
    journal_bytes: int
    alone: JournalRun
    alone_raw_s: float
    records: Records  # what the journal alone was given
    journal: Path  # the fsync run's directory (kept for the last repetition only)


def repetition(root: Path, n: int, work: Workload, args: argparse.Namespace, records: Records | None) -> Repetition:
    """The service run (fsync) and its raw limit and naive baseline; the journal alone with
    `records` (the first repetition's: read from its journal when None) and its raw limit;
    the service run without fsync."""
    durable_dir = root / f"fsync-{n}"
    durable = trio.run(service_run, durable_dir, work, "fsync", args.max_batch, args.max_delay, args.sync_in,
                       args.split_from, args.pipeline)
    check_run(work, durable)
    header, frames = journal_frames(durable_dir)
    frames = frames[durable.first_record:]  # the auctions' creation precedes the run
    batches = batched(frames, durable.batch_sizes)
    raw_s = raw_sync(root / "raw.journal", header, batches)
    naive = frames[:args.naive]
    naive_s = raw_sync(root / "naive.journal", header, naive)
    journal_bytes = sum(len(b) for b in batches)
    del frames, batches, naive
    records = records or Records.read(durable_dir)
    alone_dir = root / f"alone-{n}"
    alone = trio.run(journal_run, alone_dir, records.items, args.producers, args)
    header, frames = journal_frames(alone_dir)
    if len(alone.samples_ns) != len(records.items) or frames_digest(frames) != records.digest:
        raise RuntimeError("the journal alone did not write the records it was given, byte for byte")
    alone_raw_s = raw_sync(root / "raw-alone.journal", header, batched(frames, alone.batch_sizes))
    del frames
    shutil.rmtree(alone_dir)
    nosync_dir = root / f"none-{n}"
    nosync = trio.run(service_run, nosync_dir, work, "none", args.max_batch, args.max_delay, args.sync_in,
                      args.split_from, args.pipeline)
    check_run(work, nosync)
    shutil.rmtree(nosync_dir)
    return Repetition(durable, nosync, raw_s, min(args.naive, durable.records), naive_s, journal_bytes, alone,
                      alone_raw_s, records, durable_dir)


# -- figures -------------------------------------------------------------------------------


def percentile_ms(sorted_ns: Sequence[int], q: float) -> float:
    """The q-quantile (nearest rank) of sorted nanoseconds, in ms."""
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6


def latency(runs: Sequence[ServiceRun]) -> Result:
    """Ack latency percentiles over every bid of the runs, pooled (ms)."""
    samples = sorted(s for r in runs for s in r.samples_ns)
    return {f"p{name}_ms": round(percentile_ms(samples, q), 3)
            for name, q in (("50", 0.50), ("90", 0.90), ("99", 0.99), ("999", 0.999), ("100", 1.0))}


def batch_summary(runs: Sequence[ServiceRun]) -> Result:
    """The distribution of the group-commit batch sizes (records per write + fsync)."""
    sizes = sorted(s for r in runs for s in r.batch_sizes)
    seconds = [s for r in runs for s in r.batch_seconds]
    quantile = {q: sizes[min(len(sizes) - 1, int(q * len(sizes)))] for q in (0.1, 0.5, 0.9, 0.99)}
    return {
        "batches": len(sizes), "mean": round(statistics.fmean(sizes), 1), "p10": quantile[0.1],
        "median": quantile[0.5], "p90": quantile[0.9], "p99": quantile[0.99], "max": sizes[-1],
        "writer_ms_per_batch": round(statistics.fmean(seconds) * 1e3, 3),
    }


def mount_of(path: Path) -> str:
    """The file system the journal is on (from /proc/mounts), e.g. "ext4 on /dev/vda"."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "unknown"
    real = str(path.resolve())
    best = max((m for m in mounts if real == m[1] or real.startswith(m[1].rstrip("/") + "/")),
               key=lambda m: len(m[1]), default=None)
    return f"{best[2]} on {best[0]} ({best[1]})" if best else "unknown"


def machine(directory: Path) -> Result:
    return {
        "python": platform.python_version(), "implementation": platform.python_implementation(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "msgpack": ".".join(map(str, msgpack.version)), "trio": trio.__version__,
        "journal_fs": mount_of(directory),
    }


@dataclass
class Settings:
    mode: str
    producers: int
    auctions: int
    records: int
    repeat: int
    naive: int
    extra: Result = field(default_factory=dict)


def summarize(work: Workload, reps: list[Repetition], verify_s: list[float], single_s: list[float],
              read_s: list[float], submit_s: list[float], recovery_s: list[float],
              checkpoint_s: tuple[list[float], int, list[float]], settings: Settings,
              directory: Path, wall_s: float) -> Result:
    med = statistics.median
    durable = med(r.durable.records_per_s for r in reps)
    raw = med(r.durable.records / r.raw_s for r in reps)
    nosync = med(r.nosync.records_per_s for r in reps)
    naive = med(r.naive_records / r.naive_s for r in reps)
    synced = latency([r.durable for r in reps])
    unsynced = latency([r.nosync for r in reps])
    records = work.bids + len(work.auction_ids)  # in the verified journal: creations and bids
    verify_per_s = records / med(verify_s)
    single_per_s = records / med(single_s)
    read_per_s = records / med(read_s)
    recovery_per_million = med(recovery_s) / records * 1e6
    added_p50 = round(synced["p50_ms"] - unsynced["p50_ms"], 3)
    added_p99 = round(synced["p99_ms"] - unsynced["p99_ms"], 3)
    bytes_per_record = statistics.fmean(r.journal_bytes / r.durable.records for r in reps)
    alone = med(r.alone.records_per_s for r in reps)
    alone_raw = med(len(r.alone.samples_ns) / r.alone_raw_s for r in reps)
    alone_ns = sorted(x for r in reps for x in r.alone.samples_ns)
    alone_p50, alone_p99 = round(percentile_ms(alone_ns, 0.5), 3), round(percentile_ms(alone_ns, 0.99), 3)
    targets = {
        "durable_records_per_s_ge_100000": durable >= 100_000,
        "ratio_ge_0.7": durable / raw >= 0.7,
        "added_ack_p99_ms_le_5": added_p99 <= 5,
        "verify_records_per_s_ge_300000": verify_per_s >= 300_000,
        "journal_alone_records_per_s_ge_100000": alone >= 100_000,
        "journal_alone_ratio_ge_0.7": alone / alone_raw >= 0.7,
        "journal_alone_ack_p99_ms_le_5": alone_p99 <= 5,
    }
    return {
        "durable_records_per_s": round(durable), "raw_records_per_s": round(raw), "ratio": round(durable / raw, 3),
        "journal_alone_records_per_s": round(alone), "journal_alone_raw_records_per_s": round(alone_raw),
        "journal_alone_ratio": round(alone / alone_raw, 3), "journal_alone_ack_p50_ms": alone_p50,
        "journal_alone_ack_p99_ms": alone_p99,
        "naive_records_per_s": round(naive), "nosync_records_per_s": round(nosync),
        "ack_p50_ms": added_p50, "ack_p99_ms": added_p99,
        "ack_fsync_p50_ms": synced["p50_ms"], "ack_fsync_p99_ms": synced["p99_ms"],
        "ack_nosync_p50_ms": unsynced["p50_ms"], "ack_nosync_p99_ms": unsynced["p99_ms"],
        "verify_records_per_s": round(verify_per_s), "verify_one_process_records_per_s": round(single_per_s),
        "verify_raw_records_per_s": round(read_per_s),
        "verify_ratio": round(verify_per_s / read_per_s, 3),
        "recovery_s_per_million": round(recovery_per_million, 2),
        "checkpoint_write_s": round(med(checkpoint_s[0]), 3), "checkpoint_bytes": checkpoint_s[1],
        "recovery_from_checkpoint_s": round(med(checkpoint_s[2]), 3),
        "targets": targets, "mode": settings.mode, "repeat": settings.repeat, "producers": settings.producers,
        "auctions": settings.auctions, "records": settings.records,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "wall_s": round(wall_s, 1),
        "machine": machine(directory),
        "details": {
            "accepted": work.accepted, "rejected": work.rejected, "bytes_per_record": round(bytes_per_record, 1),
            "durable_mb_per_s": round(durable * bytes_per_record / 1e6, 2),
            "durable_runs_s": [round(r.durable.seconds, 3) for r in reps],
            "raw_runs_s": [round(r.raw_s, 3) for r in reps],
            "nosync_runs_s": [round(r.nosync.seconds, 3) for r in reps],
            "naive_records": reps[0].naive_records, "naive_runs_s": [round(r.naive_s, 3) for r in reps],
            "batches_fsync": batch_summary([r.durable for r in reps]),
            "batches_nosync": batch_summary([r.nosync for r in reps]),
            "journal_alone_runs_s": [round(r.alone.seconds, 3) for r in reps],
            "journal_alone_raw_runs_s": [round(r.alone_raw_s, 3) for r in reps],
            "journal_alone_batch_median": statistics.median(s for r in reps for s in r.alone.batch_sizes),
            "raw_ms_per_batch": round(med(r.raw_s / len(r.durable.batch_sizes) for r in reps) * 1e3, 3),
            "ack_fsync": synced, "ack_nosync": unsynced,
            "verified_records": records,
            "verify_runs_s": [round(x, 3) for x in verify_s],
            "verify_one_process_runs_s": [round(x, 3) for x in single_s],
            "verify_raw_runs_s": [round(x, 3) for x in read_s],
            "submit_offline_records_per_s": round(records / med(submit_s)),
            "submit_offline_runs_s": [round(x, 3) for x in submit_s],
            "recovery_runs_s": [round(x, 3) for x in recovery_s],
            "checkpoint_write_runs_s": [round(x, 3) for x in checkpoint_s[0]],
            "recovery_from_checkpoint_runs_s": [round(x, 3) for x in checkpoint_s[2]],
            **settings.extra,
        },
    }


def describe(out: Result) -> list[str]:
    d = out["details"]
    b = d["batches_fsync"]
    return [
        f"durable: {out['durable_records_per_s']:,} records/s with {out['producers']} producers "
        f"({d['durable_mb_per_s']} MB/s, {d['bytes_per_record']} B per record); raw limit "
        f"{out['raw_records_per_s']:,} (write + fdatasync in the same {b['batches']:,} batches: mean "
        f"{b['mean']}, median {b['median']}, p90 {b['p90']}, max {b['max']} records); ratio {out['ratio']:.2f}",
        f"the journal alone (the same records framed, chained and made durable by {out['producers']} producers; "
        f"no core, no runtime): {out['journal_alone_records_per_s']:,} records/s; raw limit "
        f"{out['journal_alone_raw_records_per_s']:,} (its batches: median {d['journal_alone_batch_median']}); ratio "
        f"{out['journal_alone_ratio']:.2f}; latency p50 {out['journal_alone_ack_p50_ms']:.3f} ms, "
        f"p99 {out['journal_alone_ack_p99_ms']:.3f} ms",
        f"no fsync: {out['nosync_records_per_s']:,} records/s; naive (one fdatasync per record): "
        f"{out['naive_records_per_s']:,} records/s; Journaled.submit alone (no trio, no IO): "
        f"{d['submit_offline_records_per_s']:,} records/s",
        f"ack latency: fsync p50 {out['ack_fsync_p50_ms']:.3f} ms, p99 {out['ack_fsync_p99_ms']:.3f} ms; "
        f"no fsync p50 {out['ack_nosync_p50_ms']:.3f} ms, p99 {out['ack_nosync_p99_ms']:.3f} ms; "
        f"added p50 {out['ack_p50_ms']:.3f} ms, p99 {out['ack_p99_ms']:.3f} ms",
        f"verify and replay: {out['verify_records_per_s']:,} records/s ({d['verify_processes']} processes; in one: "
        f"{out['verify_one_process_records_per_s']:,}); raw limit (read + msgpack decode, one process) "
        f"{out['verify_raw_records_per_s']:,}; ratio {out['verify_ratio']:.2f}",
        f"recovery: {out['recovery_s_per_million']:.2f} s per million records "
        f"({d['verified_records']:,} records in {statistics.median(d['recovery_runs_s']):.2f} s); from a "
        f"checkpoint of them all: {out['recovery_from_checkpoint_s']:.3f} s (writing it: "
        f"{out['checkpoint_write_s']:.3f} s, {out['checkpoint_bytes']:,} bytes)",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.journal", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs: the whole run takes well under 1 min")
    parser.add_argument("--producers", type=int, default=64, help="concurrent producer tasks (default 64)")
    parser.add_argument("--auctions", type=int, default=4, help="auctions the producers bid in (default 4)")
    parser.add_argument("--records", type=int, help="bids per run (default 300,000; --quick 50,000)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median; default 3)")
    parser.add_argument("--naive", type=int, help="records of the naive baseline (default 5,000; --quick 1,000)")
    parser.add_argument("--seed", type=int, default=2026, help="seed of the bids")
    parser.add_argument("--dir", type=Path, help="where the journals go (default: the temp dir; use a real disk)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="writer max_batch")
    parser.add_argument("--max-delay", type=float, default=DEFAULT_MAX_DELAY, help="writer max_delay (seconds)")
    parser.add_argument("--sync-in", choices=SYNC_MODES, default=DEFAULT_SYNC_IN,
                        help="where the writer's fdatasync runs (default: %(default)s)")
    parser.add_argument("--split-from", type=int, default=DEFAULT_SPLIT_FROM,
                        help="an idle writer syncs half of a burst of this many records first (0: never; "
                             "default %(default)s)")
    parser.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                        help="the writer never sends a batch behind the one being synced (the old behaviour)")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = 50_000 if args.quick else 300_000
    if args.naive is None:
        args.naive = 1_000 if args.quick else 5_000
    if not 1 <= args.auctions <= args.producers or args.records < args.producers or args.repeat < 1:
        parser.error("need 1 <= auctions <= producers <= records and repeat >= 1")
    t0 = time.perf_counter()
    mode = "quick" if args.quick else "full"
    work = build_workload(args.producers, args.auctions, args.records, random.Random(f"{args.seed}-journal"))
    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {mode} mode, {args.repeat} repetitions; "
          f"{args.records:,} bids per run from {args.producers} producers in {args.auctions} auctions; "
          f"journals in {root} ({mount_of(root)})", flush=True)
    try:
        reps: list[Repetition] = []
        for n in range(args.repeat):
            rep = repetition(root, n, work, args, reps[0].records if reps else None)
            if reps:
                shutil.rmtree(reps[-1].journal)
            reps.append(rep)
            print(f"  run {n + 1}: durable {rep.durable.records_per_s:,.0f} records/s, raw "
                  f"{rep.durable.records / rep.raw_s:,.0f}, no fsync {rep.nosync.records_per_s:,.0f}, "
                  f"naive {rep.naive_records / rep.naive_s:,.0f}; the journal alone "
                  f"{rep.alone.records_per_s:,.0f}, its raw {len(rep.alone.samples_ns) / rep.alone_raw_s:,.0f}",
                  flush=True)
        journal = reps[-1].journal
        records = work.bids + args.auctions
        verify_s, single_s, read_s, submit_s = verify_throughput(journal, records, args.repeat)
        processes = verify_jobs(journal)
        recovery_s = recovery_times(journal, records, reps[-1].durable.state_hash, args.repeat)
        checkpoint_s = checkpoint_times(journal, records, reps[-1].durable.state_hash, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    settings = Settings(mode, args.producers, args.auctions, args.records, args.repeat, args.naive,
                        {"max_batch": args.max_batch, "max_delay": args.max_delay, "sync_in": args.sync_in,
                         "split_from": args.split_from, "pipeline": args.pipeline,
                         "seed": args.seed, "verify_processes": processes})
    out = summarize(work, reps, verify_s, single_s, read_s, submit_s, recovery_s, checkpoint_s, settings, root.parent,
                    time.perf_counter() - t0)
    for line in describe(out):
        print(line, flush=True)
    print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
