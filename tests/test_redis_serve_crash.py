"""Crash suite for `auction-engine serve --redis`: the journal of record is a private
redis-server (AOF, appendfsync always); the service runs as a subprocess under bid load
from WebSocket bidders (test_serve_crash.py's), is SIGKILLed at random moments and
restarted REDIS_SERVE_KILLS times (3 by default), each start rebuilding the case from
Redis alone (a fresh data directory each time: nothing local is needed). In the last run
the redis-server itself is stopped and started again under load: /readyz says so, a new
bid is refused `journal_unavailable` meanwhile, the bids in flight wait, and the service
reconnects by itself and goes on.
Then it stops gracefully. From the stream (exported with `auction-replay export
--redis`, then `verify`): every answer a client got is there exactly once with that
outcome, nothing unanswered or never sent, each start recovered the state a fresh replay
of its prefix gives, and the RPC shows the lowest acknowledged price.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from redis_local import local_redis
from test_serve_crash import (
    AUCTION,
    BIDDERS,
    LOT,
    PORTAL_KEY,
    RETRYABLE,
    STARTING_PRICE,
    STOP_TIMEOUT,
    Bidder,
    Load,
    Server,
    auction_body,
    money,
    write_settings,
)

from auction_engine.cluster.local import LocalRedis
from auction_engine.journal import JournalReader, Verifier
from gateway.client import Room, RpcClient

KILLS = int(os.environ.get("REDIS_SERVE_KILLS", 3))
SEED = int(os.environ.get("REDIS_SERVE_SEED", time.time_ns() % 1_000_000))
LEASE_MS = 1000  # a killed engine's leases expire this fast: the restart waits that long at most

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


class RedisServer(Server):
    """`auction-engine serve --redis URL` (no sync process: Redis is the journal)."""

    def __init__(self, url: str, data_dir: Path, config: Path, log: Path) -> None:
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUCTION_ENGINE_")}
        env["AUCTION_ENGINE_REDIS_LEASE_MS"] = str(LEASE_MS)
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auction_engine.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                 "--port", "0", "--data-dir", str(data_dir), "--redis", url],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True)
        self.pid = self.process.pid
        self.port = 0
        self.recovered: dict[str, Any] = {}
        self.sync_pid = 0

    async def started(self) -> None:
        with trio.fail_after(90):
            while not any(line.get("msg") == "serving" for line in self.lines()):
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.tail()}")
                await trio.sleep(0.05)
        lines = self.lines()
        self.port = next(line for line in lines if line.get("msg") == "serving")["port"]
        self.recovered = next(line for line in lines if line.get("msg") == "journal recovered")

    async def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert await self.exited(30) == -signal.SIGKILL


async def restart_redis(redis: LocalRedis, server: RedisServer, probe: Bidder) -> list[dict[str, Any]]:
    """Stop the redis-server; once /readyz says so, a bid of `probe` must be refused
    `journal_unavailable` (the bids in flight wait: their outcome is unknown until Redis
    answers); start it again. Returns the probe's answers."""
    await trio.to_thread.run_sync(redis.stop)
    answers = []
    async with httpx.AsyncClient(timeout=10) as http:
        with trio.fail_after(30):  # (the pub/sub probe may say so first, in its own words)
            while "Redis is unreachable" not in (ready := await http.get(f"{server.base}/readyz")).text:
                await trio.sleep(0.02)
        assert ready.status_code == 503, ready.text
    async with Room.connect(server.room_url, probe.token) as room:
        for i in range(3):
            answers.append(await room.bid(LOT, money(STARTING_PRICE - 1), f"probe-{i}"))
    await trio.to_thread.run_sync(redis.start)
    return answers


@pytest.mark.trio
async def test_sigkill_of_serve_redis_under_load_and_a_redis_restart_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    note = f"(REDIS_SERVE_SEED={SEED}, logs in {tmp_path})"
    config = tmp_path / "settings.toml"
    write_settings(config)
    bidders = [Bidder(f"bidder{i}") for i in range(BIDDERS)]
    probe = Bidder("probe")  # bids only while Redis is down
    amounts = itertools.count()
    servers: list[RedisServer] = []
    shown: dict[str, Any] = {}
    for redis in local_redis(tmp_path / "redis"):
        try:
            for run in range(KILLS + 1):
                server = RedisServer(redis.url, tmp_path / f"data-{run}", config, tmp_path / f"serve-{run}.log")
                servers.append(server)
                await server.started()
                if run == 0:
                    async with RpcClient(server.base, PORTAL_KEY) as rpc:
                        await rpc.create_auction(auction_body())
                        tokens = (await rpc.admit(AUCTION, [b.name for b in [*bidders, probe]]))["tokens"]
                    for bidder, token in zip([*bidders, probe], tokens, strict=True):
                        bidder.token = token["token"]
                load = Load(bidders, amounts, run, server.room_url)
                if run < KILLS:
                    await load.run_until(server.kill, rng.uniform(0.3, 1.5))
                    continue

                async def redis_restart_then_stop(load: Load = load, server: RedisServer = server,
                                                  redis: LocalRedis = redis) -> None:
                    probed = await restart_redis(redis, server, probe)
                    assert [(m["type"], m["code"]) for m in probed] == [("reject", "journal_unavailable")] * 3
                    acked_before = count_acks(bidders)
                    with trio.fail_after(30):  # the service took bids again by itself
                        while count_acks(bidders) < acked_before + 5:
                            await trio.sleep(0.02)
                    load.stop.set()
                    while load.idle < len(bidders):
                        await trio.sleep(0.01)
                    acked = [int(m["amount"].replace(".", "")) for b in bidders for answers in b.answers.values()
                             for _run, m in answers if m["type"] == "ack"]
                    async with RpcClient(server.base, PORTAL_KEY) as rpc:
                        shown.update(lot=(await rpc.get_auction(AUCTION))["lots"][0])
                    assert shown["lot"]["best_price"] == money(min(acked)), shown
                    server.process.send_signal(signal.SIGTERM)
                    assert await server.exited(STOP_TIMEOUT) == 0, server.tail()

                await load.run_until(redis_restart_then_stop, rng.uniform(0.3, 1.0))
            assert servers[-1].lines()[-1]["msg"] == "stopped; journal flushed", servers[-1].tail()
        finally:
            for server in servers:
                server.ensure_dead()
        for server in servers:
            assert b"Traceback" not in server.log.read_bytes(), server.tail()
        out = tmp_path / "export"
        exported = out / f"{AUCTION}.journal"
        for argv in (["export", "--redis", redis.url, str(out)], ["verify", str(exported)]):  # the real commands
            done = await trio.run_process([sys.executable, "-m", "replay.cli", *argv], capture_stdout=True,
                                          capture_stderr=True, check=False)
            assert done.returncode == 0, (argv, done.stdout, done.stderr)

    # --- the stream against what every client was told ---------------------------------------------------------------
    owner = {cid: b for b in bidders for cid in b.sent}
    recovered = [s.recovered["records"] for s in servers]
    hashes: dict[int, str] = {}
    verifier = Verifier(contiguous=False)
    if 0 in recovered:
        hashes[0] = verifier.journaled.host.state_hash()
    journaled: dict[str, tuple[int, str, str, int]] = {}  # cid -> (gseq, outcome, code, amount)
    for record, where in JournalReader(exported).records():
        events = verifier.feed(record, where)
        hashes[record.gseq] = verifier.journaled.host.state_hash()
        if record.command[0] != "PlaceBid":
            continue
        _name, _time, _aid, _lot, bidder_id, amount, cid = record.command
        sender = owner.get(cid)
        assert sender is not None and sender.name == bidder_id and sender.sent[cid] == amount, \
            f"the stream holds a bid never sent: {record.command} {note}"
        assert cid not in journaled, f"{cid} is journaled twice {note}"
        outcome = next(e for e in events if type(e).__name__ in ("BidAccepted", "BidRejected"))
        code = getattr(outcome, "code", "")
        journaled[cid] = (record.gseq, "ack" if code == "" else "reject", code, amount)

    answered = 0
    for bidder in bidders:
        assert bidder.in_flight is None, f"{bidder.name} ended with a bid unanswered {note}"
        for cid, answers in bidder.answers.items():
            finals = [(run, m) for run, m in answers if not (m["type"] == "reject" and m["code"] in RETRYABLE)]
            assert len(finals) == 1, (cid, answers)
            run, message = finals[0]
            assert cid in journaled, f"{cid} was answered {message} but is not in the stream {note}"
            gseq, kind, code, amount = journaled[cid]
            assert message["type"] == kind, (cid, message, journaled[cid])
            if kind == "ack":
                assert message["amount"] == money(amount)
            else:
                assert message["code"] == code == "insufficient_step" and bidder.sent[cid] == STARTING_PRICE
            assert message["duplicate"] is (gseq <= recovered[run]), (cid, run, gseq, recovered, message)
            answered += 1
    assert answered == len(journaled), "the stream holds a bid no client was told about"
    for server in servers:  # each start rebuilt exactly what a fresh replay of the stream's prefix gives
        records = server.recovered["records"]
        assert server.recovered["summary"].split("; state ")[1][:16] == hashes[records][:16], server.recovered
    acks = sum(1 for v in journaled.values() if v[1] == "ack")
    assert (shown["lot"]["bids"], shown["lot"]["rejected_bids"]) == (acks, len(journaled) - acks), shown["lot"]
    assert acks > 10 * (KILLS + 1), f"too little load to mean anything: {acks} accepted bids {note}"
    print(f"{KILLS} kills and a Redis restart: {len(journaled)} bids in the stream ({acks} accepted); seed {SEED}")


def count_acks(bidders: list[Bidder]) -> int:
    return sum(1 for b in bidders for answers in b.answers.values() for _r, m in answers if m["type"] == "ack")
