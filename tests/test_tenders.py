"""The tender kind: its lifecycle and refusals, secrecy until the opening, and the
platform's paths (journaled, recovered, checkpointed, verified, a forged outcome caught)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgpack
import pytest
from factories import START, S
from journals import write
from tender_factories import DAY, MEMBERS, OPENING, SHARES, deposit, financial, publish, share, simple, spec

from auction_engine.cli import write_journal
from auction_engine.host import Host
from auction_engine.journal import Journaled, Submission, recover
from auction_engine.journal.format import decode_command, encode_command
from auction_engine.kind import Tick
from replay import verify
from tenders import (
    CancelTender,
    CloseAdmission,
    DecideAdmission,
    DepositOffer,
    RecordRate,
    SubmitShare,
    Tenders,
    WithdrawOffer,
)
from tenders.messages import (
    DepositsClosed,
    EnvelopeOpened,
    EnvelopeUnreadable,
    OfferWithdrawn,
    TenderLotAwarded,
    TenderLotUnsuccessful,
    TenderOpened,
    TenderRefused,
)
from tenders.sealing import digest, new_key_pair, seal

AFTER = OPENING + 1 * S


def lifecycle() -> list[Any]:
    """Five bidders, one withdrawal and re-deposit, a late deposit, an opening with 3 of 5
    shares, one envelope that does not open, a foreign offer, admission and the award."""
    bad_key = new_key_pair()[1]
    return [
        publish(),
        deposit(START + 1 * S, "acme", simple("900000.00"), client_id="a-1"),
        deposit(START + 2 * S, "beta", simple("1050000.00")),
        deposit(START + 3 * S, "gamma", financial({"L1": ("80000.00", [("1", "1", "80000.00")])}, "EUR")),
        deposit(START + 4 * S, "delta", simple("940000.00")),
        deposit(START + 5 * S, "eps", financial({"L1": ("880000.00", [("1", "100", "8900.00")]),
                                                 "L2": ("45000.00", [("1", "1", "45000.00")])})),
        deposit(START + 6 * S, "acme", simple("1.00"), client_id="a-1"),  # a retry: the first outcome
        WithdrawOffer(START + 7 * S, "T1", "delta", "d-w"),
        deposit(START + 8 * S, "delta", simple("940000.00")),  # re-deposit, a new order
        deposit(START + 9 * S, "zeta", simple("700000.00"), public=bad_key),  # sealed to another key
        deposit(OPENING, "late", simple("1.00")),  # at the deadline: refused
        RecordRate(OPENING + 1 * S, "T1", "buyer", "EUR", "10.85"),
        share(OPENING + 2 * S, "m2"),
        share(OPENING + 3 * S, "m4"),
        share(OPENING + 4 * S, "m5"),
        *[DecideAdmission(OPENING + 5 * S, "T1", "m1", b, True, "", b != "delta", "20" if b == "delta" else "")
          for b in ("acme", "beta", "gamma", "delta", "eps")],
        DecideAdmission(OPENING + 5 * S, "T1", "m1", "zeta", False, "no offer could be read"),
        CloseAdmission(OPENING + 6 * S, "T1", "m3"),
        Tick(OPENING + 100 * DAY),
    ]


def run(commands: list[Any]) -> tuple[Host, list[list[Any]]]:
    host = Host()
    return host, [host.handle(c) for c in commands]


def test_a_tender_from_publication_to_award() -> None:
    host, out = run(lifecycle())
    kind = host.kind(Tenders)
    tender = kind.tenders["T1"]
    assert type(out[7][0]) is OfferWithdrawn and tender.orders["delta"] == 5  # re-deposited last
    assert [type(e) for e in out[10]] == [DepositsClosed, TenderRefused] and out[10][1].code == "deposit_closed"
    assert out[10][0].offers == 6
    opened = out[14]
    assert type(opened[1]) is TenderOpened and opened[1].private_key == tender.private_key
    unreadable = [(e.bidder_id, e.part, e.code) for e in opened if type(e) is EnvelopeUnreadable]
    assert unreadable == [("zeta", "admin", "undecryptable"), ("zeta", "financial", "undecryptable")]
    assert {e.bidder_id for e in opened if type(e) is EnvelopeOpened} == {"acme", "beta", "gamma", "delta", "eps"}
    # P = (1,000,000 + (900,000 + 1,050,000 + 868,000 + 940,000 + 890,000) / 5) / 2 = 964,800;
    # delta (foreign, 20%) is the closest below: case 1, ranked at 799,000; acme wins (see
    # the worked example in test_tender_rules).
    awards = out[-2]
    assert awards == [TenderLotAwarded(OPENING + 6 * S, "T1", "L1", "acme", 900_000_00, 964_800_00),
                      TenderLotAwarded(OPENING + 6 * S, "T1", "L2", "eps", 45_000_00, 47_500_00)]
    steps = {s["step"]: s for s in kind.explain("T1", "L1")}
    assert steps["national_preference"]["adjustments"][0]["case"] == 1
    assert [s for s in kind.explain("T1", "L1") if s["step"] == "arithmetic" and s["corrected"]] == [
        {"step": "arithmetic", "bidder_id": "eps", "form_total_micro": 880_000 * 10**6,
         "bpde_total_exact": 890_000 * 10**9, "corrected": True}]
    assert out[-1] == [] and kind.next_deadline() is None  # decided: the validity deadline is gone


def test_retries_and_refusals_change_nothing() -> None:
    host, _ = run(lifecycle()[:10])
    before = host.state_hash()
    ct = seal(spec().public_key, simple("5.00"), "T1", "new", "financial")
    refusals = [
        (deposit(START + 20 * S, "acme", simple("2.00")), "already_deposited"),
        (DepositOffer(START + 20 * S, "T1", "new", (("financial", ct, digest(ct)),)), "malformed_envelopes"),
        (DepositOffer(START + 20 * S, "T1", "new", (("financial", ct, digest(b"x")), ("admin", ct, digest(ct)))),
         "hash_mismatch"),
        (DepositOffer(START + 20 * S, "T1", "new", "junk"), "malformed_envelopes"),  # type: ignore[arg-type]
        (deposit(START + 20 * S, "new", simple("2.00"), tender_id="T9"), "unknown_tender"),
        (WithdrawOffer(START + 20 * S, "T1", "nobody"), "nothing_to_withdraw"),
        (share(START + 20 * S, "m1"), "opening_not_started"),
        (DecideAdmission(START + 20 * S, "T1", "m1", "acme", True), "not_in_admission"),
        (CloseAdmission(START + 20 * S, "T1", "m1"), "not_in_admission"),
        (CancelTender(START + 20 * S, "T1", "someone", "why"), "not_the_buyer"),
        (CancelTender(START + 20 * S, "T1", "buyer", " "), "reason_required"),
        (RecordRate(START + 20 * S, "T1", "buyer", "MAD", "1"), "invalid_currency"),
        (RecordRate(START + 20 * S, "T1", "buyer", "EUR", "-1"), "invalid_rate"),
        (publish(START + 20 * S), "tender_exists"),
        (publish(START + 20 * S, "T2", opening_at=START), "opening_in_past"),
        (publish(START + 20 * S, "T2", threshold=6), "invalid_commission"),
        (publish(START + 20 * S, "T2", lots=()), "invalid_lots"),
        (publish(START + 20 * S, "T2", public_key=b"short"), "invalid_public_key"),
        (publish(START + 20 * S, "T2", parts=("admin",)), "invalid_parts"),
        (publish(START + 20 * S, "T2", preference="abc"), "invalid_percent"),
        (publish(START + 20 * S, "T2", validity_days=0), "invalid_validity"),
    ]
    for command, code in refusals:
        events = host.handle(command)
        assert [(type(e), e.code) for e in events] == [(TenderRefused, code)], command
        assert not host.kind(Tenders).changes_state(events)
        assert host.state_hash() == before


def test_the_opening_refuses_wrong_shares_and_waits_for_k() -> None:
    host, _ = run(lifecycle()[:11])
    before = host.state_hash()
    t = OPENING + 2 * S
    wrong = bytes([2]) + SHARES[1][1:-1] + bytes([SHARES[1][-1] ^ 1])
    for command, code in [(SubmitShare(t, "T1", "intruder", SHARES[0]), "not_a_member"),
                          (SubmitShare(t, "T1", "m1", SHARES[1]), "bad_share"),  # another member's
                          (SubmitShare(t, "T1", "m2", wrong), "bad_share"),
                          (SubmitShare(t, "T1", "m2", b"short"), "bad_share")]:
        assert [e.code for e in host.handle(command)] == [code]
        assert host.state_hash() == before
    host.handle(share(t, "m1"))
    assert [e.code for e in host.handle(share(t, "m1"))] == ["share_already_submitted"]
    host.handle(share(t, "m3"))  # two of three: no opening
    tender = host.kind(Tenders).tenders["T1"]
    assert tender.status == "opening" and tender.private_key == b"" and host.kind(Tenders).explain("T1", "L1") == []
    # the offers' validity ends with no opening: every lot is unsuccessful
    assert host.next_deadline() == tender.validity_until == OPENING + 75 * DAY
    events = host.handle(Tick(OPENING + 75 * DAY))
    assert events == [TenderLotUnsuccessful(OPENING + 75 * DAY, "T1", lot, "offers_expired") for lot in ("L1", "L2")]


def test_unsuccessful_reasons_and_cancellation() -> None:
    host = Host()
    host.handle(publish(tender_id="none"))
    host.handle(publish(tender_id="rejected"))
    host.handle(publish(tender_id="garbled"))
    host.handle(publish(tender_id="cancelled"))
    host.handle(deposit(START + S, "acme", simple("10.00"), tender_id="rejected"))
    host.handle(deposit(START + S, "acme", b"not json", tender_id="garbled"))
    assert host.handle(CancelTender(START + 2 * S, "cancelled", "buyer", "budget withdrawn"))[0].reason
    assert host.handle(deposit(START + 3 * S, "acme", simple("1.00"), tender_id="cancelled"))[0].code == \
        "tender_cancelled"
    closes = host.handle(Tick(OPENING))
    assert [(e.tender_id, e.lot_id, e.reason) for e in closes if type(e) is TenderLotUnsuccessful] == [
        ("none", "L1", "no_offers"), ("none", "L2", "no_offers")]
    for j, tid in enumerate(("rejected", "garbled")):
        for i, m in enumerate(MEMBERS[:3]):
            host.handle(share(OPENING + (3 * j + i + 1) * S, m, tender_id=tid))
    assert host.handle(share(OPENING + 7 * S, "m4", tender_id="garbled"))[0].code == "not_opening"
    assert host.kind(Tenders).tenders["garbled"].opened["acme"]["financial"][0] == "malformed_offer"
    assert host.handle(DecideAdmission(OPENING + 8 * S, "rejected", "m1", "acme", False, ""))[0].code == \
        "reason_required"
    host.handle(DecideAdmission(OPENING + 8 * S, "rejected", "m1", "acme", False, "missing guarantee"))
    assert host.handle(CloseAdmission(OPENING + 8 * S, "garbled", "m1"))[0].code == "undecided_bidders"
    host.handle(DecideAdmission(OPENING + 8 * S, "garbled", "m1", "acme", True))
    reasons = [(e.lot_id, e.reason) for tid in ("rejected", "garbled")
               for e in host.handle(CloseAdmission(OPENING + 9 * S, tid, "m1"))]
    assert reasons == [("L1", "none_admitted"), ("L2", "no_offers"), ("L1", "no_offers"), ("L2", "no_offers")]
    assert host.handle(CancelTender(OPENING + 9 * S, "rejected", "buyer", "late"))[0].code == "already_decided"


def test_before_the_opening_no_record_holds_a_plaintext_offer(tmp_path: Path) -> None:
    """Search the journal's and a checkpoint's bytes for the amounts and the plaintexts."""
    commands = lifecycle()
    plaintexts = [simple("900000.00"), simple("1050000.00"), simple("940000.00")]
    secrets = [b"900000.00", b"1050000.00", b"940000.00", b"8900.00", *plaintexts]
    write(tmp_path / "before", commands[:13])  # one share: not open
    host, _ = run(commands[:13])
    blobs = [f.read_bytes() for f in (tmp_path / "before").iterdir()]
    blobs.append(msgpack.packb(host.dump_state()))
    assert not [s for s in secrets for blob in blobs if s in blob]
    write(tmp_path / "after", commands)
    after = b"".join(f.read_bytes() for f in (tmp_path / "after").iterdir())
    assert all(p in after for p in plaintexts)  # the opening record reveals them


def test_journaled_recovered_checkpointed_and_verified(tmp_path: Path) -> None:
    commands = lifecycle()
    journaled = write(tmp_path / "j", commands)
    state = journaled.host.state_hash()
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == state == report.state_hash
    checked = verify(tmp_path / "j")
    assert checked.ok and checked.state_hash == state, checked.problem
    loaded = Host.load_state(msgpack.unpackb(msgpack.packb(journaled.host.dump_state()), raw=False))
    assert loaded.state_hash() == state
    for command in commands:
        assert decode_command(msgpack.unpackb(msgpack.packb(encode_command(command)), use_list=False,
                                              raw=False)) == command


def test_a_retry_gets_the_first_outcome_and_refusals_are_not_journaled() -> None:
    journaled = Journaled()
    out = [journaled.submit(c) for c in lifecycle()[:11]]
    assert out[6].duplicate and out[6].events == out[1].events and not out[6].frames
    assert out[10].frames  # the deadline's record; the late deposit itself is not journaled
    assert [type(e) for e in out[10].events] == [DepositsClosed, TenderRefused]


def test_a_forged_award_is_caught(tmp_path: Path) -> None:
    journaled = Journaled()
    frames: list[bytes] = []
    commands = lifecycle()
    for command in commands[:-2]:
        frames += journaled.submit(command).frames
    forged = Submission([], [], journaled.gseq)
    close = commands[-2]
    honest = Host.load_state(journaled.host.dump_state()).handle(close)
    lie = [e._replace(bidder_id="beta") if type(e) is TenderLotAwarded and e.lot_id == "L1" else e for e in honest]
    journaled.record(forged, close.now, "T1", msgpack.packb(encode_command(close)), lie)
    write_journal(tmp_path / "j", frames + forged.frames)
    checked = verify(tmp_path / "j")
    assert not checked.ok and checked.problem is not None and checked.problem.code == "divergence"


def random_command(rng: random.Random, now: int) -> Any:
    """One command of the seeded stream: valid, late, early or wrong, over tenders T0-T2."""
    tid, bidder = f"T{rng.randrange(3)}", rng.choice(["acme", "beta", "gamma", "delta"])
    member = rng.choice([*MEMBERS, "nobody"])
    amount = f"{rng.randrange(1, 2_000_000)}.{rng.randrange(100):02d}"
    pick = rng.randrange(8)
    if pick == 0:
        return deposit(now, bidder, simple(amount), tender_id=tid)
    if pick == 1:
        return WithdrawOffer(now, tid, bidder)
    if pick in (2, 3):
        return share(now, member, tid) if member != "nobody" else SubmitShare(now, tid, member, b"x" * 33)
    if pick == 4:
        return DecideAdmission(now, tid, member, bidder, rng.random() < 0.8, "reason", rng.random() < 0.7,
                               rng.choice(["", "30", "10"]))
    if pick == 5:
        return CloseAdmission(now, tid, member)
    if pick == 6:
        return RecordRate(now, tid, "buyer", "EUR", "10.5")
    return CancelTender(now, tid, "buyer", "why") if rng.random() < 0.05 else Tick(now)


def test_a_seeded_stream_replays_to_the_same_state() -> None:
    """Random commands (valid, late, wrong) over three tenders: never an exception; the same
    stream in a fresh host, or resumed from a dump at any point, gives the same events and hash."""
    rng = random.Random(15)
    now = START
    commands: list[Any] = [publish(now, f"T{i}", opening_at=OPENING + i * DAY) for i in range(3)]
    for _ in range(400):
        now += rng.choice([0, S, 3600 * S, DAY // 2])
        commands.append(random_command(rng, now))
    host, out = run(commands)
    again, out_again = run(commands)
    assert out == out_again and host.state_hash() == again.state_hash()
    for cut in (50, 150, 250):
        first, _ = run(commands[:cut])
        resumed = Host.load_state(msgpack.unpackb(msgpack.packb(first.dump_state()), raw=False))
        rest = [resumed.handle(c) for c in commands[cut:]]
        assert rest == out[cut:] and resumed.state_hash() == host.state_hash()
    seen = {type(e).__name__ for events in out for e in events}
    assert {"OfferDeposited", "OfferWithdrawn", "TenderOpened", "AdmissionDecided", "TenderLotAwarded"} <= seen


@pytest.mark.parametrize("part", ["admin", "financial"])
def test_an_envelope_for_another_part_does_not_open(part: str) -> None:
    """Envelopes are bound to (tender, bidder, part): swapped ones are recorded, not a crash."""
    host = Host()
    host.handle(publish())
    good = deposit(START + S, "acme", simple("10.00"))
    swapped = tuple((p, c, d) for (p, _, _), (_, c, d) in zip(good.envelopes, reversed(good.envelopes),
                                                               strict=True))
    host.handle(good._replace(envelopes=swapped))
    for i, m in enumerate(MEMBERS[:3]):
        events = host.handle(share(OPENING + (i + 1) * S, m))
    assert [(e.part, e.code) for e in events if type(e) is EnvelopeUnreadable] == [
        ("admin", "undecryptable"), ("financial", "undecryptable")]
    assert host.kind(Tenders).tenders["T1"].opened["acme"][part][0] == "undecryptable"
