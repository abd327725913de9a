"""Verify a journal from nothing but its bytes, and export one auction's records.

`verify(path)` checks framing and CRCs, segment order, global and per-auction sequences,
every per-auction hash chain, then re-executes every command through the core and
compares each outcome with the journaled one. It stops at the first problem and says
where it is (file, byte offset, record, expected, found). `export` writes one auction's
records, byte for byte, as a journal that verifies on its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from auction_engine.journal import JournalCorruption, JournalReader, Location, SegmentHeader, TornTail, Verifier
from auction_engine.journal.format import frame
from auction_engine.journal.reader import gc_paused


@dataclass(slots=True)
class AuctionSummary:
    """One auction in a verified journal: its records and the SHA-256 of the last one
    (the head: publish it, and a later truncation of the journal shows)."""

    records: int = 0
    head: str = ""
    first_gseq: int = 0
    last_gseq: int = 0


@dataclass(slots=True)
class VerifyResult:
    """`ok` only if every check passed; else `problem` (or `torn`) says why."""

    path: str
    kind: str = ""
    records: int = 0
    replayed: int = 0
    auctions: dict[str, AuctionSummary] = field(default_factory=dict)
    problem: JournalCorruption | None = None
    torn: TornTail | None = None
    seconds: float = 0.0
    state_hash: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None and self.torn is None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (for `auction-replay verify --json`)."""
        problem = None
        if self.problem is not None:
            p = self.problem
            problem = {"code": p.code, "message": p.message, "gseq": p.gseq, "expected": p.expected,
                       "found": p.found, "location": None if p.location is None else {
                           "file": p.location.file, "offset": p.location.offset, "record": p.location.index}}
        torn = None if self.torn is None else {"file": self.torn.file, "offset": self.torn.offset,
                                               "size": self.torn.size}
        return {
            "ok": self.ok, "path": self.path, "kind": self.kind, "records": self.records,
            "replayed": self.replayed, "state_hash": self.state_hash, "problem": problem, "torn_tail": torn,
            "auctions": {aid: {"records": a.records, "head": a.head, "first_gseq": a.first_gseq,
                               "last_gseq": a.last_gseq} for aid, a in self.auctions.items()},
            "seconds": round(self.seconds, 3),
        }


def verify(path: str | os.PathLike[str], auction: str | None = None) -> VerifyResult:
    """Check the journal at `path` (a directory of segments or one file); with `auction`,
    re-execute only that auction (every record's framing and order is still checked)."""
    started = time.perf_counter()
    result = VerifyResult(str(path))
    try:
        reader = JournalReader(path)
    except FileNotFoundError as exc:
        result.problem = JournalCorruption("not_found", str(exc))
        return result
    if not reader.paths:
        result.problem = JournalCorruption("empty", f"no journal segment in {path}")
        return result
    verifier = Verifier(only=auction)
    try:
        with gc_paused():
            for record, where in reader.records():
                if result.records == 0:
                    _start(result, verifier, reader.headers[0], auction)
                _check_export(reader.headers[-1], record.auction_id, where)
                verifier.feed(record, where)
                result.records += 1
                if auction is None or record.auction_id == auction:
                    summary = result.auctions.setdefault(record.auction_id, AuctionSummary(first_gseq=record.gseq))
                    summary.records += 1
                    summary.head = record.digest.hex()
                    summary.last_gseq = record.gseq
    except JournalCorruption as exc:
        result.problem = exc
    result.torn = reader.torn
    result.replayed = verifier.replayed
    if reader.headers and not result.kind:
        result.kind = reader.headers[0].kind
    if result.problem is None and auction is not None and auction not in result.auctions:
        result.problem = JournalCorruption("unknown_auction", f"the journal has no record of auction {auction!r}")
    result.state_hash = verifier.journaled.engine.state_hash()
    result.seconds = time.perf_counter() - started
    return result


def _start(result: VerifyResult, verifier: Verifier, header: SegmentHeader, auction: str | None) -> None:
    """Set the rules from the first header: an export's global sequence may have gaps."""
    result.kind = header.kind
    verifier.contiguous = header.kind == "engine" and auction is None
    if header.kind == "export":
        verifier.journaled.gseq = header.first_gseq - 1


def _check_export(header: SegmentHeader, auction_id: str, where: Location) -> None:
    if header.kind == "export" and auction_id != header.auction_id:
        raise JournalCorruption("foreign_record", f"an export of {header.auction_id!r} holds a record of "
                                f"{auction_id!r}", where)


def export(path: str | os.PathLike[str], auction: str, output: str | os.PathLike[str], *,
           live: bool = False) -> VerifyResult:
    """Write `auction`'s records from the journal at `path` to the file `output`, after
    verifying them; the result is the verification of the written file. `live`: the
    journal is being written (a running service): an incomplete last record is the batch
    in flight, not damage, and the export stops at the last record verified."""
    checked = verify(path, auction)
    if live and checked.problem is None:
        checked.torn = None
    if not checked.ok:
        return checked
    last = checked.auctions[auction].last_gseq
    records = [r for r, _ in JournalReader(path).records() if r.auction_id == auction and r.gseq <= last]
    out = Path(output)
    header = SegmentHeader("export", 0, records[0].gseq, auction).encode()
    tmp = out.with_name(out.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(header)
        for record in records:
            f.write(frame(record.payload))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return verify(out)
