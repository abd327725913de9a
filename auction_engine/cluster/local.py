"""A private redis-server on loopback, for tests and benchmarks: AOF with fsync on every write.

`LocalRedis(directory)` starts Debian's ``redis-server`` on a free loopback port with
``appendonly yes``, ``appendfsync always`` and no RDB snapshots, its files in `directory`,
and waits until it answers PING; `stop()` ends it (SIGTERM, then waits); `start()` again
restarts it on the same port and files (its AOF replayed). `RedisMissing` if the binary
is not installed (`make test` installs it).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

STARTUP_TIMEOUT = 20.0  # seconds for the server to answer PING


class RedisMissing(RuntimeError):
    """No redis-server binary on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LocalRedis:
    """One redis-server process; `url` while it runs."""

    def __init__(self, directory: str | Path, *, binary: str | None = None, extra: tuple[str, ...] = ()) -> None:
        found = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(found).exists():
            raise RedisMissing("redis-server is not installed (apt-get install redis-server; `make test` does it)")
        self.binary = found
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--logfile", str(self.directory / "redis.log"), *self.extra]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._pong():
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING in {STARTUP_TIMEOUT} s")
            time.sleep(0.01)  # polling a condition (the server answering), with a deadline
        return self

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.stop()
