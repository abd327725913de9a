"""Write the cases' streams as ordinary journal files (exports) that `auction-replay verify` checks.

Each case whose stream rebuilds cleanly becomes ``DIR/<case id, %-quoted>.journal``: an
export segment (docs/journal-format.md) holding the stream's frames byte for byte, written
to ``.partial``, fsynced and renamed. A case that fails, and every foreign or mistyped key,
is reported with its code and not written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..journal.format import SEGMENT_SUFFIX, SegmentHeader
from .layout import ClusterError
from .recovery import CaseReport, rebuild, survey
from .stream import Entry, StreamJournal


@dataclass(slots=True)
class ExportReport:
    """What was written (a case's report and its file) and what was refused."""

    written: list[tuple[CaseReport, Path]] = field(default_factory=list)
    problems: list[ClusterError] = field(default_factory=list)


def export_path(directory: Path, case_id: str) -> Path:
    """The file a case is exported to (its id quoted: no '/' or '%' reaches the name)."""
    return directory / f"{quote(case_id, safe='')}{SEGMENT_SUFFIX}"


async def export_streams(journal: StreamJournal, directory: str | os.PathLike[str],
                         cases: list[str] | None = None) -> ExportReport:
    """Export `cases` (default every case in the namespace) into `directory` (created)."""
    out = ExportReport()
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    if cases is None:
        found = await survey(journal)
        cases = found.cases
        out.problems += found.problems
    for case_id in cases:
        entries: list[Entry] = []
        try:
            _journaled, report = await rebuild(journal, case_id, entries)
        except ClusterError as exc:
            out.problems.append(exc)
            continue
        if not entries:
            out.problems.append(ClusterError("empty", "the case has no record", key=journal.layout.journal(case_id)))
            continue
        path = export_path(target, case_id)
        _write(path, SegmentHeader("export", 0, entries[0].record.gseq, case_id).encode(), entries)
        out.written.append((report, path))
    return out


def _write(path: Path, header: bytes, entries: list[Entry]) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(header)
        for entry in entries:
            f.write(entry.frame)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
