"""The room's behaviour, exactly: every frame each connection is sent, and the engine
instant it arrives at, on trio's MockClock (see memroom.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from memroom import S, memroom
from wire import JSON, MSGPACK

from auction_engine.commands import Resume, Suspend
from replay import verify

BIDDERS = ["alpha-supplies-x71", "beta-trading-q42", "gamma-bureau-z93", "delta-equip-k18"]


def price(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def brief(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each message as (type, lot, the field that tells it apart)."""
    keys = {"ack": "amount", "reject": "code", "clock": "close_at", "suspended": "reason", "resumed": "close_at",
            "closed": "outcome", "view": "best_price", "welcome": "role", "pong": "id", "error": "code"}
    return [(m["type"], m.get("lot"), m.get(keys[m["type"]])) for m in messages]


@pytest.mark.trio
async def test_a_whole_two_lot_auction(tmp_path: Path, autojump_clock: object) -> None:
    async with memroom(tmp_path) as room:
        tokens = await room.create("A-2", seconds=30, lots=2, window="1s", extend_by="1s",
                                   visibility="rank_and_best", bidders=tuple(BIDDERS))
        bidders = [await room.connect("A-2", tokens[b], MSGPACK if i % 2 else JSON) for i, b in enumerate(BIDDERS)]
        watcher = await room.connect("A-2", room.observer("A-2"))
        assert [c.received[0]["role"] for c in (*bidders, watcher)] == ["bidder"] * 4 + ["observer"]
        assert watcher.received[0]["pseudonym"] is None
        assert brief(watcher.new()) == [("welcome", None, "observer"), ("view", "L1", None), ("view", "L2", None)]

        # Everyone bids on both lots; each bid undercuts the last by 10.00, all at t0.
        amount = 999000
        for round_no in range(3):
            for index, bidder in enumerate(bidders):
                for lot in ("L1", "L2"):
                    bidder.new()
                    await bidder.bid(lot, price(amount), f"r{round_no}-{lot}-{index}")
                    await room.until(0)
                    assert brief(bidder.new()) == [("ack", lot, price(amount)), ("view", lot, price(amount))]
                    amount -= 1000
        # The observer saw one view per bid, in order, all at t0.
        assert [v["best_price"] for v in watcher.new()] == [price(999000 - 1000 * i) for i in range(24)]
        assert set(watcher.at) == {room.t0}

        # A suspension at +5 s holds the remaining 25 s; resuming at +8 s closes L1 at +33 s.
        await room.until(5 * S)
        await room.run(Suspend, "A-2", "L1", "incident réseau")
        await bidders[0].bid("L1", price(amount), "while-suspended")
        await room.until(8 * S)
        await room.run(Resume, "A-2", "L1")
        assert [m for m in bidders[0].new() if m["type"] != "view"] == [
            {"type": "suspended", "lot": "L1", "reason": "incident réseau", "server_time": room.instant(5 * S)},
            {"type": "reject", "client_bid_id": "while-suspended", "lot": "L1", "code": "lot_suspended",
             "message": f"the lot is suspended since {room.instant(5 * S)}", "duplicate": False},
            {"type": "resumed", "lot": "L1", "close_at": room.instant(33 * S), "server_time": room.instant(8 * S)}]

        # A bid inside L2's last second (window 1 s) extends its close to 1 s after the bid.
        await room.until(29 * S + S // 2)
        await bidders[1].bid("L2", price(amount), "late")
        await room.until(29 * S + S // 2)
        clock = {"type": "clock", "lot": "L2", "status": "open", "close_at": room.instant(30 * S + S // 2),
                 "extensions": 1, "server_time": room.instant(29 * S + S // 2)}
        for client in (*bidders, watcher):
            assert [m for m in client.new() if m["type"] == "clock"] == [clock]
        # L2 closes at exactly its extended close; L1 at exactly its resumed one.
        await room.until(30 * S + S // 2 - 1)
        assert all(c.of("closed") == [] for c in (*bidders, watcher))
        await room.until(30 * S + S // 2)
        closed = [c.of("closed", "L2") for c in bidders]
        assert [(c[0]["outcome"], c[0]["rank"]) for c in closed] == [
            ("not_won", 4), ("won", 1), ("not_won", 3), ("not_won", 2)]  # last bids 9820, 9750, 9780, 9760
        assert {c[0]["server_time"] for c in closed} == {room.instant(30 * S + S // 2)}
        seen = watcher.of("closed", "L2")
        assert seen == [{"type": "closed", "lot": "L2", "close_reason": "scheduled",
                         "server_time": room.instant(30 * S + S // 2), "outcome": "awarded",
                         "winner": bidders[1].received[0]["pseudonym"], "awarded_price": price(amount)}]
        await room.until(33 * S - 1)
        assert watcher.of("closed", "L1") == []
        await room.until(33 * S)
        assert watcher.of("closed", "L1")[0]["server_time"] == room.instant(33 * S)
        assert watcher.at[watcher.received.index(watcher.of("closed", "L1")[0])] == room.t0 + 33 * S

        # Anonymity: no message any bidder or the observer received names a bidder.
        for client in (*bidders, watcher):
            text = json.dumps(client.received)
            assert not [b for b in BIDDERS if b in text]
        # The feed has the whole lifecycle, in journal order.
        kinds = [type(e).__name__ for e in room.feed.entries]
        assert kinds == ["AuctionCreated", "LotOpened", "LotOpened", "LotSuspended", "LotResumed", "LotExtended",
                         "LotClosed", "LotAwarded", "LotClosed", "LotAwarded", "AuctionClosed"], kinds
        state = room.runtime.host.state_hash()
    checked = verify(tmp_path / "journal")
    assert checked.ok and checked.state_hash == state


@pytest.fixture(params=["direct", "asgi"])
def direct(request: pytest.FixtureRequest) -> bool:
    """Both ways the room writes: its direct path, and the transport's send."""
    return bool(request.param == "direct")


@pytest.mark.trio
async def test_a_slow_reader_delays_nobody_and_is_closed_after_the_send_timeout(
        tmp_path: Path, autojump_clock: object, direct: bool) -> None:
    async with memroom(tmp_path, send_timeout_s=2.0) as room:
        many = [f"bidder-{i:02d}" for i in range(30)]
        tokens = await room.create("A-4", visibility="ladder", bidders=(*many, "slow-one"))
        # A bidder that says hello and never reads: 4 frames fill what it leaves unread.
        stalled = await room.connect("A-4", tokens["slow-one"], direct=direct, reads=False, capacity=4)
        clients = [await room.connect("A-4", tokens[b], direct=direct) for b in many]
        for n in range(60):
            client = clients[n % len(clients)]
            client.new()
            await client.bid("L1", price(999900 - 100 * n), f"b{n}")
            await room.until(0)  # every answer and view arrives at t0: nobody waits for the stalled one
            assert brief(client.new()) == [("ack", "L1", price(999900 - 100 * n)), ("view", "L1", price(999900 - 100 * n))]
        assert stalled.closed is None and room.rooms.count == 31
        for client in clients:
            assert client.of("view")[-1]["ladder"][0]["price"] == price(999900 - 100 * 59)
            assert set(client.at) == {room.t0}
        # Its send has been blocked since t0; the watchdog looks every second half of the
        # 2 s timeout and finds it blocked longer at its scan of +2.5 s.
        await room.until(2 * S + S // 2 - 1)
        assert stalled.closed is None
        await room.until(2 * S + S // 2)
        assert stalled.closed is not None and stalled.seen_close is None
        assert (stalled.closed.code, stalled.closed.reason, stalled.closed.at) == (
            4410, "a send was blocked for more than 2 s", room.t0 + 2 * S + S // 2)
        assert room.counter("auction_ws_closed_total", code="4410") == 1
        # The views of the first three bids left for it (two into its unread buffer after
        # the welcome and the first view, the third blocked); each later one but the first
        # replaced the one pending: one pending view of L1 at a time.
        assert room.counter("auction_views_conflated_total") == 60 - 3 - 1
        await room.until(5 * S)
        assert stalled.ended and room.rooms.count == 30


def answers(client: Any) -> list[tuple[str, Any]]:
    return [(m["type"], m.get("client_bid_id") or m.get("id") or m.get("code")) for m in client.received
            if m["type"] in ("ack", "reject", "pong", "error")]


@pytest.mark.trio
async def test_pipelined_messages_are_answered_in_the_order_they_were_sent(
        tmp_path: Path, autojump_clock: object, direct: bool) -> None:
    async with memroom(tmp_path) as room:
        tokens = await room.create("A-P", bidders=("piper",))
        client = await room.connect("A-P", tokens["piper"], direct=direct)
        for message in ({"type": "bid", "lot": "L1", "amount": "9000.00", "client_bid_id": "p1"},
                        {"type": "ping", "id": 7},
                        {"type": "bid", "lot": "L1", "amount": "nine", "client_bid_id": "p2"},  # refused by the core
                        {"type": "bid", "lot": "L1", "amount": "8990.00", "client_bid_id": "p3"},
                        {"type": "bid", "lot": "L9", "amount": "8980.00", "client_bid_id": "p4"},  # unknown lot
                        {"type": "bogus"},
                        {"type": "bid", "lot": "L1", "amount": "9000.00", "client_bid_id": "p1"},  # a retry of p1
                        {"type": "ping", "id": 8}):
            await client.send(message)
        await room.until(0)
        assert answers(client) == [("ack", "p1"), ("pong", 7), ("reject", "p2"), ("ack", "p3"), ("reject", "p4"),
                                   ("error", "unknown_type"), ("ack", "p1"), ("pong", 8)]
        assert client.of("ack")[-1]["duplicate"] is True and client.closed is None


@pytest.mark.trio
async def test_answers_owed_before_a_close_still_go_out_first(tmp_path: Path, autojump_clock: object,
                                                             direct: bool) -> None:
    async with memroom(tmp_path, max_delay_ms=300) as room:  # a batch waits 0.3 s for more records
        tokens = await room.create("A-Q", bidders=("noisy",))
        client = await room.connect("A-Q", tokens["noisy"], direct=direct)
        room.zero()  # each command took 0.3 s so far
        await client.bid("L1", "9000.00", "q1")
        for _ in range(25):  # far over the error budget of 20
            await client.send_raw("{not json")
        await room.until(0)
        # The close is due at once, but the bid is owed until its batch is durable at +0.3 s.
        assert answers(client) == [] and client.closed is None
        await room.until(3 * S // 10)
        assert answers(client) == [("ack", "q1")] + [("error", "malformed")] * 21
        assert client.closed is not None and client.seen_close == client.closed
        assert (client.closed.code, client.closed.reason, client.closed.at) == (
            4429, "too many malformed messages", room.t0 + 3 * S // 10)
        assert client.at[-1] == room.t0 + 3 * S // 10


@pytest.mark.trio
async def test_a_failure_rendering_one_connection_closes_only_that_one(
        tmp_path: Path, autojump_clock: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the direct path, where the room renders as it fans out (on the queue path the
    error leaves the session and the server stack closes 1011)."""
    from gateway import protocol

    async with memroom(tmp_path) as room:
        tokens = await room.create("A-F", bidders=("unlucky", "fine"))
        victim = room.runtime.engine.auction("A-F").pseudonyms["unlucky"]
        render = protocol.ViewRenderer.bidder

        def broken(self: protocol.ViewRenderer, pseudonym: str, codec: protocol.Codec) -> str | bytes:
            if pseudonym == victim:
                raise IndexError("injected")
            return render(self, pseudonym, codec)

        unlucky = await room.connect("A-F", tokens["unlucky"], direct=True)
        fine = await room.connect("A-F", tokens["fine"], direct=True)
        monkeypatch.setattr(protocol.ViewRenderer, "bidder", broken)
        fine.new()
        await fine.bid("L1", "9000.00", "f1")
        await room.until(0)
        assert brief(fine.new()) == [("ack", "L1", "9000.00"), ("view", "L1", "9000.00")]
        assert unlucky.closed == unlucky.seen_close and unlucky.closed is not None
        assert (unlucky.closed.code, unlucky.closed.reason, unlucky.closed.at) == (1011, "internal error", room.t0)
        await fine.bid("L1", "8990.00", "f2")  # the room goes on
        await room.until(0)
        assert brief(fine.new()) == [("ack", "L1", "8990.00"), ("view", "L1", "8990.00")]
