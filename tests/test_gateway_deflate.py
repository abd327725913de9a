"""A browser-like client that negotiates permessage-deflate gets the whole conversation,
compressed, from the room's direct write path (framed with the connection's own wsproto
state), beside clients that negotiate no extension (bare frames)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from served import served
from wire import open_auction
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from gateway.client import Room


class DeflateClient:
    """A bare wsproto client over a trio stream, offering permessage-deflate."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[dict[str, Any]] = []
        self.compressed_frames = 0
        self._text = ""

    async def handshake(self, host: str, target: str) -> None:
        await self.stream.send_all(self.ws.send(Request(host=host, target=target, subprotocols=["auction.v1.json"],
                                                        extensions=[PerMessageDeflate()])))
        while True:
            events = await self._events()
            if any(isinstance(e, AcceptConnection) for e in events):
                accepted = next(e for e in events if isinstance(e, AcceptConnection))
                assert [type(x) for x in accepted.extensions] == [PerMessageDeflate]
                return

    async def send(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=json.dumps(message))))

    async def next_message(self) -> dict[str, Any]:
        while len(self.messages) == 0:
            await self._events()
        return self.messages.pop(0)

    async def _events(self) -> list[Any]:
        data = await self.stream.receive_some(1 << 16)
        assert data, "the server closed the connection"
        # A compressed message's first frame has RSV1 set (RFC 7692); count those we see
        # at the start of a read (a heuristic floor, enough to show compression happens).
        if self.ws.state.name == "OPEN" and data[0] & 0x40:
            self.compressed_frames += 1
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, TextMessage):
                self._text += event.data
                if event.message_finished:
                    self.messages.append(json.loads(self._text))
                    self._text = ""
        return events


@pytest.mark.trio
async def test_a_deflate_client_follows_a_whole_bidding_war(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        tokens = await open_auction(srv, "A-Z", ["deflater", "plain-one"], lots=1)
        stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
        client = DeflateClient(stream)
        with trio.fail_after(20):
            await client.handshake(f"127.0.0.1:{srv.port}", "/ws/v1/auctions/A-Z")
            await client.send({"type": "hello", "token": tokens[0]})
            assert (await client.next_message())["type"] == "welcome"
            async with Room.connect(srv.room_url("A-Z"), tokens[1]) as room:
                amount = 9000
                for i in range(40):  # both bid in turn; each sees every change
                    if i % 2:
                        answer = await room.bid("L1", f"{amount}.00", f"p{i}")
                        assert answer["type"] == "ack", answer
                    else:
                        await client.send({"type": "bid", "lot": "L1", "amount": f"{amount}.00",
                                           "client_bid_id": f"d{i}"})
                    while True:  # the deflate client reads up to the view showing this bid
                        message = await client.next_message()
                        assert message["type"] in ("view", "ack", "clock"), message
                        if message["type"] == "view" and message["best_price"] == f"{amount}.00":
                            break
                    amount -= 10
                assert message["rank"] == (2 if i % 2 else 1)
        assert client.compressed_frames > 0
        await stream.aclose()
