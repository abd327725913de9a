"""The host is general: a second procedure kind (tests/sealed_kind.py) is journaled,
recovered, checkpointed and verified through the auction's paths, beside auctions, with
one case per id across kinds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import trio
from factories import START, S, config
from journals import Heard, reference_verify, write
from sealed_kind import (
    OpenRound,
    RoundAwarded,
    RoundUnsuccessful,
    SealedAccepted,
    SealedBid,
    SealedRejected,
    SubmitSealed,
)
from served import auction_body, served
from test_runtime import mock_clock_us

from auction_engine import AdmitBidder, CreateAuction, PlaceBid, Tick
from auction_engine.cli import write_journal
from auction_engine.host import CaseConflict, register, registered, unregister
from auction_engine.journal import Journaled, JournalReader, Submission, recover
from auction_engine.journal.format import decode_command, encode_command
from auction_engine.runtime import Runtime
from gateway.client import RpcError
from gateway.feed import Feed
from replay import render_timeline, timeline, verify


@pytest.fixture(autouse=True)
def sealed() -> Iterator[None]:
    register(SealedBid)
    yield
    unregister(SealedBid)


def commands() -> list[object]:
    """Auctions and sealed rounds interleaved, with retries, refusals and both closes."""
    return [
        CreateAuction(START - 10 * S, config(bidders=["alice", "bob"])),
        OpenRound(START - 5 * S, "R-1", START + 30 * S, ("acme", "beta", "gamma")),
        OpenRound(START - 5 * S, "R-2", START + 20 * S, ("acme",)),
        SubmitSealed(START + 1 * S, "R-1", "acme", 9_000, "a-1"),
        PlaceBid(START + 2 * S, "A1", "L1", "alice", 90_000, "c-1"),
        SubmitSealed(START + 3 * S, "R-1", "beta", 8_500, "b-1"),
        SubmitSealed(START + 4 * S, "R-1", "acme", 1, "a-1"),  # a retry: the first outcome, nothing new
        SubmitSealed(START + 5 * S, "R-1", "zeta", 100, "z-1"),  # not invited: refused, journaled
        SubmitSealed(START + 6 * S, "R-9", "acme", 100, "x-1"),  # no such round: not journaled
        SubmitSealed(START + 7 * S, "R-1", "gamma", 8_500, "g-1"),  # ties beta, later: beta keeps first place
        PlaceBid(START + 40 * S, "A1", "L1", "bob", 80_000, "c-2"),  # both rounds closed before it
        Tick(START + 3600 * S),
    ]


def test_a_second_kind_is_journaled_recovered_and_verified_beside_auctions(tmp_path: Path) -> None:
    journaled = write(tmp_path / "j", commands())  # type: ignore[arg-type]
    host = journaled.host
    sealed = host.kind(SealedBid)
    assert [(r, sealed.rounds[r].closed) for r in sealed.rounds] == [("R-1", True), ("R-2", True)]
    records = [record for record, _ in JournalReader(tmp_path / "j").records()]
    by_case = [(r.auction_id, r.command[0]) for r in records]
    assert ("R-1", "SubmitSealed") in by_case and ("R-9", "SubmitSealed") not in by_case
    assert ("R-2", "Tick") in by_case and ("R-1", "Tick") in by_case  # each round's close, its own record
    outcomes = {(r.auction_id, r.command[0], r.outcome[0][0]) for r in records}
    assert ("R-1", "Tick", "RoundAwarded") in outcomes and ("R-2", "Tick", "RoundUnsuccessful") in outcomes
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == host.state_hash() == report.state_hash
    assert recovered.host.kind(SealedBid).rounds["R-1"].offers == sealed.rounds["R-1"].offers
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == host.state_hash(), checked.problem
    assert reference_verify(tmp_path / "j")["state_hash"] == checked.state_hash
    assert set(checked.auctions) == {"A1", "R-1", "R-2"}


def test_the_kinds_own_outcomes(tmp_path: Path) -> None:
    journaled = Journaled()
    out = [journaled.submit(c) for c in commands()]  # type: ignore[arg-type]
    retry = out[6]
    assert retry.duplicate and retry.events == out[3].events[-1:] and not retry.frames  # (a due tick came first)
    assert [type(e) for e in out[7].events] == [SealedRejected] and out[7].frames
    assert out[8].events == [SealedRejected(START + 6 * S, "R-9", "acme", "unknown_round")] and not out[8].frames
    closes = [e for e in out[10].events if type(e) in (RoundAwarded, RoundUnsuccessful)]
    assert closes == [RoundUnsuccessful(START + 20 * S, "R-2"), RoundAwarded(START + 30 * S, "R-1", "beta", 8_500)]
    assert [type(e).__name__ for e in out[3].events] == ["LotOpened", "SealedAccepted"]


def test_a_case_id_belongs_to_one_kind(tmp_path: Path) -> None:
    journaled = Journaled()
    journaled.submit(CreateAuction(START - 10 * S, config()))
    journaled.submit(OpenRound(START - 9 * S, "R-1", START + 30 * S, ("acme",)))
    before = (journaled.gseq, journaled.host.state_hash())
    for command in (OpenRound(START - 8 * S, "A1", START + 30 * S, ("acme",)),
                    SubmitSealed(START - 8 * S, "A1", "acme", 5),
                    CreateAuction(START - 8 * S, config(auction_id="R-1")),
                    AdmitBidder(START - 8 * S, "R-1", "zed")):
        with pytest.raises(CaseConflict):
            journaled.submit(command)  # type: ignore[arg-type]
        assert (journaled.gseq, journaled.host.state_hash()) == before


def test_the_kinds_commands_round_trip_through_the_journal_names() -> None:
    for command in commands():
        assert decode_command(encode_command(command)) == command  # type: ignore[arg-type]


def test_a_wrong_outcome_of_the_second_kind_is_caught(tmp_path: Path) -> None:
    """A record with a forged award, its chain intact: re-executing it catches the lie."""
    journaled = Journaled()
    frames: list[bytes] = []
    for command in [*commands()[:10], Tick(START + 20 * S)]:  # R-2 closes, honestly
        frames += journaled.submit(command).frames  # type: ignore[arg-type]
    forged = Submission([], [], journaled.gseq)
    at = START + 30 * S
    journaled.record(forged, at, "R-1", msgpack.packb(["Tick", at, "R-1"]),
                     [RoundAwarded(at, "R-1", "gamma", 8_500)])  # beta won: equal price, earlier
    write_journal(tmp_path / "j", frames + forged.frames)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"
    assert checked.problem.gseq == journaled.gseq


@pytest.mark.trio
async def test_a_second_kind_runs_in_the_runtime_and_restarts_from_a_checkpoint(tmp_path: Path,
                                                                                autojump_clock: object) -> None:
    """The runtime's timer closes the round at its deadline (MockClock time; durability
    "none": a worker thread would let the clock jump ahead), the clean exit writes a
    checkpoint, and a start goes on from it."""
    closed = trio.Event()

    def heard(events: list[object]) -> None:
        if any(type(e) is RoundAwarded for e in events):
            closed.set()

    async with Runtime.open(tmp_path, clock=mock_clock_us(START - 10 * S), durability="none",
                            checkpoint_every=10**6) as runtime:
        runtime.attach(Heard(events=heard))
        await runtime.submit(OpenRound, "R-1", START, ("acme", "beta"))
        accepted = await runtime.submit(SubmitSealed, "R-1", "acme", 900, "a-1")
        assert accepted == [SealedAccepted(runtime.host.now, "R-1", "acme")]
        await runtime.submit(SubmitSealed, "R-1", "beta", 800, "b-1")
        await runtime.execute(CreateAuction(runtime.now(), config()))
        await closed.wait()
        assert runtime.clock() >= START  # not a moment early
        assert runtime.host.kind(SealedBid).rounds["R-1"].closed
        state = runtime.host.state_hash()
    recovered, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint is not None, report
    assert report.state_hash == state == recovered.host.state_hash()
    assert recovered.host.kind(SealedBid).rounds["R-1"].closed
    assert verify(tmp_path).state_hash == state


def test_the_auditors_timeline_of_a_case_of_another_kind(tmp_path: Path) -> None:
    write(tmp_path / "j", commands())  # type: ignore[arg-type]
    rows = timeline(tmp_path / "j", "R-1")
    assert [(r["command"][0], [e[0] for e in r["events"]]) for r in rows] == [
        ("OpenRound", ["RoundOpened"]), ("SubmitSealed", ["SealedAccepted"]), ("SubmitSealed", ["SealedAccepted"]),
        ("SubmitSealed", ["SealedRejected"]), ("SubmitSealed", ["SealedAccepted"]), ("Tick", ["RoundAwarded"])]
    assert render_timeline(rows, "csv").splitlines()[0] == "gseq,time,command,events"
    bids = timeline(tmp_path / "j", "A1")  # an auction's: its bids
    assert [b["pseudonym"] != "" for b in bids] == [True, True] and "lot_id" in bids[0]


def test_the_feed_shows_every_kinds_public_events_without_identities() -> None:
    journaled = Journaled()
    feed = Feed()
    feed.render = journaled.host.public_event
    for command in commands():
        feed.on_events(journaled.submit(command).events)  # type: ignore[arg-type]
    rounds = feed.after(0, 100, "R-1")
    assert [e["type"] for e in rounds] == ["RoundOpened", "RoundAwarded"]
    assert "winner" not in rounds[1] and rounds[1]["amount"] == 8_500
    every = feed.after(0, 100)
    assert {e["type"] for e in every} >= {"AuctionCreated", "LotOpened", "RoundUnsuccessful", "LotAwarded"}
    assert all("bidder_id" not in e for e in every) and [e["seq"] for e in every] == list(range(1, len(every) + 1))


@pytest.mark.trio
async def test_a_second_kind_is_served_by_the_service_and_its_feed(tmp_path: Path) -> None:
    """The real service hosts the registered kind: commands through its runtime, the
    public events in the RPC's feed, a restart rebuilds it from the journal."""
    async with served(tmp_path) as srv:
        runtime = srv.service.runtime
        await runtime.submit(OpenRound, "R-1", runtime.now() + 3600 * S, ("acme", "beta"))
        assert (await runtime.submit(SubmitSealed, "R-1", "acme", 900, "a-1"))[-1].__class__ is SealedAccepted
        refused = await runtime.submit(SubmitSealed, "A-1", "acme", 900, "x")  # no such round (yet an auction)
        assert refused == [SealedRejected(runtime.host.now, "A-1", "acme", "unknown_round")]
        async with srv.rpc() as rpc:
            await rpc.create_auction(auction_body("A-1"))
            with pytest.raises(CaseConflict):  # now an auction's id
                await runtime.submit(OpenRound, "A-1", runtime.now() + S, ("acme",))
            with pytest.raises(RpcError) as taken:  # a round's id: 409, nothing applied
                await rpc.create_auction(auction_body("R-1"))
            assert (taken.value.status, taken.value.code) == (409, "case_conflict")
            entries = (await rpc.events(0, auction_id="R-1"))["events"]
            assert (await rpc.events(0, case_id="R-1"))["events"] == entries
            assert (await rpc.events(0, case_id="R-1", auction_id="A-1"))["events"] == []  # both filters apply
        assert [e["type"] for e in entries] == ["RoundOpened"] and entries[0]["round_id"] == "R-1"
        state = runtime.host.state_hash()
    async with served(tmp_path) as srv:
        assert srv.service.runtime.host.state_hash() == state
        assert srv.service.runtime.host.kind(SealedBid).rounds["R-1"].offers == {"acme": (900, 0)}


def test_a_kind_whose_journal_names_clash_is_refused() -> None:
    class Clash(SealedBid):
        name = "clash"  # the same command and event classes: the same journal names

    with pytest.raises(ValueError, match="already the host's or another kind's name"):
        register(Clash)
    assert Clash not in registered()
