"""A lean WebSocket client on trio sockets, for the load generators of `benchmarks.ws_load`.

A load generator on a 2-core machine must cost less than what it loads, so this client
does only what a benchmark needs: the RFC 6455 opening handshake (subprotocol offered,
Sec-WebSocket-Accept checked), masked client frames (a fresh random key per frame), and a
read loop that parses every complete server frame of each `receive_some` and hands each
message to a callback with the time of that read. The reader answers pings; the close
frame's code and reason are kept; no extension is offered. The raw echo of the same
benchmark is driven by this same client, so its cost is in both figures.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import struct
import time
from collections.abc import Callable

import trio

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
READ_SIZE = 65536
MAX_HEADER = 16384

OnMessage = Callable[[str | bytes, float], None]  # the message, perf_counter() of the read that completed it


class HandshakeError(Exception):
    pass


def frame(opcode: int, payload: bytes) -> bytes:
    """One final client frame, masked with a random key."""
    n = len(payload)
    mask = os.urandom(4)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    keys = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
    return header + mask + masked


class WsConn:
    """One client WebSocket connection. `send_text`/`send_binary` from any task;
    `run_reader(on_message)` in one task until the connection ends."""

    __slots__ = ("stream", "subprotocol", "close_code", "close_reason", "_lock", "_buffer", "_parts", "_frag_op",
                 "_pongs")

    def __init__(self, stream: trio.SocketStream, subprotocol: str | None, rest: bytes) -> None:
        self.stream = stream
        self.subprotocol = subprotocol
        self.close_code: int | None = None
        self.close_reason = ""
        self._lock = trio.Lock()
        self._buffer = rest
        self._parts: list[bytes] = []
        self._frag_op = OP_TEXT
        self._pongs: list[bytes] = []  # ping payloads to answer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, subprotocol: str | None = None) -> WsConn:
        stream = await trio.open_tcp_stream(host, port)
        try:
            key = base64.b64encode(os.urandom(16))
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                     f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
            if subprotocol:
                lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(READ_SIZE)
                if not chunk or len(data) > MAX_HEADER:
                    raise HandshakeError(f"no upgrade response (got {data[:200]!r})")
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            status, *header_lines = head.decode("latin-1").split("\r\n")
            if status.split(" ", 2)[1:2] != ["101"]:
                raise HandshakeError(f"upgrade refused: {status!r}")
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
            if headers.get("sec-websocket-accept") != expected:
                raise HandshakeError("bad Sec-WebSocket-Accept")
            chosen = headers.get("sec-websocket-protocol")
            if subprotocol and chosen != subprotocol:
                raise HandshakeError(f"subprotocol {subprotocol!r} not chosen (got {chosen!r})")
            return cls(stream, chosen, rest)
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    async def send_frame(self, opcode: int, payload: bytes) -> None:
        data = frame(opcode, payload)
        async with self._lock:
            await self.stream.send_all(data)

    async def send_text(self, text: str) -> None:
        await self.send_frame(OP_TEXT, text.encode())

    async def send_binary(self, data: bytes) -> None:
        await self.send_frame(OP_BINARY, data)

    async def receive_one(self) -> str | bytes:
        """The next message, for the opening exchange (before `run_reader`)."""
        got: list[str | bytes] = []
        while True:
            if not self._parse(lambda m, _t: got.append(m), 0.0, one=True):
                raise trio.BrokenResourceError(f"closed {self.close_code}: {self.close_reason}")
            if got:
                return got[0]
            chunk = await self.stream.receive_some(READ_SIZE)
            if not chunk:
                raise trio.BrokenResourceError("connection closed by the peer")
            self._buffer += chunk

    async def run_reader(self, on_message: OnMessage) -> None:
        """Read until the connection ends, calling `on_message` for every message."""
        clock = time.perf_counter
        stream = self.stream
        try:
            if not self._parse(on_message, clock()):
                return
            while True:
                chunk = await stream.receive_some(READ_SIZE)
                if not chunk:
                    return
                self._buffer = self._buffer + chunk if self._buffer else chunk
                if not self._parse(on_message, clock()):
                    return
                while self._pongs:
                    await self.send_frame(OP_PONG, self._pongs.pop(0))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    def _parse(self, on_message: OnMessage, now: float, one: bool = False) -> bool:
        """Hand every complete message of the buffer (or the first, if `one`) to
        `on_message`; False once a close frame arrived. Pings are kept for the reader to answer."""
        buf = self._buffer
        pos = 0
        end = len(buf)
        alive = True
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if b1 & 0x80:
                raise trio.BrokenResourceError("a masked server frame")
            if end - pos < head + n:
                break
            payload = buf[pos + head:pos + head + n]
            pos += head + n
            opcode = b0 & 0x0F
            if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if opcode != OP_CONT:
                    self._frag_op = opcode
                if not b0 & 0x80:  # a fragment: keep it until the final one
                    self._parts.append(payload)
                    continue
                if self._parts:
                    self._parts.append(payload)
                    payload = b"".join(self._parts)
                    self._parts.clear()
                on_message(payload.decode() if self._frag_op == OP_TEXT else payload, now)
                if one:
                    break
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self.close_reason = payload[2:].decode(errors="replace")
                alive = False
                break
            elif opcode == OP_PING:
                self._pongs.append(payload)
        self._buffer = buf[pos:]
        return alive

    async def aclose(self, code: int = 1000) -> None:
        """Send a close frame (if still possible) and close the socket."""
        with trio.move_on_after(1):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                await self.send_frame(OP_CLOSE, struct.pack("!H", code))
        await trio.aclose_forcefully(self.stream)
