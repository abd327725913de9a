"""WebSocket load benchmark: the real service under bidders in separate processes, against
the raw limit of a bare WebSocket echo on the same stack.

    python -m benchmarks.ws_load [--quick] [--auctions A] [--bidders B] [--workers N] [--repeat N]
                                 [--seconds S] [--load-seconds S] [--probes N] [--first F]
                                 [--fractions F,...]
                                 [--durability fsync|none] [--visibility rank_and_best|ladder] [--keep]

The service runs as its own process (`python -m auction_engine.cli serve`: one trio
process, hypercorn + quart-trio) on a free loopback port, with a temporary data dir and a
settings file holding an API key, a token secret, a generous bid rate and connection
limit, and the durability asked (fsync by default, as in production). The raw limit runs
beside it: `benchmarks.ws_echo`, a quart-trio app on hypercorn configured like the
service, whose one route answers each message with itself padded to an ack's size. Both
run under `benchmarks.ws_gcstats`, which times their garbage collections (`--no-gc-probe`
to leave it out).

Over the RPC the benchmark creates A auctions of one lot (starting price 1,000,000.00,
min_step 0.01, visibility rank_and_best, open now, closing hours later) and admits B
bidders in each (defaults 250 x 20 = 5,000 connections; --quick 20 x 20). `--workers`
load-generator processes (`benchmarks.ws_worker`: multiprocessing spawn, trio, the lean
client of `benchmarks.ws_client`) share the auctions, all bidders of an auction in the same
process. Every bid of the run is accepted: an auction's amounts come from one descending
counter. The run:

1. connections: every bidder connects (handshake, hello, welcome) and stays connected.
   With all of them held idle, (server RSS - its RSS with the auctions created and no
   connection) / connections is the memory per connection; the server CPU spent
   connecting and its idle CPU are reported with it (per 1,000 connections: the idle CPU
   with them held less the idle CPU before any connection; /proc counts in clock ticks of
   10 ms, so over the 2 s of --quick the resolution is 0.5% of a core). The echo server's
   RSS growth for as many echo connections is the stack's own share;
2. capacity, `--repeat` times, interleaved: the raw echo (every connection keeps one
   bid-sized message in flight: round trips/s), then the service (every bidder keeps one
   bid in flight, sending the next as its ack arrives: sustained end-to-end bids/s, views
   read all along); both counted after a warm-up; ratio = median bids/s / median round
   trips/s, same connections, same processes, same client, same message sizes;
3. capacity at SLO (benchmarks/slo.py): the highest offered bid rate at which ack p99 <=
   50 ms and view p99 <= 100 ms, by bisection over fractions of the sustained rate
   (`--probes` open-loop runs, the first at `--first` x sustained, default 0.25). In each
   probe every bidder bids at the same set rate on an open-loop schedule (a random phase
   each); ack latency from a bid's scheduled time to its ack; view latency from its
   scheduled time until the last bidder of its auction has read a view whose best_price
   includes it (benchmarks/ws_worker.py gives the criterion and the bids it leaves out).
   After `--drain` seconds, what is still due counts with the time it has waited (a lower
   bound); the service's own ack histogram (arrival to ack queued) is reported beside the
   client's figures. `--fractions` adds latency runs at fixed fractions of the sustained
   rate (none by default: the old "half load" figures, in `details.loads`).

Server CPU is utime + stime of the server process (/proc/<pid>/stat) over each phase's
measured window, memory its VmRSS; the load generators' CPU is reported too: they share
the machine's cores with the server. The CPU per bid at capacity includes the bid's views;
`server_cpu_us_per_view` and `server_cpu_us_per_bid_alone` split it by a line fitted over
the saturation runs and the probes (their views sent per bid differ). Human-readable lines
go first; the last line is one JSON object: `connections` (held to the end), `bids_per_s`,
`raw_echo_per_s`, `ratio`, `capacity_at_slo_bids_per_s`, `capacity_ack_p50_ms`,
`capacity_ack_p99_ms`, `capacity_view_p50_ms`, `capacity_view_p99_ms`,
`server_cpu_us_per_bid_at_capacity`, `server_cpu_us_per_view`, `server_kib_per_connection`,
`server_cpu_us_per_bid` (at saturation), ..., `slo_probes`, `targets` and `details`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from auction_engine.timeutil import format_instant

from .common import Result, banner, emit, machine, mode, parser, quick_defaults, raise_nofile, stamp
from .slo import OpenLoopProbe, Slo, brief, cpu_split, line, search
from .ws_phases import closed_loop, connect, create_auctions, gc_text, idle_cpu, settled_rss
from .ws_procs import ECHO_PATH, LOT_ID, ROOM_PATH, Workers, start_echo, start_service

SLO = Slo()  # ack p99 <= 50 ms, view p99 <= 100 ms

# -- the run -----------------------------------------------------------------------------------


def ack_size(visibility: str) -> int:
    """Characters of a typical ack (as gateway.replies.ack builds it, compact JSON)."""
    ack = {"type": "ack", "client_bid_id": "WS-0000.00-1000", "lot": LOT_ID, "amount": "999999.99",
           "time": format_instant(time.time_ns() // 1000), "rank": 1, "duplicate": False}
    if visibility != "rank":
        ack["best_price"] = "999999.99"
    return len(json.dumps(ack, separators=(",", ":")))


def run(args: argparse.Namespace) -> Result:
    connections = args.auctions * args.bidders
    root = Path(tempfile.mkdtemp(prefix="bench-ws-", dir=args.dir))
    print(f"{banner(args.quick)}: {args.auctions} auctions x "
          f"{args.bidders} bidders = {connections:,} connections from {args.workers} worker processes; "
          f"durability {args.durability}, visibility {args.visibility}; {root}", flush=True)
    nofile = raise_nofile()
    if nofile < connections * 2 + 100:
        print(f"warning: RLIMIT_NOFILE is {nofile}, too low for {connections} connections", flush=True)
    service = echo = None
    workers = None
    out: Result = {"mode": mode(args.quick)}
    try:
        reply = ack_size(args.visibility)
        service = start_service(root, args)
        echo = start_echo(root, reply, args)
        t = time.perf_counter()
        auctions = trio.run(create_auctions, service.base, args.auctions, args.bidders, args.visibility)
        setup_s = time.perf_counter() - t
        jobs = [{"host": "127.0.0.1", "auctions": auctions[w::args.workers]} for w in range(args.workers)]
        workers = Workers(jobs)
        base_rss = settled_rss(service, 1.0)
        idle_base = idle_cpu(service, args.settle)  # the service's own timers, before any connection
        echo_base_rss = echo.rss_kib()
        print(f"setup: {args.auctions} auctions created and {connections:,} bidders admitted in {setup_s:.1f} s; "
              f"server pid {service.pid}, RSS {base_rss / 1024:.1f} MiB; echo server pid {echo.pid}", flush=True)

        ramp = connect(workers, service, "room", int(service.base.rsplit(":", 1)[1]), ROOM_PATH)
        held_rss = settled_rss(service, args.settle)
        idle = idle_cpu(service, args.settle)
        held = ramp["connections"]
        kib_per_conn = (held_rss - base_rss) / max(held, 1)
        print(f"connections: {held:,} of {connections:,} held ({ramp['failures'] or 'no failures'}), opened in "
              f"{ramp['seconds']} s ({ramp['per_s']:,.0f}/s, {ramp['server_cpu_ms_per_connection']} ms server CPU "
              f"each); server RSS {held_rss / 1024:.1f} MiB: {kib_per_conn:.1f} KiB per connection; "
              f"idle server CPU {100 * idle:.1f}% ({100 * idle_base:.1f}% before any connection)"
              f"{gc_text(ramp['server_gc'])}", flush=True)
        echo_ramp = connect(workers, echo, "echo", int(echo.base.rsplit(":", 1)[1]), ECHO_PATH)
        echo_held_rss = settled_rss(echo, 1.0)
        echo_kib = (echo_held_rss - echo_base_rss) / max(echo_ramp["connections"], 1)
        print(f"echo connections: {echo_ramp['connections']:,} held; echo server {echo_kib:.1f} KiB per connection "
              f"(the stack's own share)", flush=True)

        if args.gc_freeze:  # experiment: both servers collect, then freeze what the connections hold
            for proc in (service, echo):
                os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(3)
        echoes: list[Result] = []
        bids: list[Result] = []
        for n in range(args.repeat):
            e = closed_loop(workers, echo, "echo", args.warmup, args.seconds)
            time.sleep(0.5)
            b = closed_loop(workers, service, "room", args.warmup, args.seconds)
            time.sleep(0.5)
            echoes.append(e)
            bids.append(b)
            print(f"  run {n + 1}: raw echo {e['per_s']:,.0f} round trips/s (server CPU {e['server_cpu_pct']}%, "
                  f"clients {e['client_cpu_pct']}%); service {b['per_s']:,.0f} bids/s (server CPU "
                  f"{b['server_cpu_pct']}%, {b['server_cpu_us_per_answer']} us/bid; clients {b['client_cpu_pct']}%; "
                  f"ack p50 {b['latency_p50_ms']} ms at saturation; {b['server_views_sent_per_bid']} views sent "
                  f"per bid)"
                  f"{gc_text(b['server_gc'])}", flush=True)
        bids_per_s = statistics.median(b["per_s"] for b in bids)  # rates already: the median of them
        echo_per_s = statistics.median(e["per_s"] for e in echoes)

        probe = OpenLoopProbe(workers, service, held, args.warmup, args.load_seconds, args.drain,
                              args.settle_max, args.seed, idle_cpu=idle)
        print(f"capacity at SLO (ack p99 <= {SLO.ack_p99_ms:g} ms, view p99 <= {SLO.view_p99_ms:g} ms): "
              f"{args.probes} probes of {args.load_seconds:g} s from {args.first:g} x {bids_per_s:,.0f} bids/s",
              flush=True)
        found = search(probe, bids_per_s, args.probes, SLO, args.first)
        for p in found.probes:
            print(line(p), flush=True)
        loads: list[Result] = []
        for fraction in args.fractions:  # the old fixed-fraction latency runs, if asked
            load = probe(fraction * bids_per_s)
            load.update(fraction=fraction, offered_per_s=round(fraction * bids_per_s, 1), met_slo=SLO.met(load))
            loads.append(load)
            print(f"  {fraction:g} of the sustained rate:{line(load)[1:]}", flush=True)
        at = found.at or {}
        split = cpu_split([*bids, *found.probes, *loads])
        end_rss = service.rss_kib()
        gc_total = service.gc_stats()
        last = (loads or found.probes)[-1]
        still_held = held - sum(last["closed"].values())  # the workers count every closure so far
        workers.call({"op": "disconnect", "target": "echo"})
        workers.call({"op": "disconnect", "target": "room"})
        log_levels = log_counts(root / "service.log")
        out.update({
            "connections": still_held, "bids_per_s": round(bids_per_s), "raw_echo_per_s": round(echo_per_s),
            "ratio": round(bids_per_s / echo_per_s, 3),
            "capacity_at_slo_bids_per_s": found.capacity, "capacity_below_bids_per_s": found.below,
            "capacity_fraction_of_sustained": round(found.capacity / bids_per_s, 3) if found.capacity else None,
            **{f"capacity_{k}": at.get(k) for k in ("ack_p50_ms", "ack_p99_ms", "view_p50_ms", "view_p99_ms")},
            "server_cpu_us_per_bid_at_capacity": at.get("server_cpu_us_per_bid"),
            "server_cpu_us_per_bid_net_at_capacity": at.get("server_cpu_us_per_bid_net"),
            "server_cpu_pct_at_capacity": at.get("server_cpu_pct"),
            "views_sent_per_bid_at_capacity": at.get("server_views_sent_per_bid"),
            "server_cpu_us_per_view": split["server_cpu_us_per_view"],
            "server_cpu_us_per_bid_alone": split["server_cpu_us_per_bid_alone"],
            "slo": SLO.as_dict(), "slo_probes": [brief(p) for p in found.probes],
            "server_kib_per_connection": round(kib_per_conn, 2), "echo_kib_per_connection": round(echo_kib, 2),
            "server_cpu_us_per_bid": round(statistics.median(b["server_cpu_us_per_answer"] for b in bids), 1),
            "server_cpu_pct_sustained": round(statistics.median(b["server_cpu_pct"] for b in bids), 1),
            "server_cpu_pct_per_1000_idle_connections": round(100 * max(idle - idle_base, 0) / max(held, 1) * 1000, 3),
            "server_idle_cpu_pct_no_connections": round(100 * idle_base, 2),
            "server_cpu_ms_per_connect": ramp["server_cpu_ms_per_connection"],
            "server_gc_pct_sustained": median_gc(bids), "echo_gc_pct_sustained": median_gc(echoes),
            "server_gc_max_pause_ms": round(max(gc_total["max_s"]) * 1e3, 1) if gc_total else None,
            "details": {
                "auctions": args.auctions, "bidders": args.bidders, "workers": args.workers,
                "durability": args.durability, "visibility": args.visibility, "repeat": args.repeat,
                "gc_experiment": {"threshold": args.gc_threshold, "freeze_after_connect": args.gc_freeze},
                "seconds": args.seconds, "warmup": args.warmup, "load_seconds": args.load_seconds,
                "probes": args.probes, "first": args.first, "cpu_split_points": split["fit_points"],
                "reply_bytes": reply, "setup_s": round(setup_s, 2),
                "server_rss_kib": {"base": base_rss, "held": held_rss, "end": end_rss},
                "echo_rss_kib": {"base": echo_base_rss, "held": echo_held_rss},
                "ramp": ramp, "echo_ramp": echo_ramp, "server_idle_cpu_pct": round(100 * idle, 2),
                "echo_runs": echoes, "bid_runs": bids, "slo_runs": found.probes, "loads": loads,
                "service_log": log_levels,
                "service_gc_total": gc_total, "echo_gc_total": echo.gc_stats(),
            },
        })
    finally:
        if workers is not None:
            workers.close()
        codes: dict[str, int | None] = {}
        for server in (service, echo):
            if server is not None:
                codes[server.name] = server.stop()
        if args.keep:
            print(f"kept {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    out["details"]["exit_codes"] = codes
    return out


def median_gc(runs: list[Result]) -> float | None:
    """The median share of the wall time the server spent collecting garbage over `runs`."""
    shares = [r["server_gc"]["pct_of_wall"] for r in runs if r.get("server_gc")]
    return round(statistics.median(shares), 1) if shares else None


def log_counts(path: Path) -> dict[str, int]:
    """Lines of the service's JSON log by level."""
    counts: dict[str, int] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for text in lines:
        try:
            level = json.loads(text).get("level", "?")
        except (ValueError, AttributeError):
            level = "text"
        counts[level] = counts.get(level, 0) + 1
    return counts


def summarize(out: Result, wall_s: float) -> Result:
    d = out["details"]
    full_shape = d["auctions"] * d["bidders"] >= 5000
    targets = {
        "connections_ge_5000": out["connections"] >= 5000,
        "server_kib_per_connection_le_50": out["server_kib_per_connection"] <= 50,
        "ratio_ge_0.5": out["ratio"] >= 0.5,
        "capacity_at_slo_ge_0.5_of_sustained": (out["capacity_fraction_of_sustained"] or 0) >= 0.5,
    }
    return {**{k: v for k, v in out.items() if k != "details"}, "targets": targets, "full_shape": full_shape,
            **stamp(wall_s), "machine": machine(trio=trio.__version__), "details": d}


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.ws_load", __doc__, "20 x 20 connections, short phases: under 1 min")
    options.add_argument("--auctions", type=int, help="auctions (default 250 = 5,000 connections; --quick 20)")
    options.add_argument("--bidders", type=int, default=20, help="bidders per auction (default 20)")
    options.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    options.add_argument("--seconds", type=float, help="length of each capacity run (default 10; --quick 4)")
    options.add_argument("--warmup", type=float, help="seconds of each run left out of its figures (default 2; "
                        "--quick 1)")
    options.add_argument("--load-seconds", type=float, help="length of each latency run (default 20; --quick 6)")
    options.add_argument("--drain", type=float, default=3.0, help="longest wait for a latency run's last views "
                        "(what is still due then counts with the time it waited)")
    options.add_argument("--settle-max", type=float, default=30.0, help="longest wait, after a latency run, for the "
                        "answers still due before the next run")
    options.add_argument("--repeat", type=int, help="capacity runs, echo and service interleaved (default 3; "
                        "--quick 2); medians")
    options.add_argument("--probes", type=int, help="open-loop runs of the capacity-at-SLO search (default 5; "
                        "--quick 3)")
    options.add_argument("--first", type=float, default=0.25, help="the search's first probe, a fraction of the "
                        "sustained rate (default 0.25)")
    options.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")], default=[],
                        help="also latency runs at these fractions of the sustained rate (default none)")
    options.add_argument("--durability", choices=("fsync", "none"), default="fsync")
    options.add_argument("--no-direct", dest="direct_writes", action="store_false",
                         help="the service sends every room message through the ASGI send (setting direct_writes)")
    options.add_argument("--visibility", choices=("rank_and_best", "ladder"), default="rank_and_best")
    options.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                        help="the service's log level (default info, as in production)")
    options.add_argument("--settle", type=float, help="seconds to hold the idle connections (default 3; --quick 2)")
    options.add_argument("--seed", type=int, default=2026)
    options.add_argument("--dir", type=Path, help="where the data dir goes (default: the temp dir)")
    options.add_argument("--keep", action="store_true", help="keep the data dir and the server logs")
    options.add_argument("--no-gc-probe", dest="gc_probe", action="store_false",
                        help="run the servers without benchmarks.ws_gcstats (no collector figures)")
    options.add_argument("--gc-threshold", metavar="G0,G1,G2",
                        help="experiment: gc.set_threshold in both servers (needs the probe)")
    options.add_argument("--gc-freeze", action="store_true",
                        help="experiment: once connected, both servers collect and gc.freeze() (needs the probe)")
    args = options.parse_args(argv)
    quick_defaults(args, {"auctions": (20, 250), "seconds": (4.0, 10.0), "warmup": (1.0, 2.0),
                          "load_seconds": (4.0, 20.0), "repeat": (2, 3), "settle": (2.0, 3.0),
                          "probes": (3, 5)})
    if (args.auctions < args.workers or args.bidders < 1 or args.repeat < 1 or args.warmup >= args.seconds
            or args.warmup >= args.load_seconds or not all(f > 0 for f in args.fractions) or args.probes < 1
            or not 0 < args.first < 1):
        options.error("need auctions >= workers, bidders >= 1, repeat >= 1, warmup < seconds and load-seconds, "
                     "fractions > 0, probes >= 1 and 0 < first < 1")
    if (args.gc_freeze or args.gc_threshold) and not args.gc_probe:
        options.error("--gc-freeze and --gc-threshold need the collector probe")
    t0 = time.perf_counter()
    out = summarize(run(args), time.perf_counter() - t0)
    print(f"sustained {out['bids_per_s']:,} bids/s vs raw echo {out['raw_echo_per_s']:,} round trips/s: ratio "
          f"{out['ratio']:.3f}; {out['connections']:,} connections at {out['server_kib_per_connection']} KiB each "
          f"(echo stack {out['echo_kib_per_connection']}); capacity at SLO {out['capacity_at_slo_bids_per_s']} "
          f"bids/s (ack p99 {out['capacity_ack_p99_ms']} ms, view p99 {out['capacity_view_p99_ms']} ms, "
          f"{out['server_cpu_us_per_bid_at_capacity']} us server CPU per bid with its views; "
          f"{out['server_cpu_us_per_view']} us per view sent)", flush=True)
    emit(out)


if __name__ == "__main__":
    main()
