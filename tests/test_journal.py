"""The journal: records, replay, per-auction export, torn tails, corruption and repair."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgpack
import pytest
from factories import END, START, S, config, kinds
from hypothesis import given
from hypothesis import strategies as st
from journals import (
    journalable,
    plain_result,
    reference_verify,
    scenario_journal,
    segment,
    stream_commands,
    write,
)

from auction_engine import CreateAuction, Engine, PlaceBid, Tick
from auction_engine.events import BidAccepted
from auction_engine.journal import JournalCorruption, Journaled, JournalReader, recover, repair
from auction_engine.journal.format import (
    FRAME,
    GENESIS,
    FormatError,
    SegmentHeader,
    decode_command,
    encode_command,
    frame,
    pack_payload,
)
from auction_engine.money import MAX_AMOUNT, format_amount
from replay import export, verify
from replay.verify import _verify_shared

SEED = 20261121


@pytest.fixture(scope="module")
def commands() -> list:
    return stream_commands(SEED, 3000)


def test_commands_round_trip_through_their_encoding() -> None:
    for command in [CreateAuction(START, config()), PlaceBid(START, "A1", "L1", "bob", 100, "c-1"),
                    Tick(START), Tick(START, "A1")]:
        assert decode_command(encode_command(command)) == command
    for bad in [[], ["Nope", 1], ["PlaceBid", "x", "A1"], ["CreateAuction", 1, {"auction_id": 3}], "PlaceBid"]:
        with pytest.raises(FormatError):
            decode_command(bad)


def test_the_reference_encoder_writes_the_same_bytes_as_the_fast_path(tmp_path: Path) -> None:
    """`Journaled` splices pre-packed commands; `pack_payload` (used by the tamper suite to
    forge records) packs whole: both must give the same payload for the same fields."""
    scenario_journal(tmp_path / "j")
    for record, _ in JournalReader(tmp_path / "j").records():
        fields = msgpack.unpackb(record.payload, raw=False)
        assert pack_payload(*fields) == record.payload


def test_outcomes_packed_event_by_event_are_the_reference_bytes() -> None:
    """The writer packs each event as a NamedTuple behind its type name's prefix."""
    from auction_engine.events import BidRejected, LotClosed
    from auction_engine.journal.format import encode_events, pack_outcome

    accepted = BidAccepted(START, "A1", "L1", "bob", 90_000, 7, 1, 90_000)
    rejected = BidRejected(START, "A1", "L1", "eve", 1.5, "invalid_amount", "the amount must be...")
    closed = LotClosed(START, "A1", "L2", "scheduled")
    for events in ([accepted], [rejected], [accepted, closed], [closed] * 15, [closed] * 16, [rejected] * 70_000):
        assert pack_outcome(events) == msgpack.packb(encode_events(events), use_bin_type=True)


def test_replaying_a_journal_gives_the_same_engine(tmp_path: Path, commands: list) -> None:
    journaled = write(tmp_path / "j", commands)
    plain = Engine()
    for command in filter(journalable, commands):
        plain.handle(command)
    plain.handle(Tick(plain.now))
    journaled.submit(Tick(journaled.engine.now))
    assert journaled.engine.state_hash() == plain.state_hash()
    recovered, report = recover(tmp_path / "j")
    assert report.torn is None and report.records == journaled.gseq
    assert recovered.host.state_hash() == report.state_hash
    assert recovered.chains == journaled.chains


def test_each_auction_exports_and_verifies_alone(tmp_path: Path, commands: list) -> None:
    journaled = write(tmp_path / "j", commands)
    result = verify(tmp_path / "j")
    assert result.ok, result.problem
    assert len(result.auctions) == len(journaled.chains) > 3
    for aid in list(journaled.chains)[:4]:
        out = export(tmp_path / "j", aid, tmp_path / f"{aid}.journal")
        assert out.ok, out.problem
        assert out.kind == "export" and list(out.auctions) == [aid]
        assert out.auctions[aid].head == journaled.chains[aid][1].hex()
        # the auction's state, replayed alone, is the one it has in the whole engine
        alone = recover_alone(tmp_path / f"{aid}.journal")
        assert alone.auction(aid).canonical() == journaled.engine.auction(aid).canonical()


def recover_alone(path: Path) -> Engine:
    from auction_engine.journal import Verifier

    verifier = Verifier(contiguous=False)
    for record, where in JournalReader(path).records():
        verifier.feed(record, where)
    return verifier.journaled.engine


def test_a_tick_is_journaled_per_auction(tmp_path: Path) -> None:
    journaled = Journaled()
    for aid in ("A1", "A2"):
        journaled.submit(CreateAuction(START - S, config(auction_id=aid)))
    submission = journaled.submit(PlaceBid(START + S, "A2", "L1", "bob", 90_000))
    # both lots open first (one tick record each), then the bid
    assert len(submission.frames) == 3
    records = [r for r, _ in JournalReader(write_frames(tmp_path, journaled, submission.frames)).records()]
    assert [(r.auction_id, r.command[0], r.command[-1]) for r in records[:2]] == [("A1", "Tick", "A1"),
                                                                             ("A2", "Tick", "A2")]


def write_frames(tmp_path: Path, journaled: Journaled, frames: list[bytes]) -> Path:
    """A segment holding only `frames` (which must start at gseq 3 here: after two creations)."""
    from auction_engine.journal import Position, SegmentStore

    store = SegmentStore(tmp_path, Position(0, 0, journaled.gseq - len(frames) + 1), durability="none")
    store.append(frames)
    store.close()
    return segment(tmp_path)


def test_a_repeated_client_bid_id_gets_the_first_outcome_and_is_not_journaled() -> None:
    journaled = Journaled()
    journaled.submit(CreateAuction(START - S, config()))
    first = journaled.submit(PlaceBid(START + S, "A1", "L1", "bob", 90_000, "bid-1"))
    again = journaled.submit(PlaceBid(START + 2 * S, "A1", "L1", "bob", 80_000, "bid-1"))
    assert kinds(first.events) == ["LotOpened", "BidAccepted"]  # the opening was due first
    assert again.duplicate and again.events == first.events[1:] and again.frames == []
    other = journaled.submit(PlaceBid(START + 2 * S, "A1", "L1", "alice", 80_000, "bid-1"))
    assert not other.duplicate and other.frames  # client ids are per bidder


def test_refusals_that_change_nothing_are_not_journaled() -> None:
    journaled = Journaled()
    journaled.submit(CreateAuction(START - S, config()))
    gseq = journaled.gseq
    assert journaled.submit(CreateAuction(START - S, config())).frames == []  # auction_exists
    assert journaled.submit(PlaceBid(START - S, "nope", "L1", "bob", 1)).frames == []  # unknown_auction
    assert journaled.submit(PlaceBid(START - S, "A1", "L1", "bob", 1)).frames  # lot_not_open: counted
    assert journaled.gseq == gseq + 1
    with pytest.raises(FormatError) as info:
        journaled.submit(PlaceBid(START - S, "A1", "L1", "bob", 10**30))
    assert info.value.code == "unjournalable"
    assert journaled.gseq == gseq + 1


def test_an_unjournalable_command_changes_nothing_even_when_a_deadline_is_due() -> None:
    """Refused before anything happens, the due opening included (else the opening would
    be applied and numbered but never written: a gap in the journal)."""
    journaled = Journaled()
    journaled.submit(CreateAuction(START - S, config()))
    gseq, state = journaled.gseq, journaled.host.state_hash()
    with pytest.raises(FormatError) as info:  # the lot opens at START: due for this bid
        journaled.submit(PlaceBid(START + S, "A1", "L1", "bob", 10**30, "x"))
    assert info.value.code == "unjournalable"
    assert (journaled.gseq, journaled.host.state_hash()) == (gseq, state)
    assert journaled.engine.auction("A1").lots["L1"].clock.status == "scheduled"
    ok = journaled.submit(PlaceBid(START + S, "A1", "L1", "bob", 80_000, "y"))
    assert kinds(ok.events) == ["LotOpened", "BidAccepted"] and ok.last_gseq == gseq + 2


# -- torn tails and corruption ---------------------------------------------------------------

@pytest.mark.parametrize("cut", [1, 5, 11, 12, 13, -1])
def test_a_torn_tail_is_truncated_at_recovery_and_reported(tmp_path: Path, cut: int) -> None:
    journaled = scenario_journal(tmp_path / "j")
    path = segment(tmp_path / "j")
    records = list(JournalReader(path).records())
    last_offset = records[-1][1].offset
    data = path.read_bytes()
    torn_size = cut if cut > 0 else len(data) - last_offset - 1
    path.write_bytes(data[:last_offset] + data[last_offset:last_offset + torn_size])
    result = verify(tmp_path / "j")
    assert not result.ok and result.torn is not None and result.torn.offset == last_offset
    _recovered, report = recover(tmp_path / "j")
    assert report.torn is not None and report.torn.offset == last_offset and report.torn.size == torn_size
    assert report.records == journaled.gseq - 1
    assert path.stat().st_size == last_offset
    assert verify(tmp_path / "j").ok


def test_trailing_zeros_are_a_torn_tail(tmp_path: Path) -> None:
    scenario_journal(tmp_path / "j")
    path = segment(tmp_path / "j")
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(4096))
    _, report = recover(tmp_path / "j")
    assert report.torn is not None and report.torn.offset == size and path.stat().st_size == size


def test_mid_file_corruption_stops_recovery_with_its_location(tmp_path: Path) -> None:
    scenario_journal(tmp_path / "j")
    path = segment(tmp_path / "j")
    records = list(JournalReader(path).records())
    _, where = records[10]
    data = bytearray(path.read_bytes())
    data[where.offset + FRAME.size + 3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruption) as info:
        recover(tmp_path / "j")
    assert info.value.code == "bad_crc"
    assert info.value.location is not None and info.value.location.offset == where.offset
    assert info.value.location.index == 10 and info.value.location.file == str(path)
    assert path.read_bytes() == bytes(data)  # recovery changed nothing


def test_a_corrupted_length_is_not_mistaken_for_a_torn_tail(tmp_path: Path) -> None:
    scenario_journal(tmp_path / "j")
    path = segment(tmp_path / "j")
    _, where = list(JournalReader(path).records())[5]
    data = bytearray(path.read_bytes())
    data[where.offset + 2] ^= 0x7F  # the length becomes far larger than the file
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruption) as info:
        recover(tmp_path / "j")
    assert info.value.code == "bad_frame" and info.value.location.offset == where.offset  # type: ignore[union-attr]


def test_repair_keeps_the_sound_prefix_and_sets_the_rest_aside(tmp_path: Path) -> None:
    scenario_journal(tmp_path / "j")
    path = segment(tmp_path / "j")
    _, where = list(JournalReader(path).records())[20]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    data[where.offset + FRAME.size + 1] ^= 0x01
    path.write_bytes(bytes(data))
    damage = repair(tmp_path / "j")
    assert damage is not None and damage.location is not None and damage.location.offset == where.offset
    side = Path(str(path) + ".discarded")
    assert side.read_bytes() == bytes(data[where.offset:])
    assert path.read_bytes() == bytes(data[:where.offset])
    _, report = recover(tmp_path / "j")
    assert report.records == 20
    assert repair(tmp_path / "j") is None


def test_segments_roll_and_recovery_reads_across_them(tmp_path: Path, commands: list) -> None:
    journaled = write(tmp_path / "j", commands[:1500], segment_size=4096)
    segments = sorted((tmp_path / "j").glob("*.journal"))
    assert len(segments) > 5
    assert all(p.stat().st_size <= 4096 or len(list(JournalReader(p).records())) == 1 for p in segments)
    recovered, report = recover(tmp_path / "j")
    assert recovered.host.state_hash() == journaled.host.state_hash()
    assert report.position.index == len(segments) - 1
    os.unlink(segments[2])
    with pytest.raises(JournalCorruption) as info:
        recover(tmp_path / "j")
    assert info.value.code == "segment_gap"


# -- the fast paths: the same result as record by record -----------------------------------------

def test_verify_and_recovery_agree_with_checking_record_by_record(tmp_path: Path, commands: list) -> None:
    write(tmp_path / "stream", commands)
    write(tmp_path / "rolled", commands[:1500], segment_size=4096)
    scenario_journal(tmp_path / "seei")
    for name in ("stream", "rolled", "seei"):
        assert plain_result(verify(tmp_path / name).to_dict()) == reference_verify(tmp_path / name)
    seen: list[tuple[object, ...]] = []
    recover(tmp_path / "stream", lambda record, events: seen.append((record, events)))
    from auction_engine.journal import Verifier

    verifier = Verifier()
    reader = JournalReader(tmp_path / "stream")
    assert seen == [(record, verifier.feed(record, where)) for record, where in reader.records()]


@pytest.mark.parametrize("workers", [2, 3])
def test_a_verification_shared_by_processes_gives_the_same_result(tmp_path: Path, commands: list,
                                                                   workers: int) -> None:
    write(tmp_path / "stream", commands)
    write(tmp_path / "rolled", commands[:1500], segment_size=4096)
    for name in ("stream", "rolled"):
        shared = _verify_shared(tmp_path / name, workers)
        assert shared is not None and shared.replayed > 0
        assert plain_result(shared.to_dict()) == reference_verify(tmp_path / name)


def rewrite(directory: Path, records: list[list[object]]) -> Path:
    """A journal of these records as a forger would write it: gseqs renumbered from 1, each
    auction's chain recomputed, CRCs right: only re-execution can tell what is wrong."""
    heads: dict[object, bytes] = {}
    frames = []
    for gseq, fields in enumerate(records, 1):
        _old, aseq, time, aid, command, outcome, _prev = fields
        payload = pack_payload(gseq, aseq, time, aid, command, outcome, heads.get(aid, GENESIS))  # type: ignore[arg-type]
        heads[aid] = hashlib.sha256(payload).digest()
        frames.append(frame(payload))
    directory.mkdir()
    path = directory / "00000000.journal"
    path.write_bytes(SegmentHeader("engine", 0, 1).encode() + b"".join(frames))
    return path


def two_auctions(tmp_path: Path) -> list[list[object]]:
    """The records of A1, which closes at END, and A2, which runs an hour more and takes a
    bid after END (so A1's closing tick is journaled just before that bid)."""
    write(tmp_path / "live", [
        CreateAuction(START - S, config()),
        CreateAuction(START - S, config(auction_id="A2", end="2026-03-02T12:00:00Z")),
        PlaceBid(START + S, "A1", "L1", "bob", 90_000, "b1"),
        PlaceBid(START + 2 * S, "A2", "L1", "bob", 90_000, "b2"),
        PlaceBid(END + S, "A2", "L1", "alice", 80_000, "b3"),
    ])
    return [msgpack.unpackb(r.payload, raw=False) for r, _ in JournalReader(tmp_path / "live").records()]


def test_a_shared_verification_leaves_to_one_process_what_only_one_engine_can_judge(tmp_path: Path) -> None:
    records = two_auctions(tmp_path)
    assert _verify_shared(tmp_path / "live", 2) is not None  # the journal as written: shared, and sound
    ticks = [i for i, r in enumerate(records) if r[4][0] == "Tick" and r[3] == "A1" and r[2] == END + S]
    assert len(ticks) == 1 and records[ticks[0] + 1][3] == "A2"
    # A1's closing tick taken out: in one engine, A2's bid after END closes A1 first, and its
    # outcome then holds A1's close: a divergence. A2's share alone would not see it.
    forged = rewrite(tmp_path / "no-tick", records[:ticks[0]] + records[ticks[0] + 1:])
    assert _verify_shared(forged.parent, 2) is None
    result = verify(forged.parent, jobs=2)
    assert result.problem is not None and result.problem.code == "divergence"
    assert plain_result(result.to_dict()) == reference_verify(forged.parent)
    # a record earlier than the one before it, of another auction: one engine's clock goes back
    back = [list(r) for r in records]
    bid = next(i for i, r in enumerate(back) if r[4][0] == "PlaceBid" and r[3] == "A2")
    back[bid][2] = back[bid][4][1] = back[bid - 1][2] - 1  # type: ignore[index,operator]
    forged = rewrite(tmp_path / "back", back)
    assert _verify_shared(forged.parent, 2) is None
    result = verify(forged.parent, jobs=2)
    assert result.problem is not None and result.problem.code == "time_regression"
    assert plain_result(result.to_dict()) == reference_verify(forged.parent)


@pytest.mark.parametrize("damage", ["zeros", "cut-frame", "cut-payload", "empty-frame", "header"])
def test_a_damaged_journal_shared_by_processes_is_reported_as_by_one(tmp_path: Path, commands: list,
                                                                      damage: str) -> None:
    write(tmp_path / "j", commands)
    path = segment(tmp_path / "j")
    data = path.read_bytes()
    last = list(JournalReader(path).records())[-1][1].offset
    path.write_bytes({
        "zeros": data + bytes(100), "cut-frame": data[:last + 7], "cut-payload": data[:-3],
        "empty-frame": data + bytes(12), "header": data[:8] + b"\x02" + data[9:],
    }[damage])
    expected = reference_verify(tmp_path / "j")
    assert not expected["ok"]
    assert _verify_shared(tmp_path / "j", 2) is None  # the shares do not vouch for it: one process says why
    assert plain_result(verify(tmp_path / "j", jobs=2).to_dict()) == expected


@given(st.lists(st.one_of(st.integers(min_value=-5, max_value=MAX_AMOUNT + 5),
                          st.from_regex(r"[0-9]{0,20}(\.[0-9]{0,3})?", fullmatch=True)), min_size=1, max_size=8),
       st.integers(min_value=0, max_value=3))
def test_every_amount_an_edge_can_send_is_journaled_and_checkpointed(amounts: list[int | str], decimals: int) -> None:
    """The one bound, end to end: a lot priced at MAX_AMOUNT, bids of every amount an edge
    can pass (parsed minor units, or a string that did not parse): each is an accepted or
    coded outcome, journaled, and the state dumps (as a checkpoint does)."""
    top = format_amount(MAX_AMOUNT, decimals)
    journaled = Journaled()
    journaled.submit(CreateAuction(START - S, config(decimals=decimals, lot={"starting_price": top, "estimate": top})))
    for i, amount in enumerate(amounts):
        out = journaled.submit(PlaceBid(START + i, "A1", "L1", "alice", amount, f"c{i}"))
        assert out.frames, (amount, out.events)
        outcome = out.events[-1]
        assert type(outcome).__name__ in ("BidAccepted", "BidRejected"), outcome
    msgpack.packb(journaled.engine.dump_state())
