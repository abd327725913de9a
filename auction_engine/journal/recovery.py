"""Start from a journal: verify every record, rebuild the engine, cut a torn tail.

`recover(directory)` reads every segment, checks framing, CRCs, sequences and chains,
feeds each command through the same core and compares the outcome. A torn tail is
truncated (and reported); any other damage raises `JournalCorruption` and changes no file.
`repair(directory)` is the operator's explicit way past damage: it keeps the records
before it and moves everything from it onwards to a side file.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint
from .format import SEGMENT_SUFFIX, JournalCorruption
from .reader import JournalReader, TornTail, gc_paused
from .sequencer import Journaled
from .store import Position
from .verifier import RecordHook as RecordHook  # runtime.py imports it from here
from .verifier import Verifier

SIDE_SUFFIX = ".discarded"  # what `repair` removed, kept next to the journal


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What recovery found: records in the journal, auctions, the torn tail cut (if any),
    where the next record goes, the recovered state hash, and how long it took; with
    checkpoints, the one started from (its gseq; records after it were replayed), the
    ones skipped and why, and the ones removed (past the journal's end)."""

    records: int
    auctions: int
    torn: TornTail | None
    position: Position
    state_hash: str
    seconds: float
    replayed: int = 0
    checkpoint: int | None = None
    skipped: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def summary(self) -> str:
        torn = f"; truncated a torn tail: {self.torn}" if self.torn else ""
        start = "" if self.checkpoint is None else f" (from the checkpoint at record {self.checkpoint}, " \
            f"{self.replayed} replayed)"
        skipped = "".join(f"; skipped checkpoint {s}" for s in self.skipped)
        return (f"recovered {self.records} records{start}, {self.auctions} auctions in {self.seconds:.3f} s; "
                f"state {self.state_hash[:16]}{torn}{skipped}")


def _replay(directory: Path, on_record: RecordHook | None = None) -> tuple[JournalReader, Verifier]:
    reader = JournalReader(directory)
    verifier = Verifier(contiguous=True)
    with gc_paused():
        verifier.run(reader, on_record)
    for header in reader.headers:
        if header.kind != "engine":
            raise JournalCorruption("bad_header", f"segment {header.index} is an export, not an engine journal")
    return reader, verifier


def _replay_from(directory: Path, start: checkpoint.Checkpoint, on_record: RecordHook | None,
                 parts: Sequence[checkpoint.Part]) -> tuple[JournalReader, Verifier]:
    """Go on from a checkpoint: check that the journal holds its last record, load the
    host's parts, replay (and check) every record after it."""
    checkpoint.check_last(directory, start)
    pos = start.position
    reader = JournalReader(directory, start=(pos.index, pos.size, pos.records))
    verifier = Verifier(contiguous=True, journaled=start.journaled)
    for part in parts:
        if part.name not in start.parts:
            raise checkpoint.CheckpointError(f"it holds no {part.name!r}")
        part.load(start.parts[part.name])
    with gc_paused():
        verifier.run(reader, on_record)
    if not reader.headers:
        raise checkpoint.CheckpointError(f"the journal has no segment {pos.index}")
    for header in reader.headers:
        if header.kind != "engine":
            raise JournalCorruption("bad_header", f"segment {header.index} is an export, not an engine journal")
    return reader, verifier


def _position(reader: JournalReader, verifier: Verifier) -> Position:
    if reader.end is None:
        return Position(0, 0, verifier.journaled.gseq + 1)
    _path, offset = reader.end
    last = reader.headers[-1]
    records = verifier.journaled.gseq - last.first_gseq + 1
    return Position(last.index, offset, verifier.journaled.gseq + 1, records)


def recover(directory: str | os.PathLike[str], on_record: RecordHook | None = None, *,
            checkpoints: bool = False, parts: Sequence[checkpoint.Part] = ()) -> tuple[Journaled, RecoveryReport]:
    """Rebuild the journaled engine of `directory` (created if missing); `on_record` sees
    each verified record with its replayed events (e.g. to rebuild an event feed).

    With `checkpoints`, start from the newest usable checkpoint (see checkpoint.py) and
    replay only the records after it; `parts` are the host's state derived through
    `on_record`, loaded from the checkpoint (or emptied before a replay from the start).
    A checkpoint that does not match the journal is skipped (reported); damage in the
    records replayed is raised as always. Whatever the setting, every checkpoint past the
    journal's end is removed before anything new can be written."""
    started = time.perf_counter()
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    found: tuple[JournalReader, Verifier, checkpoint.Checkpoint] | None = None
    for candidate in checkpoint.candidates(path) if checkpoints else []:
        try:
            start = checkpoint.decode(candidate.read_bytes())
            if start.gseq != checkpoint.gseq_of(candidate):
                raise checkpoint.CheckpointError(f"it holds record {start.gseq}, not the one its name says")
            reader, verifier = _replay_from(path, start, on_record, parts)
            found = reader, verifier, start
            break
        except Exception as exc:  # whatever a checkpoint makes go wrong: the full replay judges the journal
            skipped.append(f"{candidate.name}: {exc if isinstance(exc, checkpoint.CheckpointError) else repr(exc)}")
    if found is None:
        for part in parts:
            part.load(None)
        reader, verifier = _replay(path, on_record)
    else:
        reader, verifier, _start = found
    if reader.torn is not None:
        _cut(reader.torn)
    for partial in path.glob(f"*{SEGMENT_SUFFIX}.partial"):  # a crash while creating a segment
        partial.unlink()
    journaled = verifier.journaled
    removed = checkpoint.remove_after(path, journaled.gseq)
    position = _position(reader, verifier)
    report = RecoveryReport(journaled.gseq, len(journaled.chains), reader.torn, position,
                            journaled.host.state_hash(), time.perf_counter() - started,
                            replayed=verifier.replayed, checkpoint=None if found is None else found[2].gseq,
                            skipped=tuple(skipped), removed=tuple(p.name for p in removed))
    return journaled, report


def _cut(torn: TornTail) -> None:
    """Truncate the torn tail."""
    fd = os.open(torn.file, os.O_WRONLY)
    try:
        os.ftruncate(fd, torn.offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(Path(torn.file).parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def repair(directory: str | os.PathLike[str]) -> JournalCorruption | None:
    """Keep every record before the first damage; move the rest (the damaged record and
    every later byte and segment) to ``<segment>.discarded`` files (``.discarded.N`` if
    that exists). Returns the damage
    found, or None if the journal was sound (then nothing changes)."""
    path = Path(directory)
    try:
        _replay(path)
        return None
    except JournalCorruption as exc:
        damage = exc
    if damage.location is None:
        raise damage
    bad = Path(damage.location.file)
    cut = max(damage.location.offset, 0)
    segments = sorted(q for q in path.iterdir() if q.name.endswith(SEGMENT_SUFFIX))
    for segment in segments:
        if segment < bad:
            continue
        start = cut if segment == bad else 0
        data = segment.read_bytes()
        side_path = Path(str(segment) + SIDE_SUFFIX)
        for n in itertools.count(1):  # never overwrite what an earlier repair set aside
            if not side_path.exists():
                break
            side_path = Path(f"{segment}{SIDE_SUFFIX}.{n}")
        with open(side_path, "wb") as side:
            side.write(data[start:])
            side.flush()
            os.fsync(side.fileno())
        if start == 0:
            segment.unlink()
        else:
            with open(segment, "r+b") as f:
                f.truncate(start)
                f.flush()
                os.fsync(f.fileno())
    return damage
