"""The room in memory, for exact tests: the runtime on trio's MockClock (durability "none"),
`Rooms` attached as the service attaches it, and clients on memory channels that speak the
real codecs. `settle()` runs every task to a standstill without moving the clock, so a
test states exactly what each connection was sent, and when (engine µs)."""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing
from served import auction_body, settings
from wire import JSON, decode, encode

from auction_engine.commands import AdmitBidder, Command, CreateAuction
from auction_engine.config import AuctionConfig
from auction_engine.journal import FileOps
from auction_engine.runtime import Record, Runtime, wall_clock_us
from auction_engine.timeutil import format_instant
from gateway.auth import TokenIssuer
from gateway.feed import Feed
from gateway.metrics import Metrics
from gateway.rooms import Rooms, note_revocations

S = 1_000_000  # one second in µs
# Engine time starts an hour behind the wall clock: tokens (whose `iat` and `exp` PyJWT
# checks against the wall clock) stay valid however far a test moves the MockClock.
BEHIND = 3600 * S


@dataclass(frozen=True)
class Closed:
    code: int
    reason: str
    at: int  # engine µs


class Socket:
    """The server end of one connection: its `Transport`, and its `Direct` writer when the
    test asks for the direct path. Frames reach the client in the order they were written,
    whichever path wrote them; `capacity` frames fill the client's unread buffer."""

    def __init__(self, capacity: float, direct: bool, now: Callable[[], int]) -> None:
        self.to_client, self.from_server = trio.open_memory_channel[Any](capacity)
        self.to_server, self.from_client = trio.open_memory_channel[str | bytes](math.inf)
        self.now = now
        self.closed: Closed | None = None
        self.backlog_frames: list[str | bytes] = []
        self.is_direct = direct

    # -- Transport
    async def send(self, data: str | bytes) -> None:
        await self.to_client.send(data)

    async def receive(self) -> str | bytes:
        return await self.from_client.receive()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = Closed(code, reason, self.now())
        with contextlib.suppress(trio.WouldBlock):  # a client that does not read never sees it
            self.to_client.send_nowait(self.closed)

    # -- Direct: a frame is a tag (text or binary), a length and the payload
    @property
    def open(self) -> bool:
        return self.closed is None

    @property
    def backlog(self) -> int:
        return len(self.backlog_frames)

    def frame(self, payload: str | bytes) -> bytes | None:
        if self.closed is not None:
            return None
        data = payload.encode() if isinstance(payload, str) else payload
        return struct.pack(">?I", isinstance(payload, str), len(data)) + data

    def write_nowait(self, data: bytes) -> bool:
        while data:
            text, size = struct.unpack_from(">?I", data)
            payload = data[5:5 + size]
            self.backlog_frames.append(payload.decode() if text else payload)
            data = data[5 + size:]
        while self.backlog_frames:
            try:
                self.to_client.send_nowait(self.backlog_frames[0])
            except trio.WouldBlock:
                return False
            self.backlog_frames.pop(0)
        return True

    async def flush(self) -> None:
        while self.backlog_frames:
            await self.to_client.send(self.backlog_frames.pop(0))


@dataclass
class Client:
    """One room client: `received` holds every message decoded, `at` the engine instant
    each arrived; `closed` is the server's close (also seen by a client that never reads)."""

    socket: Socket
    subprotocol: str
    scope: trio.CancelScope
    received: list[dict[str, Any]] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    seen_close: Closed | None = None
    ended: bool = False  # the session returned
    mark: int = 0  # `new()` returns what came after it

    @property
    def closed(self) -> Closed | None:
        return self.socket.closed

    async def send(self, message: Any) -> None:
        await self.send_raw(encode(self.subprotocol, message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.socket.to_server.send(frame)

    async def bid(self, lot: str, amount: str, client_bid_id: str) -> None:
        await self.send({"type": "bid", "lot": lot, "amount": amount, "client_bid_id": client_bid_id})

    def of(self, kind: str, lot: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.received if m["type"] == kind and (lot is None or m.get("lot") == lot)]

    def new(self) -> list[dict[str, Any]]:
        """What arrived since the last call."""
        out, self.mark = self.received[self.mark:], len(self.received)
        return out

    async def read(self) -> None:
        async for item in self.socket.from_server:
            if isinstance(item, Closed):
                self.seen_close = item
                self.scope.cancel()  # the client answers the close at once: the stack ends the session
                return
            self.received.append(decode(item))
            self.at.append(self.socket.now())

    def disconnect(self) -> None:
        """The peer goes away (the server stack cancels the session)."""
        self.scope.cancel()


class MemRoom:
    """A runtime, its rooms and feed, and helpers to create auctions and connect clients."""

    def __init__(self, runtime: Runtime, rooms: Rooms, feed: Feed, tokens: TokenIssuer,
                 nursery: trio.Nursery) -> None:
        self.runtime, self.rooms, self.feed, self.tokens = runtime, rooms, feed, tokens
        self.metrics = rooms.metrics
        self.nursery = nursery
        self.t0 = runtime.now()  # engine time as the test begins

    def now(self) -> int:
        return self.runtime.now()

    def zero(self) -> None:
        """Count offsets from now on."""
        self.t0 = self.now()

    def instant(self, offset_us: int) -> str:
        """`t0 + offset_us` as the protocol writes instants."""
        return format_instant(self.t0 + offset_us)

    async def until(self, offset_us: int) -> None:
        """Move the MockClock to `t0 + offset_us` and settle there."""
        await trio.sleep((self.t0 + offset_us - self.runtime.clock()) / S)
        await settle()

    async def run(self, command_type: type[Any], *fields: Any) -> list[Any]:
        events = await self.runtime.submit(command_type, *fields)
        await settle()
        return events

    async def execute(self, command: Command) -> None:
        await self.runtime.execute(command)
        await settle()

    async def create(self, auction_id: str, *, start: int = 0, seconds: float = 600, lots: int = 1,
                     bidders: tuple[str, ...] = (), **extra: Any) -> dict[str, str]:
        """An auction opening `start` µs after t0 (a lot open at once opens now): the bidders'
        tokens."""
        body = auction_body(auction_id, lots=lots, **extra)
        body["start"], body["end"] = self.instant(start), self.instant(start + int(seconds * S))
        body["pseudonym_secret"] = "memroom-pseudonym-secret-0123456789"
        await self.execute(CreateAuction(self.now(), AuctionConfig.from_dict(body)))
        tokens = {}
        for bidder in bidders:
            await self.execute(AdmitBidder(self.now(), auction_id, bidder))
            tokens[bidder] = self.tokens.issue(auction_id, bidder, "bidder")[0]
        return tokens

    def observer(self, auction_id: str, name: str = "commission") -> str:
        return self.tokens.issue(auction_id, name, "observer")[0]

    async def connect(self, auction_id: str, token: str | None, subprotocol: str = JSON, *, direct: bool = False,
                      reads: bool = True, capacity: float = math.inf) -> Client:
        """A connection that says hello with `token` (none if None), then settles; a client
        that `reads` nothing lets `capacity` frames pile up, then blocks the room's sends."""
        socket = Socket(capacity, direct, self.now)
        client = Client(socket, subprotocol, trio.CancelScope())
        self.nursery.start_soon(self._serve, client, auction_id)
        if reads:
            self.nursery.start_soon(client.read)
        if token is not None:
            await client.send({"type": "hello", "token": token})
        await settle()
        return client

    async def _serve(self, client: Client, auction_id: str) -> None:
        socket = client.socket
        with client.scope:
            await self.rooms.session(socket, auction_id, client.subprotocol, socket if socket.is_direct else None)
        client.ended = True

    def counter(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels or None) or 0.0


async def settle() -> None:
    """Run every task until all wait, without moving the clock."""
    await trio.testing.wait_all_tasks_blocked()


def mock_clock_us(at: int) -> Callable[[], int]:
    """Engine time from trio's clock, `at` on the first call."""
    origin = trio.current_time()
    return lambda: at + round((trio.current_time() - origin) * S)


@asynccontextmanager
async def memroom(tmp_path: Path, ops: FileOps | None = None, **overrides: Any) -> AsyncIterator[MemRoom]:
    """A room on the MockClock (run the test with the `autojump_clock` fixture); `overrides`
    are settings (bid_rate, send_timeout_s, ...); `ops`: the journal's file calls (then
    durability "fsync", e.g. journals.SteppedSync, whose thread rules out the autojump)."""
    config = settings(tmp_path, **overrides)
    feed, revoked_at = Feed(), dict[tuple[str, str], int]()

    def replayed(_record: Record, events: list[Any]) -> None:
        feed.on_events(events)
        note_revocations(revoked_at, events)

    clock = mock_clock_us(wall_clock_us() // S * S - BEHIND)
    async with Runtime.open(tmp_path / "journal", clock=clock, durability="none" if ops is None else "fsync",
                            ops=ops, on_record=replayed, max_delay=config.max_delay_ms / 1000) as runtime:
        feed.decimals_of = lambda aid: runtime.engine.auction(aid).config.decimals
        tokens = TokenIssuer(config.token_secret or "", config.token_ttl_s, clock=lambda: clock() / S)
        rooms = Rooms(runtime, tokens, config, Metrics(), revoked_at)
        runtime.attach(feed, rooms)  # as gateway.service attaches them
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rooms.watchdog)
            nursery.start_soon(rooms.outflow.run)
            yield MemRoom(runtime, rooms, feed, tokens, nursery)
            nursery.cancel_scope.cancel()
