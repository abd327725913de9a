"""A whole grouped purchase on the real service, through the SDK (gateway/collective_client.py):
3 members and a coordinator, the convention, needs with a revision and an unconfirmed
member, the BPDE, a reverse auction with two bidders bidding in the room, per-member
contracts created automatically at the award, partial deliveries with a discrepancy,
payments, the coordinator's live consolidation (long poll) following each delivery, and a
member refused another member's contract."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import trio
from served import KEYS, Served, served, served_split
from wire import until

from auction_engine.cluster.local import LocalRedis
from auction_engine.timeutil import format_instant
from gateway.client import Room, RpcClient, RpcError
from gateway.collective_client import CollectiveClient

CID = "G-E2E"
CONVENTION = hashlib.sha256(b"convention G-E2E").hexdigest()
NEEDS_WINDOW_S = 4.0  # the needs deadline after creation
AUCTION_S = 4.0  # the auction's length after its launch


def instant(seconds_from_now: float) -> str:
    return format_instant(int((time.time() + seconds_from_now) * 1e6))


@pytest.mark.trio
async def test_a_grouped_purchase_from_needs_to_paid_goods(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        await grouped_purchase(srv)


@pytest.mark.trio
async def test_a_grouped_purchase_through_a_gateway_and_an_engine(tmp_path: Path, redis_server: LocalRedis) -> None:
    """The same, split: the RPC on a gateway, the cases on an engine, through Redis; the
    awards reach the collective from its auction through the gateway's forwarding."""
    async with served_split(tmp_path, redis_server.url) as srv:
        await grouped_purchase(srv)


async def grouped_purchase(srv: Served) -> None:
    async with CollectiveClient.connect(srv.base, KEYS["portal"]) as coord:
        await coord.create(CID, "coord", ["m1", "m2", "m3"], CONVENTION, instant(NEEDS_WINDOW_S))
        await coord.add_article(CID, "A4", "paper A4 80 g", "ream", "30.00", "L1")
        await coord.add_article(CID, "TN", "toner", "unit", "450.00", "L1")
        await coord.add_article(CID, "CH", "office chair", "unit", "1200.00", "L2")
        members: dict[str, CollectiveClient] = {}
        async with CollectiveClient.connect(srv.base, (await coord.member_token(CID, "m1"))["token"]) as m1, \
                CollectiveClient.connect(srv.base, (await coord.member_token(CID, "m2"))["token"]) as m2, \
                CollectiveClient.connect(srv.base, (await coord.member_token(CID, "m3"))["token"]) as m3:
            members = {"m1": m1, "m2": m2, "m3": m3}
            for member in members.values():
                await member.accept(CID, CONVENTION)
            assert (await coord.get(CID))["constituted"] is True
            await m1.declare_need(CID, "A4", 100, "Rabat")
            await m1.declare_need(CID, "TN", 4, "Rabat")
            await m1.declare_need(CID, "CH", 10, "Rabat")
            await m2.declare_need(CID, "CH", 5, "Fès")
            await m3.declare_need(CID, "A4", 40, "Tanger")
            await m3.declare_need(CID, "A4", 60, "Tanger")  # a revision
            await m3.declare_need(CID, "TN", 2, "Tanger")
            await m1.confirm_needs(CID)
            await m3.confirm_needs(CID)  # m2 never confirms: excluded at the deadline
            assert [v["quantity"] for v in await coord.need_versions(CID, "m3", "A4")] == [40, 60]

            closed, after = False, 0
            while not closed:  # the feed's long poll: the deadline's NeedsClosed entry
                page = await coord.rpc.events(after, wait=10, case_id=CID)
                closed, after = any(e["type"] == "NeedsClosed" for e in page["events"]), page["last_seq"]
            schedule = await coord.generate_schedule(CID)
            assert (schedule["final"], schedule["total"]) == (True, "19500.00")
            assert (await coord.get(CID))["excluded"] == ["m2"]

            launched = await coord.launch(CID, "A-E2E", instant(0), instant(AUCTION_S), bidders=["acme", "beta"],
                                          extension={"window": "0s"})
            assert launched["lots"][0] == {"lot": "L1", "estimate": "7500.00", "starting_price": "7500.00"}
            async with RpcClient(srv.base, KEYS["portal"]) as rpc:
                tokens = {t["bidder_id"]: t["token"] for t in (await rpc.admit("A-E2E", ["acme", "beta"]))["tokens"]}
            engine = srv.service.runtime.engine
            await until(lambda: engine.observer_view("A-E2E", "L1").status == "open")
            async with Room.connect(srv.room_url("A-E2E"), tokens["acme"]) as acme, \
                    Room.connect(srv.room_url("A-E2E"), tokens["beta"]) as beta:
                assert (await acme.bid("L1", "7000.00", "a1"))["type"] == "ack"
                assert (await beta.bid("L1", "6500.00", "b1"))["type"] == "ack"
                assert (await acme.bid("L1", "6000.01", "a2"))["type"] == "ack"
                assert (await beta.bid("L2", "11000.00", "b2"))["type"] == "ack"

            recorded: set[str] = set()
            after = 0
            while len(recorded) < 2:  # the awards reach the collective by themselves
                page = await coord.rpc.events(after, wait=10, case_id=CID)
                recorded |= {e["lot"] for e in page["events"] if e["type"] == "LotAwardRecorded"}
                after = page["last_seq"]
            contracts = {k["contract_id"]: k for k in await coord.contracts(CID)}
            assert {k: v["total"] for k, v in contracts.items()} == {
                "A-E2E/L1/m1": "3840.01", "A-E2E/L1/m3": "2160.00", "A-E2E/L2/m1": "11000.00"}
            assert {v["supplier"] for v in contracts.values()} == {"acme", "beta"}
            assert [k["contract_id"] for k in await m3.contracts(CID)] == ["A-E2E/L1/m3"]
            with pytest.raises(RpcError) as refused:
                await m3.contracts(CID, contract_id="A-E2E/L1/m1")
            assert (refused.value.status, refused.value.code) == (403, "not_member")

            await follow_deliveries(srv, coord, m1, m3)


async def follow_deliveries(srv: Served, coord: CollectiveClient, m1: CollectiveClient,
                            m3: CollectiveClient) -> None:
    """Each act wakes the coordinator's long poll with the new figures."""
    live = await coord.consolidation(CID)
    seen: list[dict[str, object]] = []

    async def poll(since: int) -> None:
        seen.append(await coord.consolidation(CID, since=since, wait=10))

    awards = srv.service.awards
    acts = [lambda: m1.deliver(CID, "A-E2E/L1/m1", "A4", 60),
            lambda: m1.receive(CID, "A-E2E/L1/m1", "A4", 55, rejected=5, reason="torn reams"),
            lambda: m3.deliver(CID, "A-E2E/L1/m3", "TN", 2),
            lambda: m3.pay(CID, "A-E2E/L1/m3", "2160.00")]
    for act in acts:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll, live["revision"])
            await until(lambda: awards.watched(CID))  # the long poll is parked
            await act()
        assert seen[-1]["revision"] > live["revision"]
        live = seen[-1]
    articles = {a["article"]: a for a in live["articles"]}
    assert articles["A4"] == {"article": "A4", "ordered": 160, "delivered": 60, "received": 55, "rejected": 5,
                              "outstanding": 105}
    assert articles["TN"]["delivered"] == 2 and articles["CH"]["delivered"] == 0
    by_member = {p["member_id"]: p for p in live["members"]}
    assert by_member["m3"]["paid"] == "2160.00" and by_member["m3"]["outstanding"] == "0.00"
    assert by_member["m1"]["outstanding"] == "14840.01" and by_member["m2"]["ordered"] == 0
    [m1_paper] = await m1.contracts(CID, contract_id="A-E2E/L1/m1")
    assert m1_paper["discrepancies"][0]["reason"] == "torn reams"
    with pytest.raises(RpcError) as beyond:
        await m3.pay(CID, "A-E2E/L1/m3", "0.01")
    assert beyond.value.code == "beyond_due"
