"""Verify a journal from nothing but its bytes, and export one auction's records.

`verify(path)` checks framing and CRCs, segment order, global and per-auction sequences,
every per-auction hash chain, then re-executes every command through the core and
compares each outcome with the journaled one. It stops at the first problem and says
where it is (file, byte offset, record, expected, found). `export` writes one auction's
records, byte for byte, as a journal that verifies on its own.

Auctions are independent (each has its own chain and re-executes alone), so a large
engine journal is verified by several processes at once (forked), one share of the
auctions each (`Verifier.run(share=...)`): every process walks every frame and checks
that time never goes back; each record's CRCs, sequences, chain and re-execution are
checked by the process its auction falls to. A share vouches for its part only if all
of it passed and nothing needed one engine replaying everything (see `Verifier.run`);
otherwise the journal is verified again in one process, whose result (the first problem,
exactly located) is the one reported: the result is the same either way.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auction_engine.host import Host
from auction_engine.journal import JournalCorruption, JournalReader, SegmentHeader, TornTail, Verifier
from auction_engine.journal.format import FormatError, decode_header, frame
from auction_engine.journal.reader import gc_paused, segment_paths

PARALLEL_MIN_BYTES = 4 << 20  # smaller journals are verified in one process: a fork would cost more than it saves
MAX_JOBS = 8


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


def verify(path: str | os.PathLike[str], auction: str | None = None, *, jobs: int | None = None) -> VerifyResult:
    """Check the journal at `path` (a directory of segments or one file); with `auction`,
    re-execute only that auction (every record's framing and order is still checked).
    `jobs`: processes to share an engine journal's auctions (default: one per CPU, at
    most 8, for a journal of at least 4 MiB; 1: never share)."""
    started = time.perf_counter()
    result = VerifyResult(str(path))
    reader = _reader(path, result)
    if reader is None:
        return result
    workers = verify_jobs(path, jobs) if auction is None else 1
    if workers > 1:
        shared = _verify_shared(path, workers)
        if shared is not None:
            shared.seconds = time.perf_counter() - started
            return shared
    return _verify_here(reader, result, auction, started)[0]


def replayed(path: str | os.PathLike[str], case: str | None = None) -> tuple[VerifyResult, Host]:
    """`verify(path, case)` in this process, and the host it re-executed the journal into
    (the cases' state as the journal rebuilds it: for minutes and exports)."""
    started = time.perf_counter()
    result = VerifyResult(str(path))
    reader = _reader(path, result)
    if reader is None:
        return result, Host()
    return _verify_here(reader, result, case, started)


def _reader(path: str | os.PathLike[str], result: VerifyResult) -> JournalReader | None:
    """The journal's reader, or None with the problem in `result` (no such path, no segment)."""
    try:
        reader = JournalReader(path)
    except FileNotFoundError as exc:
        result.problem = JournalCorruption("not_found", str(exc))
        return None
    if not reader.paths:
        result.problem = JournalCorruption("empty", f"no journal segment in {path}")
        return None
    return reader


def _verify_here(reader: JournalReader, result: VerifyResult, auction: str | None,
                 started: float) -> tuple[VerifyResult, Host]:
    verifier = Verifier(only=auction)

    def start(header: SegmentHeader) -> None:
        """Set the rules from the first header: an export's global sequence may have gaps."""
        result.kind = header.kind
        verifier.contiguous = header.kind == "engine" and auction is None
        if header.kind == "export":
            verifier.journaled.gseq = header.first_gseq - 1

    try:
        with gc_paused():
            verifier.run(reader, on_first=start, exports=True)
    except JournalCorruption as exc:
        result.problem = exc
    result.records = verifier.passed
    chains = verifier.journaled.chains
    for aid, first in sorted(verifier.first_gseq.items(), key=lambda item: item[1]):
        aseq, digest = chains[aid]
        result.auctions[aid] = AuctionSummary(aseq, digest.hex(), first, verifier.last_gseq[aid])
    result.torn = reader.torn
    result.replayed = verifier.replayed
    if reader.headers and not result.kind:
        result.kind = reader.headers[0].kind
    if result.problem is None and auction is not None and auction not in result.auctions:
        result.problem = JournalCorruption("unknown_auction", f"the journal has no record of auction {auction!r}")
    result.state_hash = verifier.journaled.host.state_hash()
    result.seconds = time.perf_counter() - started
    return result, verifier.journaled.host


def verify_jobs(path: str | os.PathLike[str], jobs: int | None = None) -> int:
    """How many processes `verify(path, jobs=jobs)` shares the journal between: 1 unless it
    is an engine journal and this process can fork safely (it runs no other thread); by
    default, one per CPU this process may run on (at most 8) for a journal of at least 4 MiB."""
    if (jobs is not None and jobs <= 1) or not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        paths = segment_paths(path)
        with open(paths[0], "rb") as f:
            header, _size = decode_header(f.read(4096))
    except (OSError, FormatError, IndexError):
        return 1  # the one-process verification reports it
    if header.kind != "engine":
        return 1
    if jobs is not None:
        return min(jobs, MAX_JOBS)
    if sum(p.stat().st_size for p in paths) < PARALLEL_MIN_BYTES:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cpus, MAX_JOBS)


def _share(path: str | os.PathLike[str], worker: int, workers: int) -> dict[str, Any] | None:
    """One process's share of a shared verification; None if it cannot vouch for it."""
    reader = JournalReader(path)
    verifier = Verifier()
    try:
        with gc_paused():
            verifier.run(reader, share=(worker, workers))
    except Exception:  # Undecided, a JournalCorruption, bytes it cannot even walk: one process will say
        return None
    if reader.torn is not None or any(h.kind != "engine" for h in reader.headers):
        return None
    chains = verifier.journaled.chains
    return {
        "records": verifier.passed, "replayed": verifier.replayed,
        "auctions": {aid: (chains[aid][0], chains[aid][1].hex(), first, verifier.last_gseq[aid])
                     for aid, first in verifier.first_gseq.items()},
        "states": verifier.journaled.host.case_states(),
    }


def _fork_share(path: str | os.PathLike[str], worker: int, workers: int) -> tuple[int, int]:
    """Run `_share` in a child process; its pickled result comes back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, write, and leave without running any of the parent's exit code
        status = 1
        try:
            os.close(read_end)
            data = pickle.dumps(_share(path, worker, workers), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    return pid, read_end


def _verify_shared(path: str | os.PathLike[str], workers: int) -> VerifyResult | None:
    """Verify an engine journal with `workers` processes (this one included); None if
    any share could not vouch for its part (then verify it in one process)."""
    children = [_fork_share(path, k, workers) for k in range(1, workers)]
    shares = [_share(path, 0, workers)]
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _pid, status = os.waitpid(pid, 0)
        shares.append(pickle.loads(data) if data and status == 0 else None)
    if any(share is None for share in shares):
        return None
    records = {share["records"] for share in shares if share is not None}
    auctions: dict[str, tuple[int, str, int, int]] = {}
    states: dict[str, list[list[object]]] = {}
    for share in shares:
        assert share is not None
        auctions.update(share["auctions"])
        for kind, cases in share["states"].items():
            states.setdefault(kind, []).extend(cases)
    if len(records) != 1 or len(auctions) != sum(len(share["auctions"]) for share in shares if share is not None):
        return None  # the shares saw different journals (it changed under them): look again, in one process
    result = VerifyResult(str(path), kind="engine", records=records.pop(),
                          replayed=sum(share["replayed"] for share in shares if share is not None))
    for aid, (count, head, first, last) in sorted(auctions.items(), key=lambda item: item[1][2]):
        result.auctions[aid] = AuctionSummary(count, head, first, last)
    result.state_hash = Host().hash_of(states)
    return result


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
