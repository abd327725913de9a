"""The processes of `benchmarks.ws_load`: the servers (service, echo) watched through /proc, the load generators.

`start_service` and `start_echo` run a server as its own process (under the collector probe
`benchmarks.ws_gcstats` if asked) and wait until it answers; `Workers` drives the
`benchmarks.ws_worker` processes over pipes, one command and one answer each at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from . import ws_worker
from .common import Result

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


def start_service(root: Path, args: argparse.Namespace, extra: Sequence[str] = (), name: str = "service") -> Proc:
    """`auction-engine serve` with the benchmark's settings; `extra` serve arguments (e.g. `--redis URL`)."""
    port = free_port()
    config = root / "settings.json"
    config.write_text(json.dumps({
        "api_keys": [{"name": "ws-load", "role": "portal", "key": API_KEY}], "token_secret": TOKEN_SECRET,
        "bid_rate": 10_000, "bid_burst": 100_000, "max_connections": 100_000, "durability": args.durability,
        "log_level": args.log_level, "direct_writes": args.direct_writes,
    }))
    serve = ["serve", "--port", str(port), "--data-dir", str(root / "data"), "--config", str(config), *extra]
    return start_proc(name, "auction_engine.cli", serve, root, port, "/readyz", args.gc_probe, args.gc_threshold)


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

