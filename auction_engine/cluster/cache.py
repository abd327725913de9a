"""An engine's local snapshots of its cases: the base a take starts from instead of record 1.

The journal of record is each case's stream in Redis; an engine also keeps, in its data
directory (`<data_dir>/cases/`), a snapshot of each case it held: the case's host state,
chain head (aseq and SHA-256 of that record) and retry keys, written when it gives the
case away, at a clean stop, and every `EVERY` records. Taking a case (a start, a
failover, a hand-over back) then reads the stream only past the snapshot.

A snapshot is trusted only as far as the stream agrees with it: the stream's record at
the snapshot's aseq must have the snapshot's SHA-256 (the hash chain then vouches for
every record before it), and the records after it go through the verifier from the
snapshot's state. Anything else (no file, a damaged or foreign one, a stream that ends
before it or forked from it) falls back on the whole stream. Writing is atomic (a fsynced
`.partial` renamed, the directory fsynced).
"""

from __future__ import annotations

import logging
import os
import urllib.parse
from hashlib import sha256
from pathlib import Path
from typing import Any

import msgpack

from ..host import Host
from ..journal.checkpoint import CheckpointError, _bids
from ..journal.format import JournalCorruption
from ..journal.sequencer import Journaled
from ..journal.store import FileOps
from ..journal.verifier import Verifier
from .layout import ClusterError
from .recovery import CaseReport, rebuild
from .stream import StreamJournal

logger = logging.getLogger("auction_engine.cluster")

FORMAT = 1
EVERY = 1000  # records of a case between two snapshots of it
SUFFIX = ".case"
_FILES = FileOps()


class CaseCache:
    """The snapshots of one engine's cases in `directory` (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: dict[str, int] = {}  # case -> the aseq of its latest snapshot
        self.used = 0  # takes that started from a snapshot
        self.refused = 0  # snapshots found unusable (the whole stream read instead)

    def path(self, case: str) -> Path:
        return self.directory / (urllib.parse.quote(case, safe="") + SUFFIX)

    def due(self, case: str, aseq: int) -> bool:
        return aseq - self.written.get(case, 0) >= EVERY

    def write(self, case: str, journaled: Journaled) -> None:
        """Snapshot a case from the engine's journaled state (its own host in a `CaseHosts`)."""
        chain = journaled.chains.get(case)
        hosts = getattr(journaled.host, "hosts", None)  # an engine's CaseHosts, or one case's own host
        host = journaled.host if hosts is None else hosts.get(case)
        if chain is None or host is None:
            return
        alone = Journaled(host)
        alone.chains[case] = chain
        alone.bids = {key: value for key, value in journaled.bids.items() if key[0] == case}
        body = {"format": FORMAT, "case": case, "aseq": chain[0], "digest": chain[1],
                "state_hash": host.state_hash(), "host": host.dump_state(), "bids": _bids(alone)}
        data = msgpack.packb(body, use_bin_type=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(case)
        partial = final.with_name(final.name + ".partial")
        with open(partial, "wb") as handle:
            handle.write(data + sha256(data).digest())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
        _FILES.sync_dir(self.directory)
        self.written[case] = chain[0]

    def read(self, case: str) -> tuple[Journaled, int, bytes] | None:
        """The case's snapshot as a journaled state, its aseq and head; None if there is
        none or it is unusable (logged)."""
        path = self.path(case)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("snapshot of case %s unreadable (%s): the whole stream is read", case, exc)
            return None
        try:
            return _decode(data, case)
        except (CheckpointError, KeyError, TypeError, ValueError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError) as exc:
            self.refused += 1
            logger.warning("snapshot of case %s refused (%s): the whole stream is read", case, exc)
            return None


def _decode(data: bytes, case: str) -> tuple[Journaled, int, bytes]:
    if len(data) < 32 or sha256(data[:-32]).digest() != data[-32:]:
        raise CheckpointError("the snapshot fails its SHA-256")
    body: Any = msgpack.unpackb(data[:-32], raw=False, strict_map_key=True)
    if type(body) is not dict or body.get("format") != FORMAT or body.get("case") != case:
        raise CheckpointError("not a snapshot of this case in this format")
    aseq, digest = body["aseq"], body["digest"]
    if type(aseq) is not int or aseq < 1 or type(digest) is not bytes or len(digest) != 32:
        raise CheckpointError("aseq and digest must be a record's sequence and SHA-256")
    host = Host.load_state(body["host"])
    if host.state_hash() != body["state_hash"] or set(host.case_kind) != {case}:
        raise CheckpointError("the rebuilt host is not the snapshot's, or not of this case alone")
    journaled = Journaled(host)
    journaled.chains[case] = (aseq, digest)  # (its gseq: the stream's record's, when it is read)
    bids = body["bids"]
    if type(bids) is not list or len(bids) != 4 or not len(bids[0]) == len(bids[1]) == len(bids[2]) == len(bids[3]):
        raise CheckpointError("the retry keys must be four columns of one length")
    for aid, bidder, cid, outcome in zip(*bids, strict=True):
        if aid != case or type(bidder) is not str or type(cid) is not str or type(outcome) is not bytes:
            raise CheckpointError("a retry key is this case, an actor, an id and a packed outcome")
        journaled.bids[aid, bidder, cid] = outcome
    return journaled, aseq, digest


async def rebuild_cached(journal: StreamJournal, case: str, cache: CaseCache | None) -> tuple[Journaled, CaseReport]:
    """`rebuild`, from the case's snapshot when the stream agrees with it (see the module
    docstring); the report counts the records read from the stream."""
    found = cache.read(case) if cache is not None else None
    if found is None:
        return await rebuild(journal, case)
    assert cache is not None
    journaled, aseq, digest = found
    key = journal.layout.journal(case)
    verifier = Verifier(contiguous=False, journaled=journaled)
    report = CaseReport(case)
    try:
        entries = journal.entries(case, aseq)
        first = await anext(entries, None)
        if first is None or first.record.aseq != aseq or first.record.digest != digest:
            raise CheckpointError(f"the stream's record {aseq} is not the snapshot's")
        journaled.gseq = max(journaled.gseq, first.record.gseq)
        async for entry in entries:
            try:
                verifier.feed(entry.record)
            except JournalCorruption as exc:
                raise ClusterError(exc.code, exc.message, key=key, entry=entry.entry_id) from None
            report.records += 1
            report.head = entry.record.digest.hex()
            if not report.tokens or report.tokens[-1] != entry.token:
                report.tokens.append(entry.token)
    except CheckpointError as exc:
        cache.refused += 1
        logger.warning("snapshot of case %s not used (%s): the whole stream is read", case, exc)
        return await rebuild(journal, case)
    cache.used += 1
    cache.written[case] = aseq
    report.state_hash = verifier.journaled.host.state_hash()
    logger.info("case %s taken from its snapshot at record %d (%d records after it)", case, aseq, report.records)
    return verifier.journaled, report
