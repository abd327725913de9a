"""Raw room traffic for the gateway's fuzz and auth tests: frames in, messages and the
close out, and the engine state to compare before and after."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgpack
import trio
import trio.testing
from served import Served, auction_body
from trio_websocket import ConnectionClosed, open_websocket_url

JSON, MSGPACK = "auction.v1.json", "auction.v1.msgpack"


def encode(subprotocol: str, message: Any) -> str | bytes:
    return msgpack.packb(message) if subprotocol == MSGPACK else json.dumps(message)


def decode(frame: str | bytes) -> dict[str, Any]:
    value = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) else json.loads(frame)
    assert isinstance(value, dict), value
    return value


Close = tuple[int, str | None]


async def converse(url: str, frames: list[str | bytes], *, subprotocol: str = JSON,
                   stop: Callable[[dict[str, Any]], bool] = lambda m: False,
                   wait: float = 5.0) -> tuple[list[dict[str, Any]], Close | None]:
    """Send `frames` on a raw connection; read until `stop(message)` or the server's close
    (trio.TooSlowError if neither comes within `wait` seconds: never a silent timeout).
    Returns the messages and the close (code, reason), or None if `stop` ended it."""
    messages: list[dict[str, Any]] = []
    async with open_websocket_url(url, subprotocols=[subprotocol], max_message_size=4 << 20,
                                  connect_timeout=5, disconnect_timeout=2) as ws:
        try:
            try:
                for frame in frames:
                    await ws.send_message(frame)
            except ConnectionClosed:
                pass  # closed while we sent: read what came before the close
            with trio.fail_after(wait):
                while True:
                    message = decode(await ws.get_message())
                    messages.append(message)
                    if stop(message):
                        break
        except ConnectionClosed as exc:
            assert exc.reason is not None
            return messages, (int(exc.reason.code), exc.reason.reason)
    return messages, None


def waiting(srv: Served) -> bool:
    """True while a long poll of the feed waits for an entry."""
    return bool(srv.service.feed._changed.statistics().tasks_waiting)


def state(srv: Served) -> tuple[str, int]:
    runtime = srv.service.runtime
    return runtime.host.state_hash(), runtime.journaled.gseq


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once `condition()` holds, checked each time every task of the loop waits
    (for the network, the journal's sync, a timer); fail after `timeout` seconds."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.testing.wait_all_tasks_blocked(cushion=0.001)


async def quiet(srv: Served) -> None:
    """Wait until everything applied is durable and every room connection has gone."""
    runtime = srv.service.runtime
    await until(lambda: runtime.journaled.gseq == runtime.writer.durable_gseq and not srv.service.rooms.count)


async def open_auction(srv: Served, auction_id: str, bidders: list[str], lots: int = 2) -> list[str]:
    """An auction open now for an hour, `bidders` admitted: their tokens."""
    async with srv.rpc() as rpc:
        await rpc.create_auction(auction_body(auction_id, seconds=3600, lots=lots))
        tokens = [t["token"] for t in (await rpc.admit(auction_id, bidders))["tokens"]] if bidders else []
    engine = srv.service.runtime.engine
    await until(lambda: engine.observer_view(auction_id, "L1").status == "open")  # at the timer's first tick
    await quiet(srv)
    return tokens
