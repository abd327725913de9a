"""Segment files on disk: append a batch of framed records with one write and one fsync.

Blocking calls: the writer's sync thread makes them, or (with the sync process) the trio
thread for the writes, which go to the page cache, while the child process syncs; see
`writer.py`. Segments are named by their index and roll
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
        self.unsynced = 0  # bytes written by `write_head` and not yet `advance`d (at most two writes)

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
            self.cut_back(fd, size_before)
            raise

    def cut_back(self, fd: int, size: int) -> None:
        """After a failed write or sync: try to cut the segment back to `size` so no partial
        record stays (if this fails too, recovery sees a torn tail)."""
        self.unsynced = max(0, size - self.position.size)  # past `size`: given up
        with contextlib.suppress(OSError):
            self.ops.truncate(fd, size)

    @property
    def syncs_elsewhere(self) -> bool:
        """Whether the writer may make batches durable with `fdatasync` on the segment from
        another process (the calls are the plain ones: no `FileOps.sync` override to honour)."""
        return self.durable and type(self.ops).sync is FileOps.sync

    def write_head(self, frames: list[bytes], start: int = 0) -> tuple[int, int, int]:
        """Write, without syncing, the longest run of `frames[start:]` that fits the newest
        segment (rolling to a new one when not even one fits; a record larger than a
        segment goes alone into an empty one). Return (fd, records, bytes). The caller makes
        them durable (an fdatasync of `fd`), then calls `advance(records, bytes)`, or
        `cut_back(fd, position.size)` if that failed. A second call before the first one's
        `advance` writes behind it in the same segment: only frames that `fits` allows."""
        while True:
            fd = self._open()
            pos = self.position
            room = self.segment_size - pos.size - self.unsynced
            end = start
            size = 0
            count = len(frames)
            while end < count and (size + len(frames[end]) <= room
                                   or (end == start and pos.records == 0 and not self.unsynced)):
                size += len(frames[end])
                end += 1
            if end > start:
                break
            if self.unsynced:
                raise RuntimeError("a segment cannot roll while a write to it is not yet durable")
            self._roll()  # the segment is full
        data = b"".join(frames if start == 0 and end == count else frames[start:end])
        try:
            self.ops.write(fd, data)
        except BaseException:
            self.cut_back(fd, pos.size + self.unsynced)  # what was written before stays
            raise
        self.unsynced += len(data)
        return fd, end - start, len(data)

    def fits(self, frames: list[bytes]) -> bool:
        """Whether `write_head` would put every one of `frames` into the open segment,
        behind what is written there and not yet durable, without rolling."""
        return self._fd is not None and \
            sum(map(len, frames)) <= self.segment_size - self.position.size - self.unsynced

    def advance(self, records: int, size: int) -> None:
        """Count `records` (`size` bytes) written by `write_head` as durable (the oldest
        write not yet counted)."""
        pos = self.position
        self.unsynced -= size
        pos.size += size
        pos.next_gseq += records
        pos.records += records
        self.bytes_written += size

    def append(self, frames: list[bytes]) -> None:
        """Make `frames` (consecutive records, first is `position.next_gseq`) durable: one
        write and one fsync per segment they go into (one, unless it fills)."""
        start = 0
        while start < len(frames):
            fd, records, size = self.write_head(frames, start)
            if self.durable:
                try:
                    self.ops.sync(fd)
                except BaseException:
                    self.cut_back(fd, self.position.size)
                    raise
            self.advance(records, size)
            start += records
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
