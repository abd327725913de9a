"""The runtime's command path on Redis (`serve --redis`) against the file journal and the raw XADD limit.

    python -m benchmarks.redis_serve [--quick] [--bids N] [--clients C ...]

Same run, same machine: a private redis-server (AOF, `appendfsync always`) and a file
journal (fsync, the sync process) in a temporary directory. For each level of C clients
(each with one bid in flight, spread over 8 auctions, as bidders awaiting their acks):

- file: `Runtime.execute(PlaceBid)` on the file journal (group commit, fdatasync);
- redis: the same on `RedisWriter` (each batch one pipeline of fenced appends);
- raw: C tasks each awaiting a bare `XADD` of a record's frame: Redis's own limit for
  one-record round trips at that concurrency.

Each mode reports durable records/s and the ack latency p50/p99 (from the call to the
durable answer), and the Redis writer's batches and pipeline round trips (one per
batch: the appends of all its cases go in one pipeline). Last line, JSON: per level
`file_*`, `redis_*`, `raw_*` and the ratios `redis_over_file_rate`,
`redis_over_raw_rate`, `redis_added_p50_ms` (redis p50 minus raw p50), with `details`.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from auction_engine import CreateAuction, PlaceBid
from auction_engine.cluster import connect
from auction_engine.cluster.local import LocalRedis
from auction_engine.cluster.serving import RedisOptions, open_runtime
from auction_engine.cluster.worker import BIDDERS, START_PRICE, auction
from auction_engine.runtime import Runtime, wall_clock_us

from .common import banner, emit, machine, parser, percentile_ms, quick_defaults, stamp

CASES = 8


async def load(runtime: Runtime, clients: int, bids: int, prefix: str) -> tuple[float, list[int]]:
    """`bids` bids from `clients` concurrent clients over CASES auctions: (seconds, latencies ns)."""
    now = max(wall_clock_us(), runtime.host.now)
    cases = [f"{prefix}{i}" for i in range(CASES)]
    for case in cases:
        await runtime.execute(CreateAuction(now, auction(case, now)))
    counter = itertools.count(1)
    samples: list[int] = []
    perf = time.perf_counter_ns

    async def client(k: int) -> None:
        case = cases[k % CASES]
        for _ in range(bids // clients):
            n = next(counter)
            command = PlaceBid(runtime.now(), case, "L1", BIDDERS[n % 4], START_PRICE - 100 * n, f"{prefix}{n}")
            t = perf()
            await runtime.execute(command)
            samples.append(perf() - t)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(clients):
            nursery.start_soon(client, k)
    return time.perf_counter() - started, samples


async def raw(url: str, clients: int, bids: int, frame: bytes) -> tuple[float, list[int]]:
    samples: list[int] = []
    perf = time.perf_counter_ns
    async with connect(url) as redis:
        async def client(k: int) -> None:
            for _ in range(bids // clients):
                t = perf()
                await redis.xadd(f"bench:raw:{k % CASES}", {"r": frame, "t": "1"})
                samples.append(perf() - t)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(clients):
                nursery.start_soon(client, k)
        return time.perf_counter() - started, samples


async def measure(url: str, tmp: Path, levels: Sequence[int], bids: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    frame = b""
    for level in levels:
        runs: dict[str, Callable[[], Awaitable[tuple[float, list[int]]]]] = {}

        async def on_file(level: int = level) -> tuple[float, list[int]]:
            async with Runtime.open(tmp / f"journal-{level}") as runtime:
                return await load(runtime, level, bids, f"F{level}-")

        async def on_redis(level: int = level) -> tuple[float, list[int]]:
            nonlocal frame
            async with open_runtime(RedisOptions(url, namespace=f"b{level}", engine_id="bench")) as runtime:
                result = await load(runtime, level, bids, f"R{level}-")
                frame = runtime.writer.last_frame
                out[f"redis_c{level}_batches"] = runtime.writer.stats["batches"]
                out[f"redis_c{level}_round_trips"] = runtime.writer.redis.round_trips  # type: ignore[attr-defined]
                return result

        runs = {"file": on_file, "redis": on_redis}
        for name, run in runs.items():
            seconds, samples = await run()
            record(out, f"{name}_c{level}", seconds, samples)
        seconds, samples = await raw(url, level, bids, frame)
        record(out, f"raw_c{level}", seconds, samples)
        out[f"redis_over_file_rate_c{level}"] = round(out[f"redis_c{level}_rate"] / out[f"file_c{level}_rate"], 2)
        out[f"redis_over_raw_rate_c{level}"] = round(out[f"redis_c{level}_rate"] / out[f"raw_c{level}_rate"], 2)
        out[f"redis_added_p50_ms_c{level}"] = round(out[f"redis_c{level}_p50_ms"] - out[f"raw_c{level}_p50_ms"], 3)
    return out


def record(out: dict[str, Any], key: str, seconds: float, samples: list[int]) -> None:
    ns = sorted(samples)
    out[f"{key}_rate"] = round(len(ns) / seconds)
    out[f"{key}_p50_ms"] = round(percentile_ms(ns, 0.5), 3)
    out[f"{key}_p99_ms"] = round(percentile_ms(ns, 0.99), 3)
    print(f"  {key}: {out[f'{key}_rate']:,} durable records/s, ack p50 {out[f'{key}_p50_ms']} ms, "
          f"p99 {out[f'{key}_p99_ms']} ms", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.redis_serve", __doc__, "2,000 bids per mode and level (under a minute)")
    options.add_argument("--bids", type=int, help="bids per mode and level (default 20,000; --quick 2,000)")
    options.add_argument("--clients", type=int, nargs="+", default=[1, 32], help="concurrency levels (1 32)")
    args = options.parse_args(argv)
    quick_defaults(args, {"bids": (2_000, 20_000)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-redis-serve-") as tmp, LocalRedis(Path(tmp) / "redis") as server:
        print(f"{banner(args.quick)}; redis-server on 127.0.0.1:{server.port}, AOF appendfsync always; file journal "
              f"fsync in {tmp}; {args.bids:,} bids per mode, clients {args.clients}", flush=True)
        out: dict[str, Any] = {"benchmark": "redis_serve"}
        out.update(trio.run(measure, server.url, Path(tmp), args.clients, args.bids))
    out["details"] = {"bids": args.bids, "clients": args.clients, "cases": CASES, "appendfsync": "always",
                      "machine": machine(), **stamp(time.perf_counter() - started)}
    emit(out)


if __name__ == "__main__":
    main()
