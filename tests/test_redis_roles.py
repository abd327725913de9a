"""Two engines and two gateways as separate processes (`serve --redis --role engine|gateway`)
on one private redis-server (AOF, appendfsync always), bidders spread over both gateways
on two auctions, owned by different engines.

Under that load, the engine owning the first auction is SIGKILLed REDIS_ROLES_KILLS times
(3 by default; `make test-slow` runs 20) and started again each time: the other engine
takes its cases once their leases lapse, the gateways send the bids in flight again, and
the bidders go on without reconnecting; the restarted engine gets its share back (and an
engine that gave a case away takes it back from its local snapshot). Then a
gateway is SIGKILLed: its bidders reconnect to the other gateway and resend their bid in
flight (resume). Between, one engine is SIGSTOPped past its lease (fencing) and the
redis-server restarts; malformed messages and a foreign key are sent in. Failover time
(kill to the first acknowledgement of a bid the new owner stamped) is measured and printed.

From the streams (exported with `auction-replay export --redis`, then `verify`): every
answer a bidder got is there exactly once with that outcome, every journaled bid was
answered exactly once, and a `duplicate` flag only answers a bidder's own resend.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from redis_local import local_redis
from test_serve_crash import PORTAL_KEY, RETRYABLE, STARTING_PRICE, Server, auction_body, dropped, money, write_settings

from auction_engine.cluster import Client, connect, owner
from auction_engine.cluster.channel import pack
from auction_engine.cluster.local import LocalRedis
from auction_engine.journal import JournalReader, Verifier
from auction_engine.timeutil import parse_instant
from gateway.client import Room, RpcClient

KILLS = int(os.environ.get("REDIS_ROLES_KILLS", 3))
SEED = int(os.environ.get("REDIS_ROLES_SEED", time.time_ns() % 1_000_000))
LEASE_MS = 1000
ENGINES = ("e1", "e2")
LOT = "L1"
STEP = 7
BID_TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


class Proc(Server):
    """`auction-engine serve --redis URL --role ROLE` with REDIS_ENGINE_ID = `ident`."""

    def __init__(self, role: str, ident: str, url: str, tmp: Path, config: Path, run: int,
                 extra: tuple[str, ...] = ()) -> None:
        self.role, self.ident = role, ident
        self.log = tmp / f"{ident}-{run}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUCTION_ENGINE_")}
        env |= {"AUCTION_ENGINE_REDIS_LEASE_MS": str(LEASE_MS), "AUCTION_ENGINE_REDIS_ENGINE_ID": ident}
        with open(self.log, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auction_engine.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                 "--port", "0", "--data-dir", str(tmp / f"data-{ident}"), "--redis", url, "--role", role,
                 *extra],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True)
        self.pid = self.process.pid
        self.port = 0
        self.sync_pid = 0

    async def started(self) -> None:
        with trio.fail_after(90):
            while not any(line.get("msg") == "serving" for line in self.lines()):
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.ident} exited with {self.process.returncode}:\n{self.tail()}")
                await trio.sleep(0.05)
        self.port = next(line for line in self.lines() if line.get("msg") == "serving")["port"]

    def room(self, auction: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/auctions/{auction}"

    async def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        assert await self.exited(30) == -signal.SIGKILL


@dataclass
class Seat:
    """One bidder on one auction: its gateways in order of preference, what it sent and got."""

    name: str
    auction: str
    gateways: list[Proc]
    token: str = ""
    sent: dict[str, int] = field(default_factory=dict)
    answers: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)  # cid -> (received, answer)
    in_flight: tuple[str, int] | None = None
    resent: list[str] = field(default_factory=list)  # resent on a new connection
    switched: int = 0  # times it moved to the next gateway


class Load:
    def __init__(self, seats: list[Seat]) -> None:
        self.seats = seats
        self.amounts = {seat.auction: itertools.count() for seat in seats}
        self.stop = trio.Event()

    def acks(self, after: float = 0.0, seats: list[Seat] | None = None) -> int:
        return sum(1 for seat in seats or self.seats for answers in seat.answers.values() for at, m in answers
                   if m["type"] == "ack" and at > after)

    async def seat(self, seat: Seat) -> None:
        while not self.stop.is_set() or seat.in_flight is not None:
            gateway = seat.gateways[seat.switched % len(seat.gateways)]
            try:
                async with Room.connect(gateway.room(seat.auction), seat.token) as room:
                    if seat.in_flight is not None:
                        seat.resent.append(seat.in_flight[0])
                    await self._bid(seat, room)
                return
            except BaseException as exc:
                if not dropped(exc):
                    raise
                seat.switched += 1  # this gateway is gone: resume on the next one
                await trio.sleep(0.05)

    async def _bid(self, seat: Seat, room: Room) -> None:
        while not self.stop.is_set() or seat.in_flight is not None:
            if seat.in_flight is None:
                n = next(self.amounts[seat.auction])
                cid = f"{seat.name}-{len(seat.sent)}"
                seat.in_flight = (cid, STARTING_PRICE - 1 - STEP * n)
                seat.sent[cid] = seat.in_flight[1]
            cid, amount = seat.in_flight
            with trio.fail_after(BID_TIMEOUT):
                answer = await room.bid(LOT, money(amount), cid)
            seat.answers.setdefault(cid, []).append((time.time(), answer))
            assert answer["type"] in ("ack", "reject"), answer
            if answer["type"] == "reject" and answer["code"] in RETRYABLE:
                await trio.sleep(0.05)
                continue
            seat.in_flight = None


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


@dataclass
class Cluster:
    redis: LocalRedis
    tmp: Path
    config: Path
    engines: dict[str, Proc] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    failovers: list[float] = field(default_factory=list)
    runs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def start(self, role: str, ident: str, *extra: str) -> Proc:
        proc = Proc(role, ident, self.redis.url, self.tmp, self.config, next(self.runs), extra)
        self.procs.append(proc)
        if role == "engine":
            self.engines[ident] = proc
        return proc

    async def owner_of(self, client: Client, auction: str) -> Proc:
        """The engine holding the auction's lease (waiting out a hand-over, when nobody does)."""
        with trio.fail_after(30):
            while not (lease := await client.get(f"ae:{{{auction}}}:lease")):
                await trio.sleep(0.01)
        return self.engines[lease.decode().partition("|")[0]]


def stamped_after(seats: list[Seat], moment: float) -> list[float]:
    """When each ack of a bid stamped after `moment` (by its new owner) came back."""
    return [at for seat in seats for answers in seat.answers.values() for at, m in answers
            if m["type"] == "ack" and parse_instant(m["time"]) / 1e6 > moment]


async def engine_kills(cluster: Cluster, client: Client, load: Load, auction: str, rng: random.Random) -> None:
    """SIGKILL the auction's engine under load, measure the failover, start it again."""
    moved = [seat for seat in load.seats if seat.auction == auction]
    for _ in range(KILLS):
        await trio.sleep(rng.uniform(0.2, 1.0))
        victim = await cluster.owner_of(client, auction)
        killed = time.time()
        await victim.kill()
        await wait_for(lambda: bool(stamped_after(moved, killed)), 60, "failover")  # noqa: B023
        cluster.failovers.append(min(stamped_after(moved, killed)) - killed)
        await cluster.start("engine", victim.ident).started()
        mark = time.time()
        await wait_for(lambda: load.acks(mark) >= 10, 60, "bids after the restart")  # noqa: B023


async def engine_paused(cluster: Cluster, client: Client, load: Load, auction: str) -> None:
    """SIGSTOP the auction's engine past its lease (the other takes the case), SIGCONT it:
    whatever it still tries to write is refused by fencing; it exits (`lost`, code 6) or
    drops the cases it lost, and goes on."""
    paused = await cluster.owner_of(client, auction)
    os.kill(paused.pid, signal.SIGSTOP)
    stopped = time.time()
    moved = [seat for seat in load.seats if seat.auction == auction]
    try:
        await wait_for(lambda: bool(stamped_after(moved, stopped)), 60, "taken over from a paused engine")
        await wait_for(lambda: time.time() > stopped + 3 * LEASE_MS / 1000, 10, "past the lease")
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    mark = time.time()
    await wait_for(lambda: load.acks(mark, moved) >= 10, 60, "bids after the pause")
    if paused.process.poll() is not None:
        assert paused.process.returncode == 6, paused.tail()
        await cluster.start("engine", paused.ident).started()


async def redis_restart(cluster: Cluster, load: Load) -> None:
    """Stop redis-server under load and start it again: everyone rides it out by itself."""
    await trio.to_thread.run_sync(cluster.redis.stop)
    await trio.sleep(0.5)
    await trio.to_thread.run_sync(cluster.redis.start)
    mark = time.time()
    await wait_for(lambda: load.acks(mark) >= 20, 60, "bids after the Redis restart")


async def gateway_kill(gateway: Proc, load: Load) -> None:
    """SIGKILL a gateway: its bidders reconnect to the other and resume."""
    on_it = [seat for seat in load.seats if seat.gateways[0] is gateway]
    killed = time.time()
    await gateway.kill()
    await acks_reach(load, 2 * len(on_it), "bids through the other gateway", killed, on_it)
    assert all(seat.switched for seat in on_it)


async def replicated(gateway: Proc) -> int:
    """The cases in a gateway's replica (its metrics)."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{gateway.base}/metrics")).text
    return int(float(next(line for line in text.splitlines() if line.startswith("auction_redis_replicated_cases "))
                     .split()[1]))


async def acks_reach(load: Load, count: int, what: str, after: float = 0.0, seats: list[Seat] | None = None) -> None:
    await wait_for(lambda: load.acks(after, seats) >= count, 60, what)


async def hostile_entries(client: Client) -> None:
    """Malformed messages where the processes listen, and a key that is not ours."""
    await client.publish("ae:feed", b"\xc1")  # not msgpack
    await client.publish("ae:feed", pack({"f": b"\x01\x02\x03", "t": b"1"}))  # a frame cut short
    for engine in ENGINES:
        await client.publish(f"ae:inbox:{engine}", pack({"q": b"abc", "g": b"g2", "c": b"\x90"}))
    await client.publish("ae:replies:g2", pack({"q": b"1", "k": b"ok", "m": b""}))
    await client.set("ae:junk", "not ours")


@pytest.mark.trio
async def test_engines_and_gateways_fail_over_under_load_and_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    note = f"(REDIS_ROLES_SEED={SEED}, logs in {tmp_path})"
    config = tmp_path / "settings.toml"
    write_settings(config)
    first = "SC-1"
    second = next(f"SC-{i}" for i in itertools.count(2) if owner(f"SC-{i}", ENGINES) != owner(first, ENGINES))
    for redis in local_redis(tmp_path / "redis"):
        cluster = Cluster(redis, tmp_path, config)
        try:
            for ident in ENGINES:
                cluster.start("engine", ident)
            # g1 follows every case and serves the RPC; g2 follows only the cases its rooms serve
            g1, g2 = cluster.start("gateway", "g1"), cluster.start("gateway", "g2", "--redis-follow", "served")
            for proc in list(cluster.procs):
                await proc.started()
            seats = [Seat(f"b{i}", first, [g1, g2] if i % 2 else [g2, g1]) for i in range(4)]
            seats += [Seat(f"c{i}", second, [g1, g2] if i % 2 else [g2, g1]) for i in range(2)]
            async with RpcClient(g1.base, PORTAL_KEY) as rpc:
                await rpc.create_auction(auction_body() | {"auction_id": "QUIET"})  # nobody bids: g2 never follows it
                for auction in (first, second):
                    await rpc.create_auction(auction_body() | {"auction_id": auction})
                    mine = [seat for seat in seats if seat.auction == auction]
                    tokens = (await rpc.admit(auction, [seat.name for seat in mine]))["tokens"]
                    for seat, token in zip(mine, tokens, strict=True):
                        seat.token = token["token"]
            load = Load(seats)
            async with connect(redis.url) as client, trio.open_nursery() as nursery:
                for seat in seats:
                    nursery.start_soon(load.seat, seat)
                await acks_reach(load, 20, "first acks")
                assert await replicated(g1) == 3 and await replicated(g2) == 2
                await hostile_entries(client)
                await engine_kills(cluster, client, load, first, rng)
                await engine_paused(cluster, client, load, second)
                await redis_restart(cluster, load)
                await gateway_kill(g1, load)
                load.stop.set()
            for proc in cluster.procs:
                if proc.process.poll() is None:
                    proc.process.send_signal(signal.SIGTERM)
                    assert await proc.exited(40) == 0, proc.tail()
        finally:
            for proc in cluster.procs:
                proc.ensure_dead()
        for proc in cluster.procs:
            assert b"Traceback" not in proc.log.read_bytes(), proc.tail()
        logs = {proc.ident: b"".join(p.log.read_bytes() for p in cluster.procs if p.ident == proc.ident)
                for proc in cluster.procs}
        assert b"feed message refused: malformed_feed" in logs["g2"], "a bad feed message went unreported"
        assert b"malformed_reply" in logs["g2"], "a bad answer went unreported"
        assert all(b"malformed_command" in logs[e] for e in ENGINES), "a bad command went unreported"
        # an engine that gave a case away took it back later from its local snapshot
        assert any(b"taken from its snapshot" in logs[e] for e in ENGINES), "no take started from a snapshot"
        out = tmp_path / "export"
        exported = await trio.run_process([sys.executable, "-m", "replay.cli", "export", "--redis", redis.url,
                                           str(out)], capture_stdout=True, capture_stderr=True, check=False)
        assert (exported.returncode, exported.stderr) == (1, b"REFUSED foreign_key at ae:junk: a key in the "
                                                             b"namespace that is not ours: ignored\n"), exported
        for auction in (first, second, "QUIET"):  # every case exported all the same: the real command checks each
            verify = [sys.executable, "-m", "replay.cli", "verify", str(out / f"{auction}.journal")]
            done = await trio.run_process(verify,
                                          capture_stdout=True, capture_stderr=True, check=False)
            assert done.returncode == 0, (auction, done.stdout, done.stderr)
    failovers = cluster.failovers

    journaled: dict[str, tuple[str, str, int]] = {}  # cid -> (outcome, code, amount)
    by_cid = {cid: seat for seat in seats for cid in seat.sent}
    for auction in (first, second):
        verifier = Verifier(contiguous=False)
        for record, where in JournalReader(out / f"{auction}.journal").records():
            events = verifier.feed(record, where)
            if record.command[0] != "PlaceBid":
                continue
            _name, _time, aid, _lot, bidder_id, amount, cid = record.command
            sender = by_cid.get(cid)
            assert sender is not None and (sender.name, sender.auction, sender.sent[cid]) == (bidder_id, aid, amount), \
                f"the stream holds a bid never sent: {record.command} {note}"
            assert cid not in journaled, f"{cid} is journaled twice {note}"
            outcome = next(e for e in events if type(e).__name__ in ("BidAccepted", "BidRejected"))
            code = getattr(outcome, "code", "")
            journaled[cid] = ("ack" if code == "" else "reject", code, amount)
    answered = 0
    for seat in seats:
        assert seat.in_flight is None, f"{seat.name} ended with a bid unanswered {note}"
        for cid, answers in seat.answers.items():
            finals = [m for _at, m in answers if not (m["type"] == "reject" and m["code"] in RETRYABLE)]
            assert len(finals) == 1, f"{cid} answered {answers} {note}"
            message = finals[0]
            assert cid in journaled, f"{cid} was answered {message} but is not in the stream {note}"
            kind, code, amount = journaled[cid]
            assert (message["type"], message.get("code", "")) == (kind, code), (cid, message, journaled[cid])
            assert not message["duplicate"] or cid in seat.resent, (cid, message, note)
            answered += 1
    assert answered == len(journaled), f"the stream holds a bid no bidder was told about {note}"
    acks = sum(1 for v in journaled.values() if v[0] == "ack")
    assert acks > 20 * (KILLS + 1), f"too little load: {acks} accepted bids {note}"
    print(json.dumps({"kills": KILLS, "bids": len(journaled), "accepted": acks, "seed": SEED,
                      "failover_s": [round(f, 3) for f in failovers],
                      "failover_p50_s": round(statistics.median(failovers), 3),
                      "failover_max_s": round(max(failovers), 3)}))
