"""Read a journal (a directory of segments, or one segment file) record by record.

Framing is checked here: magic, version, segment order, lengths and CRCs. An incomplete
record at the very end of the last segment (a write cut short by a crash) is a torn tail:
the reader stops before it and reports it in `torn`; any other damage raises
`JournalCorruption` with the file, the byte offset and the record index.
"""

from __future__ import annotations

import gc
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .format import (
    FRAME,
    MAX_RECORD,
    SEGMENT_SUFFIX,
    FormatError,
    JournalCorruption,
    Location,
    Record,
    SegmentHeader,
    decode_header,
    unpack_payload,
)


@dataclass(frozen=True, slots=True)
class TornTail:
    """An incomplete last record: where it starts and how many bytes it has."""

    file: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.size} bytes of an incomplete record at byte {self.offset} of {self.file}"


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a journal is replayed: the engine allocates
    millions of long-lived objects and hardly any cycles, and the collector's passes
    over them cost about a fifth of the replay time (measured)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def segment_paths(path: str | os.PathLike[str]) -> list[Path]:
    """The segments of a journal directory in order, or the one file given."""
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.iterdir() if q.name.endswith(SEGMENT_SUFFIX) and q.is_file())
    if p.is_file():
        return [p]
    raise FileNotFoundError(f"no journal at {p}")


class JournalReader:
    """Iterate `records()` (or `frames()`); afterwards `headers` holds each segment's
    header, `torn` the torn tail if there was one, and `end` the (file, offset) just after
    the last record."""

    def __init__(self, path: str | os.PathLike[str], start: tuple[int, int, int] | None = None) -> None:
        self.path = Path(path)
        self.paths = segment_paths(path)
        # (segment index, byte offset, records before it in that segment): read from there
        # on (a start from a checkpoint); that segment's file must be the first one read
        self.start = start
        if start is not None:
            self.paths = [q for q in self.paths if not q.name[:8].isdigit() or int(q.name[:8]) >= start[0]]
        self.headers: list[SegmentHeader] = []
        self.torn: TornTail | None = None
        self.end: tuple[Path, int] | None = None
        self.file = ""  # the segment being read

    def records(self) -> Iterator[tuple[Record, Location]]:
        """Every record, decoded and type-checked (`unpack_payload`), with its location."""
        for payload, offset, index in self.frames():
            where = Location(self.file, offset, index)
            try:
                record = unpack_payload(payload)
            except FormatError as exc:
                raise JournalCorruption(exc.code, str(exc), where) from None
            yield record, where

    def frames(self) -> Iterator[tuple[bytes, int, int]]:
        """Every record's payload with the byte offset of its frame and its index in the
        segment, its framing and CRCs checked (the payload is not decoded, except the first
        of each segment: its gseq must be the header's)."""
        for n, path in enumerate(self.paths):
            yield from self._segment(path, last=n == len(self.paths) - 1)

    def location(self, offset: int, index: int) -> Location:
        """The location of the record at `offset` of the segment being read."""
        return Location(self.file, offset, index)

    def _segment(self, path: Path, *, last: bool) -> Iterator[tuple[bytes, int, int]]:
        data = path.read_bytes()
        name = self.file = str(path)
        try:
            header, offset = decode_header(data)
        except FormatError as exc:  # segments are created whole (see store.py): never torn here
            raise JournalCorruption(exc.code, str(exc), Location(name, 0, -1)) from None
        previous = self.headers[-1] if self.headers else None
        if previous is not None and (header.kind != previous.kind or header.index != previous.index + 1):
            raise JournalCorruption("segment_gap", f"segment {header.index} ({header.kind}) follows segment "
                                    f"{previous.index} ({previous.kind}): a segment is missing or foreign",
                                    Location(name, 0, -1))
        index = 0
        if self.start is not None and not self.headers:  # the first segment read, from a checkpoint's position
            first, at, index = self.start
            if header.index != first or not offset <= at <= len(data):
                raise JournalCorruption("bad_start", f"the journal has no segment {first} holding byte {at}",
                                        Location(name, 0, -1))
            offset = at
        self.headers.append(header)
        self.end = (path, offset)
        size = len(data)
        unpack_frame = FRAME.unpack_from
        frame_size = FRAME.size
        crc32 = zlib.crc32
        while offset < size:
            if size - offset < frame_size:
                if last:
                    self.torn = TornTail(name, offset, size - offset)
                    return
                raise JournalCorruption("truncated", "the segment ends inside a record frame",
                                        Location(name, offset, index))
            length, crc, head_crc = unpack_frame(data, offset)
            start = offset + frame_size
            if crc32(data[offset:offset + 8]) != head_crc:
                if last and not any(memoryview(data)[offset:]):  # zeros where the crash left the file longer
                    self.torn = TornTail(name, offset, size - offset)
                    return
                raise JournalCorruption("bad_frame", "the record's length field fails its CRC",
                                        Location(name, offset, index))
            if length > MAX_RECORD:
                raise JournalCorruption("bad_frame", f"record length {length} is over the limit",
                                        Location(name, offset, index))
            end = start + length
            if end > size:
                if last:
                    self.torn = TornTail(name, offset, size - offset)
                    return
                raise JournalCorruption("truncated", "the segment ends inside a record", Location(name, offset, index))
            payload = data[start:end]
            if crc32(payload) != crc:
                raise JournalCorruption("bad_crc", "the record's payload fails its CRC", Location(name, offset, index))
            if index == 0:
                try:
                    first = unpack_payload(payload).gseq
                except FormatError as exc:
                    raise JournalCorruption(exc.code, str(exc), Location(name, offset, index)) from None
                if first != header.first_gseq:
                    raise JournalCorruption("bad_header", f"the segment header says its first record is gseq "
                                            f"{header.first_gseq}; it is {first}", Location(name, offset, index),
                                            gseq=first)
            yield payload, offset, index
            offset = end
            index += 1
            self.end = (path, offset)
