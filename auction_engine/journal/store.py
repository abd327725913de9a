"""Segment files on disk: append a batch of framed records with one write and one fsync.

Blocking calls, meant for a worker thread. Segments are named by their index and roll
when the next record would pass `segment_size`; a new segment's header is made durable
before any record goes in. All file calls go through `FileOps`,
so that tests can inject the errors a full or failing disk gives. A new segment is
written to a temporary name with its header, synced, then renamed: a segment file never
has a torn header.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from .format import SEGMENT_SUFFIX, SegmentHeader

DEFAULT_SEGMENT_SIZE = 64 << 20  # bytes; a record is never split across segments
DURABILITY_MODES = ("fsync", "none")  # none: no fsync at all, for tests and comparisons only


class FileOps:
    """The file system calls the store makes (override to inject faults)."""

    def open_append(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def create(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def sync(self, fd: int) -> None:
        os.fdatasync(fd)

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def sync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def segment_name(index: int) -> str:
    return f"{index:08d}{SEGMENT_SUFFIX}"


@dataclass(slots=True)
class Position:
    """Where the next record goes: segment index, its size so far (0: not created yet),
    the next record's gseq, and how many records the segment holds."""

    index: int
    size: int
    next_gseq: int
    records: int = 0


class SegmentStore:
    """Appends to the newest segment of one directory. Not thread-safe: one writer."""

    def __init__(self, directory: str | os.PathLike[str], position: Position, *,
                 segment_size: int = DEFAULT_SEGMENT_SIZE, durability: str = "fsync",
                 ops: FileOps | None = None) -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, not {durability!r}")
        self.directory = Path(directory)
        self.position = position
        self.segment_size = segment_size
        self.durable = durability == "fsync"
        self.ops = ops or FileOps()
        self._fd: int | None = None
        self.batches = 0
        self.bytes_written = 0

    def _open(self) -> int:
        """The open newest segment, created with its header if it does not exist."""
        if self._fd is not None:
            return self._fd
        pos = self.position
        path = self.directory / segment_name(pos.index)
        if pos.size == 0:  # a new segment appears whole, header included, or not at all
            header = SegmentHeader("engine", pos.index, pos.next_gseq).encode()
            partial = path.with_name(path.name + ".partial")
            fd = self.ops.create(partial)
            try:
                self._write_synced(fd, header, 0)
            finally:
                self.ops.close(fd)
            self.ops.replace(partial, path)
            if self.durable:
                self.ops.sync_dir(self.directory)
            pos.size = len(header)
        self._fd = self.ops.open_append(path)
        return self._fd

    def _write_synced(self, fd: int, data: bytes, size_before: int) -> None:
        """Write and sync; on failure try to cut the file back so no partial record stays."""
        try:
            self.ops.write(fd, data)
            if self.durable:
                self.ops.sync(fd)
        except BaseException:
            with contextlib.suppress(OSError):  # if this fails too, recovery sees a torn tail
                self.ops.truncate(fd, size_before)
            raise

    def append(self, frames: list[bytes]) -> None:
        """Make `frames` (consecutive records, first is `position.next_gseq`) durable."""
        if not frames:
            self.batches += 1
            return
        fd = self._open()
        pos = self.position
        data = b"".join(frames)
        if pos.size + len(data) <= self.segment_size:  # the usual case: the whole batch fits the segment
            self._write_synced(fd, data, pos.size)
            pos.size += len(data)
            pos.next_gseq += len(frames)
            pos.records += len(frames)
            self.bytes_written += len(data)
            self.batches += 1
            return
        start = 0
        while start < len(frames):
            fd = self._open()
            pos = self.position
            room = self.segment_size - pos.size
            end = start
            size = 0
            while end < len(frames) and (
                    size + len(frames[end]) <= room or (end == start and pos.records == 0)):  # oversize: alone
                size += len(frames[end])
                end += 1
            if end == start:  # the segment is full: roll
                self._roll()
                continue
            data = b"".join(frames[start:end])
            self._write_synced(fd, data, pos.size)
            pos.size += len(data)
            pos.next_gseq += end - start
            pos.records += end - start
            self.bytes_written += len(data)
            start = end
        self.batches += 1

    def _roll(self) -> None:
        if self._fd is not None:
            self.ops.close(self._fd)
            self._fd = None
        pos = self.position
        self.position = Position(pos.index + 1, 0, pos.next_gseq)

    def close(self) -> None:
        if self._fd is not None:
            self.ops.close(self._fd)
            self._fd = None
