"""The room's behaviour, exactly: every frame each connection is sent, and the engine
instant it arrives at, on trio's MockClock (see memroom.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from memroom import S, memroom, settle
from wire import JSON, MSGPACK

from auction_engine.commands import AdmitBidder, Resume, RevokeBidder, Suspend
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
            amount = price(999900 - 100 * n)
            assert brief(client.new()) == [("ack", "L1", amount), ("view", "L1", amount)]
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


# -- the hello, revocation, observers -----------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
async def test_no_hello_within_the_handshake_timeout_is_closed_4408_at_it(
        tmp_path: Path, autojump_clock: object, subprotocol: str) -> None:
    async with memroom(tmp_path, handshake_timeout_s=0.3) as room:
        await room.create("A-1")
        room.zero()
        client = await room.connect("A-1", None, subprotocol)
        await room.until(3 * S // 10 - 1)
        assert client.closed is None
        await room.until(3 * S // 10)
        assert client.closed == client.seen_close
        assert client.closed is not None and client.received == []
        assert (client.closed.code, client.closed.reason, client.closed.at) == (
            4408, "no hello within the handshake timeout", room.t0 + 3 * S // 10)
        assert client.ended


@pytest.mark.trio
async def test_revocation_closes_the_connection_at_once_and_refuses_older_tokens(
        tmp_path: Path, autojump_clock: object) -> None:
    async with memroom(tmp_path) as room:
        tokens = await room.create("A-1", bidders=("acme", "beta"))
        old = tokens["acme"]
        acme = await room.connect("A-1", old)
        other = await room.connect("A-1", tokens["beta"])
        await acme.bid("L1", "9000.00", "a1")
        await room.until(S)
        assert acme.of("ack")[0]["client_bid_id"] == "a1"
        await room.run(RevokeBidder, "A-1", "acme", "fraud")
        assert acme.closed == acme.seen_close
        assert acme.closed is not None and (acme.closed.code, acme.closed.reason, acme.closed.at) == (
            4403, "revoked", room.t0 + S)
        assert other.closed is None  # only the revoked bidder's connection closes
        # Revoked, not admitted: the old token is refused.
        refused = await room.connect("A-1", old)
        assert refused.closed is not None and (refused.closed.code, refused.closed.reason) == (4403, "not_admitted")
        # Re-admitted one second later: the old token is still refused, a new one works.
        await room.until(2 * S)
        await room.run(AdmitBidder, "A-1", "acme")
        fresh = room.tokens.issue("A-1", "acme", "bidder")[0]
        before = room.runtime.host.state_hash()
        refused = await room.connect("A-1", old)
        assert refused.closed is not None and (refused.closed.code, refused.closed.reason) == (4403, "token_revoked")
        assert room.runtime.host.state_hash() == before
        acme = await room.connect("A-1", fresh)
        await acme.bid("L1", "8990.00", "a2")
        await room.until(2 * S)
        assert acme.closed is None and [m["type"] for m in acme.received] == ["welcome", "view", "ack", "view"]
    # After a restart the revocation is remembered (replayed from the journal).
    async with memroom(tmp_path) as room:
        refused = await room.connect("A-1", old)
        assert refused.closed is not None and (refused.closed.code, refused.closed.reason) == (4403, "token_revoked")
        acme = await room.connect("A-1", fresh)
        assert acme.closed is None and acme.received[0]["type"] == "welcome"


@pytest.mark.trio
@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
async def test_an_observer_cannot_bid(tmp_path: Path, autojump_clock: object, subprotocol: str) -> None:
    async with memroom(tmp_path) as room:
        await room.create("A-1", bidders=("acme",))
        before = room.runtime.host.state_hash(), room.runtime.journaled.gseq
        observer = await room.connect("A-1", room.observer("A-1", "jury"), subprotocol)
        assert observer.received[0]["role"] == "observer" and observer.received[0]["pseudonym"] is None
        observer.new()
        await observer.bid("L1", "9000.00", "o1")
        await observer.send({"type": "ping", "id": "p"})
        await room.until(0)
        assert [(m["type"], m.get("code"), m.get("client_bid_id")) for m in observer.new()] == [
            ("error", "observer_cannot_bid", "o1"), ("pong", None, None)]
        assert observer.closed is None
        assert (room.runtime.host.state_hash(), room.runtime.journaled.gseq) == before


# -- rate limits and abuse ------------------------------------------------------------------


def bids(client: Any, prefix: str, count: int, top: int = 900000) -> list[Any]:
    return [client.bid("L1", price(top - 100 * i), f"{prefix}{i}") for i in range(count)]


@pytest.mark.trio
async def test_the_bid_bucket_refills_at_exact_instants(tmp_path: Path, autojump_clock: object) -> None:
    # Times are sums of binary fractions of a second, so the bucket's arithmetic is exact.
    async with memroom(tmp_path, bid_rate=0.5, bid_burst=3) as room:
        tokens = await room.create("A-1", bidders=("acme",))
        gseq = room.runtime.journaled.gseq
        client = await room.connect("A-1", tokens["acme"])
        client.new()
        for sending in bids(client, "r", 10):
            await sending
        await room.until(0)
        got = [(m["type"], m.get("code")) for m in client.new() if m["type"] != "view"]
        assert got == [("ack", None)] * 3 + [("reject", "rate_limited")] * 7  # the burst, then refused
        assert {m["message"] for m in client.of("reject")} == {"at most 0.5 bids per second"}
        steps = [(1.5, ["reject"]),  # 0.75 of a bid refilled
                 (0.5, ["ack", "reject"]),  # at +2 s exactly one: the next is refused
                 (2.0, ["ack"])]  # and at +4 s exactly one more
        for n, (wait, outcomes) in enumerate(steps):
            await trio.sleep(wait)
            for i in range(len(outcomes)):
                await client.bid("L1", price(800000 - 1000 * n - i), f"s{n}-{i}")
            await settle()
            assert [m["type"] for m in client.new() if m["type"] != "view"] == outcomes, n
        assert room.runtime.journaled.gseq == gseq + 5  # rate-limited bids are not journaled
        assert room.runtime.engine.observer_view("A-1", "L1").bids == 5
        assert client.closed is None


@pytest.mark.trio
async def test_twenty_errors_in_a_burst_then_one_a_second_are_tolerated_one_more_closes_4429(
        tmp_path: Path, autojump_clock: object) -> None:
    async with memroom(tmp_path) as room:
        tokens = await room.create("A-1", bidders=("acme",))
        before = room.runtime.host.state_hash()
        client = await room.connect("A-1", tokens["acme"], direct=True)  # see the test below for the other path
        for _ in range(20):
            await client.send_raw("{}")
        for _second in range(5):  # the error bucket refills one a second
            await trio.sleep(1)
            await client.send_raw("{}")
            await settle()
        assert client.closed is None and len(client.of("error")) == 25
        await client.send_raw("{}")  # one more within the same second
        await settle()
        assert [m["code"] for m in client.of("error")] == ["malformed"] * 26
        assert client.closed is not None and (client.closed.code, client.closed.reason) == (
            4429, "too many malformed messages")
        assert room.runtime.host.state_hash() == before


@pytest.mark.trio
@pytest.mark.parametrize("direct", [True, False])
async def test_pipelined_errors_are_answered_to_the_21st_then_closed_4429(tmp_path: Path, autojump_clock: object,
                                                                          direct: bool) -> None:
    async with memroom(tmp_path) as room:
        tokens = await room.create("A-1", bidders=("acme",))
        client = await room.connect("A-1", tokens["acme"], direct=direct)
        for _ in range(40):
            await client.send_raw("{}")
        await room.until(0)
        assert [(m["type"], m["code"]) for m in client.received[2:]] == [("error", "malformed")] * 21
        assert client.seen_close == client.closed
        assert client.closed is not None and (client.closed.code, client.closed.reason, client.closed.at) == (
            4429, "too many malformed messages", room.t0)


@pytest.mark.trio
@pytest.mark.parametrize("direct", [True, False])
async def test_a_bid_flood_gets_the_burst_then_21_refusals_and_a_4429(tmp_path: Path, autojump_clock: object,
                                                                      direct: bool) -> None:
    async with memroom(tmp_path, bid_rate=0.5, bid_burst=2) as room:
        tokens = await room.create("A-1", bidders=("acme", "beta"))
        client = await room.connect("A-1", tokens["acme"], direct=direct)
        client.new()
        for sending in bids(client, "f", 60):
            await sending
        await room.until(0)
        got = [(m["type"], m.get("code")) for m in client.new() if m["type"] != "view"]
        assert got == [("ack", None)] * 2 + [("reject", "rate_limited")] * 21
        assert client.closed is not None and (client.closed.code, client.closed.reason, client.closed.at) == (
            4429, "bids far over the rate limit", room.t0)
        assert room.runtime.engine.observer_view("A-1", "L1").bids == 2
        beta = await room.connect("A-1", tokens["beta"])
        await beta.bid("L1", "8000.00", "beta-1")
        await room.until(0)
        assert beta.of("ack")[0]["client_bid_id"] == "beta-1"


@pytest.mark.trio
async def test_a_retry_after_every_kind_of_refusal(tmp_path: Path, autojump_clock: object) -> None:
    """Each refusal the room can give, then the same client_bid_id with a valid bid on a
    new connection: the original answer where the refusal was journaled, a fresh one
    where docs/protocol.md says nothing was recorded."""
    cases = [  # (lot, amount, id)
        ("L1", "abc", "r-format"), ("L1", "1.234", "r-decimals"), ("L1", "0", "r-zero"), ("L1", "5.", "r-dot"),
        ("L1", "99999.00", "r-above"), ("L2", "9000.00", "r-suspended"), ("L9", "9000.00", "r-lot")]
    # A bucket of len(cases) + 1 bids (no time passes): the bid after them is rate limited.
    async with memroom(tmp_path, bid_rate=0.1, bid_burst=len(cases) + 1) as room:
        tokens = await room.create("A-1", lots=2, bidders=("acme", "beta"))
        await room.run(Suspend, "A-1", "L2", "pause")

        async def answered(bids: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
            client = await room.connect("A-1", tokens["acme"])
            for lot, amount, cbid in bids:
                await client.bid(lot, amount, cbid)
            await room.until(0)
            assert client.closed is None
            return [m for m in client.received if m["type"] in ("ack", "reject")]

        def lot_counts(lot: str) -> tuple[int, int]:
            view = room.runtime.engine.observer_view("A-1", lot)
            return view.bids, view.rejected_bids

        first = await answered([*cases, ("L1", "9500.00", "ok-1"), ("L1", "9400.00", "r-rate")])
        assert [a.get("code") for a in first] == [
            "invalid_amount", "invalid_amount", "invalid_amount", "invalid_amount", "above_starting_price",
            "lot_suspended", "unknown_lot", None, "rate_limited"], first
        assert lot_counts("L1") == (1, 5) and lot_counts("L2") == (0, 1)
        retried = await answered([("L1", f"{9300 - i}.00", c[2]) for i, c in enumerate(cases)]
                                 + [("L1", "9100.00", "r-rate")])
        got = [(a["type"], a.get("code"), a.get("duplicate")) for a in retried]
        assert got[:6] == [("reject", a["code"], True) for a in first[:6]]  # journaled: the first outcome
        assert got[6] == ("ack", None, False)  # unknown_lot: nothing was recorded
        assert got[7] == ("ack", None, False)  # rate_limited: nothing was recorded
        assert lot_counts("L1") == (3, 5)
