"""The journal benchmark's workload and its service path: producers bidding through `Runtime`.

`build_workload` makes each producer's bids before any timing (every bid valid whatever the
interleaving); `service_run` has them bid as a room's bidders do (post, park until the ack)
under the service's collector policy, and returns what it measured (`ServiceRun`).
"""

from __future__ import annotations

import contextlib
import gc
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trio

from auction_engine import AuctionConfig, CreateAuction, PlaceBid, format_amount
from auction_engine.events import AuctionCreated, BidRejected
from auction_engine.journal import JournalUnavailable, Submission
from auction_engine.journal.writer import DEFAULT_SPLIT_FROM, DEFAULT_SYNC_IN, Unheard
from auction_engine.runtime import Consumer, Runtime, wall_clock_us
from auction_engine.timeutil import format_instant
from gateway.app import GC_THRESHOLDS

SECRET = "benchmark-pseudonym-secret-0123"
LOT_ID = "L1"
DAY_US = 86_400_000_000  # the lots close a day after they open: no close, no extension during the run
MIN_STEP = 100  # minor units (1.00)
REJECT_SHARE = 0.02  # bids sent with too small an improvement (insufficient_step)
CEILING = (1_000_000_00, 10_000_000_00)  # starting prices (minor units): room for ~10^4 steps per bidder

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

