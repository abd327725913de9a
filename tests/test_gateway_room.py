"""End to end: whole auctions through a real service (hypercorn on loopback, fsync journal)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import trio
from served import auction_body, served
from trio_websocket import wrap_client_stream
from wire import until, waiting

from gateway.client import Room
from replay import verify

BIDDERS = ["alpha-supplies-x71", "beta-trading-q42", "gamma-bureau-z93", "delta-equip-k18"]


def price(base: float) -> str:
    return f"{base:.2f}"


@pytest.mark.trio
async def test_a_whole_auction_over_real_websockets(tmp_path: Path) -> None:
    """Both codecs, an observer, a suspension and a cancellation through hypercorn and an
    fsync journal. (Closes at deadlines, extensions and awards, exactly: test_room_exact.py.)"""
    async with served(tmp_path) as srv, srv.rpc() as rpc, srv.rpc("buyer") as buyer:
        await rpc.create_auction(auction_body("A-2", seconds=600, lots=2, visibility="rank_and_best"))
        tokens = {t["bidder_id"]: t["token"] for t in (await rpc.admit("A-2", BIDDERS))["tokens"]}
        observer = (await buyer.observer_token("A-2", "commission"))["token"]
        async with trio.open_nursery() as nursery:
            rooms: dict[str, Room] = {}
            for i, bidder in enumerate(BIDDERS):
                rooms[bidder] = await nursery.start(_hold, srv.room_url("A-2"), tokens[bidder],
                                                    "auction.v1.msgpack" if i % 2 else "auction.v1.json")
            watcher: Room = await nursery.start(_hold, srv.room_url("A-2"), observer, "auction.v1.json")
            assert watcher.welcome["role"] == "observer" and watcher.welcome["pseudonym"] is None

            # Everyone bids on both lots; each bid undercuts the last by 10.00.
            amount = 9990.0
            for index, bidder in enumerate(BIDDERS):
                for lot in ("L1", "L2"):
                    answer = await rooms[bidder].bid(lot, price(amount), f"r-{lot}-{index}")
                    assert answer["type"] == "ack" and answer["best_price"] == price(amount), answer
                    amount -= 10
            await buyer.suspend("A-2", "L1", "incident réseau")
            refused = await rooms[BIDDERS[0]].bid("L1", price(amount), "while-suspended")
            assert refused["type"] == "reject" and refused["code"] == "lot_suspended"
            await buyer.resume("A-2", "L1")
            await rpc.cancel("A-2", reason="annulée")
            for room in (*rooms.values(), watcher):
                await room.wait_for(lambda m: m["type"] == "closed" and m["lot"] == "L2")
            got = [(m["type"], m.get("lot")) for m in watcher.received if m["type"] != "view"]
            assert got == [("welcome", None), ("suspended", "L1"), ("resumed", "L1"), ("closed", "L1"),
                           ("closed", "L2")], got
            assert {m["close_reason"] for m in watcher.received if m["type"] == "closed"} == {"cancelled"}
            nursery.cancel_scope.cancel()

        # Anonymity: no message any bidder or the observer received names a bidder.
        for who, room in [*rooms.items(), ("observer", watcher)]:
            text = json.dumps(room.received)
            for bidder in BIDDERS:
                assert bidder not in text, (who, bidder, [m for m in room.received if bidder in json.dumps(m)])
        feed = (await rpc.events(0, auction_id="A-2", limit=200))["events"]
        assert [e["seq"] for e in feed] == sorted(e["seq"] for e in feed)
        assert {"AuctionCreated", "LotSuspended", "LotResumed", "AuctionClosed"} <= {e["type"] for e in feed}
        state = srv.service.runtime.host.state_hash()
    checked = verify(tmp_path / "journal")
    assert checked.ok and checked.state_hash == state


async def _hold(url: str, token: str, subprotocol: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with Room.connect(url, token, subprotocol=subprotocol, record=True) as room:
        task_status.started(room)
        await trio.sleep_forever()


@pytest.mark.trio
async def test_a_reconnected_bidder_gets_its_standing_and_retries_are_answered_from_the_journal(
        tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        await rpc.create_auction(auction_body("A-3", seconds=60))
        tokens = {t["bidder_id"]: t["token"] for t in (await rpc.admit("A-3", BIDDERS[:2]))["tokens"]}
        async with Room.connect(srv.room_url("A-3"), tokens[BIDDERS[0]]) as room:
            first = await room.bid("L1", "9000.00", "bid-1")
        async with Room.connect(srv.room_url("A-3"), tokens[BIDDERS[1]]) as other:
            assert (await other.bid("L1", "8000.00", "x"))["rank"] == 1
        async with Room.connect(srv.room_url("A-3"), tokens[BIDDERS[0]], record=True) as room:
            view = await room.wait_for(lambda m: m["type"] == "view")
            assert (view["own_price"], view["rank"], view["active_bidders"]) == ("9000.00", 2, 2)
            retry = await room.bid("L1", "9000.00", "bid-1")
            assert retry == {**first, "duplicate": True}
            # Even a different amount under the same id is the first bid's answer, not a new bid.
            assert (await room.bid("L1", "1.00", "bid-1"))["amount"] == "9000.00"
    async with served(tmp_path) as srv:  # after a restart, from the journal
        async with srv.rpc() as rpc:
            token = (await rpc.admit("A-3", [BIDDERS[0]]))["tokens"][0]["token"]
        async with Room.connect(srv.room_url("A-3"), token) as room:
            assert await room.bid("L1", "9000.00", "bid-1") == {**first, "duplicate": True}
            assert srv.service.runtime.engine.auction("A-3").lots["L1"].bids == 2


async def _stalled_room(port: int, auction_id: str, token: str, nursery: trio.Nursery) -> Any:
    """A bidder that says hello and then never reads, with a tiny receive buffer."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect(("127.0.0.1", port))
    ws = await wrap_client_stream(nursery, trio.SocketStream(sock), "127.0.0.1", f"/ws/v1/auctions/{auction_id}",
                                  subprotocols=["auction.v1.json"], message_queue_size=1)
    await ws.send_message(json.dumps({"type": "hello", "token": token}))
    return ws


@pytest.mark.trio
async def test_a_reader_whose_socket_fills_is_closed_4410_and_the_others_get_everything(
        tmp_path: Path, write_path: str) -> None:
    """What only a real socket shows: kernel buffers that fill, and the server stack freeing
    the blocked write. (That nobody waits, and the close instant, exactly: test_room_exact.py.)"""
    async with served(tmp_path, send_buffer_bytes=4096, send_timeout_s=0.5, durability="none", bid_rate=10_000,
                      bid_burst=100_000) as srv, \
            srv.rpc() as rpc:
        many = [f"bidder-{i:02d}" for i in range(5)]
        await rpc.create_auction(auction_body("A-4", seconds=120, visibility="ladder"))
        tokens = {t["bidder_id"]: t["token"] for t in (await rpc.admit("A-4", [*many, "slow-one"]))["tokens"]}
        rooms_open = srv.service.rooms
        async with trio.open_nursery() as nursery:
            stalled = await _stalled_room(srv.port, "A-4", tokens["slow-one"], nursery)
            rooms = [await nursery.start(_hold, srv.room_url("A-4"), tokens[b], "auction.v1.json") for b in many]
            amount, placed = 9999.0, 0
            with trio.fail_after(60):
                while rooms_open.count > len(many):  # bid on until the stalled reader is gone
                    answer = await rooms[placed % len(rooms)].bid("L1", price(amount), f"b{placed}")
                    assert answer["type"] == "ack", answer
                    amount, placed = amount - 1, placed + 1
                for room in rooms:
                    await room.wait_for(lambda m: m["type"] == "view" and m["best_price"] == price(amount + 1))
            assert stalled.closed is None  # it cannot see the close frame: it does not read
            nursery.cancel_scope.cancel()
        metrics = (await rpc._http.get(srv.base + "/metrics")).text
        assert 'auction_ws_closed_total{code="4410"} 1.0' in metrics


@pytest.mark.trio
async def test_the_feed_long_polls_streams_and_keeps_its_numbers_across_a_restart(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        first = await rpc.events(0)
        assert first == {"events": [], "last_seq": 0}
        async with trio.open_nursery() as nursery:
            got: list[Any] = []

            async def poll() -> None:
                got.append(await rpc.events(0, wait=10))

            nursery.start_soon(poll)
            await until(lambda: waiting(srv))
            await rpc.create_auction(auction_body("A-5", start_in=0.5, seconds=1))
        assert got[0]["events"][0]["type"] == "AuctionCreated" and got[0]["events"][0]["seq"] == 1
        streamed: list[dict[str, Any]] = []
        with trio.fail_after(15):
            async for entry in rpc.stream_events(after=1):
                streamed.append(entry)
                if entry["type"] == "AuctionClosed":
                    break
        assert [e["seq"] for e in streamed] == list(range(2, 2 + len(streamed)))
        assert [e["type"] for e in streamed] == ["LotOpened", "LotClosed", "LotUnsuccessful", "AuctionClosed"]
        everything = (await rpc.events(0))["events"]
    for checkpoint_every in (1_000_000, 0):  # from the checkpoint the clean exit wrote, or from the first record
        async with served(tmp_path, checkpoint_every=checkpoint_every) as srv, srv.rpc("buyer") as buyer:
            start = srv.service.runtime.recovery.checkpoint
            assert (start is not None) == bool(checkpoint_every)
            metrics = (await buyer._http.get(srv.base + "/metrics")).text
            assert f"auction_checkpoint_last_record {float(start or 0)}" in metrics
            assert "auction_checkpoints_failed 0.0" in metrics
            assert (await buyer.events(0))["events"] == everything
            assert (await buyer.events(3))["events"] == everything[3:]


@pytest.mark.trio
async def test_auditors_export_a_verifiable_journal_and_operators_get_metrics_and_health(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc, srv.rpc("auditor") as auditor:
        await rpc.create_auction(auction_body("A-6", seconds=60))
        await rpc.create_auction(auction_body("A-7", seconds=60))
        tokens = (await rpc.admit("A-6", BIDDERS[:2]))["tokens"]
        async with Room.connect(srv.room_url("A-6"), tokens[0]["token"]) as room:
            assert (await room.bid("L1", "9000.00", "a"))["type"] == "ack"
            assert (await room.bid("L1", "9999.99", "b"))["code"] == "insufficient_step"
        data = await auditor.journal("A-6")
        exported = tmp_path / "A-6.journal"
        exported.write_bytes(data)
        checked = verify(exported)
        assert checked.ok and checked.kind == "export" and set(checked.auctions) == {"A-6"}
        assert checked.records == 5  # created, 2 admissions, a bid accepted, a bid rejected
        http = rpc._http
        assert (await http.get(srv.base + "/healthz")).json()["status"] == "ok"
        assert (await http.get(srv.base + "/readyz")).json() == {"status": "ready"}
        metrics = (await http.get(srv.base + "/metrics")).text
        for line in ('auction_bids_total{outcome="accepted",reason=""} 1.0',
                     'auction_bids_total{outcome="rejected",reason="insufficient_step"} 1.0',
                     "auction_open_auctions 2.0", 'auction_ws_connections{role="bidder"} 0.0',
                     "auction_bid_ack_seconds_count 2.0", "auction_journal_batch_records_count",
                     "auction_journal_sync_seconds_count", "auction_event_loop_lag_seconds_count",
                     "auction_journal_batches_pipelined 0.0",
                     'auction_rpc_requests_total{route="create_auction",status="201"} 2.0'):
            assert line in metrics, line


@pytest.mark.trio
async def test_bad_auction_bodies_list_every_problem_and_creation_is_idempotent(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        body = auction_body("A-8", seconds=60)
        created = await rpc.create_auction(body)
        assert "pseudonym_secret" not in created
        assert await rpc.create_auction(body) == {**created, "status": created["status"]}
        from gateway.client import RpcError

        with pytest.raises(RpcError) as conflict:
            await rpc.create_auction({**body, "title": "autre chose"})
        assert (conflict.value.status, conflict.value.code) == (409, "auction_conflict")
        bad = {**auction_body("A-9"), "currency": "mad", "decimals": 9, "lots": [{"lot_id": ""}]}
        with pytest.raises(RpcError) as invalid:
            await rpc.create_auction(bad)
        assert invalid.value.status == 422 and invalid.value.code == "invalid_config"
        paths = {d["path"] for d in invalid.value.details}
        assert {"currency", "decimals"} <= paths and any(p.startswith("lots[0]") for p in paths)
        assert srv.service.runtime.engine.auction_ids() == ["A-8"]


@pytest.mark.trio
async def test_a_graceful_stop_says_goodbye_and_flushes_the_journal(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        await rpc.create_auction(auction_body("A-10", seconds=60))
        token = (await rpc.admit("A-10", BIDDERS[:1]))["tokens"][0]["token"]
        async with Room.connect(srv.room_url("A-10"), token) as room:
            assert (await room.bid("L1", "9000.00", "x"))["type"] == "ack"
            srv.service.stop()
            closed = await room.wait_closed()
        assert (closed.code, closed.reason) == (1001, "the service is shutting down")
        state = srv.service.runtime.host.state_hash()
    checked = verify(tmp_path / "journal")
    assert checked.ok and checked.state_hash == state and checked.records == 3


def test_serve_runs_as_a_process_logs_json_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    config = tmp_path / "settings.toml"
    config.write_text('durability = "fsync"\nlog_level = "info"\n')
    env = {**os.environ, "AUCTION_ENGINE_MAX_CONNECTIONS": "50"}
    process = subprocess.Popen([sys.executable, "-m", "auction_engine.cli", "serve", "--config", str(config),
                                "--port", "0", "--data-dir", str(tmp_path / "data")],
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(json.loads(line))
            if lines[-1]["msg"] == "serving":
                break
        port = lines[-1]["port"]
        assert lines[-1]["settings"]["max_connections"] == 50
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ready"}
        keys = json.loads((tmp_path / "data" / "api-keys.json").read_text())
        assert oct((tmp_path / "data" / "api-keys.json").stat().st_mode & 0o777) == "0o600"
        process.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in process.stderr]
        assert process.wait(timeout=30) == 0
        assert rest[-1]["msg"] == "stopped; journal flushed"
        text = "\n".join(json.dumps(line) for line in lines + rest)
        assert all(key not in text for key in keys.values())
    finally:
        process.kill()
        process.wait()
