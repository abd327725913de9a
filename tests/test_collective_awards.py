"""A collective's auction outcome reaches the collective exactly once, across a crash; a
launch cut short between its journal record and its auction is completed by a retry.

The journal holds the worked example's launch (tests/grouped_example.py), its auction,
bids and the award of both lots, but no award record in the collective: what a crash
between the auction's award and the consumer's record leaves. A start of the real
service records them (member contracts at the awarded totals); a second start records
nothing more and changes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from grouped_example import CID, DEADLINE, EXPECTED_CONTRACTS, S, preparation
from journals import write
from served import served

from auction_engine.commands import AdmitBidder, CreateAuction, PlaceBid, Tick
from auction_engine.config import AuctionConfig
from auction_engine.timeutil import format_instant
from gateway.client import RpcError
from grouped_purchases import Collectives
from grouped_purchases.procurement import auction_for

PID = "A-G1"


def crashed_before_the_record() -> list[object]:
    """The example's preparation and launch, its auction run to the award, no record."""
    prep = preparation()
    kind = Collectives()  # the kind alone, to read the schedule the launch buys
    for command in prep:
        kind.handle(command)
    c = kind.collectives[CID]
    launch = {"procurement_id": PID, "currency": "MAD", "start": format_instant(DEADLINE + 3 * S),
              "end": format_instant(DEADLINE + 60 * S), "bidders": ["acme", "beta"]}
    config = AuctionConfig.from_dict(auction_for(CID, c.schedules[-1], ["L1", "L2"], launch),
                                     default_secret="s" * 32)
    return [*prep, CreateAuction(DEADLINE + 3 * S, config), AdmitBidder(DEADLINE + 3 * S, PID, "acme"),
            PlaceBid(DEADLINE + 10 * S, PID, "L1", "acme", 600_001, "b1"),
            PlaceBid(DEADLINE + 11 * S, PID, "L2", "beta", 1_100_000, "b2"),
            Tick(DEADLINE + 100 * S)]


@pytest.mark.trio
async def test_a_restart_records_the_award_the_crash_left_unrecorded(tmp_path: Path) -> None:
    journaled = write(tmp_path / "data" / "journal", crashed_before_the_record())  # type: ignore[arg-type]
    before = journaled.host.kind(Collectives).collectives[CID]
    assert before.lots == {"L1": ("pending", PID), "L2": ("pending", PID)} and not before.contracts
    assert [lot.clock.status for lot in journaled.engine.auction(PID).lots.values()] == ["closed", "closed"]

    async with served(tmp_path / "data") as srv:
        awards = srv.service.awards
        c = srv.service.runtime.host.kind(Collectives).collectives[CID]
        assert awards.recorded == 2  # recorded at start, before the service answers anything
        assert c.lots == {"L1": ("awarded", PID), "L2": ("awarded", PID)}
        assert {k: v.total for k, v in c.contracts.items()} == EXPECTED_CONTRACTS
        assert {k: v.supplier for k, v in c.contracts.items()} == {
            "A-G1/L1/m1": "acme", "A-G1/L1/m3": "acme", "A-G1/L2/m1": "beta"}
        recorded_hash = srv.service.runtime.host.state_hash()

    async with served(tmp_path / "data") as srv:  # exactly once: nothing left to record
        assert srv.service.awards.recorded == 0
        assert srv.service.runtime.host.state_hash() == recorded_hash
        awards = srv.service.awards
        await awards.record(CID, PID, "L1")  # asked again (a duplicate event): checked, not recorded
        assert awards.recorded == 0 and srv.service.runtime.host.state_hash() == recorded_hash


@pytest.mark.trio
async def test_an_unsuccessful_lot_is_left_open_for_a_relaunch(tmp_path: Path) -> None:
    commands = crashed_before_the_record()
    commands.pop(-2)  # no bid on L2: unsuccessful (no_bids)
    write(tmp_path / "data" / "journal", commands)  # type: ignore[arg-type]
    async with served(tmp_path / "data") as srv:
        c = srv.service.runtime.host.kind(Collectives).collectives[CID]
        assert srv.service.awards.recorded == 2
        assert c.lots == {"L1": ("awarded", PID)}  # L2 open again: the next launch takes it
        assert sorted(c.contracts) == ["A-G1/L1/m1", "A-G1/L1/m3"]


@pytest.mark.trio
async def test_a_launch_journaled_without_its_auction_is_completed_by_a_retry(tmp_path: Path) -> None:
    """The launch journals LaunchProcurement, then creates the auction: a stop between the
    two leaves the lots pending with no auction; the same request again creates it."""
    write(tmp_path / "data" / "journal", preparation())  # type: ignore[arg-type]  # ends with the launch
    launch = {"procurement_id": PID, "start": format_instant(int((time.time() + 3600) * 1e6)),
              "end": format_instant(int((time.time() + 7200) * 1e6))}
    async with served(tmp_path / "data") as srv:
        assert srv.service.awards.recorded == 0  # pending, but no auction to read an outcome from
        async with srv.rpc("buyer") as rpc:
            done = await rpc.request("POST", f"/collectives/{CID}/launch", launch)
            assert [lot["lot"] for lot in done["lots"]] == ["L1", "L2"] and done["schedule_version"] == 1
            auction = await rpc.get_auction(PID)
            assert auction["buyer_ref"] == f"collective:{CID}:schedule:1"
            assert [(lot["lot_id"], lot["estimate"]) for lot in auction["lots"]] == [("L1", "7500.00"),
                                                                                     ("L2", "12000.00")]
            with pytest.raises(RpcError) as again:
                await rpc.request("POST", f"/collectives/{CID}/launch", launch)
            assert (again.value.status, again.value.code) == (409, "procurement_exists")


@pytest.mark.trio
async def test_an_auction_the_launch_did_not_create_is_never_taken_for_the_award(tmp_path: Path) -> None:
    """Another party's auction under the procurement's id (created first, or after a crash
    between the launch's record and its auction) ends with a price: the collective's lots
    stay pending and no contract is issued from it (found by review)."""
    foreign = AuctionConfig.from_dict({
        "auction_id": "A-G1", "title": "someone else's", "buyer_ref": "other-buyer", "currency": "MAD",
        "decimals": 2, "start": format_instant(DEADLINE + 3 * S), "end": format_instant(DEADLINE + 100 * S),
        "bidders": ["mallory"], "lots": [{"lot_id": "L1", "title": "x", "estimate": "9000.00",
                                          "starting_price": "9000.00"}]}, default_secret="s" * 32)
    write(tmp_path / "data" / "journal", [
        *preparation(), CreateAuction(DEADLINE + 3 * S, foreign),
        PlaceBid(DEADLINE + 10 * S, "A-G1", "L1", "mallory", 899_999, "b1"), Tick(DEADLINE + 200 * S)])
    async with served(tmp_path / "data") as srv:
        c = srv.service.runtime.host.kind(Collectives).collectives[CID]
        assert srv.service.runtime.engine.results("A-G1").lots[0].status == "awarded"
        assert not c.contracts and c.lots == {"L1": ("pending", "A-G1"), "L2": ("pending", "A-G1")}
        assert srv.service.awards.recorded == 0
