"""Browser-side helpers of the web room tests: a room socket routed through Playwright (every
frame the page receives is recorded, and one ack can be swallowed with the socket dropped),
bots in the service's loop, and the anonymity check."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import trio

from gateway.client import Room

WS = re.compile(r"/ws/v1/auctions/")


@dataclass
class Wire:
    """The frames between one page and the room, as the page sees them."""

    received: list[dict[str, Any]] = field(default_factory=list)  # room -> page (delivered)
    sent: list[dict[str, Any]] = field(default_factory=list)  # page -> room
    raw: list[str] = field(default_factory=list)  # every delivered frame, as text
    drop_next_ack: bool = False
    dropped_id: str | None = None
    connections: int = 0

    def install(self, page: Any) -> None:
        page.route_web_socket(WS, self._route)

    def _route(self, ws: Any) -> None:
        self.connections += 1
        server = ws.connect_to_server()
        target: dict[str, str | None] = {"id": None}

        def to_page(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            m = json.loads(text)
            if m.get("type") == "ack" and target["id"] is not None and m.get("client_bid_id") == target["id"]:
                # The ack is lost with the connection: the page must resend the same bid.
                self.dropped_id = target["id"]
                target["id"] = None
                ws.close(code=1001, reason="test: the connection dropped")
                server.close()
                return
            self.received.append(m)
            self.raw.append(text)
            ws.send(message)

        def to_server(message: str | bytes) -> None:
            m = json.loads(message)
            self.sent.append(m)
            if m.get("type") == "bid" and self.drop_next_ack:
                self.drop_next_ack = False
                target["id"] = m["client_bid_id"]
            server.send(message)

        server.on_message(to_page)
        ws.on_message(to_server)

    def last(self, kind: str, lot: str = "L1") -> dict[str, Any]:
        """The latest message of `kind` about `lot` the page received."""
        return next(m for m in reversed(self.received) if m.get("type") == kind and m.get("lot") == lot)


def no_identity(texts: list[str], ids: list[str]) -> list[str]:
    """The bidder ids found in any of `texts` (an empty list when anonymity holds)."""
    return sorted({i for i in ids for text in texts if i in text})


def page_texts(page: Any, wire: Wire | None) -> list[str]:
    """Everything a page holds or received: its DOM, its storage, its WebSocket frames."""
    storage = page.evaluate("() => JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage)])")
    return [page.content(), storage, *(wire.raw if wire else [])]


async def bot(url: str, token: str, prices: list[str], prefix: str, done: threading.Event) -> None:
    """A bidder in the service's loop: waits for the lot to open, bids `prices` in turn,
    then stays until it closes (so that it is a connection like the others)."""
    try:
        async with Room.connect(url, token, record=True) as room:
            await room.wait_for(lambda m: m.get("lot") == "L1" and m.get("status") == "open")
            for i, price in enumerate(prices):
                await room.bid("L1", price, f"{prefix}-{i}")
            done.set()
            with trio.move_on_after(120):
                await room.wait_for(lambda m: m["type"] == "closed")
    except Exception:  # a bot's failure shows as a test waiting in vain, never as a crash of the service
        done.set()
        raise
