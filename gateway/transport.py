"""hypercorn's trio server with bounded writes and a direct write path for room messages.

Bounded writes: hypercorn writes each chunk with a *shielded* `send_all`, so a peer that
stops reading blocks the writing task (and the service's shutdown) for ever, whatever
timeout the app sets around its own send. `BoundedTCPServer` keeps the shield (a chunk is
never half cancelled by an outer scope) but gives the write its own deadline, the
`send_timeout` attribute of the hypercorn config: past it the stream is closed, the
protocol learns the peer is gone, and the app's pending send returns.

Direct writes: sending one WebSocket message through the ASGI stack (Quart's websocket,
hypercorn's stream and protocol, the send lock, trio's `send_all`) costs several task
switches. A room fans each durable change out to every connection of its auction, so
`DirectSender` frames a message with the connection's own wsproto state (its extensions
included; with none negotiated, a bare RFC 6455 header) and writes it to the socket
synchronously when the socket takes it at once.
Whatever the socket does not take stays in the server's `backlog`, which every later write
on that connection, ours or hypercorn's (pongs, the close frame), sends first, so bytes
never interleave or reorder. `direct_sender(scope)` finds the sender of an accepted
WebSocket by its addresses; None (TLS, HTTP/2, a closed or unknown connection) means
"use the ASGI send".

Closing right (RFC 6455 7.1): `RoomWSStream` is hypercorn's WebSocket stream with two
fixes. A message over the size limit, sent in fragments, gets its 1009 close and then the
TCP connection ends (at the peer's close reply, or `CLOSE_GRACE` seconds later), where
hypercorn kept it open; a frame wsproto cannot parse (invalid UTF-8 in a text message:
1007, a protocol error: 1002) gets its close frame before the connection ends, where
hypercorn dropped it without one.

`install()` makes hypercorn's trio worker use `BoundedTCPServer` and `RoomWSStream`.
These lean on hypercorn internals: pyproject.toml pins its minor version and
tests/test_transport.py fails loudly when they change.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Mapping
from typing import Any

import hypercorn.protocol.h2
import hypercorn.protocol.h11
import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, FrameTooLargeError, WSStream
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import parse_socket_addr
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

CLOSE_GRACE = 2.0  # seconds a peer has to answer our close frame before the TCP connection ends

# (client address, server address) -> the live server of that TCP connection
_servers: dict[tuple[Any, Any], BoundedTCPServer] = {}


class BoundedTCPServer(TCPServer):
    """One TCP connection: hypercorn's, with a write deadline and a backlog for direct writes."""

    backlog: bytearray

    async def run(self) -> None:
        self.backlog = bytearray()
        key = None
        try:
            sock = self.stream.socket  # AttributeError under TLS: no direct writes there
            key = (parse_socket_addr(sock.family, sock.getpeername()),
                   parse_socket_addr(sock.family, sock.getsockname()))
            if None in key:  # not an IP socket
                key = None
            else:
                _servers[key] = self
        except (AttributeError, OSError):
            key = None
        try:
            await super().run()
        finally:
            if key is not None and _servers.get(key) is self:
                del _servers[key]

    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        async with self.send_lock:
            await self._write_locked(event.data)

    async def _write_locked(self, data: bytes) -> None:
        """Write the backlog then `data`, under the send lock, within the send timeout."""
        if self.backlog:
            data = bytes(self.backlog) + data
            self.backlog.clear()
        if not data:
            return
        timeout = getattr(self.config, "send_timeout", None) or math.inf
        stalled = False
        try:
            with trio.CancelScope(shield=True), trio.move_on_after(timeout) as scope:
                await self.stream.send_all(data)
            stalled = scope.cancelled_caught
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            stalled = True
        if stalled:
            with trio.CancelScope(shield=True):
                await self.stream.aclose()
            await self.protocol.handle(Closed())


class DirectSender:
    """Frames and writes one accepted WebSocket's messages without the ASGI send path."""

    __slots__ = ("_server", "_ws", "_sock", "_plain", "_broken")

    def __init__(self, server: BoundedTCPServer, ws: WSStream, plain: bool) -> None:
        self._server = server
        self._ws = ws
        self._sock = server.stream.socket
        self._plain = plain  # no extension negotiated: frames are a bare header and the payload
        self._broken = False  # a write failed: nothing more goes out on this connection

    @property
    def open(self) -> bool:
        ws = self._ws
        return (not self._broken and ws.state is ASGIWebsocketState.CONNECTED
                and ws.connection.state is ConnectionState.OPEN)

    @property
    def backlog(self) -> int:
        """Bytes framed but not yet taken by the socket."""
        return len(self._server.backlog)

    def frame(self, payload: str | bytes) -> bytes | None:
        """The wire bytes of one message (through the connection's extensions), or None
        once the WebSocket is closing."""
        if not self.open:
            return None
        if self._plain:
            return plain_frame(payload)
        event = TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload)
        try:
            return self._ws.connection.send(event)
        except LocalProtocolError:
            return None

    def write_nowait(self, data: bytes) -> bool:
        """Write what the socket takes now and keep the rest in order; True if nothing is
        left for `flush`. Bytes for a connection that has gone are dropped; after any other
        write error the connection is shut down (a message missing from the middle of the
        stream must never pass unnoticed), and the server stack ends its session."""
        server = self._server
        if server.backlog or server.send_lock.locked():
            server.backlog += data
            return False
        fd = self._sock.fileno()
        if fd < 0:  # closed by the server stack (the descriptor may already be reused)
            return True
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            written = 0
        except OSError:  # reset, broken pipe, or worse: end the connection
            self._broken = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # the server stack's reader sees the end
            return True
        if written < len(data):
            server.backlog += memoryview(data)[written:]
            return False
        return True

    async def flush(self) -> None:
        """Write the backlog (waiting for the socket, within the send timeout)."""
        server = self._server
        async with server.send_lock:
            await server._write_locked(b"")


def plain_frame(payload: str | bytes) -> bytes:
    """One unfragmented, unmasked (server to client) frame with no extension: RFC 6455 5.2."""
    if isinstance(payload, str):
        data, opcode = payload.encode(), 0x81  # FIN + text
    else:
        data, opcode = payload, 0x82  # FIN + binary
    n = len(data)
    if n < 126:
        return bytes((opcode, n)) + data
    if n < 0x10000:
        return bytes((opcode, 126)) + n.to_bytes(2, "big") + data
    return bytes((opcode, 127)) + n.to_bytes(8, "big") + data


def direct_sender(scope: Mapping[str, Any]) -> DirectSender | None:
    """The direct sender of the accepted WebSocket that `scope` belongs to, if it can have one."""
    client, server_addr = scope.get("client"), scope.get("server")
    if not isinstance(client, tuple | list) or not isinstance(server_addr, tuple | list):
        return None
    server = _servers.get((tuple(client), tuple(server_addr)))
    if server is None:
        return None
    protocol = getattr(server.protocol, "protocol", None)
    ws = getattr(protocol, "stream", None) if isinstance(protocol, H11Protocol) else None
    if not isinstance(ws, WSStream) or ws.state is not ASGIWebsocketState.CONNECTED:
        return None
    offered = any(name.lower() == b"sec-websocket-extensions" for name, _value in scope.get("headers", ()))
    return DirectSender(server, ws, plain=not offered)


class RoomWSStream(WSStream):
    """hypercorn's WebSocket stream, ending the connection after every close it sends."""

    async def _handle_events(self) -> None:
        for event in self.connection.events():
            if isinstance(event, Message):
                if self.connection.state is not ConnectionState.OPEN:
                    continue  # what follows our close frame is read and dropped
                try:
                    self.buffer.extend(event)
                except FrameTooLargeError:
                    self.buffer.clear()
                    await self._close_first(CloseReason.MESSAGE_TOO_BIG)
                    continue
                if event.message_finished:
                    assert self.app_put is not None
                    await self.app_put(self.buffer.to_message())
                    self.buffer.clear()
            elif isinstance(event, Ping):
                await self._send_wsproto_event(event.response())
            elif isinstance(event, CloseConnection):
                state = self.connection.state
                if state is ConnectionState.REMOTE_CLOSING:  # the peer's close: answer it
                    await self._send_wsproto_event(event.response())
                elif state is ConnectionState.OPEN:  # wsproto could not parse a frame: say why
                    await self._send_wsproto_event(CloseConnection(code=event.code, reason=event.reason))
                await self.send(StreamClosed(stream_id=self.stream_id))
                return

    async def _close_first(self, code: CloseReason) -> None:
        """Send a close frame; the connection ends at the peer's reply or after CLOSE_GRACE."""
        await self._send_wsproto_event(CloseConnection(code=code))
        self.task_group.spawn(self._end_after_grace)

    async def _end_after_grace(self) -> None:
        await self.context.sleep(CLOSE_GRACE)
        if not self.closed:
            await self.send(StreamClosed(stream_id=self.stream_id))


def install() -> None:
    """Make hypercorn's trio worker serve connections with `BoundedTCPServer` and its
    WebSocket upgrades with `RoomWSStream`."""
    hypercorn.trio.run.TCPServer = BoundedTCPServer  # type: ignore[attr-defined]
    hypercorn.protocol.h11.WSStream = RoomWSStream  # type: ignore[attr-defined]
    hypercorn.protocol.h2.WSStream = RoomWSStream  # type: ignore[attr-defined]
