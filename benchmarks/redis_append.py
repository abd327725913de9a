"""Redis append benchmark: the fenced Lua append of a journal record against a bare XADD round trip.

    python -m benchmarks.redis_append [--quick] [--records N]

A private redis-server (Debian's, AOF with `appendfsync always`: every write fsynced
before the reply, as the engine role requires) on a loopback port. The records are real:
an auction created and bid on through the journal's sequencer (`Journaled.submit`), each
bid one frame. One request in flight at a time (a bidder awaiting its ack), timed from
send to reply, in rounds that alternate the two so that a slow spell of the shared machine
falls on both:

- raw: `XADD` of the frame to a stream (auto id): the raw limit, one round trip + fsync;
- fenced: `StreamJournal.append` (the Lua script: token and lease checked, the stream's
  last id checked, `XADD ASEQ-0 r FRAME t TOKEN`) of the same frames, in order;
- owner: `CaseOwner.execute(PlaceBid)` on another case: the core, the framing and the
  fenced append, as an engine would acknowledge a bid.

Last line, JSON: `raw_xadd_p50_ms`/`_p99_ms`, `fenced_append_p50_ms`/`_p99_ms`,
`owner_execute_p50_ms`/`_p99_ms`, `fenced_over_raw_p50` and `details`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from auction_engine import AuctionConfig, CreateAuction, PlaceBid
from auction_engine.cluster import CaseOwner, Leases, StreamJournal, connect
from auction_engine.cluster.local import LocalRedis
from auction_engine.journal import Journaled

from .common import banner, emit, machine, parser, percentile_ms, quick_defaults, stamp

ROUND = 100  # requests of one kind before switching to the other


def auction(case: str, bids: int) -> list[Any]:
    """An auction open for a day from t = 60 s, and `bids` lower and lower bids in it."""
    config = AuctionConfig.from_dict({
        "auction_id": case, "title": "Bench", "currency": "MAD", "start": "2026-01-01T00:01:00Z",
        "end": "2026-01-02T00:00:00Z", "bidders": [f"b{i}" for i in range(8)],
        "pseudonym_secret": "bench-secret-0123456789abcdef",
        "lots": [{"lot_id": "L1", "title": "Lot", "estimate": "100000000.00", "starting_price": "100000000.00",
                  "rules": {"min_step": "0.01"}}]})
    t0 = 1_767_225_600_000_000 + 120_000_000  # 2026-01-01T00:02:00Z, after the opening
    return [CreateAuction(t0 - 100_000_000, config)] + [
        PlaceBid(t0 + i, case, "L1", f"b{i % 8}", 10_000_000_000 - 100 * (i + 1), f"c{i}") for i in range(bids)]


async def measure(url: str, records: int) -> dict[str, list[int]]:
    journaled = Journaled()
    commands = auction("BENCH", records + 1)
    frames = [journaled.submit(c).frames for c in commands]
    assert all(len(f) == 1 for f in frames[2:]), "a bid after the first is one record"
    samples: dict[str, list[int]] = {"raw": [], "fenced": [], "owner": []}
    async with connect(url) as client:
        journal, leases = StreamJournal(client), Leases(client)
        lease = await leases.claim("BENCH", "bench", 600_000)
        opening = [f for fs in frames[:2] for f in fs]  # the creation; the opening tick and the first bid
        await journal.append(lease, 1, opening)
        owner = await CaseOwner.claim(journal, leases, "OWNER", "bench", 600_000)
        for command in auction("OWNER", 1)[:1]:
            await owner.execute(command)
        owner_bids = auction("OWNER", records)[1:]
        perf = time.perf_counter_ns
        done = 0
        aseq = len(opening) + 1
        while done < records:
            n = min(ROUND, records - done)
            for i in range(done, done + n):
                frame = frames[2 + i][0]
                t = perf()
                await client.xadd("bench:raw", {"r": frame, "t": "1"})
                samples["raw"].append(perf() - t)
            for i in range(done, done + n):
                t = perf()
                await journal.append(lease, aseq, frames[2 + i])
                samples["fenced"].append(perf() - t)
                aseq += 1
            for i in range(done, done + n):
                t = perf()
                await owner.execute(owner_bids[i])
                samples["owner"].append(perf() - t)
            done += n
        assert await journal.length("BENCH") == len(opening) + records
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.redis_append", __doc__, "2,000 records of each kind (well under a minute)")
    options.add_argument("--records", type=int, help="appends of each kind (default 20,000; --quick 2,000)")
    args = options.parse_args(argv)
    quick_defaults(args, {"records": (2_000, 20_000)})
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, LocalRedis(Path(tmp)) as server:
        print(f"{banner(args.quick)}; redis-server on 127.0.0.1:{server.port}, AOF appendfsync always in {tmp}; "
              f"{args.records:,} appends of each kind, one in flight", flush=True)
        samples = trio.run(measure, server.url, args.records)
    out: dict[str, Any] = {"benchmark": "redis_append"}
    for name, key in (("raw", "raw_xadd"), ("fenced", "fenced_append"), ("owner", "owner_execute")):
        ns = sorted(samples[name])
        out[f"{key}_p50_ms"] = round(percentile_ms(ns, 0.5), 3)
        out[f"{key}_p99_ms"] = round(percentile_ms(ns, 0.99), 3)
        print(f"  {key}: p50 {out[f'{key}_p50_ms']} ms, p99 {out[f'{key}_p99_ms']} ms", flush=True)
    out["fenced_over_raw_p50"] = round(out["fenced_append_p50_ms"] / out["raw_xadd_p50_ms"], 2)
    out["details"] = {"records": args.records, "in_flight": 1, "appendfsync": "always",
                      "machine": machine(redis=_version(server.binary)), **stamp(time.perf_counter() - started)}
    emit(out)


def _version(binary: str) -> str:
    import subprocess

    return subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    main()
