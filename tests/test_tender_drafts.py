"""Drafts: a buyer's private tender before publication. Saved, replaced, discarded or
published (the publication's spec wins); never in the feed, the tender table or a
deadline; refusals change nothing; journaled, recovered, checkpointed and verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
from factories import START, S
from journals import write
from tender_factories import DAY, OPENING, deposit, publish, simple, spec

from auction_engine.host import Host
from auction_engine.journal import recover
from auction_engine.journal.format import decode_command, encode_command
from auction_engine.kind import StateError, Tick
from replay import verify
from tenders import AskQuestion, CancelTender, DiscardDraft, DraftTender, RegisterDownload, Tenders
from tenders.messages import DraftDiscarded, DraftSaved, OfferDeposited, TenderPublished, TenderRefused

BARE = spec(public_key=b"", share_digests=())  # a draft before the key pair is made


def draft(now: int = START, tender_id: str = "T1", **changes: object) -> DraftTender:
    return DraftTender(now, tender_id, BARE._replace(**changes))


def run(commands: list[Any]) -> tuple[Host, list[list[Any]]]:
    host = Host()
    return host, [host.handle(c) for c in commands]


def test_saved_replaced_then_published_with_the_publications_spec() -> None:
    host, out = run([draft(), draft(START + S, opening_at=OPENING + DAY, threshold=2),
                     publish(START + 2 * S), deposit(START + 3 * S, "acme", simple("900000.00"))])
    assert out[0] == [DraftSaved(START, "T1", "buyer")]
    assert out[1] == [DraftSaved(START + S, "T1", "buyer")]
    kind = host.kind(Tenders)
    assert out[2] == [TenderPublished(START + 2 * S, "T1", OPENING, OPENING + 75 * DAY)]
    assert kind.drafts == {} and kind.tenders["T1"].spec == spec()  # the publication's, not the draft's
    assert [type(e) for e in out[3]] == [OfferDeposited]


def test_a_replaced_draft_keeps_the_last_spec_and_a_discarded_one_is_gone() -> None:
    host, _ = run([draft(), draft(START + S, threshold=2)])
    kind = host.kind(Tenders)
    assert kind.drafts == {"T1": [BARE._replace(threshold=2), START + S]}
    assert kind.tenders == {} and kind.cases() == ["T1"] and kind.next_deadline() is None
    assert host.handle(DiscardDraft(START + 2 * S, "T1", "buyer")) == [DraftDiscarded(START + 2 * S, "T1")]
    assert kind.drafts == {} and kind.cases() == []
    assert host.handle(DiscardDraft(START + 3 * S, "T1", "buyer")) == [
        TenderRefused(START + 3 * S, "T1", "buyer", "DiscardDraft", "unknown_tender")]


def test_a_draft_may_carry_the_key_and_an_opening_past_until_publication() -> None:
    host, out = run([draft(opening_at=START - DAY), DraftTender(START + S, "T2", spec())])
    assert [type(e) for e in out[0] + out[1]] == [DraftSaved, DraftSaved]
    assert host.handle(publish(START + 2 * S, opening_at=START - DAY))[0].code == "opening_in_past"
    assert "T1" in host.kind(Tenders).drafts  # a refused publication leaves the draft


def test_no_feed_event_and_no_deadline_from_a_draft() -> None:
    host, out = run([draft(), draft(START + S), DiscardDraft(START + 2 * S, "T1", "buyer"), draft(START + 3 * S)])
    assert not [e for events in out for e in events if type(e) in Tenders.codec.public]
    assert host.deadline_bound() is None
    assert host.handle(Tick(OPENING + 100 * DAY)) == []  # past its opening and validity: nothing fires
    assert host.kind(Tenders).drafts["T1"][0] == BARE


def test_refusals_change_nothing() -> None:
    host, _ = run([draft(), publish(START, "T2")])
    before = host.state_hash()
    later = START + S
    refusals = [
        (deposit(later, "acme", simple("1.00")), "not_published"),
        (RegisterDownload(later, "T1", "acme"), "not_published"),
        (AskQuestion(later, "T1", "acme", "q1", "why?"), "not_published"),
        (CancelTender(later, "T1", "buyer", "no"), "not_published"),
        (draft(later, buyer_id="other"), "not_the_buyer"),
        (publish(later, buyer_id="other"), "not_the_buyer"),
        (DiscardDraft(later, "T1", "other"), "not_the_buyer"),
        (draft(later, "T2"), "already_published"),
        (DiscardDraft(later, "T2", "buyer"), "already_published"),
        (DiscardDraft(later, "T9", "buyer"), "unknown_tender"),
        (draft(later, "bad id"), "malformed"),
        (draft(later, opening_at=0), "malformed"),
        (draft(later, lots=()), "invalid_lots"),
        (draft(later, public_key=b"short"), "invalid_public_key"),
        (draft(later, share_digests=(b"x" * 32,)), "invalid_commission"),
        (draft(later, threshold=6), "invalid_commission"),
        (draft(later, parts=("admin",)), "invalid_parts"),
        (draft(later, answer_days=9), "invalid_delays"),
        (draft(later, preference="abc"), "invalid_percent"),
        (publish(later, public_key=b""), "invalid_public_key"),  # publication makes the key: it must be there
        (DraftTender(later, "T3", "junk"), "malformed"),  # type: ignore[arg-type]
        (DiscardDraft(later, ["T1"], "buyer"), "unknown_tender"),  # type: ignore[arg-type]
        (RegisterDownload(later, ["T1"], "acme"), "unknown_tender"),  # type: ignore[arg-type]
    ]
    for command, code in refusals:
        events = host.handle(command)
        assert [(type(e), e.code) for e in events] == [(TenderRefused, code)], command
        assert not host.kind(Tenders).changes_state(events)
        assert host.state_hash() == before


def test_a_draft_is_in_the_state_hash_and_holds_its_id() -> None:
    empty, _ = run([])
    host, _ = run([draft()])
    assert host.state_hash() != empty.state_hash()
    replaced, _ = run([draft(), draft(START + S, threshold=2)])
    assert replaced.state_hash() != host.state_hash()
    discarded, _ = run([draft(), DiscardDraft(START + S, "T1", "buyer")])
    assert discarded.state_hash() == empty.state_hash()
    assert host.case_kind["T1"] is host.kind(Tenders)  # no auction may take a draft's id


def test_journaled_recovered_checkpointed_and_verified(tmp_path: Path) -> None:
    commands = [draft(), draft(START + S, "T2"), draft(START + 2 * S, threshold=2),
                DiscardDraft(START + 3 * S, "T2", "buyer"), draft(START + 4 * S, "T3")]
    journaled = write(tmp_path / "j", commands)
    state = journaled.host.state_hash()
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == state == report.state_hash
    assert recovered.host.kind(Tenders).drafts == {"T1": [BARE._replace(threshold=2), START + 2 * S],
                                                   "T3": [BARE, START + 4 * S]}
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == state, checked.problem
    dumped = journaled.host.dump_state()
    loaded = Host.load_state(msgpack.unpackb(msgpack.packb(dumped), raw=False))
    assert loaded.state_hash() == state and loaded.kind(Tenders).drafts == journaled.host.kind(Tenders).drafts
    for command in commands:
        assert decode_command(msgpack.unpackb(msgpack.packb(encode_command(command)), use_list=False,
                                              raw=False)) == command


def test_an_older_state_format_is_refused_so_recovery_replays() -> None:
    host, _ = run([publish()])
    state = host.kind(Tenders).dump_state()
    assert isinstance(state, list) and state[0] == 3
    with pytest.raises(StateError, match="not a tender kind's state: format 2"):
        Tenders.load_state([2, *state[1:3]])
