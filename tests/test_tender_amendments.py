"""Amendments: published to all, a late one moves the opening (and the validity) so that
`amendment_days` remain; deposits made before one must be confirmed or are set aside at
the deadline; refusals change nothing; old journals (18 spec fields) still replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
from factories import START, S
from journals import write
from tender_factories import DAY, MEMBERS, OPENING, deposit, publish, share, simple

from auction_engine.host import Host
from auction_engine.journal.format import decode_command, encode_command
from auction_engine.kind import Tick
from replay import verify
from tenders import CloseAdmission, DecideAdmission, Tenders, WithdrawOffer
from tenders.messages import (
    AmendmentPublished,
    ConfirmOffer,
    DepositsClosed,
    EnvelopeOpened,
    OfferConfirmed,
    OfferSetAside,
    PublishAmendment,
    TenderLotAwarded,
    TenderPublished,
    TenderRefused,
    decode_publish,
    encode_publish,
)

FILE = bytes(range(32))  # the amended file's SHA-256, as the buyer publishes it


def amended() -> list[Any]:
    """Three deposits; an early amendment (opening unchanged), a late one 2 days before
    the opening (moved to 7 days after it); acme confirms, beta withdraws and re-deposits,
    gamma never confirms and is set aside."""
    late = OPENING - 2 * DAY
    return [
        publish(),
        deposit(START + 1 * S, "acme", simple("900000.00")),
        deposit(START + 2 * S, "beta", simple("950000.00")),
        PublishAmendment(START + 3 * S, "T1", "buyer", "A1", "Lot L2: delivery in Rabat"),
        ConfirmOffer(START + 4 * S, "T1", "acme"),
        deposit(START + 5 * S, "gamma", simple("980000.00")),
        PublishAmendment(late, "T1", "buyer", "A2", "", FILE),
        ConfirmOffer(late + 1 * S, "T1", "acme"),
        WithdrawOffer(late + 2 * S, "T1", "beta", "b-w"),
        deposit(late + 3 * S, "beta", simple("960000.00")),
        Tick(late + 7 * DAY),
    ]


def test_a_late_amendment_moves_the_opening_and_unconfirmed_deposits_are_set_aside() -> None:
    host = Host()
    out = [host.handle(c) for c in amended()]
    tender = host.kind(Tenders).tenders["T1"]
    late = OPENING - 2 * DAY
    validity = 75 * DAY
    assert out[3] == [AmendmentPublished(START + 3 * S, "T1", "A1", "Lot L2: delivery in Rabat", b"", OPENING, 2)]
    assert out[4] == [OfferConfirmed(START + 4 * S, "T1", "acme")]
    assert out[6] == [AmendmentPublished(late, "T1", "A2", "", FILE, late + 7 * DAY, 3)]
    assert tender.validity_until == late + 7 * DAY + validity
    assert out[7] == [OfferConfirmed(late + 1 * S, "T1", "acme")]
    assert [type(e) for e in out[9]] == [type(out[1][0])]  # a re-deposit needs no confirmation
    # at the new opening gamma, never confirmed, is set aside
    assert out[10] == [OfferSetAside(late + 7 * DAY, "T1", "gamma", "not_confirmed"),
                       DepositsClosed(late + 7 * DAY, "T1", 2)]
    assert sorted(tender.deposits) == ["acme", "beta"] and list(tender.set_aside) == ["gamma"]
    assert tender.set_aside["gamma"][:2] == [late + 7 * DAY, "not_confirmed"]
    opened = [e for m in MEMBERS[:3] for e in host.handle(share(late + 8 * DAY, m))]
    assert sorted(e.bidder_id for e in opened if type(e) is EnvelopeOpened) == ["acme", "acme", "beta", "beta"]
    for b in ("acme", "beta"):
        host.handle(DecideAdmission(late + 8 * DAY, "T1", "m1", b, True))
    awards = host.handle(CloseAdmission(late + 8 * DAY, "T1", "m1"))
    assert awards[0] == TenderLotAwarded(late + 8 * DAY, "T1", "L1", "beta", 960_000_00, 965_000_00)
    entry = host.kind(Tenders).public_event(out[6][0])
    assert entry == {"type": "AmendmentPublished", "time": "2026-03-10T10:00:00.000000Z", "tender_id": "T1",
                     "amendment_id": "A2", "text": "", "digest": FILE.hex(),
                     "opening_at": "2026-03-17T10:00:00.000000Z", "to_confirm": 3}


def test_the_opening_does_not_fire_at_its_old_time() -> None:
    host = Host()
    for c in amended()[:10]:
        host.handle(c)
    assert host.kind(Tenders).next_deadline() == OPENING - 2 * DAY + 7 * DAY
    assert host.handle(Tick(OPENING)) == []
    assert host.kind(Tenders).tenders["T1"].status == "published"


def test_refusals_change_nothing() -> None:
    host = Host()
    for c in amended()[:3]:
        host.handle(c)
    before = host.state_hash()
    now = START + 10 * S
    cases = [
        (PublishAmendment(now, "T1", "intruder", "A1", "x"), "not_the_buyer"),
        (PublishAmendment(now, "T1", "buyer", "A1", "  "), "malformed"),
        (PublishAmendment(now, "T1", "buyer", "A1", "x", b"short"), "malformed"),
        (PublishAmendment(now, "T1", "buyer", "bad id!", "x"), "malformed"),
        (PublishAmendment(now, "T1", "buyer", 7, "x"), "malformed"),  # type: ignore[arg-type]
        (PublishAmendment(now, "T1", "buyer", "A1", 5), "malformed"),  # type: ignore[arg-type]
        (PublishAmendment(now, "nope", "buyer", "A1", "x"), "unknown_tender"),
        (ConfirmOffer(now, "T1", "acme"), "already_confirmed"),
        (ConfirmOffer(now, "T1", "nobody"), "nothing_to_confirm"),
    ]
    for command, code in cases:
        events = host.handle(command)
        assert [(type(e), e.code) for e in events] == [(TenderRefused, code)], command
        assert host.state_hash() == before
    host.handle(PublishAmendment(now, "T1", "buyer", "A1", "x"))
    assert host.handle(PublishAmendment(now, "T1", "buyer", "A1", "y"))[0].code == "amendment_exists"
    host.handle(Tick(OPENING))
    after = host.state_hash()
    assert host.handle(PublishAmendment(OPENING, "T1", "buyer", "A9", "x"))[0].code == "deposit_closed"
    assert host.handle(ConfirmOffer(OPENING, "T1", "acme"))[0].code == "deposit_closed"
    assert host.state_hash() == after


def test_journaled_verified_and_an_old_journal_still_decodes(tmp_path: Path) -> None:
    commands = amended()
    journaled = write(tmp_path / "j", commands)
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == journaled.host.state_hash(), checked.problem
    loaded = Host.load_state(msgpack.unpackb(msgpack.packb(journaled.host.dump_state()), raw=False))
    assert loaded.state_hash() == journaled.host.state_hash()
    for command in commands:
        assert decode_command(msgpack.unpackb(msgpack.packb(encode_command(command)), use_list=False,
                                              raw=False)) == command
    old = encode_publish(publish())  # a journal of before amendments: 18 spec fields
    old[3] = old[3][:18]
    replayed = decode_publish(tuple(old[1:]))
    assert replayed == publish() and replayed.spec.amendment_days == 7
    assert [type(e) for e in Host().handle(replayed)] == [TenderPublished]
