"""The phases of `benchmarks.ws_load`: setup over the RPC, then timed phases run by every worker at once.

Each phase starts at a shared instant (`START_DELAY` ahead, one clock for every process),
reads the server's CPU, RSS and collector over the measured window, and sums what the
workers report; the service's own counters come from its /metrics.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Sequence
from typing import Any

import httpx
import trio

from auction_engine.timeutil import format_instant
from gateway.client import RpcClient

from .common import Result, percentile_ms
from .ws_procs import API_KEY, HOURS_OPEN, LOT_ID, RPC_AT_ONCE, START_DELAY, STARTING_PRICE, Proc, Workers

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


def ms(sorted_ns: Sequence[int], q: float) -> float | None:
    """The q-quantile of sorted nanoseconds in ms (µs precision); None without samples."""
    return round(percentile_ms(sorted_ns, q), 3) if sorted_ns else None


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
        "latency_p50_ms": ms(latencies, 0.5), "latency_p99_ms": ms(latencies, 0.99),
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
        "ack_p50_ms": ms(acks, 0.5), "ack_p99_ms": ms(acks, 0.99),
        "ack_max_ms": ms(acks, 1.0), "acks": len(acks),
        "view_p50_ms": ms(views, 0.5), "view_p99_ms": ms(views, 0.99),
        "view_max_ms": ms(views, 1.0), "views_timed": len(views),
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

