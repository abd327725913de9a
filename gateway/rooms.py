"""The auction room: one session per WebSocket, and the fan-out of durable state to them.

A session reads the hello (token) within the handshake timeout, then runs two tasks: a
receiver that turns bids into core commands (pipelined: each answered once durable, every
answer in the order of the messages it answers) and a
sender that drains the connection's outbound queue. The queue holds messages that must
be delivered (acks, rejects, clock and lifecycle messages; bounded) and at most one
pending view per lot (a newer snapshot replaces an unsent one). A send blocked longer
than the send timeout (seen by one watchdog task for all connections), or a full queue,
closes the connection with CLOSE_TOO_SLOW: a slow reader delays nobody else. The
transport is anything with `send`, `receive` and `close(code, reason)` (Quart's websocket
object in the service).

A connection is never sent a view of a lot equal, byte for byte, to the last view of that
lot it was sent (or had staged): each connection remembers, per lot, the last payload that
went out (`Connection.shown`), compared when a view is staged or leaves the queue (so a
queued view replaced by a newer one is never the reference). The first view of each lot
on a connection always goes out.

The fast path: a connection may also have a `Direct` writer (the service's is
`transport.DirectSender`). While such a connection has nothing queued, nothing in its
socket backlog and no send in progress, a message for it is framed at once and staged;
one `Outflow` task then writes every staged connection's bytes with one socket write each,
once per wake-up (so a journal batch's acks and views cost one write per connection and no
task switch per message). What the socket does not take stays in the backlog, and the
connection falls back to its queue and sender until the backlog is written.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import trio

from auction_engine.clock import CANCELLED, FINAL
from auction_engine.commands import PlaceBid
from auction_engine.config import AuctionConfig
from auction_engine.engine import QueryError
from auction_engine.events import (
    REJECTION_CODES,
    BidAccepted,
    BidderRevoked,
    BidRejected,
    Event,
    LotAwarded,
    LotExtended,
    LotOpened,
    LotResumed,
    LotSuspended,
    LotUnsuccessful,
)
from auction_engine.money import MoneyError, format_amount, parse_amount
from auction_engine.ranking import LotSnapshot, Shown, lot_outcome, shown
from auction_engine.runtime import Consumer, FormatError, JournalUnavailable, Runtime, Submission
from auction_engine.timeutil import format_instant

from . import messages as m
from . import protocol as p
from .auth import AuthError, TokenIssuer
from .logs import log
from .metrics import Metrics
from .settings import Settings

logger = logging.getLogger("gateway.room")

ERROR_BURST = 20  # protocol errors and rate-limited bids tolerated in a burst ...
ERROR_REFILL = 1.0  # ... refilled at this many per second; beyond them, CLOSE_ABUSE
CLOSE_WAIT = 2.0  # seconds to spend on a close handshake before dropping the socket
WATCHDOG_PERIOD = 0.5  # seconds between scans for blocked sends


class Transport(Protocol):
    async def send(self, data: str | bytes) -> None: ...
    async def receive(self) -> str | bytes: ...
    async def close(self, code: int, reason: str = "") -> None: ...


QUEUED, REPLACED, STAGED, UNCHANGED = 0, 1, 2, 3  # what push_view did
READ_AHEAD = 64  # a connection's owed answers past which its receiver stops reading
SHOWN_INLINE = 512  # a view payload longer than this is remembered by its digest (see `seen`)


def seen(payload: str | bytes) -> str | bytes:
    """What a connection keeps of a view payload to compare the next one with: the payload
    itself when short (usually the very object every connection at that rank shares), else
    its 16-byte BLAKE2b digest (a ladder view, one per connection, may be many KiB). Never
    equal to a short payload: a view is longer than 16 bytes."""
    if len(payload) <= SHOWN_INLINE:
        return payload
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    return hashlib.blake2b(data, digest_size=16).digest()


class Direct(Protocol):
    """Synchronous framing and writing for one WebSocket (see transport.DirectSender)."""

    @property
    def open(self) -> bool: ...
    @property
    def backlog(self) -> int: ...
    def frame(self, payload: str | bytes) -> bytes | None: ...
    def write_nowait(self, data: bytes) -> bool: ...
    async def flush(self) -> None: ...


class Outflow:
    """Staged bytes of idle direct connections, written by one task (`run`)."""

    def __init__(self) -> None:
        self.staged: dict[Connection, None] = {}  # insertion-ordered set
        self.wake = trio.Event()

    def stage(self, conn: Connection, data: bytes) -> None:
        conn.out.append(data)
        if conn not in self.staged:
            self.staged[conn] = None
            self.wake.set()

    def write(self, conn: Connection) -> None:
        """Write one connection's staged bytes now (or hand them to its backlog)."""
        self.staged.pop(conn, None)
        out, direct = conn.out, conn.direct
        if not out or direct is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if not direct.open:  # closed since they were framed: nothing may follow the close frame
            return
        if not direct.write_nowait(data):
            conn.wake.set()  # its sender writes the backlog

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake = trio.Event()
            staged = self.staged
            while staged:
                conn = next(iter(staged))
                try:
                    self.write(conn)
                except Exception as exc:  # a bug: close that connection, keep serving the others
                    staged.pop(conn, None)
                    conn.fail(exc)


class Bucket:
    """A token bucket on trio's clock."""

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.tokens = rate, capacity, capacity
        self.stamp = trio.current_time()

    def take(self) -> bool:
        now = trio.current_time()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Closing(Exception):
    """Ends a session with a close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(slots=True, eq=False)
class Connection:
    """One room connection's identity and outbound queue."""

    id: str
    auction_id: str
    role: str  # "bidder" or "observer"
    subject: str  # the bidder id, or the observer's name
    pseudonym: str | None
    codec: p.Codec
    decimals: int
    visibility: str
    limit: int
    control: deque[m.ServerMessage]
    views: dict[str, p.ViewRenderer]  # lot -> its latest unsent view
    wake: trio.Event
    shown: dict[str, str | bytes] = field(default_factory=dict)  # lot -> `seen` of its last view staged or sent
    sees: Shown = field(init=False)  # what its role may see (the core's visibility policy)
    close_request: Closing | None = None
    cancel: trio.CancelScope | None = None
    sending_since: float | None = None  # trio time the pending send began
    direct: Direct | None = None
    outflow: Outflow | None = None
    out: list[bytes] = field(default_factory=list)  # framed, staged in `outflow`
    answers: deque[list[Any]] | None = None  # owed answers in message order, [message | None]; made when needed
    answered: trio.Event | None = None  # set as owed answers go out (see `wait_answers`)

    def __post_init__(self) -> None:
        self.sees = shown(self.visibility, self.role)

    def idle(self) -> bool:
        """True if a message may be framed and staged now (direct, nothing ahead of it)."""
        direct = self.direct
        return (direct is not None and not self.control and not self.views and self.sending_since is None
                and not direct.backlog)

    def push(self, message: m.ServerMessage) -> None:
        """Queue a message for every viewer (clock, lifecycle, results); dropped once the
        connection is closing."""
        if self.close_request is None:
            self._queue(message)

    def _queue(self, message: m.ServerMessage) -> None:
        """Stage or queue a message that must be delivered; a full queue closes the connection."""
        try:
            if self.idle():
                self._stage(self.codec.encode(message))
                return
            if len(self.control) >= self.limit:
                self.request_close(p.CLOSE_TOO_SLOW, "too far behind: outbound queue full")
                return
            self.control.append(message)
            self.wake.set()
        except Exception as exc:  # a bug: it must not reach the journal writer's task
            self.fail(exc)

    def _stage(self, payload: str | bytes) -> None:
        """Frame an encoded message and stage it for the Outflow (the connection is idle)."""
        data = self.direct.frame(payload)  # type: ignore[union-attr]
        if data is not None:  # else the WebSocket is closing: nothing more goes out
            self.outflow.stage(self, data)  # type: ignore[union-attr]

    def answer(self, message: m.ServerMessage) -> None:
        """Queue the answer to a client message, after those still owed to earlier ones
        (answers go out even once the connection is closing)."""
        if self.answers:
            self.answers.append([message])
        else:
            self._queue(message)

    def owe(self) -> list[Any]:
        """A place, in turn, for an answer given later (a bid's, once durable)."""
        cell: list[Any] = [None]
        if self.answers is None:
            self.answers = deque()
        self.answers.append(cell)
        return cell

    def settle(self, cell: list[Any], message: m.ServerMessage) -> None:
        """Give an owed answer; queue every answer now due, in order."""
        cell[0] = message
        answers = self.answers
        assert answers is not None
        while answers and answers[0][0] is not None:
            self._queue(answers.popleft()[0])
        if self.answered is not None:
            self.answered.set()
            self.answered = None

    async def wait_answers(self, most: int) -> None:
        """Return once at most `most` answers are owed."""
        while self.answers is not None and len(self.answers) > most:
            if self.answered is None:
                self.answered = trio.Event()
            await self.answered.wait()

    def push_view(self, view: p.ViewRenderer) -> int:
        """Stage a lot view (STAGED) unless it equals the last one of that lot this
        connection was sent (UNCHANGED), or queue it: REPLACED if it replaced an unsent one
        (conflation), else QUEUED (compared as it leaves the queue). Dropped once the
        connection is closing."""
        if self.close_request is not None:
            return QUEUED
        try:
            if self.idle():
                payload = self.view_payload(view)
                if not self.fresh(view.lot_id(), payload):
                    return UNCHANGED
                self._stage(payload)
                return STAGED
            lot = view.lot_id()
            replaced = lot in self.views
            self.views[lot] = view
            self.wake.set()
            return REPLACED if replaced else QUEUED
        except Exception as exc:  # a bug: it must not reach the journal writer's task
            self.fail(exc)
            return QUEUED

    def fresh(self, lot: str, payload: str | bytes) -> bool:
        """False if `payload` equals the last view of `lot` this connection was sent (it
        would show the client nothing new); else True, and it becomes that last view (the
        caller sends it)."""
        mark = seen(payload)
        if self.shown.get(lot) == mark:
            return False
        self.shown[lot] = mark
        return True

    def fail(self, exc: Exception) -> None:
        """An unexpected error serving this connection (called in its handler): log it and
        close the connection (1011); nobody else is affected."""
        log(logger, logging.ERROR, "room connection failed", exc_info=True, auction_id=self.auction_id,
            connection_id=self.id, error=repr(exc)[:300])
        self.request_close(p.CLOSE_INTERNAL, "internal error")

    def request_close(self, code: int, reason: str) -> None:
        if self.close_request is None:
            self.close_request = Closing(code, reason)
        if self.cancel is not None:
            self.cancel.cancel()

    def view_payload(self, view: p.ViewRenderer) -> str | bytes:
        if self.pseudonym is not None:
            return view.bidder(self.pseudonym, self.codec)
        return view.observer(self.codec)


# The auction events a room tells its connections of (views carry the rest).
ROOM_EVENTS = frozenset({LotOpened, LotExtended, LotSuspended, LotResumed, LotAwarded, LotUnsuccessful, BidderRevoked})


class Rooms(Consumer):
    """Every open connection, by auction; the runtime's event and view listener."""

    def __init__(self, runtime: Runtime, tokens: TokenIssuer, settings: Settings, metrics: Metrics,
                 revoked_at: dict[tuple[str, str], int]) -> None:
        self.runtime = runtime
        self.tokens = tokens
        self.settings = settings
        self.metrics = metrics
        self.revoked_at = revoked_at  # (auction, bidder) -> time of the last revocation
        self.by_auction: dict[str, set[Connection]] = {}
        self.count = 0
        self.outflow = Outflow()  # its `run` task is the service's
        self._bid_counters: dict[tuple[str, str], Any] = {}  # (outcome, reason) -> its counter
        self._ids = itertools.count(1)

    # -- fan-out (synchronous, from the journal writer's task) ---------------------------

    def on_views(self, snapshots: list[LotSnapshot]) -> None:
        done = [0, 0, 0, 0]
        for snapshot in snapshots:
            conns = self.by_auction.get(snapshot.observer.auction_id)
            if conns:
                view = p.ViewRenderer(snapshot, next(iter(conns)).decimals)
                for conn in conns:
                    done[conn.push_view(view)] += 1
        self._count_views(done)

    def _count_views(self, done: list[int]) -> None:
        """Count what `push_view` did (views queued are counted as they leave the queue)."""
        metrics = self.metrics
        if done[REPLACED]:
            metrics.views_conflated.inc(done[REPLACED])
        if done[STAGED]:
            metrics.views_sent.inc(done[STAGED])
        if done[UNCHANGED]:
            metrics.views_unchanged.inc(done[UNCHANGED])

    def on_events(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if kind not in ROOM_EVENTS:
                continue  # a bid (answered to the bidder by its own session), or another kind's
            if kind is BidderRevoked:
                note_revocations(self.revoked_at, (event,))
            conns = self.by_auction.get(event.auction_id)
            if conns:
                self._route(event, conns)

    def _route(self, event: Event, conns: set[Connection]) -> None:
        now = format_instant(event.time)
        message: m.ServerMessage | None = None
        if type(event) is LotOpened or type(event) is LotExtended:
            message = m.Clock(lot=event.lot_id, status="open", close_at=format_instant(event.close_at),
                              extensions=event.extensions if type(event) is LotExtended else 0, server_time=now)
        elif type(event) is LotSuspended:
            message = m.Suspended(lot=event.lot_id, reason=event.reason, server_time=now)
        elif type(event) is LotResumed:
            message = m.Resumed(lot=event.lot_id, close_at=format_instant(event.close_at), server_time=now)
        elif type(event) is LotAwarded or type(event) is LotUnsuccessful:
            for conn in list(conns):
                conn.push(self._closed(conn, event.auction_id, event.lot_id, event.time))
            return
        elif type(event) is BidderRevoked:
            for conn in list(conns):
                if conn.role == "bidder" and conn.subject == event.bidder_id:
                    conn.request_close(p.CLOSE_FORBIDDEN, "revoked")
            return
        if message is not None:
            for conn in conns:
                conn.push(message)

    def _closed(self, conn: Connection, auction_id: str, lot_id: str, time: int) -> m.Closed:
        """The `closed` message of an ended lot: the bidder's own result, or the outcome
        for observers (from the engine: a lot that has ended no longer changes)."""
        auction = self.runtime.engine.auction(auction_id)
        lot = auction.lots[lot_id]
        status, unsuccessful = lot_outcome(auction, lot)
        reason = "cancelled" if lot.clock.status == CANCELLED else lot.clock.close_reason
        best = next(iter(lot.book.ranked()), None) if status == "awarded" else None
        if conn.role == "observer":
            out = m.Closed(lot=lot_id, close_reason=reason, server_time=format_instant(time), outcome=status)
            if best is not None:
                out.winner = auction.pseudonyms[best.bidder_id]
                out.awarded_price = format_amount(best.price, conn.decimals)
        else:
            own = self.runtime.engine.bidder_view(auction_id, lot_id, conn.subject)
            outcome = "unsuccessful" if best is None else "won" if best.bidder_id == conn.subject else "not_won"
            out = m.Closed(lot=lot_id, close_reason=reason, server_time=format_instant(time), outcome=outcome,
                           rank=own.rank, own_price=p.money(own.own_price, conn.decimals))
        if unsuccessful is not None:
            out.unsuccessful_reason = unsuccessful
        return out

    # -- sessions ------------------------------------------------------------------------

    async def session(self, transport: Transport, auction_id: str, subprotocol: str,
                      direct: Direct | None = None) -> None:
        """Serve one accepted WebSocket until it closes (`direct`: its fast write path)."""
        codec = p.Codec(subprotocol)
        conn: Connection | None = None
        closing: Closing | None = None
        try:
            if self.count >= self.settings.max_connections:
                raise Closing(p.CLOSE_OVERLOADED, "the service holds its maximum number of connections")
            conn = await self._handshake(transport, auction_id, codec, direct)
            await self._run(transport, conn)
        except Closing as exc:
            closing = exc
        finally:  # also when the peer went away and the server stack cancelled the session
            if closing is None and conn is not None:
                closing = conn.close_request
            self._ended(conn, closing)
        if closing is not None:
            with trio.move_on_after(CLOSE_WAIT):
                if conn is not None and closing.code != p.CLOSE_TOO_SLOW:
                    # the answers owed to messages read before the close, then the close
                    await conn.wait_answers(0)
                    await self._send_queued(transport, conn)
                await transport.close(closing.code, closing.reason)
                while True:  # drain what the client still sends until its close: no reset,
                    await transport.receive()  # and the server stack is never left blocked

    def _ended(self, conn: Connection | None, closing: Closing | None) -> None:
        if closing is not None:
            self.metrics.closed.labels(str(closing.code)).inc()
        log(logger, logging.INFO, "room connection closed", auction_id=conn.auction_id if conn else None,
            connection_id=conn.id if conn else None, close_code=closing.code if closing else None,
            close_reason=closing.reason if closing else "closed by the client")

    async def _handshake(self, transport: Transport, auction_id: str, codec: p.Codec,
                         direct: Direct | None) -> Connection:
        frame: str | bytes | None = None
        with trio.move_on_after(self.settings.handshake_timeout_s) as scope:
            frame = await transport.receive()
        if scope.cancelled_caught:
            raise Closing(p.CLOSE_HANDSHAKE_TIMEOUT, "no hello within the handshake timeout")
        try:
            message = codec.read(frame)
        except p.ProtocolError as exc:
            raise Closing(p.CLOSE_BAD_HELLO, f"{exc.code}: {exc.message}") from None
        if not isinstance(message, p.Hello):
            raise Closing(p.CLOSE_BAD_HELLO, "the first message must be hello")
        try:
            claims = self.tokens.verify(message.token, auction_id)
        except AuthError as exc:
            code = p.CLOSE_FORBIDDEN if exc.status == 403 else p.CLOSE_UNAUTHORIZED
            raise Closing(code, exc.code) from None
        engine = self.runtime.engine
        try:
            auction = engine.auction(auction_id)
        except QueryError:
            raise Closing(p.CLOSE_NOT_FOUND, "unknown_auction") from None
        name: str | None = None
        if claims.role == "bidder":
            if claims.subject not in auction.admitted:
                raise Closing(p.CLOSE_FORBIDDEN, "not_admitted")
            if self.revoked_at.get((auction_id, claims.subject), -1) >= claims.issued_us:
                raise Closing(p.CLOSE_FORBIDDEN, "token_revoked")
            name = auction.pseudonyms[claims.subject]
        conn = Connection(
            id=f"c{next(self._ids)}", auction_id=auction_id, role=claims.role, subject=claims.subject,
            pseudonym=name, codec=codec, decimals=auction.config.decimals,
            visibility=auction.config.visibility, limit=self.settings.outbound_queue,
            control=deque(), views={}, wake=trio.Event(), direct=direct, outflow=self.outflow,
        )
        conn.push(welcome(auction.config, conn, self.runtime.now()))
        return conn

    async def _run(self, transport: Transport, conn: Connection) -> None:
        conns = self.by_auction.setdefault(conn.auction_id, set())
        conns.add(conn)
        self.count += 1
        gauge = self.metrics.connections.labels(conn.role)
        gauge.inc()
        log(logger, logging.INFO, "room connection opened", auction_id=conn.auction_id, connection_id=conn.id,
            role=conn.role, pseudonym=conn.pseudonym)
        try:
            auction = self.runtime.engine.auction(conn.auction_id)
            for lot in auction.lots.values():  # lots that ended before this connection: their result
                if lot.clock.status in FINAL and lot.clock.closed_at is not None:
                    conn.push(self._closed(conn, conn.auction_id, lot.config.lot_id, lot.clock.closed_at))
            snapshots = await self.runtime.durable_snapshots(conn.auction_id)
            done = [0, 0, 0, 0]
            for snapshot in snapshots or ():  # the first view of each lot (else it comes with the next batch)
                done[conn.push_view(p.ViewRenderer(snapshot, conn.decimals))] += 1
            self._count_views(done)
            async with trio.open_nursery() as nursery:
                conn.cancel = nursery.cancel_scope
                if conn.close_request is not None:  # closed while it waited for its views
                    nursery.cancel_scope.cancel()
                nursery.start_soon(self._sender, transport, conn)
                await self._receiver(transport, conn)
                nursery.cancel_scope.cancel()
        finally:
            conns.discard(conn)
            if not conns:
                self.by_auction.pop(conn.auction_id, None)
            self.count -= 1
            gauge.dec()

    async def _sender(self, transport: Transport, conn: Connection) -> None:
        while True:
            await conn.wake.wait()
            conn.wake = trio.Event()
            await self._send_queued(transport, conn)

    async def _send_queued(self, transport: Transport, conn: Connection) -> None:
        """Send what is staged, in the backlog and queued (views only while open), in order."""
        direct = conn.direct
        if direct is not None:
            self.outflow.write(conn)  # staged bytes go first
        while conn.control or (conn.views and conn.close_request is None) or (direct is not None and direct.backlog):
            if direct is not None and direct.backlog:
                conn.sending_since = trio.current_time()  # watched by `watchdog`
                await direct.flush()
                conn.sending_since = None
                continue
            taken = False  # a control message stays queued until sent: a close cancelling its send
            if conn.control:  # must not lose it (the close path sends what is still queued)
                payload = conn.codec.encode(conn.control[0])
                taken = True
            else:
                lot = next(iter(conn.views))
                payload = conn.view_payload(conn.views.pop(lot))
                if not conn.fresh(lot, payload):  # the same as the last one it was sent
                    self.metrics.views_unchanged.inc()
                    continue
                self.metrics.views_sent.inc()
            if direct is not None:
                data = direct.frame(payload)
                if data is None:  # the WebSocket is closing
                    return
                if taken:
                    conn.control.popleft()
                direct.write_nowait(data)  # what it does not take, the loop flushes
                continue
            conn.sending_since = trio.current_time()
            await transport.send(payload)
            conn.sending_since = None
            if taken:
                conn.control.popleft()

    async def watchdog(self) -> None:
        """Close (CLOSE_TOO_SLOW) every connection whose current send has been blocked
        longer than the send timeout. The server stack's own, slightly longer, write
        deadline then frees the blocked task (see transport.py)."""
        timeout = self.settings.send_timeout_s
        while True:
            await trio.sleep(min(WATCHDOG_PERIOD, timeout / 2))
            late = trio.current_time() - timeout
            for conns in self.by_auction.values():
                for conn in conns:
                    since = conn.sending_since
                    if since is not None and since < late:
                        conn.request_close(p.CLOSE_TOO_SLOW, f"a send was blocked for more than {timeout:g} s")

    async def _receiver(self, transport: Transport, conn: Connection) -> None:
        errors = Bucket(ERROR_REFILL, ERROR_BURST)
        bids = Bucket(self.settings.bid_rate, self.settings.bid_burst)
        while True:
            await conn.wait_answers(READ_AHEAD - 1)  # backpressure: read on once earlier bids are answered
            frame = await transport.receive()
            try:
                message = conn.codec.read(frame)
                if isinstance(message, p.Bid):
                    if conn.role != "bidder":
                        raise p.ProtocolError("observer_cannot_bid", "observers cannot bid", message.client_bid_id)
                    if not bids.take():
                        self.metrics.protocol_errors.labels("rate_limited").inc()
                        conn.answer(p.reject(message.client_bid_id, message.lot, "rate_limited",
                                             f"at most {self.settings.bid_rate:g} bids per second"))
                        if not errors.take():
                            conn.request_close(p.CLOSE_ABUSE, "bids far over the rate limit")
                            return
                        continue
                    self._bid(conn, message)
                elif isinstance(message, p.Ping):
                    conn.answer(p.pong(message.id, self.runtime.now()))
                else:
                    raise p.ProtocolError("unexpected_hello", "hello was already received")
            except p.ProtocolError as exc:
                self.metrics.protocol_errors.labels(exc.code).inc()
                conn.answer(p.error(exc.code, exc.message, exc.client_bid_id))
                if not errors.take():
                    conn.request_close(p.CLOSE_ABUSE, "too many malformed messages")
                    return

    def _bid(self, conn: Connection, bid: p.Bid) -> None:
        """Run a bid through the core now; its answer is owed until it is durable, and the
        receiver reads on meanwhile (up to READ_AHEAD owed answers; the bid rate limit
        bounds the rest)."""
        started = time.perf_counter()
        runtime = self.runtime
        amount: int | str
        try:
            amount = parse_amount(bid.amount, conn.decimals)
        except MoneyError:  # the core decides, in its order of checks: counted, journaled, remembered
            amount = bid.amount
        command = PlaceBid(runtime.now(), conn.auction_id, bid.lot, conn.subject, amount, bid.client_bid_id)
        cell = conn.owe()
        try:
            runtime.post(command, partial(self._answer, conn, bid, started, cell),
                         partial(self._lost, conn, bid, started, cell))
        except JournalUnavailable as exc:
            self._lost(conn, bid, started, cell, exc)
        except FormatError as exc:  # unreachable: the protocol admits only journalable fields
            log(logger, logging.ERROR, "a bid that cannot be journaled", auction_id=conn.auction_id,
                connection_id=conn.id, error=str(exc))
            conn.settle(cell, p.error("internal", p.ERROR_CODES["internal"], bid.client_bid_id))

    def _answer(self, conn: Connection, bid: p.Bid, started: float, cell: list[Any], submission: Submission) -> None:
        """A durable bid's ack or reject (called by the runtime as its batch becomes
        durable, before that batch's views)."""
        for event in submission.events:
            if type(event) is BidAccepted and event.bidder_id == conn.subject:
                self._count_bid("accepted", "", started)
                conn.settle(cell, ack(event, bid.client_bid_id, conn, submission.duplicate))
                return
            if type(event) is BidRejected and event.bidder_id == conn.subject:
                self._count_bid("rejected", event.code, started)
                conn.settle(cell, reject(event, bid.client_bid_id, conn, submission.duplicate))
                return
        log(logger, logging.ERROR, "a bid with no outcome", auction_id=conn.auction_id, connection_id=conn.id,
            events=repr(submission.events)[:300])
        conn.settle(cell, p.error("internal", "the bid's outcome is unknown", bid.client_bid_id))

    def _lost(self, conn: Connection, bid: p.Bid, started: float, cell: list[Any], error: JournalUnavailable) -> None:
        self._count_bid("rejected", "journal_unavailable", started)
        conn.settle(cell, p.reject(bid.client_bid_id, bid.lot, "journal_unavailable", str(error)))

    def _count_bid(self, outcome: str, reason: str, started: float) -> None:
        counter = self._bid_counters.get((outcome, reason))
        if counter is None:
            counter = self._bid_counters[outcome, reason] = self.metrics.bids.labels(outcome, reason)
        counter.inc()
        self.metrics.bid_ack_seconds.observe(time.perf_counter() - started)


def note_revocations(revoked_at: dict[tuple[str, str], int], events: Iterable[Event]) -> None:
    """Remember when each bidder was last revoked: its tokens issued before are refused
    (kept live by the room, rebuilt from the journal at start)."""
    for event in events:
        if type(event) is BidderRevoked:
            revoked_at[event.auction_id, event.bidder_id] = event.time


def ack(event: BidAccepted, client_bid_id: str, conn: Connection, duplicate: bool) -> m.Ack:
    """The ack of an accepted bid, with the bidder's standing right after it."""
    out = m.Ack(client_bid_id=client_bid_id, lot=event.lot_id, amount=format_amount(event.amount, conn.decimals),
                time=format_instant(event.time), rank=event.rank, duplicate=duplicate)
    if conn.sees.best_price:
        out.best_price = format_amount(event.best, conn.decimals)
    return out


# Core rejection messages that may say more than the bidder may see: the step messages
# name amounts that can reveal the best price (`Shown.amounts_in_refusals`); "not_admitted"
# names the bidder. These get the code's generic text instead.
_STEP_CODES = frozenset({"insufficient_step", "step_too_large"})


def reject(event: BidRejected, client_bid_id: str, conn: Connection, duplicate: bool) -> m.Reject:
    """The reject of a bid the core refused."""
    message = event.message
    if event.code == "not_admitted" or (not conn.sees.amounts_in_refusals and event.code in _STEP_CODES):
        message = REJECTION_CODES[event.code]
    lot = event.lot_id if type(event.lot_id) is str else ""
    out = p.reject(client_bid_id, lot, event.code, message)
    out.duplicate = duplicate
    return out


def welcome(config: AuctionConfig, conn: Connection, now: int) -> m.Welcome:
    """The first server message: who the connection is and the auction's rules."""
    full = config.to_dict()
    lots = []
    for lot in full["lots"]:
        shown = m.WelcomeLot(lot_id=lot["lot_id"], title=lot["title"], starting_price=lot["starting_price"],
                             rules=lot["rules"], extension=lot["extension"])
        if conn.sees.estimate:
            shown.estimate, shown.reserve_price = lot["estimate"], lot["reserve_price"]
        lots.append(shown)
    return m.Welcome(
        connection_id=conn.id, role=conn.role, auction_id=config.auction_id, title=config.title,
        currency=config.currency, decimals=config.decimals, visibility=config.visibility, pseudonym=conn.pseudonym,
        start=full["start"], end=full["end"], stagger=full["stagger"], lots=lots, server_time=format_instant(now),
    )
