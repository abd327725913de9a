"""The collective kind in the runtime and the real service: the runtime's timer closes
the needs at their deadline, a clean exit checkpoints, a restart goes on from it, and the
service hosts collectives beside auctions with one case per id."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from grouped_example import CONVENTION, MEMBERS, T0, S
from journals import Heard
from served import served
from test_runtime import mock_clock_us

from auction_engine import AdmitBidder
from auction_engine.host import CaseConflict
from auction_engine.journal import recover
from auction_engine.runtime import Runtime
from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    CollectiveRefused,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    GenerateSchedule,
    NeedsClosed,
    ScheduleGenerated,
)
from replay import verify


async def prepare(runtime: object, cid: str, deadline: int) -> None:
    submit = runtime.submit  # type: ignore[attr-defined]
    await submit(CreateCollective, cid, "coord", MEMBERS, CONVENTION, deadline)
    for member in MEMBERS:
        await submit(AcceptConvention, cid, member, CONVENTION)
    await submit(AddArticle, cid, "coord", "A4", "paper", "ream", 3_000, "L1")
    await submit(DeclareNeed, cid, "m1", "A4", 100, "Rabat")
    await submit(ConfirmNeeds, cid, "m1")
    await submit(DeclareNeed, cid, "m2", "A4", 50, "Fès")  # never confirmed: excluded


@pytest.mark.trio
async def test_the_timer_closes_the_needs_and_a_checkpoint_keeps_the_collective(tmp_path: Path,
                                                                                autojump_clock: object) -> None:
    closed = trio.Event()

    def heard(events: list[object]) -> None:
        if any(type(e) is NeedsClosed for e in events):
            closed.set()

    async with Runtime.open(tmp_path, clock=mock_clock_us(T0), durability="none", checkpoint_every=10**6) as runtime:
        runtime.attach(Heard(events=heard))
        await prepare(runtime, "G-1", T0 + 60 * S)
        await closed.wait()
        assert runtime.clock() >= T0 + 60 * S  # not a moment early
        generated = await runtime.submit(GenerateSchedule, "G-1", "coord")
        assert type(generated[-1]) is ScheduleGenerated and generated[-1].final
        state = runtime.host.state_hash()
    recovered, report = recover(tmp_path, checkpoints=True)
    assert report.checkpoint is not None, report
    assert report.state_hash == state == recovered.host.state_hash()
    c = recovered.host.kind(Collectives).collectives["G-1"]
    assert c.excluded == ("m2", "m3") and c.schedules[0].lines[0].members == (("m1", 100),)
    assert verify(tmp_path).state_hash == state


@pytest.mark.trio
async def test_the_service_hosts_collectives_beside_auctions(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        runtime = srv.service.runtime
        await prepare(runtime, "G-1", runtime.now() + 3600 * S)
        refused = await runtime.submit(DeclareNeed, "G-1", "outsider", "A4", 1, "x")
        assert [(type(e), e.code) for e in refused] == [(CollectiveRefused, "not_member")]
        with pytest.raises(CaseConflict):  # a collective's id is not an auction's
            await runtime.submit(AdmitBidder, "G-1", "zed")
        state = runtime.host.state_hash()
    async with served(tmp_path) as srv:
        assert srv.service.runtime.host.state_hash() == state
        assert srv.service.runtime.host.kind(Collectives).collectives["G-1"].confirmed.keys() == {"m1"}
