"""Tamper suite: every alteration of a journal is detected, and located at or after it.

Journals of scripted auctions (the examples and a seeded multi-auction stream) are
altered: random bytes flipped, records deleted, duplicated, swapped, forged and inserted,
and amounts changed with the CRC recomputed (so only the hash chain or re-execution can
catch it). TAMPER_MUTATIONS sets how many per kind (the slow suite runs >= 1,000 in all).
Cutting whole records off the end is the one change no chain can see: docs/journal-format.md
says how a published head hash catches it.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from journals import plain_result, reference_verify, scenario_journal, segment, stream_commands, write

from auction_engine.journal import JournalReader
from auction_engine.journal.format import FRAME, frame, pack_payload
from replay import verify
from replay.verify import _verify_shared

MUTATIONS = int(os.environ.get("TAMPER_MUTATIONS", 20))  # per kind and journal

Records = list[tuple[int, bytes]]  # (offset, frame bytes) of each record in the segment


def split(path: Path) -> tuple[bytes, Records]:
    """A segment's header bytes and its records' frames."""
    data = path.read_bytes()
    records = [(w.offset, data[w.offset:w.offset + FRAME.size + len(r.payload)])
               for r, w in JournalReader(path).records()]
    return data[:records[0][0]], records


def reframe(payload_fields: list[object]) -> bytes:
    """A record with new fields and a correct CRC (what a careful forger would write)."""
    gseq, aseq, time, aid, command, outcome, prev = payload_fields
    return frame(pack_payload(gseq, aseq, time, aid, command, outcome, prev))  # type: ignore[arg-type]


def fields(frame_bytes: bytes) -> list[object]:
    decoded: list[object] = msgpack.unpackb(frame_bytes[FRAME.size:], raw=False)
    return decoded


# -- the mutations: each returns the new segment bytes and the offset of the first change ---

def flip_byte(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    data = bytearray(head + b"".join(f for _, f in records))
    at = rng.randrange(len(data))
    data[at] ^= 1 << rng.randrange(8)
    return bytes(data), at


def delete_record(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    i = rng.randrange(len(records) - 1)  # not the last one (see the module docstring)
    return head + b"".join(f for j, (_, f) in enumerate(records) if j != i), records[i][0]


def duplicate_record(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    i = rng.randrange(len(records))
    j = rng.randrange(i, len(records)) + 1  # the copy goes after the original
    frames = [f for _, f in records]
    frames.insert(j, frames[i])
    return head + b"".join(frames), _offset(records, j)


def swap_records(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    i = rng.randrange(len(records) - 1)
    j = rng.randrange(i + 1, len(records))
    frames = [f for _, f in records]
    frames[i], frames[j] = frames[j], frames[i]
    return head + b"".join(frames), records[i][0]


def insert_forged_bid(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    """A bid record copied from elsewhere with a lower amount, its gseq taken over, the
    CRC recomputed, and every later record renumbered and re-CRC'd too."""
    bids = [i for i, (_, f) in enumerate(records) if fields(f)[4][0] == "PlaceBid"]
    i = rng.choice(bids)
    forged = fields(records[i][1])
    forged[4][5] = forged[4][5] - 1 if type(forged[4][5]) is int else 1  # type: ignore[index]
    frames = [f for _, f in records[:i]] + [reframe(forged)]
    for _, f in records[i:]:
        later = fields(f)
        later[0] = later[0] + 1  # type: ignore[operator]
        frames.append(reframe(later))
    return head + b"".join(frames), records[i][0]


def change_amount(rng: random.Random, head: bytes, records: Records) -> tuple[bytes, int]:
    """Change a bid's amount (and, half the time, its journaled outcome to match), with
    the CRC recomputed: only the chain or re-execution can tell."""
    bids = [i for i, (_, f) in enumerate(records) if fields(f)[4][0] == "PlaceBid" and type(fields(f)[4][5]) is int]
    i = rng.choice(bids)
    altered = fields(records[i][1])
    delta = rng.choice([-100, -1, 1, 100])
    altered[4][5] += delta  # type: ignore[index]
    if rng.random() < 0.5:
        for event in altered[5]:  # type: ignore[attr-defined]
            if event[0] in ("BidAccepted", "BidRejected"):
                event[5] += delta
    frames = [f for _, f in records]
    frames[i] = reframe(altered)
    return head + b"".join(frames), records[i][0]


def _offset(records: Records, index: int) -> int:
    return records[index][0] if index < len(records) else records[-1][0] + len(records[-1][1])


MUTATORS: dict[str, Callable[[random.Random, bytes, Records], tuple[bytes, int]]] = {
    "flip": flip_byte, "delete": delete_record, "duplicate": duplicate_record, "swap": swap_records,
    "forge": insert_forged_bid, "amount": change_amount,
}


@pytest.fixture(scope="module")
def journals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tamper")
    scenario_journal(base / "seei")
    scenario_journal(base / "incidents", "unsuccessful-and-incidents.json")
    write(base / "stream", stream_commands(7, 400))
    return {name: segment(base / name) for name in ("seei", "incidents", "stream")}


@pytest.mark.parametrize("kind", sorted(MUTATORS))
@pytest.mark.parametrize("journal", ["seei", "incidents", "stream"])
def test_every_mutation_is_detected_at_or_after_it(journals: dict[str, Path], tmp_path: Path, kind: str,
                                                   journal: str) -> None:
    source = journals[journal]
    assert verify(source).ok
    head, records = split(source)
    rng = random.Random(f"{kind}-{journal}")
    target = tmp_path / source.name
    for n in range(MUTATIONS):
        data, changed_at = MUTATORS[kind](rng, head, records)
        if data == source.read_bytes():
            continue  # a flip that cancelled out cannot happen, but a forged equal record could
        target.write_bytes(data)
        result = verify(target)
        assert not result.ok, f"{kind} #{n} at byte {changed_at} went unnoticed"
        # the fast path reports exactly what checking record by record reports; processes
        # sharing the verification never vouch for it (verify then checks it in one process)
        assert plain_result(result.to_dict()) == reference_verify(target), (kind, n)
        assert _verify_shared(target, 2) is None, (kind, n)
        problem = result.problem
        if problem is None:
            assert result.torn is not None and result.torn.offset <= changed_at + FRAME.size
            continue
        assert problem.location is not None, problem
        if problem.location.index >= 0:  # a record (not the segment header) is blamed
            start_of_changed = max((o for o, _ in records if o <= changed_at), default=0)
            assert problem.location.offset >= start_of_changed, (kind, n, problem, changed_at)
        else:
            assert changed_at < len(head), (kind, n, problem, changed_at)


def test_an_amount_changed_with_its_crc_is_caught_by_the_chain(journals: dict[str, Path], tmp_path: Path) -> None:
    head, records = split(journals["seei"])
    i = next(i for i, (_, f) in enumerate(records) if fields(f)[4][0] == "PlaceBid")
    altered = fields(records[i][1])
    altered[4][5] -= 1  # type: ignore[index]
    for event in altered[5]:  # type: ignore[attr-defined]
        if event[0] == "BidAccepted":
            event[5] -= 1
            event[8] -= 1  # the best price too: the record is consistent in itself
    frames = [f for _, f in records]
    frames[i] = reframe(altered)
    target = tmp_path / "altered.journal"
    target.write_bytes(head + b"".join(frames))
    result = verify(target)
    assert result.problem is not None and result.problem.code == "chain_broken"
    aid = fields(records[i][1])[3]
    next_of_auction = next(j for j in range(i + 1, len(records)) if fields(records[j][1])[3] == aid)
    assert result.problem.location is not None and result.problem.location.offset == records[next_of_auction][0]
    original = hashlib.sha256(records[i][1][FRAME.size:]).hexdigest()
    assert result.problem.found == original  # the next record still names the original bid
    assert result.problem.expected == hashlib.sha256(frames[i][FRAME.size:]).hexdigest()


def test_a_divergent_outcome_is_reported_with_expected_and_found(journals: dict[str, Path], tmp_path: Path) -> None:
    head, records = split(journals["seei"])
    last_bid = max(i for i, (_, f) in enumerate(records) if fields(f)[4][0] == "PlaceBid")
    altered = fields(records[last_bid][1])
    altered[4][5] += 1  # type: ignore[index]
    frames = [f for _, f in records[:last_bid]] + [reframe(altered)]  # the auction's last record now
    target = tmp_path / "divergent.journal"
    target.write_bytes(head + b"".join(frames))
    result = verify(target)
    assert result.problem is not None and result.problem.code == "divergence"
    assert result.problem.gseq == altered[0]
    assert result.problem.expected != result.problem.found
