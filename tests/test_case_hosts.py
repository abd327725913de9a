"""`CaseHosts` (one clock per case) against the single `Host`: the same records per case,
the same events, the same state hash; a case rebuilt alone and adopted goes on exactly as
in the host it was written by; a dropped case is unknown."""

from __future__ import annotations

from typing import Any

import pytest
from factories import START, config
from journals import journalable, stream_commands

from auction_engine.case_hosts import CaseHosts
from auction_engine.commands import CreateAuction, PlaceBid
from auction_engine.engine import Engine, QueryError
from auction_engine.events import Event
from auction_engine.journal.format import FRAME, unpack_payload
from auction_engine.journal.sequencer import Journaled
from auction_engine.journal.verifier import Verifier
from auction_engine.kind import Tick

S = 1_000_000


def by_case(journaled: Journaled, events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(journaled.host.event_case(event), []).append(event)
    return out


def case_records(frames: list[bytes]) -> dict[str, list[tuple[Any, ...]]]:
    """Each case's records without their gseq: (aseq, time, command, outcome, prev)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for data in frames:
        record = unpack_payload(data[FRAME.size:])
        out.setdefault(record.auction_id, []).append(
            (record.aseq, record.time, record.command, record.outcome, record.prev))
    return out


def run(journaled: Journaled, commands: list[Any]) -> tuple[list[dict[str, list[Event]]], list[bytes]]:
    outcomes, frames = [], []
    for command in commands:
        submission = journaled.submit(command)
        outcomes.append(by_case(journaled, submission.events))
        frames += submission.frames
    return outcomes, frames


def both(commands: list[Any]) -> tuple[Journaled, Journaled]:
    """`commands` through one host and through `CaseHosts`: the same outcomes, records per
    case and state hash (asserted); the two journals."""
    one, many = Journaled(), Journaled(CaseHosts())
    one_out, one_frames = run(one, commands)
    many_out, many_frames = run(many, commands)
    assert many_out == one_out
    assert case_records(many_frames) == case_records(one_frames)
    assert many.host.state_hash() == one.host.state_hash()
    return one, many


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_case_hosts_journal_what_one_host_journals(seed: int) -> None:
    one, many = both([c for c in stream_commands(seed, 1500) if journalable(c)])
    assert many.chains == one.chains
    engine, view = one.host.kind(Engine), many.host.kind(Engine)
    assert sorted(view.auction_ids()) == sorted(engine.auction_ids())
    for aid in engine.auction_ids():
        assert view.auction(aid).config == engine.auction(aid).config
        for lot in engine.auction(aid).lots:
            assert view.lot_snapshot(aid, lot) == engine.lot_snapshot(aid, lot)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_case_rebuilt_alone_and_adopted_goes_on_as_before(seed: int) -> None:
    """Half the stream through one host; then each case's records replayed alone (as a
    new owner rebuilds it from its stream) and adopted; the second half through both."""
    commands = [c for c in stream_commands(seed, 2000) if journalable(c)]
    half = len(commands) // 2
    one = Journaled()
    _, frames = run(one, commands[:half])
    verifiers: dict[str, Verifier] = {}
    for data in frames:
        record = unpack_payload(data[FRAME.size:])
        verifier = verifiers.setdefault(record.auction_id, Verifier(contiguous=False))
        verifier.feed(record)
    many = Journaled(CaseHosts())
    for case, verifier in verifiers.items():
        many.adopt(case, verifier.journaled)
    assert many.gseq == 0  # its own sequence: the adopted cases' records are numbered past theirs
    assert many.host.state_hash() == one.host.state_hash()
    one_out, one_frames = run(one, commands[half:])
    many_out, many_frames = run(many, commands[half:])
    assert many_out == one_out
    same = {case: [r[:4] for r in records] for case, records in case_records(one_frames).items()}
    assert {case: [r[:4] for r in records] for case, records in case_records(many_frames).items()} == same
    assert many.host.state_hash() == one.host.state_hash()
    streams: dict[str, Verifier] = {}  # (the adopted hosts are `many`'s now: check afresh)
    for data in frames + many_frames:  # each case's stream goes on: chain, increasing gseq, outcomes
        record = unpack_payload(data[FRAME.size:])
        streams.setdefault(record.auction_id, Verifier(contiguous=False)).feed(record)


def test_cases_on_their_own_clocks() -> None:
    """A case whose clock is behind another's still takes commands at its own time, and
    its deadline fires only in its own ticks; a dropped case is unknown again."""
    many = Journaled(CaseHosts())
    many.submit(CreateAuction(START - S, config(auction_id="A1")))
    other = Journaled()
    other.submit(CreateAuction(START - 5 * S, config(auction_id="A2")))
    other.submit(Tick(START, "A2"))
    many.adopt("A2", other)
    many.submit(Tick(START + 3 * S, "A1"))  # A1 runs ahead of A2 ...
    late = many.submit(PlaceBid(START + S, "A2", "L1", "bob", 90_000, "b1"))  # ... A2 takes a bid at its own time
    assert [type(e).__name__ for e in late.events] == ["BidAccepted"]
    assert many.host.now == START + 3 * S
    view = many.host.kind(Engine)
    assert view.auction("A2").lots["L1"].book.best == 90_000
    many.drop("A2")
    with pytest.raises(QueryError):
        view.auction("A2")
    assert sorted(view.auction_ids()) == ["A1"]
    assert all(key[0] != "A2" for key in many.bids)
    assert "A2" not in many.chains


def test_tenders_and_grouped_purchases_on_case_hosts() -> None:
    """The other kinds too: a sealed tender's whole procedure and a grouped purchase
    (with its auction) give the same records per case and state on `CaseHosts`; their
    tables of cases read through the kind views are every case's."""
    import json

    from grouped_example import commands as grouped_commands
    from journals import EXAMPLES

    from auction_engine.tender_scenario import load_tender_scenario, run_tender_scenario
    from grouped_purchases.collectives import Collectives
    from tenders.kind import Tenders

    scenario = load_tender_scenario(json.loads((EXAMPLES / "tender-supply-2-lots.json").read_text()))
    tender = run_tender_scenario(scenario, journal=Journaled()).commands
    for commands in (list(tender), grouped_commands()):
        one, many = both(commands)
        cases = 0
        for cls, table in ((Tenders, "tenders"), (Collectives, "collectives")):
            assert sorted(getattr(many.host.kind(cls), table)) == sorted(getattr(one.host.kind(cls), table))
            cases += len(getattr(one.host.kind(cls), table))
        assert cases == 1  # the tender, or the collective


def test_a_case_adopted_from_a_clock_ahead_fires_its_deadline_at_its_own_time() -> None:
    """Ticks never go back in a case: a case whose time is ahead of a tick (adopted from an
    engine whose clock ran ahead) keeps its due deadline for a later tick."""
    ahead = Journaled()
    ahead.submit(CreateAuction(START - 5 * S, config(auction_id="A2")))
    ahead.submit(Tick(START + 2 * S, "A2"))  # opened, its clock at START + 2 s
    hosts = CaseHosts()
    hosts.adopt("A2", ahead.host)
    close = ahead.host.next_deadline()
    assert close is not None and close > START + 2 * S
    hosts.hosts["A2"].now = close + S  # (as if its engine's clock ran a second past its close)
    assert hosts.tick(close) == []  # not before its own time
    assert hosts.next_deadline() == close  # still due
    events = hosts.tick(close + S)
    assert "LotClosed" in [type(e).__name__ for e in events]
