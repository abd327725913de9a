"""Two engines and two gateways as separate processes (`serve --redis --role engine|gateway`)
on one private redis-server (AOF, appendfsync always), bidders spread over both gateways
on two auctions, owned by different engines.

Under that load, the engine owning the first auction is SIGKILLed REDIS_ROLES_KILLS times
(3 by default; `make test-slow` runs 20) and started again each time: the other engine
takes its cases once their leases lapse, the gateways send the bids in flight again, and
the bidders go on without reconnecting; the restarted engine gets its share back. Then a
gateway is SIGKILLed: its bidders reconnect to the other gateway and resend their bid in
flight (resume). Failover time (kill to the first acknowledgement of a bid the new owner
stamped) is measured and printed.

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

import pytest
import trio
from redis_local import local_redis
from test_serve_crash import PORTAL_KEY, RETRYABLE, STARTING_PRICE, Server, auction_body, dropped, money, write_settings

from auction_engine.cluster import connect, owner
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

    def __init__(self, role: str, ident: str, url: str, tmp: Path, config: Path, run: int) -> None:
        self.role, self.ident = role, ident
        self.log = tmp / f"{ident}-{run}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUCTION_ENGINE_")}
        env |= {"AUCTION_ENGINE_REDIS_LEASE_MS": str(LEASE_MS), "AUCTION_ENGINE_REDIS_ENGINE_ID": ident}
        with open(self.log, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "auction_engine.cli", "serve", "--config", str(config), "--host", "127.0.0.1",
                 "--port", "0", "--data-dir", str(tmp / f"data-{ident}-{run}"), "--redis", url, "--role", role],
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


@pytest.mark.trio
async def test_engines_and_gateways_fail_over_under_load_and_lose_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    note = f"(REDIS_ROLES_SEED={SEED}, logs in {tmp_path})"
    config = tmp_path / "settings.toml"
    write_settings(config)
    first = "SC-1"
    second = next(f"SC-{i}" for i in itertools.count(2) if owner(f"SC-{i}", ENGINES) != owner(first, ENGINES))
    procs: list[Proc] = []
    failovers: list[float] = []
    for redis in local_redis(tmp_path / "redis"):
        try:
            engines = {ident: Proc("engine", ident, redis.url, tmp_path, config, 0) for ident in ENGINES}
            g1, g2 = (Proc("gateway", ident, redis.url, tmp_path, config, 0) for ident in ("g1", "g2"))
            procs += [*engines.values(), g1, g2]
            for proc in procs:
                await proc.started()
            seats = [Seat(f"b{i}", first, [g1, g2] if i % 2 else [g2, g1]) for i in range(4)]
            seats += [Seat(f"c{i}", second, [g1, g2] if i % 2 else [g2, g1]) for i in range(2)]
            async with RpcClient(g1.base, PORTAL_KEY) as rpc:
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
                await wait_for(lambda: load.acks() >= 20, 60, "first acks")
                for run in range(1, KILLS + 1):
                    await trio.sleep(rng.uniform(0.2, 1.0))
                    lease = await client.get(f"ae:{{{first}}}:lease")
                    victim = engines[(lease or b"").decode().partition("|")[0]]
                    killed = time.time()
                    await victim.kill()
                    moved = [seat for seat in seats if seat.auction == first]

                    def stamped_after(seat: Seat, killed: float = killed) -> list[float]:
                        return [at for answers in seat.answers.values() for at, m in answers
                                if m["type"] == "ack" and parse_instant(m["time"]) / 1e6 > killed]
                    await wait_for(lambda moved=moved: any(stamped_after(s) for s in moved), 60, "failover")  # type: ignore[misc]
                    failovers.append(min(at for seat in moved for at in stamped_after(seat)) - killed)
                    engines[victim.ident] = Proc("engine", victim.ident, redis.url, tmp_path, config, run)
                    procs.append(engines[victim.ident])
                    await engines[victim.ident].started()
                    mark = time.time()
                    await wait_for(lambda mark=mark: load.acks(mark) >= 10, 60, "bids after the restart")  # type: ignore[misc]
                on_g1 = [seat for seat in seats if seat.gateways[0] is g1]
                killed = time.time()
                await g1.kill()  # its bidders resume on g2
                await wait_for(lambda: load.acks(killed, on_g1) >= 2 * len(on_g1), 60, "bids through g2")
                assert all(seat.switched for seat in on_g1)
                load.stop.set()
            for proc in procs:
                if proc.process.poll() is None:
                    proc.process.send_signal(signal.SIGTERM)
                    assert await proc.exited(40) == 0, proc.tail()
        finally:
            for proc in procs:
                proc.ensure_dead()
        for proc in procs:
            assert b"Traceback" not in proc.log.read_bytes(), proc.tail()
        out = tmp_path / "export"
        argv = [["export", "--redis", redis.url, str(out)]] + [["verify", str(out / f"{a}.journal")]
                                                                 for a in (first, second)]
        for args in argv:  # the real commands
            done = await trio.run_process([sys.executable, "-m", "replay.cli", *args], capture_stdout=True,
                                          capture_stderr=True, check=False)
            assert done.returncode == 0, (args, done.stdout, done.stderr)

    journaled: dict[str, tuple[str, str, int]] = {}  # cid -> (outcome, code, amount)
    by_cid = {cid: seat for seat in seats for cid in seat.sent}
    for auction in (first, second):
        verifier = Verifier(contiguous=False)
        for record, where in JournalReader(out / f"{auction}.journal").records():
            events = verifier.feed(record, where)
            if record.command[0] != "PlaceBid":
                continue
            _name, _time, aid, _lot, bidder_id, amount, cid = record.command
            seat = by_cid.get(cid)
            assert seat is not None and (seat.name, seat.auction, seat.sent[cid]) == (bidder_id, aid, amount), \
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
