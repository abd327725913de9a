"""Capacity at SLO: the highest offered bid rate a service holds within its latency objective.

The objective (`Slo`): ack p99 <= 50 ms and view p99 <= 100 ms, both timed by the load
generators from each bid's scheduled send (benchmarks/ws_worker.py). `search` finds the
highest passing rate by bisection over fractions of the measured saturation rate: the
saturation rate itself fails by construction (it queues), so the search keeps the highest
passing rate (`lo`) and the lowest failing one (`hi`) and probes between them, starting at
`first` x saturation. Each probe is one short open-loop run (`OpenLoopProbe`). With no
passing probe the capacity is None and `below` says under what rate it lies.

`fit_cpu` splits a process's CPU per bid into a part per bid and a part per view sent, by a
least-squares line over runs that sent different numbers of views per bid; `proc_cpu_s`
reads a process's utime + stime from /proc/<pid>/stat.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .common import Result
from .ws_phases import open_loop
from .ws_procs import Proc, Workers


@dataclass(frozen=True)
class Slo:
    """The latency objective a probe must meet (ms, 99th percentiles)."""

    ack_p99_ms: float = 50.0
    view_p99_ms: float = 100.0

    def met(self, probe: Mapping[str, object]) -> bool:
        """Whether `probe`'s ack and view p99s are both known and within the objective."""
        ack, view = probe.get("ack_p99_ms"), probe.get("view_p99_ms")
        return (isinstance(ack, int | float) and isinstance(view, int | float)
                and ack <= self.ack_p99_ms and view <= self.view_p99_ms)

    def as_dict(self) -> Result:
        return {"ack_p99_ms": self.ack_p99_ms, "view_p99_ms": self.view_p99_ms}


@dataclass
class Search:
    """What a search found: the passing probe at the highest rate (or None), and every probe."""

    capacity: float | None
    at: Result | None
    below: float
    probes: list[Result] = field(default_factory=list)


def search(probe: Callable[[float], Result], saturation: float, probes: int, slo: Slo,
           first: float = 0.5, floor: Result | None = None) -> Search:
    """Bisect over offered rates in (0, saturation): `probes` runs of `probe(rate)`, the
    first at `first` x saturation, each next one halfway between the highest passing rate
    so far (0 at first) and the lowest failing one (saturation at first). `floor`, a run
    already made at a lower rate (its `offered_per_s`), counts as passing if it met the
    SLO: the capacity is then at least its rate."""
    if saturation <= 0 or probes < 1 or not 0 < first < 1:
        raise ValueError("need saturation > 0, probes >= 1 and 0 < first < 1")
    lo, hi = 0.0, saturation
    best: Result | None = None
    if floor is not None and slo.met(floor) and floor["offered_per_s"] < first * saturation:
        lo, best = floor["offered_per_s"], floor
    done: list[Result] = []
    rate = first * saturation
    for _ in range(probes):
        result = probe(rate)
        passed = slo.met(result)
        done.append({**result, "offered_per_s": round(rate, 1), "met_slo": passed})
        if passed:
            lo, best = rate, done[-1]
        else:
            hi = rate
        rate = (lo + hi) / 2
    return Search(round(lo, 1) if best is not None else None, best, round(hi, 1), done)


def fit_cpu(points: Sequence[tuple[float, float]], min_spread: float = 1.0) -> tuple[float, float] | None:
    """(CPU per bid without views, CPU per view sent) from points (views sent per bid, CPU
    per bid) by a least-squares line; None if the views per bid spread less than
    `min_spread`, or if either part comes out negative (noise won: no split to report)."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if max(xs) - min(xs) < min_spread:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    intercept = my - slope * mx
    if slope < 0 or intercept < 0:
        return None
    return intercept, slope


def proc_cpu_s(pid: int) -> float:
    """utime + stime of process `pid` so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class OpenLoopProbe:
    """One open-loop run at an offered rate (bids/s over all `held` bidders), then a wait
    for the answers still due. `others` are further processes (name -> pid, e.g.
    redis-server) whose CPU over the whole run is reported per bid sent."""

    workers: Workers
    server: Proc
    held: int
    warmup: float
    seconds: float
    drain: float
    settle_max: float
    seed: int
    others: Mapping[str, int] = field(default_factory=dict)
    idle_cpu: float = 0.0  # share of a core the server spends with every connection idle
    runs: int = 0

    def __call__(self, rate: float) -> Result:
        before = {name: proc_cpu_s(pid) for name, pid in self.others.items()}
        t0 = time.perf_counter()
        self.runs += 1
        out = open_loop(self.workers, self.server, rate / self.held, self.warmup, self.seconds, self.drain,
                        self.seed + self.runs)
        wall = time.perf_counter() - t0
        # net of the idle connections' own cost (timers, keepalives), which is per connection, not per bid
        net = (out["server_cpu_pct"] / 100 - self.idle_cpu) / max(out["bids_per_s"], 1e-9)
        out["server_cpu_us_per_bid_net"] = round(max(net, 0.0) * 1e6, 1)
        for name, pid in self.others.items():
            cpu = proc_cpu_s(pid) - before[name]
            out[f"{name}_cpu_pct"] = round(100 * cpu / wall, 1)
            out[f"{name}_cpu_us_per_bid"] = round(cpu / max(out["sent"], 1) * 1e6, 1)
        settled = self.workers.call({"op": "settle", "target": "room", "timeout": self.settle_max})
        out["settle_s"] = round(max(r["seconds"] for r in settled), 2)
        out["left_unanswered"] = sum(r["outstanding"] for r in settled)
        return out


def line(probe: Result) -> str:
    """A probe as one human-readable line."""
    return (f"  offered {probe['offered_per_s']:,.0f} bids/s, got {probe['bids_per_s']:,.0f}: ack p50/p99 "
            f"{probe['ack_p50_ms']}/{probe['ack_p99_ms']} ms, view p50/p99 {probe['view_p50_ms']}/"
            f"{probe['view_p99_ms']} ms -> {'meets' if probe.get('met_slo') else 'misses'} the SLO; server CPU "
            f"{probe['server_cpu_pct']}% ({probe['server_cpu_us_per_bid']} us/bid, "
            f"{probe['server_views_sent_per_bid']} views sent per bid)")


def brief(probe: Result) -> Result:
    """The figures of a probe worth keeping in a JSON line (the rest stays in details)."""
    keys = ("offered_per_s", "bids_per_s", "met_slo", "ack_p50_ms", "ack_p99_ms", "view_p50_ms", "view_p99_ms",
            "unanswered", "server_cpu_pct", "server_cpu_us_per_bid", "server_cpu_us_per_bid_net",
            "server_views_sent_per_bid", "server_ack_p99_ms", "server_loop_lag_p99_ms", "redis_cpu_pct",
            "redis_cpu_us_per_bid")
    return {k: round(probe[k], 1) if k == "bids_per_s" else probe[k] for k in keys if k in probe}


def cpu_split(points: Sequence[Result]) -> Result:
    """The server's CPU per bid without its views and per view sent, fitted over runs
    (saturation runs and probes: `server_views_sent_per_bid` against their CPU per bid, net
    of the idle connections' CPU where known);
    None for both when `fit_cpu` finds no sound split."""
    xy = [(p["server_views_sent_per_bid"],
           p.get("server_cpu_us_per_bid_net", p.get("server_cpu_us_per_bid", p.get("server_cpu_us_per_answer"))))
          for p in points]
    fit = fit_cpu([(x, y) for x, y in xy if x is not None and y is not None])
    return {"server_cpu_us_per_bid_alone": round(fit[0], 1) if fit else None,
            "server_cpu_us_per_view": round(fit[1], 2) if fit else None, "fit_points": len(xy)}
