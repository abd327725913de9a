"""The auction room: one session per WebSocket, and the fan-out of durable state to them.

A session reads the hello (token) within the handshake timeout, then runs two tasks: a
receiver that turns bids into core commands (pipelined: each answered once durable, every
answer in the order of the messages it answers) and a sender that drains the
connection's outbound queue (`connection.Connection`). A send blocked longer than the send
timeout (seen by one watchdog task for all connections), or a full queue, closes the
connection with CLOSE_TOO_SLOW: a slow reader delays nobody else. As a consumer of the
runtime, `Rooms` routes each durable batch's events and lot snapshots to the connections
of their auction.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

import trio

from auction_engine.clock import CANCELLED, FINAL
from auction_engine.commands import PlaceBid
from auction_engine.engine import QueryError
from auction_engine.events import (
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
from auction_engine.ranking import LotSnapshot, lot_outcome
from auction_engine.runtime import Consumer, FormatError, JournalUnavailable, Runtime, Submission
from auction_engine.timeutil import format_instant

from . import messages as m
from . import protocol as p
from .auth import AuthError, TokenIssuer
from .connection import (
    READ_AHEAD,
    REPLACED,
    STAGED,
    UNCHANGED,
    Bucket,
    Closing,
    Connection,
    Direct,
    Outflow,
    Transport,
)
from .logs import log
from .metrics import Metrics
from .replies import ack, reject, welcome
from .settings import Settings

logger = logging.getLogger("gateway.room")

ERROR_BURST = 20  # protocol errors and rate-limited bids tolerated in a burst ...
ERROR_REFILL = 1.0  # ... refilled at this many per second; beyond them, CLOSE_ABUSE
CLOSE_WAIT = 2.0  # seconds to spend on a close handshake before dropping the socket
WATCHDOG_PERIOD = 0.5  # seconds between scans for blocked sends


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
        await self.runtime.serve_case(auction_id)  # (a gateway serving only its rooms' cases follows it now)
        engine = self.runtime.engine
        try:
            auction = engine.auction(auction_id)
        except QueryError:
            if not self.by_auction.get(auction_id):
                self.runtime.release_case(auction_id)
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
            async with trio.open_nursery() as nursery:
                conn.cancel = nursery.cancel_scope
                await nursery.start(self._first_views, conn)
                if conn.close_request is not None:  # closed while it waited for its views
                    nursery.cancel_scope.cancel()
                nursery.start_soon(self._sender, transport, conn)
                await self._receiver(transport, conn)
                nursery.cancel_scope.cancel()
        finally:
            conns.discard(conn)
            if not conns:
                self.by_auction.pop(conn.auction_id, None)
                self.runtime.release_case(conn.auction_id)
            self.count -= 1
            gauge.dec()

    async def _first_views(self, conn: Connection, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Push the first view of each lot, showing only durable state (else it comes with
        the next batch); started once they are pushed, or at once if a batch in flight must
        be durable first: that wait goes on beside the receiver, since during a journal
        outage (Redis away) it lasts until the journal is back, and the connection's bids
        must meanwhile be read and refused `journal_unavailable`."""
        runtime = self.runtime
        if runtime.journaled.gseq != runtime.writer.durable_gseq and not runtime.writer.pending:
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
        snapshots = await runtime.durable_snapshots(conn.auction_id)
        done = [0, 0, 0, 0]
        for snapshot in snapshots or ():
            done[conn.push_view(p.ViewRenderer(snapshot, conn.decimals))] += 1
        self._count_views(done)
        task_status.started()

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
