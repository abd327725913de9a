"""Run a module as a program with a probe on its garbage collector (for `benchmarks.ws_load`).

    python -m benchmarks.ws_gcstats STATS_FILE [--threshold G0,G1,G2] MODULE [ARGS...]

The probe times every collection (`gc.callbacks`: two calls per collection, nothing else
changes). On SIGUSR1 it writes the totals so far to STATS_FILE as one JSON object:
`seq` (how many times it wrote), and per generation `collections`, `seconds` and
`max_s`. MODULE then runs as `__main__` with ARGS as its argv, as `python -m MODULE ARGS`
would run it. For experiments only (the benchmark's figures are taken without them):
`--threshold` calls `gc.set_threshold` first, and SIGUSR2 makes the process collect and
then `gc.freeze()` what is left (what `ws_load --gc-freeze` sends once every connection is
open, to show what freezing the long-lived connection objects would save).
"""

from __future__ import annotations

import gc
import json
import os
import runpy
import signal
import sys
import time
from types import FrameType
from typing import Any


class Probe:
    def __init__(self, path: str) -> None:
        self.path = path
        self.seq = 0
        self.started = 0.0
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.max_s = [0.0, 0.0, 0.0]

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        elapsed = time.perf_counter() - self.started
        g = info["generation"]
        self.collections[g] += 1
        self.seconds[g] += elapsed
        if elapsed > self.max_s[g]:
            self.max_s[g] = elapsed

    def write(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        self.seq += 1
        data = json.dumps({"seq": self.seq, "collections": self.collections, "seconds": self.seconds,
                           "max_s": self.max_s, "pid": os.getpid()})
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)


def freeze(_signum: int = 0, _frame: FrameType | None = None) -> None:
    gc.collect()
    gc.freeze()


def main() -> None:
    args = sys.argv[1:]
    path = args.pop(0)
    if args[0] == "--threshold":
        args.pop(0)
        gc.set_threshold(*(int(x) for x in args.pop(0).split(",")))
    module = args.pop(0)
    probe = Probe(path)
    gc.callbacks.append(probe.callback)
    signal.signal(signal.SIGUSR1, probe.write)
    signal.signal(signal.SIGUSR2, freeze)
    probe.write()
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
