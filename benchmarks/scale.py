"""Scale benchmark: capacity at SLO and CPU per bid of each process, per deployment mode, against bare Redis.

    python -m benchmarks.scale [--quick] [--modes embedded,redis] [--auctions A] [--bidders B]
                               [--probes N] [--low-rate R] [--raw-clients C] [--keep]

Each mode (`MODES`) is a set of processes serving the room protocol on loopback:

- `embedded`: `auction-engine serve` with its file journal (fsync), the default;
- `redis`: `auction-engine serve --redis URL`, one process in role both, the journal of
  record in a private redis-server (auction_engine/cluster/local.py: AOF, appendfsync
  always), started once for the whole run;
- `roles1`, `roles2`: `serve --redis --role engine` x 1 or 2, then `--role gateway` x 1 or
  2 on the same redis-server; the load generators spread over the gateways, the first
  gateway takes the RPC (and is the `server` of the figures); every other process's CPU
  per bid is reported under its name (`engine1`, `gateway2`, `redis`...).

`--quick` runs `embedded`, `redis` and `roles2`.

For each mode, over the RPC: A auctions of one lot with B bidders each (defaults 100 x 20;
--quick 10 x 20), every bidder on its own WebSocket from 2 load-generator processes
(benchmarks/ws_worker.py), as in benchmarks/ws_load.py. Then: the saturation rate (every
bidder keeps one bid in flight); a low-load run at `--low-rate` bids/s (the same rate in
every mode: the Redis hop's added ack latency is redis minus embedded, p50 and p99); and
the capacity at SLO (benchmarks/slo.py: the highest offered rate with ack p99 <= 50 ms and
view p99 <= 100 ms, by bisection from a quarter of the saturation rate; the low-load run counts
as a passing probe if it met the SLO). CPU per bid of each process comes from
/proc/<pid>/stat (utime + stime): the server's over each run's measured window, less its
idle CPU with every connection held (read before the runs, reported per 1,000
connections), divided by the bids answered in it; redis-server's over the whole run
divided by the bids sent. The server's CPU per view sent is fitted over the runs
(`slo.cpu_split`).

The raw limit, in the same run on the same redis-server: `--raw-clients` concurrent
clients each doing `XADD` of a record-sized entry then `XRANGE` of that entry (the
append + read-back a bid's record costs), round trips per second, and redis-server's CPU
per round trip. Human-readable lines first; the last line is one JSON object: per mode
`<mode>_capacity_at_slo_bids_per_s`, `<mode>_saturation_bids_per_s`, `<mode>_cpu_us_per_bid`
(per process), `<mode>_server_cpu_us_per_view`, `<mode>_low_ack_p50_ms` / `_p99_ms`; then
`redis_raw_xadd_read_per_s`, `redis_capacity_over_raw`, `redis_hop_added_ack_p50_ms` /
`_p99_ms`, `slo`, and `modes` (every figure of every mode) and `details`.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from auction_engine.cluster import connect
from auction_engine.cluster.local import LocalRedis

from .common import Result, banner, emit, machine, mode, parser, quick_defaults, raise_nofile, stamp
from .slo import OpenLoopProbe, Slo, brief, cpu_split, line, proc_cpu_s, search
from .ws_phases import closed_loop, create_auctions, idle_cpu
from .ws_phases import connect as connect_lanes
from .ws_procs import ROOM_PATH, Proc, Workers, start_service

SLO = Slo()
RAW_STREAMS = 8  # streams the raw clients spread over, like cases
RAW_ENTRY = b"x" * 200  # about a bid record's frame


@dataclass
class Deployment:
    """The processes of one mode: `entry` serves the bidders and the RPC; `cpu` names every
    process whose CPU is reported (name -> pid); `owned` are stopped with the mode."""

    entry: Proc
    cpu: dict[str, int]
    owned: list[Proc]
    ports: list[int] | None = None  # the entry points the workers spread over (None: the entry's)

    def stop(self) -> dict[str, int | None]:
        return {p.name: p.stop() for p in self.owned}


@dataclass(frozen=True)
class Mode:
    """A way to deploy the service: `start(root, args, redis)` returns its running processes."""

    name: str
    title: str
    needs_redis: bool
    start: Callable[[Path, argparse.Namespace, LocalRedis | None], Deployment]


def start_embedded(root: Path, args: argparse.Namespace, redis: LocalRedis | None) -> Deployment:
    server = start_service(root, args, name="server")
    return Deployment(server, {"server": server.pid}, [server])


def start_redis_both(root: Path, args: argparse.Namespace, redis: LocalRedis | None) -> Deployment:
    assert redis is not None and redis.process is not None
    server = start_service(root, args, ["--redis", redis.url, "--redis-namespace", root.name], name="server")
    return Deployment(server, {"server": server.pid, "redis": redis.process.pid}, [server])


def start_roles(engines: int, gateways: int) -> Callable[[Path, argparse.Namespace, LocalRedis | None], Deployment]:
    """`serve --redis --role engine` x `engines`, then `--role gateway` x `gateways`; the
    workers spread over the gateways; the first gateway is the entry (the RPC)."""

    def start(root: Path, args: argparse.Namespace, redis: LocalRedis | None) -> Deployment:
        assert redis is not None and redis.process is not None
        common = ["--redis", redis.url, "--redis-namespace", root.name]
        procs: list[Proc] = []
        try:
            for role, count in (("engine", engines), ("gateway", gateways)):
                for i in range(1, count + 1):
                    home = root / f"{role}{i}"
                    home.mkdir()
                    procs.append(start_service(home, args, [*common, "--role", role], name=f"{role}{i}"))
        except BaseException:
            for proc in procs:
                proc.stop()
            raise
        entry = next(p for p in procs if p.name == "gateway1")
        cpu = {("server" if p is entry else p.name): p.pid for p in procs}
        ports = [int(p.base.rsplit(":", 1)[1]) for p in procs if p.name.startswith("gateway")]
        return Deployment(entry, {**cpu, "redis": redis.process.pid}, procs, ports)
    return start


MODES = {
    "embedded": Mode("embedded", "serve, file journal (fsync)", False, start_embedded),
    "redis": Mode("redis", "serve --redis, one process (role both), redis-server AOF always", True,
                  start_redis_both),
    "roles1": Mode("roles1", "serve --redis: 1 engine + 1 gateway (--role), redis-server AOF always", True,
                   start_roles(1, 1)),
    "roles2": Mode("roles2", "serve --redis: 2 engines + 2 gateways (--role), redis-server AOF always", True,
                   start_roles(2, 2)),
}
QUICK_MODES = ("embedded", "redis", "roles2")


def run_mode(spec: Mode, root: Path, args: argparse.Namespace, redis: LocalRedis | None) -> Result:
    """Saturation, low load and capacity at SLO of one mode."""
    root.mkdir(parents=True)
    deployment = spec.start(root, args, redis)
    workers = None
    out: Result = {"mode": spec.name, "title": spec.title}
    try:
        entry = deployment.entry
        auctions = trio.run(create_auctions, entry.base, args.auctions, args.bidders, "rank_and_best")
        ports = deployment.ports
        workers = Workers([{"host": "127.0.0.1", "auctions": auctions[w::args.workers],
                            **({"port": ports[w % len(ports)]} if ports else {})} for w in range(args.workers)])
        ramp = connect_lanes(workers, entry, "room", int(entry.base.rsplit(":", 1)[1]), ROOM_PATH)
        held = ramp["connections"]
        idle = idle_cpu(entry, args.idle_seconds)
        others = {k: v for k, v in deployment.cpu.items() if k != "server"}
        cpu0 = {k: proc_cpu_s(v) for k, v in others.items()}
        wall0 = time.perf_counter()
        sat = closed_loop(workers, entry, "room", args.warmup, args.seconds)
        for name, pid in others.items():  # per bid sent: the other processes' work is per record
            sat[f"{name}_cpu_us_per_bid"] = round((proc_cpu_s(pid) - cpu0[name]) / max(sat["sent"], 1) * 1e6, 1)
            sat[f"{name}_cpu_pct"] = round(100 * (proc_cpu_s(pid) - cpu0[name]) / (time.perf_counter() - wall0), 1)
        workers.call({"op": "settle", "target": "room", "timeout": args.settle_max})
        saturation = sat["per_s"]
        print(f"{spec.name}: {held} connections; saturation {saturation:,.0f} bids/s, server CPU "
              f"{sat['server_cpu_us_per_answer']} us/bid ({sat['server_views_sent_per_bid']} views sent per bid)"
              + "".join(f", {k} {sat[f'{k}_cpu_us_per_bid']} us/bid" for k in others), flush=True)
        probe = OpenLoopProbe(workers, entry, held, args.probe_warmup, args.probe_seconds, args.drain,
                              args.settle_max, args.seed, others, idle)
        low = probe(args.low_rate)
        low.update(offered_per_s=args.low_rate, met_slo=SLO.met(low))
        print(f"{spec.name} low load:{line(low)[1:]}", flush=True)
        found = search(probe, saturation, args.probes, SLO, args.first, floor=low)
        for p in found.probes:
            print(f"{spec.name}{line(p)[1:]}", flush=True)
        if found.at is low:
            print(f"{spec.name}: no probe above the low-load run met the SLO", flush=True)
        at = found.at or {}
        split = cpu_split([sat, low, *found.probes])
        cpu_per_bid = {"server": at.get("server_cpu_us_per_bid_net"),
                       **{k: at.get(f"{k}_cpu_us_per_bid") for k in others}}
        out.update({
            "connections": held, "saturation_bids_per_s": round(saturation),
            "server_idle_cpu_pct_per_1000_connections": round(100 * idle / max(held, 1) * 1000, 3),
            "capacity_at_slo_bids_per_s": found.capacity, "capacity_below_bids_per_s": found.below,
            **{f"capacity_{k}": at.get(k) for k in ("ack_p50_ms", "ack_p99_ms", "view_p50_ms", "view_p99_ms")},
            "cpu_us_per_bid": cpu_per_bid, "cpu_pct_at_capacity": {
                "server": at.get("server_cpu_pct"), **{k: at.get(f"{k}_cpu_pct") for k in others}},
            "cpu_us_per_bid_at_saturation": {"server": sat["server_cpu_us_per_answer"],
                                             **{k: sat[f"{k}_cpu_us_per_bid"] for k in others}},
            "views_sent_per_bid_at_capacity": at.get("server_views_sent_per_bid"),
            "server_cpu_us_per_view": split["server_cpu_us_per_view"],
            "server_cpu_us_per_bid_alone": split["server_cpu_us_per_bid_alone"],
            "low_offered_per_s": args.low_rate, "low_ack_p50_ms": low["ack_p50_ms"],
            "low_ack_p99_ms": low["ack_p99_ms"], "low_view_p99_ms": low["view_p99_ms"],
            "slo_probes": [brief(p) for p in found.probes],
            "details": {"ramp": ramp, "saturation": sat, "low": low, "probes": found.probes},
        })
        workers.call({"op": "disconnect", "target": "room"})
    finally:
        if workers is not None:
            workers.close()
        out["exit_codes"] = deployment.stop()
    return out


async def raw_limit(url: str, clients: int, seconds: float, pid: int) -> Result:
    """`clients` concurrent XADD + XRANGE (read-back) round trips for `seconds`: pairs/s,
    and redis-server's CPU per pair."""
    done = 0
    async with connect(url) as redis:
        async def client(k: int, end: float) -> None:
            nonlocal done
            key = f"bench:raw:{k % RAW_STREAMS}"
            while time.perf_counter() < end:
                entry = await redis.xadd(key, {"r": RAW_ENTRY, "t": "1"})
                got = await redis.xrange(key, entry, entry)
                assert len(got) == 1, "the entry just added reads back"
                done += 1

        cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(clients):
                nursery.start_soon(client, k, t0 + seconds)
        wall, cpu = time.perf_counter() - t0, proc_cpu_s(pid) - cpu0
    return {"per_s": round(done / wall), "round_trips": done, "seconds": round(wall, 2), "clients": clients,
            "redis_cpu_us_per_round_trip": round(cpu / max(done, 1) * 1e6, 1),
            "redis_cpu_pct": round(100 * cpu / wall, 1)}


def diff(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


def summarize(modes: dict[str, Result], raw: Result | None) -> Result:
    """The JSON's top level: each mode's headline figures flattened, the Redis comparisons."""
    out: Result = {"benchmark": "scale"}
    for name, m in modes.items():
        for key in ("capacity_at_slo_bids_per_s", "saturation_bids_per_s", "capacity_ack_p99_ms",
                    "capacity_view_p99_ms", "cpu_us_per_bid", "server_cpu_us_per_view",
                    "server_cpu_us_per_bid_alone", "low_ack_p50_ms", "low_ack_p99_ms"):
            out[f"{name}_{key}"] = m.get(key)
    if raw is not None:
        out["redis_raw_xadd_read_per_s"] = raw["per_s"]
        out["redis_raw_cpu_us_per_round_trip"] = raw["redis_cpu_us_per_round_trip"]
    redis, embedded = modes.get("redis"), modes.get("embedded")
    if redis is not None and raw is not None:
        out["redis_capacity_over_raw"] = (round(redis["capacity_at_slo_bids_per_s"] / raw["per_s"], 3)
                                          if redis["capacity_at_slo_bids_per_s"] else None)
        out["redis_saturation_over_raw"] = round(redis["saturation_bids_per_s"] / raw["per_s"], 3)
    if redis is not None and embedded is not None:
        out["redis_hop_added_ack_p50_ms"] = diff(redis["low_ack_p50_ms"], embedded["low_ack_p50_ms"])
        out["redis_hop_added_ack_p99_ms"] = diff(redis["low_ack_p99_ms"], embedded["low_ack_p99_ms"])
    out["slo"] = SLO.as_dict()
    return out


def run(args: argparse.Namespace) -> Result:
    root = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=args.dir))
    raise_nofile()
    print(f"{banner(args.quick)}: modes {', '.join(args.modes)}; {args.auctions} auctions x {args.bidders} "
          f"bidders from {args.workers} worker processes; {root}", flush=True)
    redis = None
    modes: dict[str, Result] = {}
    raw = None
    try:
        if any(MODES[m].needs_redis for m in args.modes):
            redis = LocalRedis(root / "redis-server").start()
            assert redis.process is not None
            raw = trio.run(raw_limit, redis.url, args.raw_clients, args.raw_seconds, redis.process.pid)
            print(f"bare redis: {raw['per_s']:,} XADD + XRANGE round trips/s from {raw['clients']} clients "
                  f"(redis-server {raw['redis_cpu_us_per_round_trip']} us CPU each, {raw['redis_cpu_pct']}%)",
                  flush=True)
        for name in args.modes:
            modes[name] = run_mode(MODES[name], root / name, args, redis)
    finally:
        if redis is not None:
            redis.stop()
        if args.keep:
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    out = summarize(modes, raw)
    out["modes"] = {k: {kk: vv for kk, vv in v.items() if kk != "details"} for k, v in modes.items()}
    out["details"] = {"auctions": args.auctions, "bidders": args.bidders, "workers": args.workers,
                      "seconds": args.seconds, "probe_seconds": args.probe_seconds, "probes": args.probes,
                      "raw": raw, "runs": {k: v["details"] for k, v in modes.items()}}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.scale", __doc__, "modes embedded, redis and roles2; 10 x 20 connections, 2 probes "
                     "of 2.5 s per mode: under a minute")
    options.add_argument("--modes", type=lambda s: s.split(","),
                         help=f"comma-separated, of {', '.join(MODES)} (default all; --quick {', '.join(QUICK_MODES)})")
    options.add_argument("--auctions", type=int, help="auctions (default 100; --quick 10)")
    options.add_argument("--bidders", type=int, default=20, help="bidders per auction (default 20)")
    options.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    options.add_argument("--seconds", type=float, help="the saturation run (default 10; --quick 2.5)")
    options.add_argument("--warmup", type=float, help="seconds of the saturation run left out (default 2; --quick 1)")
    options.add_argument("--probe-seconds", type=float, help="each open-loop run (default 15; --quick 2.5)")
    options.add_argument("--probe-warmup", type=float, help="seconds of each open-loop run left out (default 2; "
                         "--quick 0.5)")
    options.add_argument("--probes", type=int, help="runs of the capacity search (default 5; --quick 2)")
    options.add_argument("--first", type=float, default=0.25, help="the search's first probe, a fraction of the "
                         "saturation rate (default 0.25)")
    options.add_argument("--low-rate", type=float, help="the low-load run's offered bids/s, every mode (default "
                         "100; --quick 50)")
    options.add_argument("--drain", type=float, help="longest wait for a run's last views (default 3; --quick 2)")
    options.add_argument("--settle-max", type=float, default=30.0, help="longest wait for the answers still due "
                         "after a run")
    options.add_argument("--idle-seconds", type=float, help="the idle-CPU reading with every connection held "
                         "(default 3; --quick 1)")
    options.add_argument("--raw-clients", type=int, default=32, help="concurrent clients of the bare Redis limit")
    options.add_argument("--raw-seconds", type=float, help="the bare Redis run (default 5; --quick 2)")
    options.add_argument("--seed", type=int, default=2026)
    options.add_argument("--dir", type=Path, help="where the data dirs go (default: the temp dir)")
    options.add_argument("--keep", action="store_true", help="keep the data dirs and the server logs")
    args = options.parse_args(argv)
    quick_defaults(args, {"auctions": (10, 100), "seconds": (2.5, 10.0), "warmup": (1.0, 2.0),
                          "probe_seconds": (2.5, 15.0), "probe_warmup": (0.5, 2.0), "probes": (2, 5),
                          "low_rate": (50.0, 100.0), "drain": (2.0, 3.0), "raw_seconds": (2.0, 5.0),
                          "idle_seconds": (1.0, 3.0)})
    if args.modes is None:
        args.modes = list(QUICK_MODES if args.quick else MODES)
    unknown = [m for m in args.modes if m not in MODES]
    if unknown or args.auctions < args.workers or args.probes < 1 or not 0 < args.first < 1 or args.low_rate <= 0:
        options.error(f"unknown modes {unknown}" if unknown else
                      "need auctions >= workers, probes >= 1, 0 < first < 1 and low-rate > 0")
    # what ws_procs.start_service reads from the namespace: production settings, no collector probe
    args.durability, args.log_level, args.direct_writes, args.gc_probe, args.gc_threshold = (
        "fsync", "info", True, False, None)
    t0 = time.perf_counter()
    out = run(args)
    out.update({"mode": mode(args.quick), **stamp(time.perf_counter() - t0), "machine": machine(
        trio=trio.__version__, redis=redis_version())})
    for name, m in out["modes"].items():
        print(f"{name}: capacity at SLO {m['capacity_at_slo_bids_per_s']} bids/s of {m['saturation_bids_per_s']:,} "
              f"at saturation; CPU per bid at capacity {m['cpu_us_per_bid']} us; low-load ack p50/p99 "
              f"{m['low_ack_p50_ms']}/{m['low_ack_p99_ms']} ms", flush=True)
    emit(out)


def redis_version() -> str | None:
    found = shutil.which("redis-server")
    if found is None:
        return None
    import subprocess

    return subprocess.run([found, "--version"], capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    main()
