"""A connection gets a lot view only when what it may see of the lot changed since its last
view (and always the first one): unit tests of the room's fan-out on both write paths, then
whole sessions in memory on trio's MockClock, on both paths."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
from factories import START, S, bid, engine_with
from memroom import Client, MemRoom, memroom

from auction_engine.ranking import LotSnapshot
from gateway import protocol as p
from gateway.connection import SHOWN_INLINE, Connection, seen
from gateway.metrics import Metrics
from gateway.rooms import Rooms
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


# -- through whole sessions, on the MockClock (see memroom.py) -------------------------------


def views(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "view"]


def no_repeats(client: Client) -> None:
    """No view of a lot equals the previous view of that lot on this connection."""
    last: dict[str, dict[str, Any]] = {}
    for view in views(client.received):
        assert last.get(view["lot"]) != view, view
        last[view["lot"]] = view


@asynccontextmanager
async def opened(tmp_path: Path, visibility: str, direct: bool, count: int = 3) -> AsyncIterator[
        tuple[MemRoom, list[Client]]]:
    """A one-lot auction open for ten minutes: `count` bidders connected (JSON and msgpack
    in turn), then an observer."""
    async with memroom(tmp_path) as room:
        tokens = await room.create("V-1", visibility=visibility, bidders=tuple(BIDDERS[:count]))
        clients = [await room.connect("V-1", tokens[b], p.SUBPROTOCOLS[i % 2], direct=direct)
                   for i, b in enumerate(BIDDERS[:count])]
        clients.append(await room.connect("V-1", room.observer("V-1"), direct=direct))
        for client in clients:
            assert [m["type"] for m in client.new()] == ["welcome", "view"]
        yield room, clients


async def bid_on(room: MemRoom, client: Client, amount: str, cbid: str) -> dict[str, Any]:
    """Bid and settle: the answer."""
    await client.bid("L1", amount, cbid)
    await room.until(0)
    (answer,) = [m for m in client.received if m.get("client_bid_id") == cbid and m["type"] != "view"]
    return answer


def delta(room: MemRoom, before: tuple[float, float, float]) -> tuple[float, ...]:
    return tuple(x - y for x, y in zip(counted(room.metrics), before, strict=True))


async def three_bids(room: MemRoom, a: Client, b: Client, c: Client, watcher: Client) -> None:
    """a, b and c bid 9000, 9500 and 9800: ranks 1, 2, 3."""
    for client, amount in ((a, "9000.00"), (b, "9500.00"), (c, "9800.00")):
        assert (await bid_on(room, client, amount, f"first-{amount}"))["type"] == "ack"
    for client, rank in ((a, 1), (b, 2), (c, 3)):
        assert (views(client.received)[-1]["rank"], views(client.received)[-1]["active_bidders"]) == (rank, 3)
    assert views(watcher.received)[-1]["bids"] == 3
    for client in (a, b, c, watcher):
        client.new()


@pytest.fixture(params=["direct", "asgi"])
def direct(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "direct")


@pytest.mark.trio
async def test_rank_a_bid_that_moves_nobody_else_sends_them_no_view(tmp_path: Path, autojump_clock: object,
                                                                   direct: bool) -> None:
    async with opened(tmp_path, "rank", direct) as (room, (a, b, c, watcher)):
        await three_bids(room, a, b, c, watcher)
        before = counted(room.metrics)
        # c moves up to rank 2 and b down to 3; a stays first, and its view with it.
        assert (await bid_on(room, c, "9400.00", "c-2"))["rank"] == 2
        assert [v["rank"] for v in views(b.new())] == [3]
        assert [v["rank"] for v in views(c.new())] == [2]
        assert [v["bids"] for v in views(watcher.new())] == [4]
        assert a.new() == []
        assert delta(room, before) == (3, 0, 1)
        # A bid that does move a: its very next view is the one showing it.
        assert (await bid_on(room, b, "8900.00", "b-2"))["rank"] == 1
        assert [(v["rank"], v["own_price"], v["active_bidders"], "best_price" in v) for v in a.new()] == [
            (2, "9000.00", 3, False)]
        for client in (a, b, c, watcher):
            no_repeats(client)
        assert counted(room.metrics)[2] == 1  # a's, on c's second bid


@pytest.mark.trio
async def test_rank_and_best_only_a_new_best_or_a_rank_change_sends_a_view(tmp_path: Path, autojump_clock: object,
                                                                          direct: bool) -> None:
    async with opened(tmp_path, "rank_and_best", direct) as (room, (a, b, c, watcher)):
        await three_bids(room, a, b, c, watcher)
        before = counted(room.metrics)
        # c improves but stays third: a (the best) and b see nothing new.
        assert (await bid_on(room, c, "9600.00", "c-2"))["rank"] == 3
        assert [(v["own_price"], v["gap"], v["best_price"]) for v in views(c.new())] == [
            ("9600.00", "600.00", "9000.00")]
        assert [v["bids"] for v in views(watcher.new())] == [4]
        assert a.new() == [] and b.new() == []
        assert delta(room, before) == (2, 0, 2)
        # A new best: everyone's next view shows it.
        before = counted(room.metrics)
        assert (await bid_on(room, b, "8900.00", "b-2"))["rank"] == 1
        got = [views(client.new()) for client in (a, b, c, watcher)]
        assert [[(v["best_price"], v.get("rank"), v.get("gap")) for v in vs] for vs in got] == [
            [("8900.00", 2, "100.00")], [("8900.00", 1, "0.00")], [("8900.00", 3, "700.00")],
            [("8900.00", None, None)]]
        assert delta(room, before) == (4, 0, 0)
        for client in (a, b, c, watcher):
            no_repeats(client)


@pytest.mark.trio
async def test_observers_get_every_change_bidders_only_theirs(tmp_path: Path, autojump_clock: object,
                                                             direct: bool) -> None:
    async with opened(tmp_path, "ladder", direct, count=2) as (room, (a, b, watcher)):
        assert (await bid_on(room, a, "9000.00", "a-1"))["type"] == "ack"
        assert (await bid_on(room, b, "9500.00", "b-1"))["type"] == "ack"
        assert [len(v["ladder"]) for v in views(a.new())] == [1, 2]
        assert [len(v["ladder"]) for v in views(b.new())] == [1, 2]  # a ladder shows every bid
        assert [(v["bids"], v["rejected_bids"]) for v in views(watcher.new())] == [(1, 0), (2, 0)]
        # Each bid, accepted or rejected, changes what the observer sees; the rejected
        # ones change nothing a bidder sees.
        steps = [(a, "9999.00", "reject"), (b, "9400.00", "ack"), (b, "9450.00", "reject"), (a, "8000.00", "ack")]
        accepted, rejected = 2, 0
        for i, (client, amount, outcome) in enumerate(steps):
            assert (await bid_on(room, client, amount, f"s-{i}"))["type"] == outcome
            accepted, rejected = accepted + (outcome == "ack"), rejected + (outcome == "reject")
            assert [(v["bids"], v["rejected_bids"]) for v in views(watcher.new())] == [(accepted, rejected)]
            for bidder in (a, b):
                got = views(bidder.new())
                if outcome == "reject":
                    assert got == []
                else:
                    assert len(got) == 1 and amount in [line["price"] for line in got[0]["ladder"]]
        assert len(views(watcher.received)) == 1 + 2 + len(steps)  # the first, then one per bid
        for client in (a, b, watcher):
            no_repeats(client)


@pytest.mark.trio
async def test_a_reconnected_client_gets_the_current_view_even_if_unchanged(tmp_path: Path, autojump_clock: object,
                                                                           direct: bool) -> None:
    async with opened(tmp_path, "rank", direct, count=1) as (room, (a, watcher)):
        assert (await bid_on(room, a, "9000.00", "a-1"))["type"] == "ack"
        last, seen_last = views(a.received)[-1], views(watcher.received)[-1]
        assert (last["rank"], seen_last["bids"]) == (1, 1)
        a.disconnect()
        watcher.disconnect()
        before = counted(room.metrics)
        for _ in range(2):
            a = await room.connect("V-1", room.tokens.issue("V-1", BIDDERS[0], "bidder")[0], direct=direct)
            watcher = await room.connect("V-1", room.observer("V-1"), direct=direct)
            assert views(a.received) == [last] and views(watcher.received) == [seen_last]
            a.disconnect()
            watcher.disconnect()
        assert delta(room, before) == (4, 0, 0)  # not one skipped
