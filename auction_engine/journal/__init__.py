"""The append-only journal: every state change of the engine, framed, chained and fsynced.

`Journaled` turns commands into records (sans-IO), `JournalWriter` group-commits them to a
`SegmentStore`, `recover` rebuilds the engine from a directory, and `JournalReader` with
`Verifier` is what the auditors' tool (`replay/`) runs. Format: docs/journal-format.md.
"""

from .format import JournalCorruption, Location, Record, SegmentHeader
from .reader import JournalReader, TornTail, segment_paths
from .recovery import RecoveryReport, recover, repair
from .sequencer import Journaled, Submission
from .store import DURABILITY_MODES, FileOps, Position, SegmentStore
from .verifier import Verifier
from .writer import JournalUnavailable, JournalWriter

__all__ = [
    "DURABILITY_MODES", "FileOps", "JournalCorruption", "JournalReader", "JournalUnavailable", "JournalWriter",
    "Journaled", "Location", "Position", "Record", "RecoveryReport", "SegmentHeader", "SegmentStore",
    "Submission", "TornTail", "Verifier", "recover", "repair", "segment_paths",
]
