"""What every benchmark shares: percentiles, timed and repeated runs, the machine, the command line, the JSON line.

A benchmark prints human-readable lines first and its figures last, as one JSON object on
one line (`emit`), so that `... | tail -n 1 | jq` works. Percentiles are nearest-rank over
sorted samples; timed runs keep the garbage collector off unless a benchmark says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

Result = dict[str, Any]
T = TypeVar("T")


def quantile(sorted_samples: Sequence[T], q: float) -> T:
    """The q-quantile of sorted samples, nearest rank (q = 1: the largest)."""
    return sorted_samples[min(len(sorted_samples) - 1, int(q * len(sorted_samples)))]


def percentile_ms(sorted_ns: Sequence[int], q: float) -> float:
    """The q-quantile of sorted nanoseconds, in ms."""
    return quantile(sorted_ns, q) / 1e6


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    """A full collection, then no collector for the block: no pause of it lands in a timing."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    """Seconds `fn(*args)` takes with the garbage collector off, and what it returned."""
    with gc_off():
        t0 = time.perf_counter()
        result = fn(*args)
        return time.perf_counter() - t0, result


def interleaved(repeat: int, runs: Sequence[Callable[[], T]],
                check: Callable[[list[T]], None] | None = None) -> list[list[float]]:
    """Seconds of each of `runs`, `repeat` times, one after the other in each repetition
    (so that a slower spell of a shared machine falls on all of them); `check` sees each
    repetition's results. One list of seconds per run, in the order given."""
    seconds: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        results = []
        for i, run in enumerate(runs):
            s, result = timed(run)
            seconds[i].append(s)
            results.append(result)
        if check is not None:
            check(results)
    return seconds


def median_rate(count: float, seconds: Sequence[float]) -> float:
    """`count` per second over the median of repeated runs."""
    return count / statistics.median(seconds)


def runs_s(seconds: Sequence[float]) -> list[float]:
    """Each run's seconds as reported in the JSON details (ms precision)."""
    return [round(x, 3) for x in seconds]


def mode(quick: bool) -> str:
    return "quick" if quick else "full"


def banner(quick: bool) -> str:
    """The start of a benchmark's first line: the interpreter, the CPUs, the mode."""
    return f"python {platform.python_version()}, {os.cpu_count()} CPUs, {mode(quick)} mode"


def machine(**extra: Any) -> Result:
    """Where the figures come from (the JSON's `machine`), with a benchmark's own versions."""
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), **extra}


def stamp(wall_s: float) -> Result:
    """The JSON's `date` (UTC) and `wall_s` (the whole benchmark's seconds)."""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "wall_s": round(wall_s, 1)}


def parser(prog: str, doc: str | None, quick: str) -> argparse.ArgumentParser:
    """An argument parser for `python -m <prog>`, described by the first line of the module's
    docstring, with `--quick` (`quick`: what it shrinks)."""
    out = argparse.ArgumentParser(prog=f"python -m {prog}", description=(doc or "").splitlines()[0])
    out.add_argument("--quick", action="store_true", help=quick)
    return out


def quick_defaults(args: argparse.Namespace, defaults: dict[str, tuple[Any, Any]]) -> None:
    """Fill each option left unset with its (quick, full) default."""
    for name, (quick, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)


def emit(out: Result) -> None:
    """The benchmark's last line: its figures as one JSON object."""
    print(json.dumps(out, ensure_ascii=False), flush=True)


def raise_nofile() -> int:
    """Raise the soft limit on open files to the hard limit (connections); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
