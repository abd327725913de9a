"""The collective kind: the worked example computed by hand, the platform's paths
(journaled, recovered, checkpointed, verified, a forged outcome caught) and bad input
refused with a stable code and no state change."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgpack
import pytest
from grouped_example import CID, CONVENTION, DEADLINE, EXPECTED_CONTRACTS, T0, S, awards, commands, preparation
from journals import reference_verify, write

from auction_engine import Tick
from auction_engine.cli import write_journal
from auction_engine.host import Host
from auction_engine.journal import Journaled, JournalReader, Submission, recover
from auction_engine.journal.format import decode_command, encode_command
from gateway.feed import Feed
from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    CollectiveRefused,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    GenerateSchedule,
    LaunchProcurement,
    LotLeftOpen,
    MemberContractIssued,
    NeedsClosed,
    NeedWithdrawn,
    QueryError,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordLotUnsuccessful,
    RecordPayment,
    RecordReceipt,
    WithdrawNeed,
    consolidation,
    contracts_of,
    need_versions,
)
from replay import export as export_case
from replay import timeline, verify


def run(cmds: list[object]) -> Collectives:
    kind = Collectives()
    for command in cmds:
        kind.handle(command)
    return kind


def test_the_worked_example_by_hand() -> None:
    kind = run(commands())
    c = kind.collectives[CID]
    assert c.excluded == ("m2",)
    schedule = c.schedules[0]
    assert [(ln.article, ln.quantity, ln.members) for ln in schedule.lines] == [
        ("A4", 160, (("m1", 100), ("m3", 60))), ("TN", 6, (("m1", 4), ("m3", 2))), ("CH", 10, (("m1", 10),))]
    assert (schedule.lot_total("L1"), schedule.lot_total("L2"), schedule.total) == (750_000, 1_200_000, 1_950_000)
    assert {cid: k.total for cid, k in c.contracts.items()} == EXPECTED_CONTRACTS
    assert sum(k.total for k in c.contracts.values() if k.lot == "L1") == 600_001
    m1 = c.contracts["A-G1/L1/m1"]
    assert [(ln.article, ln.unit_price, ln.quantity, ln.extra) for ln in m1.lines] == [
        ("A4", 2_400, 100, 0), ("TN", 36_000, 4, 1)]
    assert m1.discrepancies == [(DEADLINE + 21 * S, "A4", 5, "torn reams")]
    assert need_versions(c, "coord", "m3", "A4") == [(T0 + 5 * S, 40, "Tanger"), (T0 + 6 * S, 60, "Tanger")]
    view = consolidation(c, "coord")
    assert view.articles[0] == ("A4", 160, 60, 55, 5, 105)
    assert [tuple(m) for m in view.members] == [
        ("m1", 114, 60, 55, 1_484_001, 1_100_000, 384_001), ("m2", 0, 0, 0, 0, 0, 0),
        ("m3", 62, 2, 2, 216_000, 100_000, 116_000)]


def test_a_member_sees_only_its_own() -> None:
    c = run(commands()).collectives[CID]
    assert list(contracts_of(c, "m3")) == ["A-G1/L1/m3"]
    assert len(contracts_of(c, "coord")) == 3 and contracts_of(c, "m2") == {}
    for read in (lambda: contracts_of(c, "outsider"), lambda: consolidation(c, "m1"),
                 lambda: need_versions(c, "m1", "m3", "A4")):
        with pytest.raises(QueryError) as refused:
            read()
        assert refused.value.code == "not_member"


def test_an_unsuccessful_lot_is_open_for_a_relaunch() -> None:
    kind = run(preparation())
    out = kind.handle(RecordLotUnsuccessful(DEADLINE + 5 * S, CID, "coord", "A-G1", "L2"))
    assert out == [LotLeftOpen(DEADLINE + 5 * S, CID, "A-G1", "L2")]
    relaunched = kind.handle(LaunchProcurement(DEADLINE + 6 * S, CID, "coord", "A-G2", 1))
    assert relaunched[-1].lots == ("L2",)
    issued = kind.handle(RecordLotPrices(DEADLINE + 7 * S, CID, "coord", "A-G2", "L2", "s", (("CH", 100_000),)))
    assert [e.contract_id for e in issued if type(e) is MemberContractIssued] == ["A-G2/L2/m1"]


def refused(kind: Collectives, command: object, code: str) -> None:
    before = kind.state_hash()
    events = kind.handle(command)
    assert [(type(e), e.code) for e in events] == [(CollectiveRefused, code)], events
    assert kind.state_hash() == before and not kind.changes_state(events)


BAD_IN_PREPARATION = [
    (DeclareNeed(T0 + 9 * S, CID, "m1", "A4", 0, "Rabat"), "invalid_quantity"),
    (DeclareNeed(T0 + 9 * S, CID, "m1", "A4", -3, "Rabat"), "invalid_quantity"),
    (DeclareNeed(T0 + 9 * S, CID, "m1", "XX", 3, "Rabat"), "unknown_article"),
    (DeclareNeed(T0 + 9 * S, CID, "intruder", "A4", 3, "Rabat"), "not_member"),
    (ConfirmNeeds(T0 + 9 * S, CID, "coord"), "not_member"),
    (AddArticle(T0 + 9 * S, CID, "m1", "PN", "pen", "unit", 100, "L1"), "not_coordinator"),
    (AddArticle(T0 + 9 * S, CID, "coord", "A4", "again", "unit", 100, "L1"), "article_exists"),
    (AddArticle(T0 + 9 * S, CID, "coord", "PN", "pen", "unit", 0, "L1"), "invalid_amount"),
    (AcceptConvention(T0 + 9 * S, CID, "m1", CONVENTION), "already_accepted"),
    (DeclareNeed(T0 + 9 * S, "G-9", "m1", "A4", 3, "Rabat"), "unknown_collective"),
    (CreateCollective(T0 + 9 * S, CID, "coord", ("m1",), CONVENTION, DEADLINE), "collective_exists"),
    (LaunchProcurement(T0 + 9 * S, CID, "coord", "A-X", 1), "unknown_schedule"),
]


@pytest.mark.parametrize(("command", "code"), BAD_IN_PREPARATION)
def test_bad_input_in_preparation_is_refused_with_nothing_changed(command: object, code: str) -> None:
    refused(run(preparation()[:-3]), command, code)


def test_needs_after_the_deadline_and_a_draft_schedule() -> None:
    kind = run(preparation()[:-3])
    kind.handle(GenerateSchedule(T0 + 9 * S, CID, "coord"))  # a draft: before the deadline
    refused(kind, LaunchProcurement(T0 + 10 * S, CID, "coord", "A-X", 1), "schedule_not_final")
    closed = kind.handle(DeclareNeed(DEADLINE, CID, "m1", "A4", 5, "Rabat"))
    assert closed[0] == NeedsClosed(DEADLINE, CID, ()) and closed[1].code == "needs_closed"
    refused(kind, DeclareNeed(DEADLINE + S, CID, "m1", "A4", 5, "Rabat"), "needs_closed")
    kind.handle(GenerateSchedule(DEADLINE + S, CID, "coord"))
    kind.handle(GenerateSchedule(DEADLINE + S, CID, "coord"))
    refused(kind, LaunchProcurement(DEADLINE + 2 * S, CID, "coord", "A-X", 2), "schedule_stale")
    assert kind.handle(LaunchProcurement(DEADLINE + 2 * S, CID, "coord", "A-X", 3))[-1].lots == ("L1", "L2")


BAD_IN_EXECUTION = [
    (RecordDelivery(DEADLINE + 30 * S, CID, "m1", "A-G1/L1/m1", "A4", 46), "beyond_contract"),  # 55 net + 46 > 100
    (RecordDelivery(DEADLINE + 30 * S, CID, "m1", "A-G1/L1/m1", "A4", 0), "invalid_quantity"),
    (RecordDelivery(DEADLINE + 30 * S, CID, "m1", "A-G1/L1/m1", "CH", 1), "unknown_article"),
    (RecordDelivery(DEADLINE + 30 * S, CID, "m3", "A-G1/L1/m1", "A4", 1), "not_member"),
    (RecordDelivery(DEADLINE + 30 * S, CID, "m1", "A-G1/L1/m1", "A4", 99, True), "not_coordinator"),
    (RecordDelivery(DEADLINE + 30 * S, CID, "m1", "nope", "A4", 1), "unknown_contract"),
    (RecordReceipt(DEADLINE + 30 * S, CID, "m1", "A-G1/L1/m1", "A4", 1), "beyond_delivered"),
    (RecordReceipt(DEADLINE + 30 * S, CID, "m3", "A-G1/L1/m3", "TN", 0, 0), "invalid_quantity"),
    (RecordPayment(DEADLINE + 30 * S, CID, "m3", "A-G1/L1/m3", 116_001), "beyond_due"),
    (RecordPayment(DEADLINE + 30 * S, CID, "m3", "A-G1/L1/m3", -1), "invalid_amount"),
    (RecordPayment(DEADLINE + 30 * S, CID, "m2", "A-G1/L1/m3", 1), "not_member"),
    (RecordLotAward(DEADLINE + 30 * S, CID, "coord", "A-G1", "L1", "s", 5), "lot_not_pending"),
    (RecordLotAward(DEADLINE + 30 * S, CID, "coord", "A-G9", "L1", "s", 5), "unknown_procurement"),
]


@pytest.mark.parametrize(("command", "code"), BAD_IN_EXECUTION)
def test_bad_input_in_execution_is_refused_with_nothing_changed(command: object, code: str) -> None:
    refused(run(commands()), command, code)


def test_allowed_overruns_and_bad_awards() -> None:
    kind = run(commands())
    assert kind.handle(RecordDelivery(DEADLINE + 30 * S, CID, "coord", "A-G1/L1/m1", "A4", 99, True))
    assert kind.handle(RecordPayment(DEADLINE + 30 * S, CID, "coord", "A-G1/L1/m3", 200_000, True))
    kind = run(preparation())
    refused(kind, RecordLotPrices(DEADLINE + 9 * S, CID, "coord", "A-G1", "L1", "s", (("A4", 1),)), "prices_mismatch")
    refused(kind, RecordLotAward(DEADLINE + 9 * S, CID, "coord", "A-G1", "L1", "s", 165), "invalid_amount")
    refused(kind, RecordLotAward(DEADLINE + 9 * S, CID, "m1", "A-G1", "L1", "s", 600_000), "not_coordinator")


# -- the platform's paths ---------------------------------------------------------------------

def test_journaled_recovered_and_verified(tmp_path: Path) -> None:
    cmds = [*commands(), RecordPayment(DEADLINE + 40 * S, CID, "m3", "A-G1/L1/m3", 10**9)]  # refused: not journaled
    journaled = write(tmp_path / "j", cmds)  # type: ignore[arg-type]
    host = journaled.host
    records = [record for record, _ in JournalReader(tmp_path / "j").records()]
    assert all(r.auction_id == CID for r in records)
    kinds = [r.command[0] for r in records]
    assert kinds.count("Tick") == 1 and len(records) == len(cmds)  # the deadline's record; the refusal: none
    assert "RecordPayment" in kinds and records[-1].command[-2] != 10**9
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == host.state_hash() == report.state_hash
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == host.state_hash(), checked.problem
    assert reference_verify(tmp_path / "j")["state_hash"] == checked.state_hash


def test_the_deadline_is_its_own_tick_record(tmp_path: Path) -> None:
    kind_before = run(preparation()[:-2])
    assert kind_before.next_deadline() == DEADLINE and kind_before.due(DEADLINE) and not kind_before.due(DEADLINE - 1)
    journaled = write(tmp_path / "j", [*preparation()[:-2], Tick(DEADLINE + S)])  # type: ignore[arg-type]
    assert journaled.host.kind(Collectives).next_deadline() is None
    records = [record for record, _ in JournalReader(tmp_path / "j").records()]
    assert (records[-1].auction_id, records[-1].command[0], records[-1].outcome[0][0]) == (CID, "Tick", "NeedsClosed")
    assert verify(tmp_path / "j").ok


def test_dump_and_load_keep_the_state_hash() -> None:
    kind = run(commands())
    plain = msgpack.unpackb(msgpack.packb(kind.dump_state()))
    loaded = Collectives.load_state(plain)
    assert loaded.state_hash() == kind.state_hash() and loaded.now == kind.now
    more = RecordPayment(DEADLINE + 50 * S, CID, "m3", "A-G1/L1/m3", 1)
    assert loaded.handle(more) == kind.handle(more) and loaded.state_hash() == kind.state_hash()


def test_commands_round_trip_through_the_journal_names() -> None:
    Host()  # the kind is built in
    for command in [*commands(), *awards()]:
        assert decode_command(encode_command(command)) == command  # type: ignore[arg-type]


def test_a_forged_contract_is_caught(tmp_path: Path) -> None:
    journaled = Journaled()
    frames: list[bytes] = []
    for command in preparation():
        frames += journaled.submit(command).frames  # type: ignore[arg-type]
    forged = Submission([], [], journaled.gseq)
    award = RecordLotAward(DEADLINE + 10 * S, CID, "coord", "A-G1", "L1", "supplier-x", 600_001)
    honest = Collectives.load_state(journaled.host.kind(Collectives).dump_state()).handle(award)
    lie = [*honest[:1], honest[1]._replace(total=honest[1].total + 1), honest[2]._replace(total=honest[2].total - 1)]
    journaled.record(forged, award.now, CID, msgpack.packb(encode_command(award)), lie)  # type: ignore[arg-type]
    write_journal(tmp_path / "j", frames + forged.frames)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"


def test_the_feed_shows_the_public_events_without_the_supplier() -> None:
    journaled = Journaled()
    feed = Feed()
    feed.render = journaled.host.public_event
    for command in commands():
        feed.on_events(journaled.submit(command).events)  # type: ignore[arg-type]
    entries = feed.after(0, 100, CID)
    assert [e["type"] for e in entries] == ["CollectiveCreated", "CollectiveConstituted", "NeedsClosed",
                                            "ScheduleGenerated", "ProcurementLaunched", "LotAwardRecorded",
                                            "LotAwardRecorded"]
    assert entries[2]["excluded"] == ["m2"] and all("supplier" not in e for e in entries)


def test_a_withdrawn_need_leaves_the_schedule_and_its_versions_stay() -> None:
    kind = run(preparation()[:-3])
    refused(kind, WithdrawNeed(T0 + 9 * S, CID, "m1", "ZZ"), "unknown_need")
    assert kind.handle(WithdrawNeed(T0 + 9 * S, CID, "m1", "TN")) == [NeedWithdrawn(T0 + 9 * S, CID, "m1", "TN", 2)]
    refused(kind, WithdrawNeed(T0 + 9 * S, CID, "m1", "TN"), "unknown_need")  # already withdrawn
    kind.handle(ConfirmNeeds(T0 + 10 * S, CID, "m1"))
    kind.handle(GenerateSchedule(DEADLINE, CID, "coord"))
    c = kind.collectives[CID]
    assert {ln.article: ln.members for ln in c.schedules[0].lines}["TN"] == (("m3", 2),)
    assert need_versions(c, "m1", "m1", "TN") == [(T0 + 3 * S, 4, "Rabat"), (T0 + 9 * S, 0, "Rabat")]


def test_the_auditors_timeline_and_export_of_a_collective(tmp_path: Path) -> None:
    write(tmp_path / "j", commands())  # type: ignore[arg-type]
    rows = timeline(tmp_path / "j", CID)
    assert [r["command"][0] for r in rows][:5] == ["CreateCollective", *["AcceptConvention"] * 3, "AddArticle"]
    assert ("Tick", ["NeedsClosed"]) in [(r["command"][0], [e[0] for e in r["events"]]) for r in rows]
    export_case(tmp_path / "j", CID, tmp_path / "x")
    assert verify(tmp_path / "x").ok


def test_the_schedule_digest_is_the_documented_hash() -> None:
    """sha256(msgpack([id, version, [[article, lot, unit price, quantity, [[member, quantity],
    ...]], ...]])), built here from plain lists: what an auditor recomputes from the export."""
    kind = run(preparation())
    plain = [CID, 1, [["A4", "L1", 3_000, 160, [["m1", 100], ["m3", 60]]],
                      ["TN", "L1", 45_000, 6, [["m1", 4], ["m3", 2]]],
                      ["CH", "L2", 120_000, 10, [["m1", 10]]]]]
    assert kind.collectives[CID].schedules[0].digest == hashlib.sha256(msgpack.packb(plain)).hexdigest()
