"""One room connection: its outbound queue, the views it was sent, its direct write path.

The queue holds messages that must be delivered (acks, rejects, clock and lifecycle
messages; bounded) and at most one pending view per lot (a newer snapshot replaces an
unsent one). The transport is anything with `send`, `receive` and `close(code, reason)`
(Quart's websocket object in the service); `rooms.Rooms` runs the session around it.

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
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from auction_engine.ranking import Shown, shown

from . import messages as m
from . import protocol as p
from .logs import log

logger = logging.getLogger("gateway.room")  # the room's log, as the session's


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
