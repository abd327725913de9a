"""WebSocket load benchmark: the real service under bidders in separate processes, against
the raw limit of a bare WebSocket echo on the same stack.

    python -m benchmarks.ws_load [--quick] [--auctions A] [--bidders B] [--workers N] [--repeat N]
                                 [--seconds S] [--load-seconds S] [--fractions F,...]
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
   connecting and its idle CPU are reported with it. The echo server's RSS growth for as
   many echo connections is the stack's own share;
2. capacity, `--repeat` times, interleaved: the raw echo (every connection keeps one
   bid-sized message in flight: round trips/s), then the service (every bidder keeps one
   bid in flight, sending the next as its ack arrives: sustained end-to-end bids/s, views
   read all along); both counted after a warm-up; ratio = median bids/s / median round
   trips/s, same connections, same processes, same client, same message sizes;
3. latency, at each of `--fractions` of the sustained rate (full run 0.1, 0.25, 0.5;
   --quick 0.5; the headline figures are the 0.5 run's): every bidder bids at the same
   set rate on an open-loop schedule (a random phase each); ack latency from a bid's
   scheduled time to its ack; view latency from its scheduled time until the last bidder
   of its auction has read a view whose best_price includes it (benchmarks/ws_worker.py
   gives the criterion and the bids it leaves out). After `--drain` seconds, what is still
   due counts with the time it has waited (a lower bound); the service's own ack histogram
   (arrival to ack queued) is reported beside the client's figures.

Server CPU is utime + stime of the server process (/proc/<pid>/stat) over each phase's
measured window, memory its VmRSS; the load generators' CPU is reported too: they share
the machine's cores with the server. Human-readable lines go first; the last line is one
JSON object: `connections` (held to the end), `bids_per_s`, `raw_echo_per_s`, `ratio`,
`ack_p50_ms`, `ack_p99_ms`, `view_p50_ms`, `view_p99_ms`, `server_kib_per_connection`,
`server_cpu_us_per_bid`, `server_gc_pct_sustained`, ..., `targets` and `details`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from auction_engine.timeutil import format_instant
from gateway.client import RpcClient

from . import ws_worker
from .ws_echo import raise_nofile

Result = dict[str, Any]

API_KEY = "ws-load-benchmark-portal-key-0123456789"
TOKEN_SECRET = "ws-load-benchmark-token-secret-0123456789abcdef"
LOT_ID = "L1"
STARTING_PRICE = 1_000_000_00  # minor units
HOURS_OPEN = 6
ROOM_PATH = "/ws/v1/auctions/{auction_id}"
ECHO_PATH = "/echo"
RPC_AT_ONCE = 16  # concurrent RPC calls while setting up
START_DELAY = 0.3  # seconds between a phase command and its start, for every worker to get it


# -- processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A server process, watched through /proc (and its collector through ws_gcstats)."""

    name: str
    popen: subprocess.Popen[bytes]
    base: str
    log: Path
    gc_file: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_s(self) -> float:
        """utime + stime so far, in seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def gc_stats(self) -> Result | None:
        """The collector's totals so far (None without the probe, or if it did not answer)."""
        if self.gc_file is None:
            return None
        seq = json.loads(self.gc_file.read_text())["seq"]
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                stats: Result = json.loads(self.gc_file.read_text())
                if stats["seq"] > seq:
                    return stats
            time.sleep(0.002)
        return None

    def wait_ready(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout} s")

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_proc(name: str, module: str, args: list[str], root: Path, port: int, ready_path: str,
               probe: bool, threshold: str | None) -> Proc:
    """Run `python -m module args` (under the collector probe if `probe`), logging to root/name.log."""
    gc_file = root / f"{name}.gc.json" if probe else None
    if gc_file is None:
        argv = [sys.executable, "-m", module, *args]
    else:
        extra = ["--threshold", threshold] if threshold else []
        argv = [sys.executable, "-m", "benchmarks.ws_gcstats", str(gc_file), *extra, module, *args]
    log = root / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent)
    proc = Proc(name, popen, f"http://127.0.0.1:{port}", log, gc_file)
    proc.wait_ready(ready_path)
    return proc


def start_service(root: Path, args: argparse.Namespace) -> Proc:
    port = free_port()
    config = root / "settings.json"
    config.write_text(json.dumps({
        "api_keys": [{"name": "ws-load", "role": "portal", "key": API_KEY}], "token_secret": TOKEN_SECRET,
        "bid_rate": 10_000, "bid_burst": 100_000, "max_connections": 100_000, "durability": args.durability,
        "log_level": args.log_level,
    }))
    serve = ["serve", "--port", str(port), "--data-dir", str(root / "data"), "--config", str(config)]
    return start_proc("service", "auction_engine.cli", serve, root, port, "/readyz", args.gc_probe,
                      args.gc_threshold)


def start_echo(root: Path, reply_bytes: int, args: argparse.Namespace) -> Proc:
    port = free_port()
    return start_proc("echo", "benchmarks.ws_echo", ["--port", str(port), "--reply-bytes", str(reply_bytes)], root,
                      port, "/healthz", args.gc_probe, args.gc_threshold)


class Workers:
    """The load-generator processes and their pipes."""

    def __init__(self, jobs: list[Result]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=ws_worker.run, args=(child, job), daemon=True)
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def send(self, cmd: Result) -> None:
        for pipe in self.pipes:
            pipe.send(cmd)

    def receive(self) -> list[Result]:
        out = [pipe.recv() for pipe in self.pipes]
        errors = [r["error"] for r in out if "error" in r]
        if errors:
            raise RuntimeError(f"worker failed: {errors}")
        return out

    def call(self, cmd: Result) -> list[Result]:
        self.send(cmd)
        return self.receive()

    def close(self) -> None:
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            if proc.is_alive():
                try:
                    pipe.send({"op": "exit"})
                    if pipe.poll(10):
                        pipe.recv()
                except (OSError, EOFError):
                    pass
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join()


# -- setup over the RPC ---------------------------------------------------------------------


def auction_body(auction_id: str, bidders: list[str], visibility: str) -> Result:
    start = time.time_ns() // 1000
    return {
        "auction_id": auction_id, "title": "ws load benchmark", "buyer_ref": "WS-LOAD", "currency": "EUR",
        "decimals": 2, "start": format_instant(start), "end": format_instant(start + HOURS_OPEN * 3_600_000_000),
        "stagger": "0s", "bidders": bidders, "min_bidders": 1, "visibility": visibility,
        "rules": {"min_step": "0.01"},
        "extension": {"window": "1m", "extend_by": "1m", "trigger": "any_bid", "mode": "from_bid",
                      "max_extensions": 100},
        "lots": [{"lot_id": LOT_ID, "title": "lot 1", "estimate": "900000.00", "starting_price": "1000000.00"}],
    }


async def create_auctions(base: str, auctions: int, bidders: int, visibility: str) -> list[Result]:
    """Create the auctions and admit their bidders; each auction's id and tokens."""
    out: list[Result] = [{} for _ in range(auctions)]
    limiter = trio.CapacityLimiter(RPC_AT_ONCE)
    async with RpcClient(base, API_KEY, timeout=120) as rpc:

        async def one(a: int) -> None:
            async with limiter:
                aid = f"WS-{a:04d}"
                names = [f"b{a:04d}-{i:02d}" for i in range(bidders)]
                await rpc.create_auction(auction_body(aid, names, visibility))
                admitted = await rpc.admit(aid, names)
                out[a] = {"auction_id": aid, "lot": LOT_ID, "price": STARTING_PRICE - 1,
                          "tokens": [t["token"] for t in admitted["tokens"]]}

        async with trio.open_nursery() as nursery:
            for a in range(auctions):
                nursery.start_soon(one, a)
    return out


def scrape(base: str) -> dict[str, float]:
    """The service's counters (name{labels} -> value) from /metrics."""
    out: dict[str, float] = {}
    for line in httpx.get(base + "/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def delta(after: dict[str, float], before: dict[str, float], prefix: str) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))


# -- phases --------------------------------------------------------------------------------


def sleep_until(t: float) -> None:
    left = t - time.perf_counter()
    if left > 0:
        time.sleep(left)


def percentile_ms(sorted_ns: Sequence[int], q: float) -> float | None:
    if not sorted_ns:
        return None
    return round(sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1e6, 3)


def phase(workers: Workers, server: Proc, cmd: Result, warmup: float, duration: float) -> tuple[list[Result], Result]:
    """Run one timed phase on every worker; the server's CPU and RSS over [t0 + warmup, t0 + duration]."""
    t0 = time.perf_counter() + START_DELAY
    workers.send({**cmd, "t0": t0, "duration": duration, "warmup": warmup})
    sleep_until(t0 + warmup)
    gc0 = server.gc_stats()
    cpu0, wall0 = server.cpu_s(), time.perf_counter()
    sleep_until(t0 + duration)
    cpu1, wall1 = server.cpu_s(), time.perf_counter()
    gc1 = server.gc_stats()
    rss = server.rss_kib()
    results = workers.receive()
    return results, {"server_cpu_s": cpu1 - cpu0, "window_s": wall1 - wall0, "server_rss_kib": rss,
                     "client_cpu_pct": round(100 * sum(r["cpu_s"] for r in results)
                                             / max(r["wall_s"] for r in results), 1),
                     "server_gc": gc_delta(gc1, gc0, wall1 - wall0)}


def gc_delta(after: Result | None, before: Result | None, seconds: float) -> Result | None:
    """The collector's work between two probe readings: share of the wall time, collections
    and seconds per generation, and the longest pause so far (max over the whole run)."""
    if after is None or before is None:
        return None
    spent = [a - b for a, b in zip(after["seconds"], before["seconds"], strict=True)]
    return {"pct_of_wall": round(100 * sum(spent) / seconds, 1),
            "collections": [a - b for a, b in zip(after["collections"], before["collections"], strict=True)],
            "ms": [round(x * 1e3, 1) for x in spent],
            "max_pause_ms_so_far": [round(x * 1e3, 1) for x in after["max_s"]]}


def closed_loop(workers: Workers, server: Proc, target: str, warmup: float, duration: float) -> Result:
    """Every lane of `target` keeps one bid in flight: answers/s after the warm-up."""
    before = scrape(server.base) if target == "room" else {}
    results, usage = phase(workers, server, {"op": "closed", "target": target}, warmup, duration)
    answered = sum(r["answered"] for r in results)
    latencies = sorted(x for r in results for x in r["latencies_ns"])
    out = {
        "per_s": answered / (duration - warmup), "answered": answered, "sent": sum(r["sent"] for r in results),
        "outstanding": sum(r["outstanding"] for r in results), "lanes": sum(r["lanes"] for r in results),
        "rejects": merge(r["rejects"] for r in results), "closed": merge(r["closed"] for r in results),
        "latency_p50_ms": percentile_ms(latencies, 0.5), "latency_p99_ms": percentile_ms(latencies, 0.99),
        "server_cpu_pct": round(100 * usage["server_cpu_s"] / usage["window_s"], 1),
        "server_cpu_us_per_answer": round(usage["server_cpu_s"] / max(answered, 1) * 1e6, 1),
        "client_cpu_pct": usage["client_cpu_pct"], "server_rss_kib": usage["server_rss_kib"],
        "server_gc": usage["server_gc"],
    }
    if target == "room":
        out.update(service_counters(scrape(server.base), before, results))
    return out


def open_loop(workers: Workers, server: Proc, rate: float, warmup: float, duration: float, drain: float,
              seed: int) -> Result:
    """Every room lane bids `rate` times a second on a schedule: latencies of the bids
    scheduled after the warm-up; acks/s read in the window."""
    before = scrape(server.base)
    results, usage = phase(workers, server, {"op": "open", "target": "room", "rate": rate, "drain": drain,
                                             "seed": seed}, warmup, duration)
    after = scrape(server.base)
    acks = sorted(x for r in results for x in r["ack_ns"])
    views = sorted(x for r in results for x in r["view_ns"])
    answered = sum(r["answered"] for r in results)
    return {
        "offered_per_s": None, "rate_per_bidder": rate, "bids_per_s": answered / (duration - warmup),
        "answered": answered, "sent": sum(r["sent"] for r in results),
        "outstanding": sum(r["outstanding"] for r in results),
        "ack_p50_ms": percentile_ms(acks, 0.5), "ack_p99_ms": percentile_ms(acks, 0.99),
        "ack_max_ms": percentile_ms(acks, 1.0), "acks": len(acks),
        "view_p50_ms": percentile_ms(views, 0.5), "view_p99_ms": percentile_ms(views, 0.99),
        "view_max_ms": percentile_ms(views, 1.0), "views_timed": len(views),
        "unanswered": sum(r["unanswered"] for r in results), "reordered": sum(r["reordered"] for r in results),
        "view_missing": sum(r["view_missing"] for r in results), "other_messages": merge(r["other"] for r in results),
        "rejected": sum(r["rejected"] for r in results), "rejects": merge(r["rejects"] for r in results),
        "closed": merge(r["closed"] for r in results), **service_counters(after, before, results),
        "client_lag_p50_ms": round(max(r["lag_p50_ms"] for r in results), 3),
        "client_lag_p99_ms": round(max(r["lag_p99_ms"] for r in results), 3),
        "client_lag_max_ms": round(max(r["lag_max_ms"] for r in results), 3),
        "server_cpu_pct": round(100 * usage["server_cpu_s"] / usage["window_s"], 1),
        "server_cpu_us_per_bid": round(usage["server_cpu_s"] / max(answered, 1) * 1e6, 1),
        "client_cpu_pct": usage["client_cpu_pct"], "server_rss_kib": usage["server_rss_kib"],
        "server_gc": usage["server_gc"],
    }


def service_counters(after: dict[str, float], before: dict[str, float], results: list[Result]) -> Result:
    """Per-bid fan-out and journal batching over a phase, from the service's metrics."""
    bids = max(delta(after, before, "auction_bids_total"), 1)
    batches = delta(after, before, "auction_journal_batch_records_count")
    sent = sum(r["sent"] for r in results)
    return {
        "views_read_per_bid": round(sum(r["views_read"] for r in results) / max(sent, 1), 2),
        "server_views_sent_per_bid": round(delta(after, before, "auction_views_sent_total") / bids, 2),
        "server_views_conflated_per_bid": round(delta(after, before, "auction_views_conflated_total") / bids, 2),
        "journal_batches": int(batches),
        "mean_batch_records": round(delta(after, before, "auction_journal_batch_records_sum") / max(batches, 1), 1),
        "server_ack_p50_ms": histogram_quantile(after, before, "auction_bid_ack_seconds", 0.5),
        "server_ack_p99_ms": histogram_quantile(after, before, "auction_bid_ack_seconds", 0.99),
        "server_loop_lag_p99_ms": histogram_quantile(after, before, "auction_event_loop_lag_seconds", 0.99),
    }


def histogram_quantile(after: dict[str, float], before: dict[str, float], name: str, q: float) -> float | None:
    """The q-quantile (ms, linear within its bucket) of a histogram's observations between
    two scrapes: the service's own view (e.g. from a bid's arrival to its ack being queued).
    Past the top finite bucket (2.5 s for the ack) it is that bucket's bound: a lower bound."""
    buckets = []
    for key, value in after.items():
        if key.startswith(name + "_bucket{") and 'le="' in key:
            le = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), value - before.get(key, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    low, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return round(low * 1e3, 3)
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((low + share * (bound - low)) * 1e3, 3)
        low, below = bound, count
    return None


def merge(counts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def connect(workers: Workers, server: Proc, target: str, port: int, path: str) -> Result:
    gc0 = server.gc_stats()
    cpu0, t0 = server.cpu_s(), time.perf_counter()
    results = workers.call({"op": "connect", "target": target, "port": port, "path": path})
    seconds, cpu = time.perf_counter() - t0, server.cpu_s() - cpu0
    held = sum(r["connected"] for r in results)
    return {"connections": held, "failures": merge(r["failures"] for r in results), "seconds": round(seconds, 2),
            "per_s": round(held / seconds, 1), "server_cpu_ms_per_connection": round(cpu / max(held, 1) * 1e3, 3),
            "server_gc": gc_delta(server.gc_stats(), gc0, seconds)}


def gc_text(gc: Result | None) -> str:
    if gc is None:
        return ""
    return (f"; server GC {gc['pct_of_wall']}% of the time ({sum(gc['collections'])} collections, "
            f"{gc['ms'][2]} ms in full ones)")


def idle_cpu(server: Proc, seconds: float) -> float:
    cpu0, t0 = server.cpu_s(), time.perf_counter()
    time.sleep(seconds)
    return (server.cpu_s() - cpu0) / (time.perf_counter() - t0)


def settled_rss(server: Proc, seconds: float) -> int:
    """The median of a few RSS readings over `seconds`."""
    readings = []
    for _ in range(5):
        time.sleep(seconds / 5)
        readings.append(server.rss_kib())
    return int(statistics.median(readings))


# -- the run -----------------------------------------------------------------------------------


def ack_size(visibility: str) -> int:
    """Characters of a typical ack (as gateway.rooms.ack builds it, compact JSON)."""
    ack = {"type": "ack", "client_bid_id": "WS-0000.00-1000", "lot": LOT_ID, "amount": "999999.99",
           "time": format_instant(time.time_ns() // 1000), "rank": 1, "duplicate": False}
    if visibility != "rank":
        ack["best_price"] = "999999.99"
    return len(json.dumps(ack, separators=(",", ":")))


def machine() -> Result:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "trio": trio.__version__}


def run(args: argparse.Namespace) -> Result:
    mode = "quick" if args.quick else "full"
    connections = args.auctions * args.bidders
    root = Path(tempfile.mkdtemp(prefix="bench-ws-", dir=args.dir))
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {mode} mode: {args.auctions} auctions x "
          f"{args.bidders} bidders = {connections:,} connections from {args.workers} worker processes; "
          f"durability {args.durability}, visibility {args.visibility}; {root}", flush=True)
    nofile = raise_nofile()
    if nofile < connections * 2 + 100:
        print(f"warning: RLIMIT_NOFILE is {nofile}, too low for {connections} connections", flush=True)
    service = echo = None
    workers = None
    out: Result = {"mode": mode}
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
              f"idle server CPU {100 * idle:.1f}%{gc_text(ramp['server_gc'])}", flush=True)
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
        bids_per_s = statistics.median(b["per_s"] for b in bids)
        echo_per_s = statistics.median(e["per_s"] for e in echoes)

        loads: list[Result] = []
        for i, fraction in enumerate(args.fractions):
            rate = fraction * bids_per_s / held
            load = open_loop(workers, service, rate, args.warmup, args.load_seconds, args.drain, args.seed + i)
            load["fraction"] = fraction
            load["offered_per_s"] = round(rate * held, 1)
            settled = workers.call({"op": "settle", "target": "room", "timeout": args.settle_max})
            load["settle_s"] = round(max(r["seconds"] for r in settled), 2)
            load["left_unanswered"] = sum(r["outstanding"] for r in settled)
            loads.append(load)
            print(f"  {fraction:g} of the sustained rate: offered {load['offered_per_s']:,.0f} bids/s "
                  f"({rate:.3f}/s per bidder), got {load['bids_per_s']:,.0f}; ack p50 {load['ack_p50_ms']} ms, p99 "
                  f"{load['ack_p99_ms']} ms; view (every bidder of the auction) p50 {load['view_p50_ms']} ms, p99 "
                  f"{load['view_p99_ms']} ms; {load['views_timed']:,} timed, {load['reordered']} reordered, "
                  f"{load['unanswered']} unanswered and {load['view_missing']} views missing after the drain; "
                  f"server CPU {load['server_cpu_pct']}% "
                  f"({load['server_cpu_us_per_bid']} us/bid, {load['server_views_sent_per_bid']} views sent per bid); "
                  f"in the service (arrival to ack queued, from its histogram) p50 ~{load['server_ack_p50_ms']} ms, "
                  f"p99 ~{load['server_ack_p99_ms']} ms; client send lag p50 {load['client_lag_p50_ms']} ms, p99 "
                  f"{load['client_lag_p99_ms']} ms"
                  f"{gc_text(load['server_gc'])}", flush=True)
            time.sleep(0.5)
        headline = next((x for x in loads if x["fraction"] == 0.5), loads[0])  # "at half that load"
        end_rss = service.rss_kib()
        gc_total = service.gc_stats()
        still_held = held - sum(loads[-1]["closed"].values())  # the workers count every closure so far
        workers.call({"op": "disconnect", "target": "echo"})
        workers.call({"op": "disconnect", "target": "room"})
        log_levels = log_counts(root / "service.log")
        out.update({
            "connections": still_held, "bids_per_s": round(bids_per_s), "raw_echo_per_s": round(echo_per_s),
            "ratio": round(bids_per_s / echo_per_s, 3),
            "load_fraction": headline["fraction"], "load_offered_per_s": headline["offered_per_s"],
            "load_bids_per_s": round(headline["bids_per_s"], 1),
            **{k: headline[k] for k in ("ack_p50_ms", "ack_p99_ms", "view_p50_ms", "view_p99_ms")},
            "server_kib_per_connection": round(kib_per_conn, 2), "echo_kib_per_connection": round(echo_kib, 2),
            "server_cpu_us_per_bid": round(statistics.median(b["server_cpu_us_per_answer"] for b in bids), 1),
            "server_cpu_pct_sustained": round(statistics.median(b["server_cpu_pct"] for b in bids), 1),
            "server_cpu_pct_per_1000_idle_connections": round(100 * idle / max(held, 1) * 1000, 3),
            "server_cpu_ms_per_connect": ramp["server_cpu_ms_per_connection"],
            "server_gc_pct_sustained": median_gc(bids), "echo_gc_pct_sustained": median_gc(echoes),
            "server_gc_max_pause_ms": round(max(gc_total["max_s"]) * 1e3, 1) if gc_total else None,
            "details": {
                "auctions": args.auctions, "bidders": args.bidders, "workers": args.workers,
                "durability": args.durability, "visibility": args.visibility, "repeat": args.repeat,
                "gc_experiment": {"threshold": args.gc_threshold, "freeze_after_connect": args.gc_freeze},
                "seconds": args.seconds, "warmup": args.warmup, "load_seconds": args.load_seconds,
                "reply_bytes": reply, "setup_s": round(setup_s, 2),
                "server_rss_kib": {"base": base_rss, "held": held_rss, "end": end_rss},
                "echo_rss_kib": {"base": echo_base_rss, "held": echo_held_rss},
                "ramp": ramp, "echo_ramp": echo_ramp, "server_idle_cpu_pct": round(100 * idle, 2),
                "echo_runs": echoes, "bid_runs": bids, "loads": loads, "service_log": log_levels,
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
    for line in lines:
        try:
            level = json.loads(line).get("level", "?")
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
        "half_load_ack_p99_ms_le_20": out["ack_p99_ms"] is not None and out["ack_p99_ms"] <= 20,
        "half_load_view_p99_ms_le_50": out["view_p99_ms"] is not None and out["view_p99_ms"] <= 50,
    }
    return {**{k: v for k, v in out.items() if k != "details"}, "targets": targets, "full_shape": full_shape,
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "wall_s": round(wall_s, 1),
            "machine": machine(), "details": d}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ws_load", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 x 20 connections, short phases: under 1 min")
    parser.add_argument("--auctions", type=int, help="auctions (default 250 = 5,000 connections; --quick 20)")
    parser.add_argument("--bidders", type=int, default=20, help="bidders per auction (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--seconds", type=float, help="length of each capacity run (default 10; --quick 4)")
    parser.add_argument("--warmup", type=float, help="seconds of each run left out of its figures (default 2; "
                        "--quick 1)")
    parser.add_argument("--load-seconds", type=float, help="length of each latency run (default 20; --quick 6)")
    parser.add_argument("--drain", type=float, default=3.0, help="longest wait for a latency run's last views "
                        "(what is still due then counts with the time it waited)")
    parser.add_argument("--settle-max", type=float, default=30.0, help="longest wait, after a latency run, for the "
                        "answers still due before the next run")
    parser.add_argument("--repeat", type=int, help="capacity runs, echo and service interleaved (default 3; "
                        "--quick 2); medians")
    parser.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")],
                        help="latency runs at these fractions of the sustained rate (default 0.1,0.25,0.5; --quick "
                        "0.5); the headline latencies are the 0.5 run's (else the first's)")
    parser.add_argument("--durability", choices=("fsync", "none"), default="fsync")
    parser.add_argument("--visibility", choices=("rank_and_best", "ladder"), default="rank_and_best")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                        help="the service's log level (default info, as in production)")
    parser.add_argument("--settle", type=float, help="seconds to hold the idle connections (default 3; --quick 2)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--dir", type=Path, help="where the data dir goes (default: the temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and the server logs")
    parser.add_argument("--no-gc-probe", dest="gc_probe", action="store_false",
                        help="run the servers without benchmarks.ws_gcstats (no collector figures)")
    parser.add_argument("--gc-threshold", metavar="G0,G1,G2",
                        help="experiment: gc.set_threshold in both servers (needs the probe)")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="experiment: once connected, both servers collect and gc.freeze() (needs the probe)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"auctions": (20, 250), "seconds": (4.0, 10.0), "warmup": (1.0, 2.0), "load_seconds": (6.0, 20.0),
                "repeat": (2, 3), "settle": (2.0, 3.0), "fractions": ([0.5], [0.1, 0.25, 0.5])}
    for name, (q, f) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, q if quick else f)
    if (args.auctions < args.workers or args.bidders < 1 or args.repeat < 1 or args.warmup >= args.seconds
            or args.warmup >= args.load_seconds or not all(f > 0 for f in args.fractions)):
        parser.error("need auctions >= workers, bidders >= 1, repeat >= 1, warmup < seconds and load-seconds, "
                     "fractions > 0")
    if (args.gc_freeze or args.gc_threshold) and not args.gc_probe:
        parser.error("--gc-freeze and --gc-threshold need the collector probe")
    t0 = time.perf_counter()
    out = summarize(run(args), time.perf_counter() - t0)
    print(f"sustained {out['bids_per_s']:,} bids/s vs raw echo {out['raw_echo_per_s']:,} round trips/s: ratio "
          f"{out['ratio']:.3f}; {out['connections']:,} connections at {out['server_kib_per_connection']} KiB each "
          f"(echo stack {out['echo_kib_per_connection']}); at {out['load_fraction']:g} load ack p99 "
          f"{out['ack_p99_ms']} ms, view p99 {out['view_p99_ms']} ms", flush=True)
    print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
