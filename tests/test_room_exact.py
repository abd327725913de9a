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
