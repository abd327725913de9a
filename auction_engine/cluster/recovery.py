"""Rebuild cases from their streams, through the file journal's verification; list the namespace.

`rebuild(journal, case)` (or `rebuild_all`) reads a case's stream (every entry checked, see stream.py) and
feeds each record to a `Verifier` (sequences, chain, command, re-execution, outcome), so
a case comes back only as the file journal would. Each case gets its own host: cases move
between engines whose clocks differ, so a case is replayed on its own clock. `survey`
lists the namespace's cases and reports every key that is not ours (`foreign_key`) or
not of its type (`wrong_type`), never trusting them.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..events import Event
from ..journal.format import GENESIS, JournalCorruption, Record
from ..journal.sequencer import Journaled
from ..journal.verifier import Verifier
from .layout import ENGINES, ClusterError
from .lease import _text
from .stream import Entry, StreamJournal

KEY_TYPES = {"lease": "string", "fence": "string", "journal": "stream", ENGINES: "zset"}


@dataclass(slots=True)
class CaseReport:
    """A rebuilt case: its records, the SHA-256 of the last (its head), the first and last
    gseq, the tokens it was written under, and its state hash."""

    case_id: str
    records: int = 0
    head: str = GENESIS.hex()
    first_gseq: int = 0
    last_gseq: int = 0
    tokens: list[int] = field(default_factory=list)
    state_hash: str = ""


async def rebuild(journal: StreamJournal, case_id: str, entries: list[Entry] | None = None,
                  replayed: list[tuple[Record, list[Event]]] | None = None) -> tuple[Journaled, CaseReport]:
    """The case's host rebuilt from its stream (a new, empty one if it has no stream);
    `ClusterError` with the stream's or the verifier's code at the first broken rule.
    `entries`: collect the checked entries there too (an export writes them); `replayed`:
    each record with its replayed events."""
    verifier = Verifier(contiguous=False)
    report = CaseReport(case_id)
    key = journal.layout.journal(case_id)
    async for entry in journal.entries(case_id):
        try:
            events = verifier.feed(entry.record)
        except JournalCorruption as exc:
            raise ClusterError(exc.code, exc.message, key=key, entry=entry.entry_id) from None
        if entries is not None:
            entries.append(entry)
        if replayed is not None:
            replayed.append((entry.record, events))
        if not report.tokens or report.tokens[-1] != entry.token:
            report.tokens.append(entry.token)
        report.first_gseq = report.first_gseq or entry.record.gseq
        report.last_gseq = entry.record.gseq
        report.records += 1
        report.head = entry.record.digest.hex()
    report.state_hash = verifier.journaled.host.state_hash()
    return verifier.journaled, report


Replayed = list[tuple[Record, list[Event]]]


def in_applied_order(replays: list[Replayed]) -> Replayed:
    """Cases' replayed records merged by (time, gseq, case): for one engine's records, the
    order it applied them in (what the event feed numbers, on every process alike)."""
    return list(heapq.merge(*replays, key=lambda r: (r[0].time, r[0].gseq, r[0].auction_id)))


@dataclass(slots=True)
class Survey:
    """The namespace: the cases that have a stream, and the problems found (coded)."""

    cases: list[str] = field(default_factory=list)
    problems: list[ClusterError] = field(default_factory=list)


async def survey(journal: StreamJournal) -> Survey:
    """Every key under the namespace, classified; the cases sorted by id."""
    client, layout = journal.client, journal.layout
    out = Survey()
    async for raw in client.scan_iter(match=layout.pattern, count=1000):
        key = _text(raw)
        parsed = layout.parse(key)
        if parsed is None:
            out.problems.append(ClusterError("foreign_key", "a key in the namespace that is not ours: ignored",
                                             key=key))
            continue
        case_id, part = parsed
        kind = _text(await client.type(key))
        if kind != KEY_TYPES[part]:
            out.problems.append(ClusterError("wrong_type", f"a {kind}, not a {KEY_TYPES[part]}: ignored", key=key))
        elif part == "journal":
            out.cases.append(case_id)
    out.cases.sort()
    out.problems.sort(key=lambda p: p.key or "")
    return out


async def rebuild_all(journal: StreamJournal) -> tuple[dict[str, tuple[Journaled, CaseReport]], list[ClusterError]]:
    """Every case of the namespace rebuilt (each in its own host, see `rebuild`), and the
    problems: the survey's, and each case that failed with its code (left out)."""
    found = await survey(journal)
    cases: dict[str, tuple[Journaled, CaseReport]] = {}
    problems = list(found.problems)
    for case_id in found.cases:
        try:
            cases[case_id] = await rebuild(journal, case_id)
        except ClusterError as exc:
            problems.append(exc)
    return cases, problems
