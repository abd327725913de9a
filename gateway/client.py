"""A trio client for the service: `RpcClient` for portal backends, `Room` for bidders and
observers. Used by the tests, the benchmark and the demo; documented in docs/api.md and
docs/protocol.md.

    async with RpcClient(base_url, key) as rpc:
        tokens = (await rpc.admit("A-1", ["acme"]))["tokens"]
    async with Room.connect(ws_url, tokens[0]["token"]) as room:
        answer = await room.bid("L1", "1234.50", "my-bid-1")   # the ack or reject
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgpack
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from .protocol import CLIENT_BID_ID


class RpcError(Exception):
    """An RPC error answer: HTTP status, stable code, message and field details."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details or []


class RpcClient:
    """The portal RPC over HTTP; `base_url` is the service root (http://host:port)."""

    def __init__(self, base_url: str, key: str | None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One call; returns the decoded JSON (or bytes) or raises `RpcError`."""
        query = {k: v for k, v in params.items() if v is not None}
        response = await self._http.request(method, path, json=body, params=query)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                raise RpcError(response.status_code, "http_error", response.text[:200]) from None
            raise RpcError(response.status_code, error["code"], error["message"], error.get("details"))
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    async def create_auction(self, config: dict[str, Any]) -> Any:
        return await self.request("POST", "/auctions", config)

    async def get_auction(self, auction_id: str) -> Any:
        return await self.request("GET", f"/auctions/{auction_id}")

    async def list_auctions(self, *, status: str | None = None, buyer_ref: str | None = None,
                            limit: int | None = None, after: str | None = None) -> Any:
        return await self.request("GET", "/auctions", status=status, buyer_ref=buyer_ref, limit=limit, after=after)

    async def admit(self, auction_id: str, bidders: list[str], ttl_s: int | None = None) -> Any:
        body: dict[str, Any] = {"bidders": bidders}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return await self.request("POST", f"/auctions/{auction_id}/bidders", body)

    async def revoke(self, auction_id: str, bidder_id: str, reason: str = "") -> Any:
        return await self.request("POST", f"/auctions/{auction_id}/bidders/{bidder_id}/revoke", {"reason": reason})

    async def observer_token(self, auction_id: str, name: str = "observer") -> Any:
        return await self.request("POST", f"/auctions/{auction_id}/observers", {"name": name})

    async def suspend(self, auction_id: str, lot_id: str | None = None, reason: str = "") -> Any:
        return await self.request("POST", f"/auctions/{auction_id}/suspend", {"lot_id": lot_id, "reason": reason})

    async def resume(self, auction_id: str, lot_id: str | None = None) -> Any:
        return await self.request("POST", f"/auctions/{auction_id}/resume", {"lot_id": lot_id})

    async def cancel(self, auction_id: str, lot_id: str | None = None, reason: str = "") -> Any:
        return await self.request("POST", f"/auctions/{auction_id}/cancel", {"lot_id": lot_id, "reason": reason})

    async def results(self, auction_id: str) -> Any:
        return await self.request("GET", f"/auctions/{auction_id}/results")

    async def journal(self, auction_id: str) -> bytes:
        data: bytes = await self.request("GET", f"/auctions/{auction_id}/journal")
        return data

    async def events(self, after: int = 0, *, wait: float | None = None, limit: int | None = None,
                     auction_id: str | None = None, case_id: str | None = None) -> Any:
        return await self.request("GET", "/events", after=after, wait=wait, limit=limit, auction_id=auction_id,
                                  case_id=case_id)

    async def stream_events(self, after: int = 0, auction_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """The feed as server-sent events, from `after` on, forever."""
        params: dict[str, str | int] = {"after": after}
        if auction_id is not None:
            params["auction_id"] = auction_id
        async with self._http.stream("GET", "/events", params=params, timeout=None,
                                     headers={"Accept": "text/event-stream"}) as response:
            if response.status_code >= 400:
                await response.aread()
                error = response.json()["error"]
                raise RpcError(response.status_code, error["code"], error["message"])
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []


class RoomClosed(Exception):
    """The room closed the connection: `code` and `reason` are the close frame's."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code, self.reason = code, reason


class Room:
    """One room connection after its welcome. A reader task keeps the latest view and
    clock of each lot, routes acks and rejects to `bid()`, and logs every message in
    `received` when `record` is set; `on_message` sees every message as it arrives."""

    def __init__(self, ws: WebSocketConnection, binary: bool, welcome: dict[str, Any], record: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.welcome = welcome
        self.views: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = [welcome] if record else []
        self.record = record
        self.closed: RoomClosed | None = None
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self._answers: dict[str, trio.Event] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._changed = trio.Event()
        self._pings = itertools.count(1)

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, token: str, *, subprotocol: str = "auction.v1.json", record: bool = False,
                      read: bool = True) -> AsyncIterator[Room]:
        """Open, say hello, wait for the welcome; `read=False` leaves the reading to the
        caller (`receive()`), e.g. to act as a slow reader."""
        async with open_websocket_url(url, subprotocols=[subprotocol], message_queue_size=1) as ws:
            binary = subprotocol.endswith("msgpack")
            await _send(ws, binary, {"type": "hello", "token": token})
            try:
                first = await _receive(ws, binary)
            except ConnectionClosed as exc:  # the room refused the hello
                reason = exc.reason
                raise RoomClosed(reason.code if reason else None, reason.reason if reason else None) from None
            if first.get("type") != "welcome":
                raise RoomClosed(None, f"expected welcome, got {first!r:.200}")
            room = cls(ws, binary, first, record)
            async with trio.open_nursery() as nursery:
                if read:
                    nursery.start_soon(room._reader)
                try:
                    yield room
                finally:
                    nursery.cancel_scope.cancel()

    async def send(self, message: dict[str, Any]) -> None:
        await _send(self.ws, self.binary, message)

    async def receive(self) -> dict[str, Any]:
        """The next message (only with `read=False`)."""
        return await _receive(self.ws, self.binary)

    async def bid(self, lot: str, amount: str, client_bid_id: str) -> dict[str, Any]:
        """Send a bid and return its answer: an ack, a reject, or an error naming it."""
        if not CLIENT_BID_ID.fullmatch(client_bid_id):
            raise ValueError("client_bid_id must be 1-64 letters, digits or . _ : @ -")
        done = self._answers[client_bid_id] = trio.Event()
        await self.send({"type": "bid", "lot": lot, "amount": amount, "client_bid_id": client_bid_id})
        await done.wait()
        if self.closed is not None and client_bid_id not in self._results:
            raise self.closed
        return self._results.pop(client_bid_id)

    async def ping(self) -> dict[str, Any]:
        ping_id = next(self._pings)
        mark = len(self.received)
        await self.send({"type": "ping", "id": ping_id})
        return await self.wait_for(lambda m: m.get("type") == "pong" and m.get("id") == ping_id, mark)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], since: int = 0) -> dict[str, Any]:
        """The first message received (from index `since` of `received`) that satisfies
        `predicate`, waiting for it if need be (needs `record`)."""
        seen = since
        while True:
            for message in self.received[seen:]:
                if predicate(message):
                    return message
            seen = len(self.received)
            if self.closed is not None:
                raise self.closed
            await self._changed.wait()

    async def wait_closed(self) -> RoomClosed:
        while self.closed is None:
            await self._changed.wait()
        return self.closed

    async def _reader(self) -> None:
        try:
            while True:
                message = await _receive(self.ws, self.binary)
                kind = message.get("type")
                if kind == "view":
                    self.views[message["lot"]] = message
                elif kind in ("ack", "reject", "error"):
                    cbid = message.get("client_bid_id")
                    done = self._answers.pop(cbid, None) if isinstance(cbid, str) else None
                    if done is not None and isinstance(cbid, str):
                        self._results[cbid] = message
                        done.set()
                if self.record:
                    self.received.append(message)
                if self.on_message is not None:
                    self.on_message(message)
                self._changed.set()
                self._changed = trio.Event()
        except ConnectionClosed as exc:
            reason = exc.reason
            self.closed = RoomClosed(reason.code if reason else None, reason.reason if reason else None)
            for done in self._answers.values():
                done.set()
            self._changed.set()


async def _send(ws: WebSocketConnection, binary: bool, message: dict[str, Any]) -> None:
    await ws.send_message(msgpack.packb(message) if binary else json.dumps(message))


async def _receive(ws: WebSocketConnection, binary: bool) -> dict[str, Any]:
    data = await ws.get_message()
    value = msgpack.unpackb(data, raw=False) if binary else json.loads(data)
    if not isinstance(value, dict):
        raise ValueError(f"not a message: {value!r:.100}")
    return value
