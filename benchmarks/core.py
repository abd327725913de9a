"""Core benchmark: validated bids per second against the raw limit of a bare SortedList.

    python -m benchmarks.core [--quick] [--scenario a|b|c] [--repeat N] [--seed S]

Scenarios: (a) 1 auction, 1 lot, 50 bidders; (b) many auctions of one lot and 20 bidders,
the bids spread at random over them; (c) 1 lot with 5,000 bidders. Each scenario builds
its bid stream before any timing, then measures, on fresh engines:

- throughput: the median over the repetitions of `for c in bids: engine.handle(c)`, and in
  the same run, interleaved, the raw limit: the same stream applied to a bare SortedList
  per lot (remove the bidder's previous key, add the new one, bisect for the rank) with
  no validation; ratio = engine / raw;
- latency: each handle() timed with perf_counter_ns (p50, p99, p99.9, max);
- memory: traced bytes of an engine where every bidder has one standing bid on every lot.

Human-readable lines go first; the last line is one JSON object (see docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import sortedcontainers
from sortedcontainers import SortedList

from auction_engine import AdmitBidder, AuctionConfig, Command, CreateAuction, Engine, PlaceBid, Tick, format_amount
from auction_engine.events import BidRejected
from auction_engine.order_book import SEQ_BITS
from auction_engine.timeutil import format_instant

from .common import Result, banner, emit, gc_off, machine, median_rate, parser, quantile, runs_s, stamp, timed

START_US = 1_772_445_600_000_000  # 2026-03-02T10:00:00Z: every lot opens here
CREATE_US = START_US - 3_600_000_000  # the auctions are created an hour before
WINDOW_US = 120_000_000  # extension window and extend_by: 2 min, any_bid, from_bid
CLOSING_SHARE = 0.02  # the last 2% of the stream's time falls in the extension window: each bid extends
GAP_US = (1_000, 5_000)  # time between two bids of the stream (µs, uniform)
REJECT_SHARE = 0.02  # bids sent with too small an improvement (insufficient_step)
SECRET = "benchmark-pseudonym-secret-0123"
LOT_ID = "L1"


@dataclass(frozen=True)
class Scenario:
    """One benchmark shape; every auction has a single lot."""

    name: str
    title: str
    auctions: int
    bidders: int
    bids: int
    min_step: int  # minor units
    min_step_percent: str | None = None


def accepted_bids(engine: Engine) -> int:
    """Accepted bids over every auction (each auction numbers its own)."""
    return sum(engine.auction(aid).bid_seq for aid in engine.auction_ids())

def scenarios(quick: bool) -> dict[str, Scenario]:
    """The issue's three shapes; --quick shrinks the streams (and the auction count of b)."""
    bids = 200_000 if quick else 1_000_000
    return {
        "a": Scenario("a", "1 auction, 1 lot, 50 bidders", 1, 50, bids, 100),
        "b": Scenario("b", f"{2_000 if quick else 10_000:,} auctions x 20 bidders, min step 1.00 or 0.5%",
                      2_000 if quick else 10_000, 20, bids, 100, "0.5"),
        "c": Scenario("c", "1 lot, 5,000 bidders", 1, 5_000, bids, 100),
    }


# -- the stream --------------------------------------------------------------------------


@dataclass
class Stream:
    """The bid stream of a scenario and what the engine must make of it."""

    configs: list[AuctionConfig]
    bids: list[PlaceBid]
    accepted: int
    rejected: int
    extensions: int


def bidder_ids(count: int) -> list[str]:
    return [f"bidder-{i:04d}" for i in range(count)]


def make_config(s: Scenario, index: int, end: int, ceiling: int) -> AuctionConfig:
    """One auction in the edge form, read by AuctionConfig.from_dict as the shell would."""
    rules: dict[str, str] = {"min_step": format_amount(s.min_step, 2), "improve_on": "own"}
    if s.min_step_percent is not None:
        rules["min_step_percent"] = s.min_step_percent
    return AuctionConfig.from_dict({
        "auction_id": f"BENCH-{s.name}-{index:05d}", "title": f"benchmark {s.name}", "currency": "EUR",
        "start": format_instant(START_US), "end": format_instant(end), "bidders": bidder_ids(s.bidders),
        "pseudonym_secret": SECRET, "rules": rules,
        "extension": {"window": "2m", "extend_by": "2m", "trigger": "any_bid"},
        "lots": [{"lot_id": LOT_ID, "title": "lot 1", "estimate": format_amount(ceiling * 9 // 10, 2),
                  "starting_price": format_amount(ceiling, 2)}],
    })


def required_step(s: Scenario, base: int) -> int:
    """The minimum improvement on `base`, computed independently of the engine."""
    step = s.min_step
    if s.min_step_percent is not None:
        step = max(step, -(-base * Fraction(s.min_step_percent) // 100))
    return max(step, 1)


def build_stream(s: Scenario, rng: random.Random) -> Stream:
    """Bidders random-walk down by legitimate steps; ~2% of bids improve too little."""
    times = [START_US]
    for _ in range(s.bids - 1):
        times.append(times[-1] + rng.randint(*GAP_US))
    end = times[-1] + WINDOW_US - int((times[-1] - START_US) * CLOSING_SHARE)
    if end <= times[-1]:
        raise ValueError("the closing phase must be shorter than the window, or sparse lots would close")
    ceilings = [rng.randrange(10_000_00, 1_000_000_00) for _ in range(s.auctions)]
    configs = [make_config(s, i, end, ceilings[i]) for i in range(s.auctions)]
    ids = [c.auction_id for c in configs]
    bidders = bidder_ids(s.bidders)
    prices: list[dict[str, int]] = [{} for _ in configs]
    closes = [end] * s.auctions
    bids: list[PlaceBid] = []
    accepted = rejected = extensions = 0
    for t in times:
        a = rng.randrange(s.auctions)
        bidder = bidders[rng.randrange(s.bidders)]
        base = prices[a].get(bidder)
        if base is None:  # a first bid: anywhere in the top 5% under the starting price
            amount = ceilings[a] - rng.randrange(ceilings[a] // 20)
        else:
            need = required_step(s, base)
            if rng.random() < REJECT_SHARE:
                bids.append(PlaceBid(t, ids[a], LOT_ID, bidder, base - rng.randrange(need)))
                rejected += 1
                continue
            amount = base - need - rng.randrange(need * 2)
        if amount <= 0 or t >= closes[a]:
            raise ValueError(f"the generator left the legitimate range at bid {len(bids)}")
        prices[a][bidder] = amount
        bids.append(PlaceBid(t, ids[a], LOT_ID, bidder, amount))
        accepted += 1
        if closes[a] - WINDOW_US <= t and t + WINDOW_US > closes[a]:  # any_bid, from_bid
            closes[a] = t + WINDOW_US
            extensions += 1
    return Stream(configs, bids, accepted, rejected, extensions)


# -- the runs ----------------------------------------------------------------------------


def fresh_engine(configs: Sequence[AuctionConfig]) -> Engine:
    """An engine with every auction created and every lot open (not timed)."""
    engine = Engine()
    for config in configs:
        engine.handle(CreateAuction(CREATE_US, config))
    engine.handle(Tick(START_US))
    return engine


def run_engine(engine: Engine, commands: Sequence[Command]) -> None:
    handle = engine.handle
    for c in commands:
        handle(c)


def raw_books(configs: Sequence[AuctionConfig]) -> dict[str, tuple[SortedList, dict[str, int]]]:
    return {c.auction_id: (SortedList(), {}) for c in configs}


def run_raw(books: dict[str, tuple[SortedList, dict[str, int]]], bids: list[PlaceBid]) -> None:
    """The raw limit: keys exactly as order_book.py builds them, no validation at all."""
    for seq, (_now, auction_id, _lot_id, bidder_id, amount, _client_id) in enumerate(bids, 1):
        ladder, standing = books[auction_id]
        key = amount << SEQ_BITS | seq  # type: ignore[operator]  # the stream holds ints only
        old = standing.get(bidder_id)
        if old is not None:
            ladder.remove(old)
        ladder.add(key)
        standing[bidder_id] = key
        ladder.bisect_left(key)


def throughput(stream: Stream, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds per run of the engine and of the raw limit, interleaved, fresh each time."""
    engine_s: list[float] = []
    raw_s: list[float] = []
    for _ in range(repeat):
        engine = fresh_engine(stream.configs)
        engine_s.append(timed(run_engine, engine, stream.bids)[0])
        if accepted_bids(engine) != stream.accepted:
            raise RuntimeError(f"the engine accepted {accepted_bids(engine)} bids, not {stream.accepted}")
        del engine
        books = raw_books(stream.configs)
        raw_s.append(timed(run_raw, books, stream.bids)[0])
        del books
    return engine_s, raw_s


def latencies(stream: Stream) -> tuple[list[int], Counter[str]]:
    """Nanoseconds of each handle() on a fresh engine, and the outcomes it reported."""
    engine = fresh_engine(stream.configs)
    handle = engine.handle
    clock = time.perf_counter_ns
    samples = [0] * len(stream.bids)
    outcomes: Counter[str] = Counter()
    with gc_off():
        for i, c in enumerate(stream.bids):
            t0 = clock()
            events = handle(c)
            samples[i] = clock() - t0
            for e in events:
                outcomes[e.code if type(e) is BidRejected else type(e).__name__] += 1
    return samples, outcomes


def timer_overhead_ns(n: int = 200_000) -> int:
    """The median of an empty timed region: what each latency sample includes for nothing."""
    clock = time.perf_counter_ns
    samples = [0] * n
    for i in range(n):
        t0 = clock()
        samples[i] = clock() - t0
    return int(statistics.median(samples))


def check_outcomes(stream: Stream, outcomes: Counter[str]) -> None:
    """Raise if the engine did not make of the stream what the generator intended."""
    expected = Counter({"BidAccepted": stream.accepted, "insufficient_step": stream.rejected,
                        "LotExtended": stream.extensions})
    if outcomes != +expected:
        raise RuntimeError(f"broken stream: the engine reported {dict(outcomes)}, expected {dict(+expected)}")


def memory(configs: Sequence[AuctionConfig]) -> Result:
    """Traced bytes of the engine state once every bidder stands on every lot, in three
    steps: auctions created with no bidder, bidders admitted, one bid per (bidder, lot)."""
    bare = [replace(c, bidders=()) for c in configs]
    admissions: list[AdmitBidder] = []
    bids: list[PlaceBid] = []
    for c in configs:
        ceiling = c.lots[0].starting_price
        for j, bidder in enumerate(c.bidders):
            admissions.append(AdmitBidder(START_US, c.auction_id, bidder))
            bids.append(PlaceBid(START_US + len(bids), c.auction_id, LOT_ID, bidder, ceiling - 100 * j))
    gc.collect()
    tracemalloc.start()
    try:
        before = traced()
        engine = fresh_engine(bare)
        created = traced()
        run_engine(engine, admissions)
        admitted = traced()
        run_engine(engine, bids)
        after = traced()
    finally:
        tracemalloc.stop()
    if accepted_bids(engine) != len(bids):
        raise RuntimeError("the memory pass did not accept every bid")
    return {
        "bytes_per_live_bidder_lot": round((after - before) / len(bids)),
        "bytes_per_auction": round((created - before) / len(configs)),
        "bytes_per_admission": round((admitted - created) / len(bids)),
        "bytes_per_standing_bid": round((after - admitted) / len(bids)),
    }


def traced() -> int:
    """Bytes traced by tracemalloc now, after a full collection."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


# -- one scenario ------------------------------------------------------------------------


def percentile_us(sorted_ns: list[int], q: float) -> float:
    """The q-quantile (nearest rank) of sorted nanoseconds, in µs."""
    return quantile(sorted_ns, q) / 1000


def run_scenario(s: Scenario, repeat: int, seed: int) -> Result:
    t0 = time.perf_counter()
    stream = build_stream(s, random.Random(f"{seed}-{s.name}"))
    build_s = time.perf_counter() - t0
    engine_s, raw_s = throughput(stream, repeat)
    samples, outcomes = latencies(stream)
    check_outcomes(stream, outcomes)
    samples.sort()
    bids_per_s = median_rate(s.bids, engine_s)
    raw_per_s = median_rate(s.bids, raw_s)
    return {
        "title": s.title, "auctions": s.auctions, "lots": s.auctions, "bidders_per_lot": s.bidders,
        "min_step": format_amount(s.min_step, 2), "min_step_percent": s.min_step_percent,
        "bids": s.bids, "accepted": stream.accepted, "rejected": stream.rejected, "extensions": stream.extensions,
        "bids_per_s": round(bids_per_s), "raw_limit_bids_per_s": round(raw_per_s),
        "ratio": round(bids_per_s / raw_per_s, 3), "per_bid_us": round(1e6 / bids_per_s, 3),
        "p50_us": percentile_us(samples, 0.50), "p99_us": percentile_us(samples, 0.99),
        "p999_us": percentile_us(samples, 0.999), "max_us": samples[-1] / 1000,
        **memory(stream.configs),
        "engine_runs_s": runs_s(engine_s), "raw_runs_s": runs_s(raw_s),
        "stream_build_s": round(build_s, 2), "scenario_s": round(time.perf_counter() - t0, 2),
    }


def describe(name: str, r: Result) -> str:
    return (f"({name}) {r['title']}: {r['bids']:,} bids ({r['accepted']:,} accepted, {r['rejected']:,} rejected, "
            f"{r['extensions']:,} extensions): {r['bids_per_s']:,} bids/s, raw limit {r['raw_limit_bids_per_s']:,} "
            f"(ratio {r['ratio']:.2f}); p50 {r['p50_us']:.1f} µs, p99 {r['p99_us']:.1f} µs; "
            f"{r['bytes_per_live_bidder_lot']:,} B per live (bidder, lot); {r['scenario_s']:.1f} s")


def summary(results: dict[str, Result], quick: bool, repeat: int, overhead_ns: int, wall_s: float) -> Result:
    """Top-level keys refer to scenario (a); None when it did not run."""
    a, c = results.get("a"), results.get("c")
    cost_ratio = round(a["bids_per_s"] / c["bids_per_s"], 3) if a and c else None
    targets = {
        "a_bids_per_s_ge_250000": a["bids_per_s"] >= 250_000 if a else None,
        "a_ratio_ge_0.40": a["ratio"] >= 0.40 if a else None,
        "large_lot_cost_ratio_le_1.5": cost_ratio <= 1.5 if cost_ratio is not None else None,
    }
    return {
        "bids_per_s": a and a["bids_per_s"], "raw_limit_bids_per_s": a and a["raw_limit_bids_per_s"],
        "ratio": a and a["ratio"], "p50_us": a and a["p50_us"], "p99_us": a and a["p99_us"],
        "large_lot_cost_ratio": cost_ratio, "targets": targets,
        "mode": "quick" if quick else "full", "repeat": repeat, "timer_overhead_ns": overhead_ns,
        **stamp(wall_s), "machine": machine(sortedcontainers=sortedcontainers.__version__), "scenarios": results,
    }


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.core", __doc__, "smaller streams: the whole run takes well under 1 min")
    options.add_argument("--scenario", choices=("a", "b", "c"), action="append",
                        help="run only this scenario (repeatable; default: all)")
    options.add_argument("--repeat", type=int, default=3, help="throughput repetitions (median; default 3)")
    options.add_argument("--seed", type=int, default=2026, help="seed of the bid streams")
    args = options.parse_args(argv)
    t0 = time.perf_counter()
    overhead = timer_overhead_ns()
    print(f"{banner(args.quick)}, {args.repeat} repetitions; timer overhead {overhead} ns per latency sample",
          flush=True)
    results: dict[str, Result] = {}
    for name, s in scenarios(args.quick).items():
        if args.scenario is None or name in args.scenario:
            results[name] = run_scenario(s, args.repeat, args.seed)
            print(describe(name, results[name]), flush=True)
    out = summary(results, args.quick, args.repeat, overhead, time.perf_counter() - t0)
    if out["large_lot_cost_ratio"] is not None:
        print(f"large-lot cost ratio (c)/(a): {out['large_lot_cost_ratio']:.2f}", flush=True)
    emit(out)


if __name__ == "__main__":
    main()
