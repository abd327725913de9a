"""A connection gets a lot view only when what it may see of the lot changed since its last
view (and always the first one): unit tests of the room's fan-out on both write paths, then
end to end through a real service."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
from factories import START, S, bid, engine_with
from served import Served, auction_body, served
from wire import quiet

from auction_engine.ranking import LotSnapshot
from gateway import protocol as p
from gateway.client import Room
from gateway.metrics import Metrics
from gateway.rooms import SHOWN_INLINE, Connection, Rooms, seen
from gateway.settings import Settings

BIDDERS = ["alpha-supplies-x71", "beta-trading-q42", "gamma-bureau-z93"]


# -- the room's fan-out, without a server ------------------------------------------------


class Sent:
    """A transport that keeps what the room sends (the ASGI path)."""

    def __init__(self) -> None:
        self.frames: list[str | bytes] = []

    async def send(self, data: str | bytes) -> None:
        self.frames.append(data)

    async def receive(self) -> str | bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def close(self, code: int, reason: str = "") -> None:
        pass


class Socket:
    """A `Direct` writer whose socket takes everything; a frame is the payload and a newline."""

    open = True
    backlog = 0

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def frame(self, payload: str | bytes) -> bytes:
        return (payload.encode() if isinstance(payload, str) else payload) + b"\n"

    def write_nowait(self, data: bytes) -> bool:
        self.written.append(data)
        return True

    async def flush(self) -> None:
        pass

    def frames(self) -> list[str]:
        return b"".join(self.written).decode().splitlines()


def fan_out(direct: Socket | None, pseudonym: str | None) -> tuple[Rooms, Connection]:
    """A room listening to nothing, and one connection of auction A1 in it."""
    runtime = SimpleNamespace()
    rooms = Rooms(cast(Any, runtime), cast(Any, None), Settings(), Metrics(), {})
    conn = Connection(id="c1", auction_id="A1", role="bidder" if pseudonym else "observer", subject="alice",
                      pseudonym=pseudonym, codec=p.Codec("auction.v1.json"), decimals=2, visibility="rank",
                      limit=256, control=deque(), views={}, wake=trio.Event(), direct=direct,
                      outflow=rooms.outflow)
    rooms.by_auction["A1"] = {conn}
    return rooms, conn


def counted(metrics: Metrics) -> tuple[float, float, float]:
    """(views sent, conflated, unchanged) so far."""
    get = metrics.registry.get_sample_value
    return (get("auction_views_sent_total") or 0.0, get("auction_views_conflated_total") or 0.0,
            get("auction_views_unchanged_total") or 0.0)


def rank_snapshots() -> tuple[str, list[LotSnapshot]]:
    """alice's pseudonym and four snapshots of a `rank` lot: alice alone at 900.00; bob's
    first bid below her (she drops to rank 2); carol's first bid above both (one more
    active bidder); carol's second bid, still third (nothing alice sees changes)."""
    engine = engine_with(visibility="rank")
    snapshots = []
    for i, (bidder, amount) in enumerate([("alice", 90000), ("bob", 80000), ("carol", 95000), ("carol", 94000)]):
        bid(engine, START + (i + 1) * S, bidder, amount)
        snapshots.append(engine.lot_snapshot("A1", "L1"))
    return engine.auction("A1").pseudonyms["alice"], snapshots


@pytest.mark.trio
async def test_a_queued_view_is_compared_with_what_the_client_was_sent_last() -> None:
    name, (s0, s1, s2, s3) = rank_snapshots()
    rooms, conn = fan_out(None, name)
    sent = Sent()
    rooms.on_views([s0])
    await rooms._send_queued(sent, conn)
    assert [p.Codec("auction.v1.json").decode(f)["rank"] for f in sent.frames] == [1]
    # Queued, then replaced by a view equal to the one the client holds: nothing goes out
    # (not the replaced view, nor a repeat of the one it has).
    rooms.on_views([s1])
    rooms.on_views([s0])
    await rooms._send_queued(sent, conn)
    assert len(sent.frames) == 1
    assert counted(rooms.metrics) == (1, 1, 1)
    rooms.on_views([s1])
    await rooms._send_queued(sent, conn)
    rooms.on_views([s2])
    rooms.on_views([s3])  # replaces s2's unsent view (the same for alice): one of them goes out
    await rooms._send_queued(sent, conn)
    views = [p.Codec("auction.v1.json").decode(f) for f in sent.frames]
    assert [(v["rank"], v["active_bidders"]) for v in views] == [(1, 1), (2, 2), (2, 3)]
    assert counted(rooms.metrics) == (3, 2, 1)


@pytest.mark.trio
async def test_the_direct_path_stages_only_views_that_differ_from_the_last_staged() -> None:
    name, (s0, s1, s2, s3) = rank_snapshots()
    socket = Socket()
    rooms, conn = fan_out(socket, name)
    for snapshot in (s0, s0, s1, s2, s3, s3):
        rooms.on_views([snapshot])
        rooms.outflow.write(conn)
    views = [p.Codec("auction.v1.json").decode(f) for f in socket.frames()]
    assert [(v["rank"], v["active_bidders"]) for v in views] == [(1, 1), (2, 2), (2, 3)]
    assert counted(rooms.metrics) == (3, 0, 3)
    # An observer's view counts bids: every one of these snapshots is news to it.
    socket = Socket()
    rooms, conn = fan_out(socket, None)
    for snapshot in (s0, s1, s2, s3, s3):
        rooms.on_views([snapshot])
        rooms.outflow.write(conn)
    assert [p.Codec("auction.v1.json").decode(f)["bids"] for f in socket.frames()] == [1, 2, 3, 4]
    assert counted(rooms.metrics) == (4, 0, 1)


@pytest.mark.trio
async def test_long_ladder_views_are_remembered_by_digest_and_compared_by_value() -> None:
    names = [f"bidder-{i:02d}" for i in range(12)]
    engine = engine_with(visibility="ladder", bidders=names)
    for i, bidder in enumerate(names):
        bid(engine, START + (i + 1) * S, bidder, 90000 - i * 100)
    before = engine.lot_snapshot("A1", "L1")
    refused = bid(engine, START + 20 * S, names[0], 99999)  # above its own price: rejected
    assert type(refused[0]).__name__ == "BidRejected"
    after = engine.lot_snapshot("A1", "L1")
    pseudonym = engine.auction("A1").pseudonyms[names[0]]
    codec = p.Codec("auction.v1.msgpack")
    first = p.ViewRenderer(before, 2).bidder(pseudonym, codec)
    second = p.ViewRenderer(after, 2).bidder(pseudonym, codec)
    assert len(first) > SHOWN_INLINE and first == second and first is not second
    assert seen(first) == seen(second) and len(seen(first)) == 16
    short = p.ViewRenderer(before, 2).observer(p.Codec("auction.v1.json"))
    assert seen(short[:SHOWN_INLINE]) == short[:SHOWN_INLINE]
    socket = Socket()
    rooms, conn = fan_out(socket, pseudonym)
    conn.codec = codec
    rooms.on_views([before])
    rooms.on_views([after])  # the rejected bid changed nothing this bidder sees
    rooms.outflow.write(conn)
    assert len(socket.written) == 1 and counted(rooms.metrics) == (1, 0, 1)


# -- end to end ----------------------------------------------------------------------------


def counters(srv: Served) -> tuple[float, float, float]:
    return counted(srv.service.metrics)


def views(room: Room, since: int = 0) -> list[dict[str, Any]]:
    return [m for m in room.received[since:] if m["type"] == "view"]


async def views_before_pong(room: Room, since: int) -> list[dict[str, Any]]:
    """The views `room` received from `since` up to the answer of a ping sent now. A batch
    the client has seen answered was fanned out before the room read the ping: a view of it
    for this connection was staged then (direct path), or queued and taken by the sender,
    which the fan-out wakes, long before the ping's round trip ends (queue path)."""
    pong = await room.ping()
    return [m for m in room.received[since:room.received.index(pong)] if m["type"] == "view"]


def no_repeats(room: Room) -> None:
    """No view of a lot equals the previous view of that lot on this connection."""
    last: dict[str, dict[str, Any]] = {}
    for view in views(room):
        assert last.get(view["lot"]) != view, view
        last[view["lot"]] = view


async def open_room(srv: Served, auction_id: str, visibility: str) -> tuple[list[str], str]:
    """A one-lot auction open now for ten minutes, BIDDERS admitted: their tokens, and an
    observer's."""
    async with srv.rpc() as rpc:
        await rpc.create_auction(auction_body(auction_id, seconds=600, visibility=visibility))
        tokens = [t["token"] for t in (await rpc.admit(auction_id, BIDDERS))["tokens"]]
        observer = (await rpc.observer_token(auction_id, "commission"))["token"]
    engine = srv.service.runtime.engine
    with trio.fail_after(5):
        while engine.observer_view(auction_id, "L1").status != "open":
            await trio.sleep(0.01)
    await quiet(srv)
    return tokens, observer


@asynccontextmanager
async def connected(srv: Served, auction_id: str, tokens: list[str]) -> AsyncIterator[list[Room]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Room.connect(srv.room_url(auction_id), token, record=True,
                                                            subprotocol=p.SUBPROTOCOLS[i % 2]))
               for i, token in enumerate(tokens)]


async def three_bids(a: Room, b: Room, c: Room, watcher: Room) -> None:
    """a, b and c bid 9000, 9500 and 9800 (ranks 1, 2, 3); return once every room shows it."""
    for room, amount in ((a, "9000.00"), (b, "9500.00"), (c, "9800.00")):
        assert (await room.bid("L1", amount, f"first-{amount}"))["type"] == "ack"
    for room, rank in ((a, 1), (b, 2), (c, 3)):
        await room.wait_for(lambda m, rank=rank: m["type"] == "view" and m["rank"] == rank and m["active_bidders"] == 3)
    await watcher.wait_for(lambda m: m["type"] == "view" and m["bids"] == 3)


@pytest.mark.trio
async def test_rank_a_bid_that_moves_nobody_else_sends_them_no_view(tmp_path: Path, write_path: str) -> None:
    async with served(tmp_path) as srv:
        tokens, observer = await open_room(srv, "V-1", "rank")
        async with connected(srv, "V-1", [*tokens, observer]) as (a, b, c, watcher):
            with trio.fail_after(20):
                await three_bids(a, b, c, watcher)
                marks = [len(r.received) for r in (a, b, c, watcher)]
                before = counters(srv)
                # c moves up to rank 2 and b down to 3; a stays first, and its view with it.
                assert (await c.bid("L1", "9400.00", "c-2"))["rank"] == 2
                await b.wait_for(lambda m: m["type"] == "view" and m["rank"] == 3, marks[1])
                await c.wait_for(lambda m: m["type"] == "view" and m["rank"] == 2, marks[2])
                await watcher.wait_for(lambda m: m["type"] == "view" and m["bids"] == 4, marks[3])
                assert await views_before_pong(a, marks[0]) == []
                sent, conflated, unchanged = (x - y for x, y in zip(counters(srv), before, strict=True))
                assert (sent, conflated, unchanged) == (3, 0, 1)
                # A bid that does move a: its very next view is the one showing it.
                assert (await b.bid("L1", "8900.00", "b-2"))["rank"] == 1
                first = await a.wait_for(lambda m: m["type"] == "view", marks[0])
                assert (first["rank"], first["own_price"], first["active_bidders"]) == (2, "9000.00", 3)
                assert "best_price" not in first
            for room in (a, b, c, watcher):
                no_repeats(room)
        async with srv.rpc() as rpc:
            exposed = (await rpc._http.get(srv.base + "/metrics")).text
        assert "\nauction_views_unchanged_total 1.0\n" in exposed  # a's, on c's second bid


@pytest.mark.trio
async def test_rank_and_best_only_a_new_best_or_a_rank_change_sends_a_view(tmp_path: Path, write_path: str) -> None:
    async with served(tmp_path) as srv:
        tokens, observer = await open_room(srv, "V-2", "rank_and_best")
        async with connected(srv, "V-2", [*tokens, observer]) as (a, b, c, watcher):
            with trio.fail_after(20):
                await three_bids(a, b, c, watcher)
                marks = [len(r.received) for r in (a, b, c, watcher)]
                before = counters(srv)
                # c improves but stays third: a (the best) and b see nothing new.
                assert (await c.bid("L1", "9600.00", "c-2"))["rank"] == 3
                mine = await c.wait_for(lambda m: m["type"] == "view", marks[2])
                assert (mine["own_price"], mine["gap"], mine["best_price"]) == ("9600.00", "600.00", "9000.00")
                await watcher.wait_for(lambda m: m["type"] == "view" and m["bids"] == 4, marks[3])
                assert await views_before_pong(a, marks[0]) == []
                assert await views_before_pong(b, marks[1]) == []
                sent, conflated, unchanged = (x - y for x, y in zip(counters(srv), before, strict=True))
                assert (sent, conflated, unchanged) == (2, 0, 2)
                # A new best: everyone's next view shows it.
                marks = [len(r.received) for r in (a, b, c, watcher)]
                before = counters(srv)
                assert (await b.bid("L1", "8900.00", "b-2"))["rank"] == 1
                got = [await r.wait_for(lambda m: m["type"] == "view", mark)
                       for r, mark in zip((a, b, c, watcher), marks, strict=True)]
                assert [v["best_price"] for v in got] == ["8900.00"] * 4
                assert [v.get("rank") for v in got] == [2, 1, 3, None]
                assert [v.get("gap") for v in got] == ["100.00", "0.00", "700.00", None]
                sent, conflated, unchanged = (x - y for x, y in zip(counters(srv), before, strict=True))
                assert (sent, conflated, unchanged) == (4, 0, 0)
            for room in (a, b, c, watcher):
                no_repeats(room)


@pytest.mark.trio
async def test_observers_get_every_change_bidders_only_theirs(tmp_path: Path, write_path: str) -> None:
    async with served(tmp_path) as srv:
        tokens, observer = await open_room(srv, "V-3", "ladder")
        async with connected(srv, "V-3", [*tokens[:2], observer]) as (a, b, watcher):
            with trio.fail_after(20):
                assert (await a.bid("L1", "9000.00", "a-1"))["type"] == "ack"
                assert (await b.bid("L1", "9500.00", "b-1"))["type"] == "ack"
                for room in (a, b):
                    await room.wait_for(lambda m: m["type"] == "view" and len(m["ladder"]) == 2)
                # Each bid, accepted or rejected, changes what the observer sees; the
                # rejected ones change nothing a bidder sees.
                steps = [(a, "9999.00", "reject"), (b, "9400.00", "ack"), (b, "9450.00", "reject"),
                         (a, "8000.00", "ack")]
                for i, (room, amount, outcome) in enumerate(steps):
                    marks = [len(r.received) for r in (a, b)]
                    mark = len(watcher.received)
                    assert (await room.bid("L1", amount, f"s-{i}"))["type"] == outcome
                    bids, rejected = 2 + sum(s[2] == "ack" for s in steps[:i + 1]), sum(
                        s[2] == "reject" for s in steps[:i + 1])
                    seen_now = await watcher.wait_for(lambda m: m["type"] == "view", mark)
                    assert (seen_now["bids"], seen_now["rejected_bids"]) == (bids, rejected)
                    for bidder, since in zip((a, b), marks, strict=True):
                        got = await views_before_pong(bidder, since)
                        if outcome == "reject":
                            assert got == []
                        else:
                            assert len(got) == 1 and amount in [line["price"] for line in got[0]["ladder"]]
            assert len(views(watcher)) == 1 + 2 + len(steps)  # the first, then one per bid
            for room in (a, b, watcher):
                no_repeats(room)


@pytest.mark.trio
async def test_a_reconnected_client_gets_the_current_view_even_if_unchanged(tmp_path: Path, write_path: str) -> None:
    async with served(tmp_path) as srv:
        tokens, observer = await open_room(srv, "V-4", "rank")
        with trio.fail_after(20):
            async with connected(srv, "V-4", [tokens[0], observer]) as (a, watcher):
                assert (await a.bid("L1", "9000.00", "a-1"))["type"] == "ack"
                last = await a.wait_for(lambda m: m["type"] == "view" and m["rank"] == 1)
                seen_last = await watcher.wait_for(lambda m: m["type"] == "view" and m["bids"] == 1)
            before = counters(srv)
            for _ in range(2):
                async with connected(srv, "V-4", [tokens[0], observer]) as (a, watcher):
                    assert await a.wait_for(lambda m: m["type"] == "view") == last
                    assert await watcher.wait_for(lambda m: m["type"] == "view") == seen_last
                    await a.ping()
                    await watcher.ping()
            assert counters(srv)[2] == before[2]  # not one skipped
