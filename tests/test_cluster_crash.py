"""Kleppmann's fencing argument with real processes: an owner paused past its lease (SIGSTOP)
wakes up (SIGCONT) after another took the case; its late append is refused by the fence,
and the case's chain does not fork (the exported journal verifies)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import trio
from redis_local import until_gone

from auction_engine.cluster import Layout, StreamJournal, connect
from auction_engine.cluster.local import LocalRedis
from replay import verify
from replay.cli import main as replay_main

CASE = "F1"
WORKER = [sys.executable, "-m", "auction_engine.cluster.worker"]


class Lines:
    """A process's stdout, one JSON object per line, read by a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: Any) -> None:
        for line in stdout:
            self.queue.put(json.loads(line))
        self.queue.put(None)

    def next(self, timeout: float = 30.0) -> dict[str, Any] | None:
        return self.queue.get(timeout=timeout)


async def _stream(url: str) -> list[tuple[int, int, str]]:
    """(aseq, token, client_bid_id or '') of every entry of the case's stream, checked."""
    async with connect(url) as client:
        out = []
        async for entry in StreamJournal(client).entries(CASE):
            command = entry.record.command
            out.append((entry.record.aseq, entry.token, command[6] if command[0] == "PlaceBid" else ""))
        return out


async def _lease_gone(url: str) -> None:
    async with connect(url) as client:
        await until_gone(client, Layout().lease(CASE))


def test_a_paused_owner_is_fenced_off(redis_server: LocalRedis, tmp_path: Path) -> None:
    url = redis_server.url
    first = subprocess.Popen([*WORKER, url, CASE, "alpha", "--ttl-ms", "600", "--pace", "0.002"],
                             stdout=subprocess.PIPE, text=True)
    lines = Lines(first)
    try:
        assert lines.next() == {"claimed": 1, "records": 0}
        acks_first = [lines.next() for _ in range(20)]
        first.send_signal(signal.SIGSTOP)
        trio.run(_lease_gone, url)  # its lease ran out while it was stopped
        second = subprocess.run([*WORKER, url, CASE, "beta", "--bids", "5"], capture_output=True, text=True,
                                timeout=60, check=False)
        assert second.returncode == 0, second.stderr
        out_second = [json.loads(line) for line in second.stdout.splitlines()]
        claimed = out_second[0]
        assert claimed["claimed"] == 2 and claimed["records"] >= 21  # the creation and 20+ acknowledged bids
        first.send_signal(signal.SIGCONT)
        while (line := lines.next()) is not None:
            if "ack" in line:
                acks_first.append(line)
            else:
                assert line == {"refused": "stale_token"}
        assert first.wait(timeout=30) == 3
    finally:
        first.kill()
        first.wait()
    acks_second = out_second[1:-1]
    assert out_second[-1] == {"done": 5}
    assert [a["ack"] for a in acks_second] == list(range(claimed["records"] + 1, claimed["records"] + 6))
    assert all(a["token"] == 1 for a in acks_first) and all(a["token"] == 2 for a in acks_second)
    assert max(a["ack"] for a in acks_first) <= claimed["records"]  # acknowledged before the takeover
    stream = trio.run(_stream, url)
    # exactly the acknowledged bids, once each, in one unforked chain; none of the stale owner's late ones
    assert [e[0] for e in stream] == list(range(1, claimed["records"] + 6))
    by_bid = {cid: (aseq, token) for aseq, token, cid in stream if cid}
    assert len(by_bid) == len(stream) - 1
    acked = {a["c"]: (a["ack"], a["token"]) for a in acks_first + acks_second}
    assert by_bid == acked
    assert replay_main(["export", "--redis", url, str(tmp_path / "out")]) == 0
    result = verify(tmp_path / "out" / f"{CASE}.journal")
    assert (result.ok, result.records) == (True, len(stream))

