"""Failover benchmark: from an engine's SIGKILL to the first acknowledged bid of a case it owned.

    python -m benchmarks.failover [--quick] [--kills K] [--lease-ms L] [--bidders B]

Two engines and one gateway (`serve --redis --role engine|gateway`) on a private
redis-server (AOF, appendfsync always), each engine with a lease of L ms (default 1000).
One auction, B bidders on the gateway each with one bid in flight. K times (default 10;
--quick 4): wait a little under load, SIGKILL the engine holding the auction's lease,
measure the time from the kill to the first acknowledgement of a bid the new owner
stamped (the ack's `time` is after the kill), start the killed engine again and wait for
bids to flow. The raw limit: the lease itself, which no failover can beat (a dead owner's
cases are taken once its lease and heartbeat lapse); the ratio failover / lease says what
the rest costs (noticing, claiming, rebuilding the case, the gateway's resend). The last
line is one JSON object: `failover_p50_s`, `failover_max_s`, `failover_s` (each kill),
`lease_s`, `failover_p50_over_lease`, `bids`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from auction_engine.cluster import connect
from auction_engine.cluster.local import LocalRedis
from auction_engine.timeutil import parse_instant
from gateway.client import Room, RpcClient

from .common import Result, banner, emit, machine, mode, parser, quick_defaults, stamp
from .ws_phases import auction_body
from .ws_procs import API_KEY, LOT_ID, Proc, start_service

AUCTION = "FO-1"
START_PRICE = 100_000_000  # minor units: the auction's 1,000,000.00


class Cluster:
    def __init__(self, root: Path, url: str, args: argparse.Namespace) -> None:
        self.root, self.url, self.args = root, url, args
        self.runs = itertools.count(1)
        self.procs: list[Proc] = []

    def start(self, role: str) -> Proc:
        home = self.root / f"{role}-{next(self.runs)}"
        home.mkdir()
        proc = start_service(home, self.args, ["--redis", self.url, "--role", role], name=home.name)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


async def run_bids(room_url: str, tokens: list[str], acks: list[tuple[float, int]], stop: trio.Event) -> int:
    """Every bidder keeps one bid in flight; `acks` gets (received, stamped µs) of each ack."""
    amounts = itertools.count()
    sent = 0

    async def bidder(token: str, name: int) -> None:
        nonlocal sent
        async with Room.connect(room_url, token) as room:
            for n in itertools.count():
                if stop.is_set():
                    return
                amount = START_PRICE - 1 - next(amounts)
                cid = f"b{name}-{n}"
                while True:  # the same id until it is answered for good
                    answer = await room.bid(LOT_ID, f"{amount // 100}.{amount % 100:02d}", cid)
                    if answer["type"] == "ack":
                        acks.append((time.time(), parse_instant(answer["time"])))
                        sent += 1
                        break
                    if answer.get("code") not in ("journal_unavailable", "rate_limited"):
                        break
                    await trio.sleep(0.02)

    async with trio.open_nursery() as nursery:
        for i, token in enumerate(tokens):
            nursery.start_soon(bidder, token, i)
    return sent


async def measure(args: argparse.Namespace, cluster: Cluster, gateway: Proc, engines: list[Proc], kills: int,
                  bidders: int) -> tuple[list[float], int]:
    async with RpcClient(gateway.base, API_KEY) as rpc:
        names = [f"b{i}" for i in range(bidders)]
        await rpc.create_auction(auction_body(AUCTION, names, "rank_and_best"))
        tokens = [t["token"] for t in (await rpc.admit(AUCTION, names))["tokens"]]
    room_url = gateway.base.replace("http://", "ws://") + f"/ws/v1/auctions/{AUCTION}"
    acks: list[tuple[float, int]] = []
    stop = trio.Event()
    failovers: list[float] = []
    async with connect(cluster.url) as client, trio.open_nursery() as nursery:
        nursery.start_soon(run_bids, room_url, tokens, acks, stop)
        for _ in range(kills):
            await trio.sleep(0.5)
            while not (lease := await client.get(f"ae:{{{AUCTION}}}:lease")):
                await trio.sleep(0.01)
            holder = lease.decode().partition("|")[0]
            victim = next(p for p in engines if p.popen.poll() is None and holder.endswith(f"-{p.pid}"))
            killed = time.time()
            os.kill(victim.pid, signal.SIGKILL)
            victim.popen.wait()
            with trio.fail_after(60):
                while not (after := [at for at, stamped in acks if stamped / 1e6 > killed]):
                    await trio.sleep(0.005)
            failovers.append(min(after) - killed)
            engines.remove(victim)
            engines.append(await trio.to_thread.run_sync(cluster.start, "engine"))
            mark = len(acks)
            with trio.fail_after(60):
                while len(acks) < mark + 20:
                    await trio.sleep(0.01)
        stop.set()
    return failovers, len(acks)


def run(a: argparse.Namespace) -> Result:
    print(f"{banner(a.quick)}: {a.kills} kills, lease {a.lease_ms} ms, {a.bidders} bidders", flush=True)
    os.environ["AUCTION_ENGINE_REDIS_LEASE_MS"] = str(a.lease_ms)
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        root = Path(tmp)
        with LocalRedis(root / "redis") as redis:
            cluster = Cluster(root, redis.url, a)
            try:
                engines = [cluster.start("engine"), cluster.start("engine")]
                gateway = cluster.start("gateway")
                failovers, bids = trio.run(measure, a, cluster, gateway, engines, a.kills, a.bidders)
            finally:
                cluster.stop()
    lease_s = a.lease_ms / 1000
    p50 = statistics.median(failovers)
    print(f"failover: p50 {p50:.3f} s, max {max(failovers):.3f} s over {len(failovers)} kills "
          f"(lease {lease_s:.3f} s: {p50 / lease_s:.2f} x); {bids} bids acknowledged", flush=True)
    return {"benchmark": "failover", "failover_p50_s": round(p50, 3), "failover_max_s": round(max(failovers), 3),
            "failover_s": [round(f, 3) for f in failovers], "lease_s": lease_s,
            "failover_p50_over_lease": round(p50 / lease_s, 2), "bids": bids}


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.failover", __doc__, "4 kills: about 30 s")
    options.add_argument("--kills", type=int, help="engine kills (default 10; --quick 4)")
    options.add_argument("--lease-ms", type=int, default=1000, help="the engines' lease (default 1000)")
    options.add_argument("--bidders", type=int, default=8, help="bidders, one bid in flight each (default 8)")
    args = options.parse_args(argv)
    quick_defaults(args, {"kills": (4, 10)})
    # what ws_procs.start_service reads from the namespace
    args.durability, args.log_level, args.direct_writes, args.gc_probe, args.gc_threshold = (
        "fsync", "info", True, False, None)
    t0 = time.perf_counter()
    out = run(args)
    out.update({"mode": mode(args.quick), **stamp(time.perf_counter() - t0), "machine": machine()})
    emit(out)


if __name__ == "__main__":
    main()
