"""The journal alone and the raw limits: the same records made durable with no core and no runtime.

`journal_run` has producers frame (`Journaled.record`), append and await each record of a
finished journal again; `raw_sync` writes given batches with os.write + os.fdatasync, the
limit both the service path and the journal alone are set against.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import trio

from auction_engine.events import Event
from auction_engine.journal import Journaled, JournalReader, Submission, recover, segment_paths
from auction_engine.journal.format import FRAME, decode_event, decode_header
from auction_engine.journal.store import SegmentStore
from auction_engine.journal.writer import JournalWriter

from .journal_service import Batches, service_gc

# -- the journal alone: the same records, framed and made durable by concurrent producers ------

Item = tuple[int, str, bytes, list[Event]]  # a record's time, auction, packed command and outcome


@dataclass
class Records:
    """A journal's records as the journal is handed them (in journal order: time, auction,
    packed command, and the outcome the core produced), and the digest of its frames."""

    items: list[Item]
    digest: bytes

    @classmethod
    def read(cls, directory: Path) -> Records:
        pack = msgpack.Packer(use_bin_type=True).pack
        items = [(r.time, r.auction_id, pack(r.command), [decode_event(e) for e in r.outcome])
                 for r, _where in JournalReader(directory).records()]
        return cls(items, frames_digest(journal_frames(directory)[1]))


def frames_digest(frames: list[bytes]) -> bytes:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame)
    return digest.digest()


@dataclass
class JournalRun:
    """The journal alone, from the start signal to the last record durable."""

    seconds: float
    samples_ns: list[int]  # each record's latency: framing, group commit, fsync, wake-up
    batch_sizes: list[int]

    @property
    def records_per_s(self) -> float:
        return len(self.samples_ns) / self.seconds


async def journal_run(directory: Path, items: list[Item], producers: int, args: argparse.Namespace) -> JournalRun:
    """`producers` trio tasks hand the journal records to make durable, each waiting for its
    record before taking the next one: the next record in journal order (an item), framed
    by the journal's encoder (`Journaled.record`: sequences, chain, msgpack, CRCs), then
    `writer.append` and `await writer.wait_durable` (group commit, write, fdatasync). No
    core and no runtime: what the journal itself costs, on what it sits on."""
    _journaled, report = recover(directory)
    batches = Batches()
    writer = JournalWriter(SegmentStore(directory, report.position), max_batch=args.max_batch,
                           max_delay=args.max_delay, sync_in=args.sync_in, split_from=args.split_from,
                           pipeline=args.pipeline, listener=batches)
    encoder = Journaled()
    source = iter(items)
    sizes = batches.sizes
    samples: list[int] = []

    async def producer() -> None:
        record, append, wait, clock = encoder.record, writer.append, writer.wait_durable, time.perf_counter_ns
        for now, auction_id, command, events in source:  # shared: each task takes the next record
            t0 = clock()
            out = Submission(events)
            record(out, now, auction_id, command, events)
            append(out.frames, out.last_gseq)
            await wait(out.last_gseq)
            samples.append(clock() - t0)

    with service_gc():
        gc.collect()
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            t0 = time.perf_counter()
            async with trio.open_nursery() as tasks:
                for _ in range(producers):
                    tasks.start_soon(producer)
            elapsed = time.perf_counter() - t0
            await writer.close()
    return JournalRun(elapsed, samples, sizes)


# -- the raw limits ------------------------------------------------------------------------


def journal_frames(directory: Path) -> tuple[bytes, list[bytes]]:
    """The first segment's header and every framed record of a journal, in order."""
    header = b""
    frames: list[bytes] = []
    unpack = FRAME.unpack_from
    for path in segment_paths(directory):
        data = path.read_bytes()
        _header, offset = decode_header(data)
        header = header or data[:offset]
        while offset < len(data):
            end = offset + FRAME.size + unpack(data, offset)[0]
            frames.append(data[offset:end])
            offset = end
    return header, frames


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def raw_sync(path: Path, header: bytes, batches: Sequence[bytes]) -> float:
    """Seconds to write and fdatasync each batch in turn to a fresh file (its header, like
    a new segment's, written and synced before the clock starts)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        write_all(fd, header)
        os.fdatasync(fd)
        t0 = time.perf_counter()
        for data in batches:
            write_all(fd, data)
            os.fdatasync(fd)
        return time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink()


def batched(frames: list[bytes], sizes: Sequence[int]) -> list[bytes]:
    """The frames joined into consecutive batches of the given sizes."""
    out: list[bytes] = []
    start = 0
    for n in sizes:
        out.append(b"".join(frames[start:start + n]))
        start += n
    if start != len(frames):
        raise RuntimeError(f"the batches hold {start} records, the journal {len(frames)}")
    return out

