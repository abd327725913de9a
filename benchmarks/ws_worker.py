"""A load-generator process of `benchmarks.ws_load`: holds a share of the connections and
bids on them when told to.

The parent starts each worker with `multiprocessing` (spawn) and drives it over a pipe,
one command at a time, each answered with one dict:

- `connect` (target "room" or "echo"): open every lane of the worker's auctions (a lane is
  one bidder's connection), a bounded number at a time: handshake, hello, first message
  (the welcome; the echo's is the echoed hello). A reader task per lane then handles every
  message as it arrives (`Worker.handle`).
- `closed`: from `t0` for `duration` seconds, every lane of the target keeps one bid in
  flight (the next one sent as the previous one's answer arrives): the saturation
  throughput, counted over the answers that arrive after `warmup`.
- `open`: every room lane bids at `rate` per second on a fixed schedule (open loop, a
  random phase per lane); a bid's latency runs from its scheduled time (not the moment
  the send got the CPU), so a late generator shows up as latency, never hides it.
- `settle` (wait for the answers still due), `disconnect`, `exit`.

Times are `time.perf_counter()` (CLOCK_MONOTONIC: the parent's and the workers' clocks are
the same clock). Every bidder of an auction is in the same worker: the auction's bids take
their amounts from one descending counter (1 minor unit below the previous bid of the
auction), so a bid accepted as the best (its ack's best_price equals its amount) is in
every later snapshot's best_price, and a view with best_price <= amount shows a state that
includes it. The view latency of such a bid is the time from its scheduled send to the
moment the last bidder of its auction read such a view. Bids overtaken by a lower bid of
the same auction before the engine saw them (ack best_price < amount) are counted as
`reordered` and left out of the view latency (the criterion would not be exact for them).

A worker freezes what it holds and turns its garbage collector off for the length of each
measured phase, so that no collector pause of the load generator shows up as latency.
"""

from __future__ import annotations

import gc
import json
import random
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import trio

from .common import Result, quantile, raise_nofile
from .ws_client import HandshakeError, WsConn

BID = '{"type":"bid","lot":"%s","amount":"%s","client_bid_id":"%s"}'
NO_PRICE = 1 << 62
REJECTED = -1
CONNECT_AT_ONCE = 64  # handshakes in flight per worker
ANSWER_GRACE = 10.0  # seconds a closed loop waits for its last answers


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minor(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


@dataclass(slots=True, eq=False)
class Lane:
    """One bidder's connection and what it saw."""

    name: str  # client_bid_id prefix
    token: str
    group: Group
    ws: WsConn | None = None
    seq: int = 0
    best: int = NO_PRICE  # the lowest best_price read in a view
    sent: dict[str, tuple[float, int]] = field(default_factory=dict)  # cbid -> (scheduled time, amount)
    answers: list[tuple[float, float, int, int]] = field(default_factory=list)  # (sent, answered, amount, best|-1)
    transitions: list[tuple[float, int]] = field(default_factory=list)  # (read time, new lower best_price)
    waiter: trio.Event | None = None
    closed: str | None = None
    views: int = 0  # views read since the phase began
    first_seq: int = 0  # `seq` when the phase began


@dataclass(slots=True, eq=False)
class Group:
    """One auction (or its echo twin) and its lanes."""

    auction_id: str
    lot: str
    price: int  # the next bid's amount (minor units)
    lanes: list[Lane] = field(default_factory=list)


class Worker:
    def __init__(self, job: Result, nursery: trio.Nursery) -> None:
        self.job = job
        self.nursery = nursery
        self.host: str = job["host"]
        self.port: int | None = job.get("port")  # this worker's own entry point (one of several gateways)
        self.rooms: list[Group] = []
        self.echoes: list[Group] = []
        for a in job["auctions"]:
            room = Group(a["auction_id"], a["lot"], a["price"])
            echo = Group(a["auction_id"], a["lot"], a["price"])
            for i, token in enumerate(a["tokens"]):
                room.lanes.append(Lane(f"{a['auction_id']}.{i}", token, room))
                echo.lanes.append(Lane(f"{a['auction_id']}.{i}", "echo", echo))
            self.rooms.append(room)
            self.echoes.append(echo)
        self.kinds: Counter[str] = Counter()
        self.rejects: Counter[str] = Counter()
        self.lags: list[float] = []

    def groups(self, target: str) -> list[Group]:
        return self.rooms if target == "room" else self.echoes

    def lanes(self, target: str) -> list[Lane]:
        return [lane for g in self.groups(target) for lane in g.lanes]

    # -- messages --------------------------------------------------------------------

    def handler(self, lane: Lane) -> Callable[[str | bytes, float], None]:
        loads = json.loads
        kinds = self.kinds

        def handle(data: str | bytes, now: float) -> None:
            msg = loads(data)
            kind = msg.get("type")
            if kind == "view":
                lane.views += 1
                best = msg.get("best_price")
                if best is not None:
                    price = minor(best)
                    if price < lane.best:
                        lane.best = price
                        lane.transitions.append((now, price))
                return
            cbid = msg.get("client_bid_id")
            entry = lane.sent.pop(cbid, None) if cbid is not None else None
            if entry is None:
                kinds[kind] += 1
                return
            sent, amount = entry
            if kind == "ack":
                outcome = minor(msg["best_price"]) if "best_price" in msg else amount
            elif kind == "reject":
                outcome = REJECTED
                self.rejects[msg.get("code", "?")] += 1
            else:  # the echo: the bid itself, padded
                outcome = amount
            lane.answers.append((sent, now, amount, outcome))
            if lane.waiter is not None:
                lane.waiter.set()

        return handle

    async def send_bid(self, lane: Lane, scheduled: float) -> None:
        group = lane.group
        amount = group.price
        group.price = amount - 1
        lane.seq += 1
        cbid = f"{lane.name}-{lane.seq}"
        lane.sent[cbid] = (scheduled, amount)
        assert lane.ws is not None
        await lane.ws.send_text(BID % (group.lot, money(amount), cbid))

    # -- commands --------------------------------------------------------------------

    async def connect(self, cmd: Result) -> Result:
        target = cmd["target"]
        port, path = self.port or cmd["port"], cmd["path"]
        limiter = trio.CapacityLimiter(cmd.get("at_once", CONNECT_AT_ONCE))
        failures: Counter[str] = Counter()
        t0 = time.perf_counter()
        cpu0 = time.process_time()

        async def open_lane(lane: Lane) -> None:
            async with limiter:
                try:
                    ws = await WsConn.connect(self.host, port, path.format(auction_id=lane.group.auction_id),
                                              "auction.v1.json")
                except (OSError, trio.BrokenResourceError, HandshakeError) as exc:
                    failures[type(exc).__name__] += 1
                    return
                try:
                    await ws.send_text(json.dumps({"type": "hello", "token": lane.token}))
                    first = json.loads(await ws.receive_one())
                except (OSError, trio.BrokenResourceError, ValueError) as exc:
                    failures[type(exc).__name__] += 1
                    await ws.aclose()
                    return
                if target == "room" and first.get("type") != "welcome":
                    failures[f"first message {first.get('type')}"] += 1
                    await ws.aclose()
                    return
            lane.ws = ws
            self.nursery.start_soon(self.read, lane)

        async with trio.open_nursery() as nursery:
            for lane in self.lanes(target):
                nursery.start_soon(open_lane, lane)
        held = sum(lane.ws is not None for lane in self.lanes(target))
        return {"connected": held, "failures": dict(failures), "seconds": time.perf_counter() - t0,
                "cpu_s": time.process_time() - cpu0}

    async def read(self, lane: Lane) -> None:
        ws = lane.ws
        assert ws is not None
        await ws.run_reader(self.handler(lane))
        lane.closed = f"{ws.close_code}: {ws.close_reason}" if ws.close_code is not None else "eof"
        if lane.waiter is not None:
            lane.waiter.set()

    async def disconnect(self, cmd: Result) -> Result:
        async with trio.open_nursery() as nursery:
            for lane in self.lanes(cmd["target"]):
                if lane.ws is not None and lane.closed is None:
                    nursery.start_soon(lane.ws.aclose)
        return {"ok": True}

    def reset(self, target: str) -> tuple[list[Lane], float]:
        """The live lanes of `target`, their records cleared; trio's clock minus perf_counter."""
        lanes = [lane for lane in self.lanes(target) if lane.ws is not None and lane.closed is None]
        for lane in lanes:
            lane.answers.clear()
            lane.transitions.clear()
            lane.first_seq = lane.seq
            lane.views = 0
        self.kinds.clear()
        self.rejects.clear()
        self.lags.clear()
        gc.collect()
        gc.freeze()  # the connections live long: out of every later collection
        gc.disable()  # no collector pause in a measured phase (`serve` turns it back on)
        return lanes, trio.current_time() - time.perf_counter()

    async def closed_loop(self, cmd: Result) -> Result:
        target, t0, duration = cmd["target"], cmd["t0"], cmd["duration"]
        lanes, offset = self.reset(target)
        end = t0 + duration
        clock = time.perf_counter

        async def run(lane: Lane) -> None:
            await trio.sleep_until(t0 + offset)
            with trio.move_on_at(end + ANSWER_GRACE + offset):
                while (now := clock()) < end and lane.closed is None:
                    waiter = lane.waiter = trio.Event()
                    await self.send_bid(lane, now)
                    await waiter.wait()
            lane.waiter = None

        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for lane in lanes:
                nursery.start_soon(run, lane)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        start = t0 + cmd["warmup"]
        answered = sum(start <= a[1] < end for lane in lanes for a in lane.answers)
        latencies = [round((a[1] - a[0]) * 1e9) for lane in lanes for a in lane.answers if start <= a[0]]
        return {"answered": answered, "sent": bids_sent(lanes), "latencies_ns": latencies,
                "outstanding": sum(len(lane.sent) for lane in lanes), "rejects": dict(self.rejects),
                "closed": self.closures(target), "cpu_s": cpu, "wall_s": wall, "lanes": len(lanes),
                "views_read": sum(lane.views for lane in lanes), "other": dict(self.kinds)}

    async def open_loop(self, cmd: Result) -> Result:
        target, t0, duration, rate = cmd["target"], cmd["t0"], cmd["duration"], cmd["rate"]
        lanes, offset = self.reset(target)
        end = t0 + duration
        period = 1.0 / rate
        rng = random.Random(cmd.get("seed", 0))
        clock = time.perf_counter
        lags = self.lags

        async def run(lane: Lane, phase: float) -> None:
            due = t0 + phase
            while due < end and lane.closed is None:
                await trio.sleep_until(due + offset)
                lags.append(clock() - due)
                await self.send_bid(lane, due)
                due += period

        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for lane in lanes:
                nursery.start_soon(run, lane, rng.random() * period)
        with trio.move_on_at(end + cmd["drain"] + offset):  # the last answers and views
            while any(lane.sent for lane in lanes if lane.closed is None) or not self.views_complete(target):
                await trio.sleep(0.05)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        return {**self.open_figures(target, lanes, t0 + cmd["warmup"], end), "cpu_s": cpu, "wall_s": wall}

    async def settle(self, cmd: Result) -> Result:
        """Wait (up to `timeout` seconds) for the answers still due, so that a phase that
        overloaded the service does not spill into the next one."""
        lanes = [lane for lane in self.lanes(cmd["target"]) if lane.ws is not None and lane.closed is None]
        t0 = time.perf_counter()
        with trio.move_on_after(cmd["timeout"]):
            while any(lane.sent for lane in lanes):
                await trio.sleep(0.05)
        return {"outstanding": sum(len(lane.sent) for lane in lanes), "seconds": time.perf_counter() - t0}

    def views_complete(self, target: str) -> bool:
        """Whether every lane has read a view with the lowest accepted price of its auction."""
        for group in self.groups(target):
            lowest = min((a[2] for lane in group.lanes for a in lane.answers if a[3] == a[2]), default=None)
            if lowest is None:
                continue
            if any(lane.best > lowest for lane in group.lanes if lane.closed is None):
                return False
        return True

    def open_figures(self, target: str, lanes: list[Lane], start: float, end: float) -> Result:
        """Answer latencies of the bids scheduled in [start, end); view latencies of those
        accepted as the best; throughput of the answers read in [start, end). A bid still
        unanswered, or whose view some bidder has not read, counts with the time it has
        waited so far (a lower bound), so that an overload cannot flatter the percentiles."""
        acks: list[int] = []
        views: list[int] = []
        reordered = missing = rejected = answered = unanswered = 0
        now = time.perf_counter()
        for lane in lanes:
            for sent, _amount in lane.sent.values():
                if sent >= start:
                    unanswered += 1
                    acks.append(round((now - sent) * 1e9))
                    views.append(round((now - sent) * 1e9))
        for group in self.groups(target):
            members = [lane for lane in group.lanes if lane.ws is not None]
            seen = [([-p for _t, p in lane.transitions], lane.transitions) for lane in members]
            for lane in members:
                for sent, got, amount, outcome in lane.answers:
                    if start <= got < end:
                        answered += 1
                    if sent < start:
                        continue
                    if outcome == REJECTED:
                        rejected += 1
                        continue
                    acks.append(round((got - sent) * 1e9))
                    if outcome != amount:
                        reordered += 1
                        continue
                    last = 0.0
                    for keys, transitions in seen:
                        i = bisect_left(keys, -amount)
                        if i == len(keys):
                            last = -1.0
                            break
                        last = max(last, transitions[i][0])
                    if last < 0:
                        missing += 1
                        last = now
                    views.append(round((last - sent) * 1e9))
        lags = sorted(self.lags)
        return {
            "ack_ns": acks, "view_ns": views, "answered": answered, "sent": bids_sent(lanes),
            "outstanding": sum(len(lane.sent) for lane in lanes), "unanswered": unanswered, "reordered": reordered,
            "view_missing": missing, "rejected": rejected, "rejects": dict(self.rejects),
            "views_read": sum(lane.views for lane in lanes), "closed": self.closures(target),
            "lag_p50_ms": quantile(lags, 0.5) * 1e3 if lags else 0.0,
            "lag_p99_ms": quantile(lags, 0.99) * 1e3 if lags else 0.0,
            "lag_max_ms": lags[-1] * 1e3 if lags else 0.0, "other": dict(self.kinds),
        }

    def closures(self, target: str) -> dict[str, int]:
        return dict(Counter(lane.closed for lane in self.lanes(target) if lane.closed is not None))


def bids_sent(lanes: list[Lane]) -> int:
    """Bids sent by `lanes` since the phase began."""
    return sum(lane.seq - lane.first_seq for lane in lanes)


async def serve(pipe: Connection, job: Result) -> None:
    async with trio.open_nursery() as nursery:
        worker = Worker(job, nursery)
        commands = {"connect": worker.connect, "closed": worker.closed_loop, "open": worker.open_loop,
                    "disconnect": worker.disconnect, "settle": worker.settle}
        while True:
            cmd: Result = await trio.to_thread.run_sync(pipe.recv)
            if cmd["op"] == "exit":
                nursery.cancel_scope.cancel()
                pipe.send({"ok": True})
                return
            try:
                result = await commands[cmd["op"]](cmd)
            except Exception as exc:
                pipe.send({"error": f"{type(exc).__name__}: {exc}"})
                raise
            finally:
                gc.enable()
            pipe.send(result)


def run(pipe: Connection, job: Result) -> None:
    """The worker process's entry point (multiprocessing target)."""
    raise_nofile()
    trio.run(serve, pipe, job)
