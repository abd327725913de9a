"""The room's edges against a real service (issue 13): closes by RFC 6455, UTF-8 frames,
the one bound on amounts, and retries after every kind of refusal."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from journals import SteppedSync
from memroom import memroom, settle
from served import Served, auction_body, served
from test_gateway_fuzz import answers, hello
from wire import JSON, converse, open_auction, quiet, state
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from auction_engine.commands import PlaceBid
from gateway import transport
from gateway.client import RpcError

# -- a raw client: frames sent and read byte for byte -----------------------------------


class RawClient:
    """One WebSocket connection driven through wsproto over a bare TCP stream."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.eof = False

    @classmethod
    async def connect(cls, srv: Served, auction_id: str) -> RawClient:
        client = cls(await trio.open_tcp_stream("127.0.0.1", srv.port))
        await client.stream.send_all(client.ws.send(Request(host="127.0.0.1", target=f"/ws/v1/auctions/{auction_id}",
                                                            subprotocols=[JSON])))
        assert type(await client.event()) is AcceptConnection
        return client

    async def event(self) -> Any:
        """The next wsproto event, or None once the server closed the TCP connection."""
        while True:
            for event in self.ws.events():
                return event
            data = await self.stream.receive_some(65536)
            if not data:
                self.eof = True
                return None
            self.ws.receive_data(data)

    async def message(self) -> dict[str, Any]:
        event = await self.event()
        assert type(event) is TextMessage and event.message_finished, event
        value: dict[str, Any] = json.loads(event.data)
        return value

    async def send_text(self, text: str, *, finished: bool = True) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text, message_finished=finished)))

    async def send_raw_frame(self, first_byte: int, payload: bytes) -> None:
        """A masked frame holding `payload` as is, whatever wsproto would allow (bad UTF-8,
        a fragment after a close): `first_byte` is FIN and the opcode (0x81: a final text)."""
        mask = os.urandom(4)
        assert len(payload) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.stream.send_all(bytes((first_byte, 0x80 | len(payload))) + mask + masked)

    async def until_close(self) -> int:
        """Read to the server's close frame: its code."""
        while True:
            event = await self.event()
            assert event is not None, "the TCP connection ended without a close frame"
            if type(event) is CloseConnection:
                return int(event.code)

    async def until_eof(self) -> None:
        while await self.event() is not None:
            pass


def connections(srv: Served) -> float:
    total = 0.0
    for metric in srv.service.metrics.connections.collect():
        total += sum(sample.value for sample in metric.samples)
    return total


# -- closes ---------------------------------------------------------------------------------


@pytest.mark.trio
async def test_an_oversize_fragmented_message_gets_1009_and_the_connection_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 1024
    async with served(tmp_path, max_message_bytes=limit) as srv:
        acme, _beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        for answers_close in (True, False):
            # An hour of grace for the peer that answers (the bound below fails first unless
            # its reply ends the connection); a tenth of a second for the one that never does.
            monkeypatch.setattr(transport, "CLOSE_GRACE", 3600.0 if answers_close else 0.1)
            client = await RawClient.connect(srv, "A-1")
            await client.send_text(hello(JSON, acme))  # type: ignore[arg-type]
            assert (await client.message())["type"] == "welcome"
            assert connections(srv) == 1
            for _ in range(4):  # 4 fragments of 400 bytes: over the limit at the third
                await client.send_text(" " * 400, finished=False)
            assert await client.until_close() == 1009
            if answers_close:  # a well-behaved peer answers: the connection ends at its reply
                await client.stream.send_all(client.ws.send(CloseConnection(code=1009)))
            else:  # a peer that goes on sending and never answers: ended at the grace period's end
                await client.send_raw_frame(0x00, b" " * 100)  # a continuation fragment
            with trio.fail_after(10):
                await client.until_eof()
            await client.stream.aclose()
            await quiet(srv)
            assert connections(srv) == 0 and srv.service.rooms.count == 0
        assert state(srv) == before


@pytest.mark.trio
async def test_invalid_utf8_in_a_text_frame_gets_a_1007_close_frame(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        acme, _beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        for with_hello in (False, True):
            client = await RawClient.connect(srv, "A-1")
            if with_hello:
                await client.send_text(hello(JSON, acme))  # type: ignore[arg-type]
                assert (await client.message())["type"] == "welcome"
            await client.send_raw_frame(0x81, b'{"type":"ping","id":"\xff\xfe"}')
            assert await client.until_close() == 1007
            with trio.fail_after(5):
                await client.until_eof()
            await client.stream.aclose()
        await quiet(srv)
        assert state(srv) == before and connections(srv) == 0


# -- UTF-8 as sent ------------------------------------------------------------------------


@pytest.mark.trio
async def test_room_frames_carry_utf8_not_escapes(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        acme, _beta = await open_auction(srv, "A-1", ["acme", "beta"])
        client = await RawClient.connect(srv, "A-1")
        await client.send_text(hello(JSON, acme))  # type: ignore[arg-type]
        assert (await client.message())["type"] == "welcome"
        async with srv.rpc("buyer") as rpc:
            await rpc.suspend("A-1", "L1", "incident réseau")
        while True:
            event = await client.event()
            assert type(event) is TextMessage
            if '"suspended"' in event.data:
                break
        assert '"reason":"incident réseau"' in event.data and "\\u" not in event.data
        await client.stream.aclose()


# -- amounts and retries ------------------------------------------------------------------


async def bid_answers(srv: Served, token: str, bids: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Send (lot, amount, client_bid_id) bids on one connection: their answers, in order."""
    frames = [json.dumps({"type": "bid", "lot": lot, "amount": amount, "client_bid_id": cbid})
              for lot, amount, cbid in bids]
    last = bids[-1][2]
    messages, close = await converse(srv.room_url("A-1"), [hello(JSON, token), *frames],
                                     stop=lambda m: m.get("client_bid_id") == last and m["type"] != "view")
    assert close is None, close
    return answers(messages)


def lot_counts(srv: Served, lot: str) -> tuple[int, int]:
    view = srv.service.runtime.engine.observer_view("A-1", lot)
    return view.bids, view.rejected_bids


@pytest.mark.trio
async def test_amounts_past_the_one_bound_are_coded_counted_and_remembered(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        acme, _beta = await open_auction(srv, "A-1", ["acme", "beta"])
        huge = "184467440737095516.16"  # 2**64 minor units: it broke the journal path
        got = await bid_answers(srv, acme, [("L1", huge, "digits-2"), ("L1", "10000000000000000.00", "big-1"),
                                            ("L1", "9999999999999999.99", "max-1"), ("L1", "abc", "abc-1")])
        assert [(a["type"], a["code"]) for a in got] == [
            ("reject", "invalid_amount"), ("reject", "invalid_amount"), ("reject", "above_starting_price"),
            ("reject", "invalid_amount")], got
        assert got[0]["message"] == got[1]["message"] == "an amount is at most 9999999999999999.99"
        for answer in got:  # no repr of a command, no identity
            assert "acme" not in answer["message"] and "PlaceBid" not in answer["message"], answer
        assert lot_counts(srv, "L1") == (0, 4)
        # The same ids with valid amounts: the first outcomes, not new bids.
        again = await bid_answers(srv, acme, [("L1", "9000.00", c) for c in ("digits-2", "big-1", "max-1", "abc-1")])
        assert [(a["code"], a["duplicate"]) for a in again] == [(a["code"], True) for a in got]
        assert lot_counts(srv, "L1") == (0, 4)
        await quiet(srv)
    async with served(tmp_path) as srv:  # and after a restart, from the journal
        again = await bid_answers(srv, acme, [("L1", "9000.00", "digits-2"), ("L1", "9000.00", "fresh-1")])
        assert [(a["type"], a.get("code"), a["duplicate"]) for a in again] == [
            ("reject", "invalid_amount", True), ("ack", None, False)]


@pytest.mark.trio
async def test_the_rpc_refuses_amounts_past_the_one_bound_with_their_path(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        for amount, ok in (("9999999999999999.99", True), ("10000000000000000.00", False),
                           ("184467440737095516.16", False), ("5.", False), (".5", False)):
            body = auction_body(f"B-{len(amount)}-{ok}")
            body["lots"][0].update(starting_price=amount, estimate=amount)
            if ok:
                assert (await rpc.create_auction(body))["auction_id"] == body["auction_id"]
                continue
            with pytest.raises(RpcError) as refused:
                await rpc.create_auction(body)
            error = refused.value
            assert (error.status, error.code) == (422, "invalid_config"), error
            assert any(d.get("path") == "lots[0].starting_price" for d in error.details), error.details


@pytest.mark.trio
async def test_the_room_serves_without_direct_writes(tmp_path: Path) -> None:
    """`direct_writes = false` (for measuring the direct path): every message through the
    ASGI send, the same answers."""
    async with served(tmp_path, direct_writes=False) as srv:
        acme, _beta = await open_auction(srv, "A-1", ["acme", "beta"])
        got = await bid_answers(srv, acme, [("L1", "9000.00", "d-1"), ("L1", "abc", "d-2"), ("L1", "8990.00", "d-3")])
        assert [(a["type"], a.get("code")) for a in got] == [("ack", None), ("reject", "invalid_amount"), ("ack", None)]


@pytest.mark.trio
async def test_a_connection_opened_while_a_batch_syncs_reads_its_messages_before_its_first_views(
        tmp_path: Path) -> None:
    """Its first views wait for the batch in flight (they show durable state only), but its
    messages are read meanwhile: during a Redis outage that wait lasts until Redis is back,
    and its bids must be refused `journal_unavailable` at once. The sync is held, so a ping
    sent then is answered before any view, on any machine."""
    ops = SteppedSync(free=True)
    async with memroom(tmp_path, ops=ops) as room:
        try:
            tokens = await room.create("A1", bidders=("alice", "bob"))
            ops.hold()
            room.runtime.post(PlaceBid(room.now(), "A1", "L1", "alice", 999_900, "a1"), lambda _s: None,
                              lambda _e: None)
            go = await ops.held()  # alice's bid syncs, nothing else is pending
            bob = await room.connect("A1", tokens["bob"])
            await bob.send({"type": "ping", "id": 1})
            await settle()
            assert [m["type"] for m in bob.new()] == ["welcome", "pong"]
            go.set()
            await room.runtime.writer.wait_durable(room.runtime.journaled.gseq)
            await settle()
            assert [(m["type"], m["best_price"]) for m in bob.new()] == [("view", "9999.00")]
        finally:
            ops.release()
