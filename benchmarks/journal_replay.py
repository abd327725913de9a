"""Reading a finished journal again: verify (as `auction-replay verify`), its raw limit, recovery, checkpoints.

Each figure is timed on the files in the page cache, interleaved with the others and
checked: a benchmark that counts records wrongly raises instead of reporting.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import time
from functools import partial
from pathlib import Path

import msgpack

from auction_engine import Command
from auction_engine.journal import Journaled, JournalReader, checkpoint, recover, segment_paths
from auction_engine.journal.format import FRAME, decode_command, decode_header
from auction_engine.runtime import wall_clock_us
from replay.verify import verify as verify_journal

from .common import interleaved

# -- verify, its raw limit, recovery -------------------------------------------------------------


def verify(directory: Path, jobs: int | None = None) -> int:
    """What the auditors' tool does (`replay.verify`, as `auction-replay verify` runs it):
    framing, CRCs, segment order, sequences, every chain, re-execution through the core
    comparing every outcome; shared by one process per CPU (the default), or in one."""
    result = verify_journal(directory, jobs=jobs)
    if not result.ok:
        raise RuntimeError(f"the journal fails verification: {result.problem or result.torn}")
    return result.records


def verify_one_process(directory: Path) -> int:
    return verify(directory, jobs=1)


def read_decode(directory: Path) -> int:
    """The raw limit of verify: read the same segments, walk the frames, msgpack-decode
    every payload (as `unpack_payload` decodes it); nothing checked."""
    unpack = FRAME.unpack_from
    unpackb = msgpack.unpackb
    size = FRAME.size
    count = 0
    for path in segment_paths(directory):
        data = path.read_bytes()
        _header, offset = decode_header(data)
        end = len(data)
        while offset < end:
            start = offset + size
            offset = start + unpack(data, offset)[0]
            unpackb(data[start:offset], use_list=False, raw=False, strict_map_key=True)
            count += 1
    return count


def submit_all(commands: list[Command]) -> int:
    """What the service does per command before any IO: core, sequences, chain, framing."""
    journaled = Journaled()
    submit = journaled.submit
    for command in commands:
        submit(command)
    return journaled.gseq


def verify_throughput(directory: Path, records: int,
                      repeat: int) -> tuple[list[float], list[float], list[float], list[float]]:
    """Seconds of verify, of verify in one process, of their raw limit, and (for
    reference) of producing the same records with `Journaled.submit` and no IO,
    interleaved (the files are in the page cache)."""
    commands = [decode_command(record.command) for record, _where in JournalReader(directory).records()]

    def check(counts: list[int]) -> None:
        verified, single, decoded, produced = counts
        if not verified == single == decoded == produced == records:
            raise RuntimeError(f"verify counted {verified} records ({single} in one process), the raw read "
                               f"{decoded}, submit produced {produced}; the journal has {records}")

    verify_s, single_s, raw_s, submit_s = interleaved(repeat, [
        partial(verify, directory), partial(verify_one_process, directory), partial(read_decode, directory),
        partial(submit_all, commands)], check)
    return verify_s, single_s, raw_s, submit_s


def recovery_times(directory: Path, records: int, state_hash: str, repeat: int) -> list[float]:
    """Seconds of `recover(directory)` (garbage collector on, as at a restart)."""
    seconds: list[float] = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        _journaled, report = recover(directory)
        seconds.append(time.perf_counter() - t0)
        del _journaled
        if report.records != records or report.state_hash != state_hash or report.torn is not None:
            raise RuntimeError(f"recovery gave {report.summary()}; expected {records} records, state {state_hash}")
    return seconds


def checkpoint_times(directory: Path, records: int, state_hash: str,
                     repeat: int) -> tuple[list[float], int, list[float]]:
    """Seconds to encode and write a checkpoint of the whole journal (what the forked child
    does), its size, and seconds of `recover(directory, checkpoints=True)` starting from
    it (nothing left to replay); the checkpoint is removed afterwards."""
    journaled, report = recover(directory)
    last = None
    for _record, where in JournalReader(directory).records():
        last = where
    assert last is not None
    frame_at = Path(last.file).read_bytes()[last.offset:last.offset + FRAME.size]
    length = FRAME.unpack(frame_at)[0]
    payload = Path(last.file).read_bytes()[last.offset + FRAME.size:last.offset + FRAME.size + length]
    index = int(Path(last.file).name[:8])
    where_last = (index, last.offset, hashlib.sha256(payload).digest())
    write_s: list[float] = []
    recover_s: list[float] = []
    size = 0
    try:
        for _ in range(repeat):
            gc.collect()
            t0 = time.perf_counter()
            data = checkpoint.encode(journaled, report.position, where_last, (), wall_clock_us())
            checkpoint.write(directory, data, journaled.gseq)
            write_s.append(time.perf_counter() - t0)
            size = sum(len(piece) for piece in data)
            del data
            gc.collect()
            t0 = time.perf_counter()
            _journaled, again = recover(directory, checkpoints=True)
            recover_s.append(time.perf_counter() - t0)
            del _journaled
            if again.checkpoint != records or again.state_hash != state_hash or again.replayed:
                raise RuntimeError(f"recovery from the checkpoint gave {again.summary()}")
    finally:
        shutil.rmtree(directory / checkpoint.DIRECTORY, ignore_errors=True)
    return write_s, size, recover_s

