"""Recovery checkpoints: the host's whole state as of one record, so that a start
replays only the records after it.

A checkpoint is one file, ``<journal>/checkpoints/<gseq, 20 digits>.checkpoint``:

- a 20-byte head: magic ``\\x89AUCCKP\\n``, format version (u16 LE), reserved (u16), the
  body's length (u64 LE);
- the body, a msgpack map: the last record it includes (`gseq`), where the next record
  goes and where that last record is (segment, byte offset, SHA-256), the state hash, the
  host's state (`Host.dump_state`: every kind's), every case's chain head, every journaled
  command's outcome under its retry key (packed as in a record, decoded only if a retry
  needs it), and the shell's own derived state (`parts`: e.g. the service's event feed),
  each as plain values;
- the SHA-256 of the head and body (32 bytes).

docs/journal-format.md is the reference. A checkpoint is written only of durable records,
to a ``.partial`` file that is fsynced, then renamed (and the directory fsynced); the two
newest are kept. It is an optimisation only: the journal stays the one source of truth,
any checkpoint that does not match it is skipped (see `recovery.recover`), and the
auditors' tool never reads one.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Protocol

import msgpack

from ..host import Host
from .format import FRAME, FormatError, pack_outcome, unpack_payload
from .sequencer import Journaled
from .store import FileOps, Position, segment_name

MAGIC = b"\x89AUCCKP\n"
VERSION = 2  # 2: the host's state (every kind's) instead of the auction engine's
HEAD = struct.Struct("<8sHHQ")
SUFFIX = ".checkpoint"
DIRECTORY = "checkpoints"  # under the journal directory
KEEP = 2  # the newest checkpoints kept (an older one is there if the newest is unusable)
MAX_BODY = 1 << 40
_FILES = FileOps()  # the plain calls (directory fsync)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (damaged, foreign, or not matching the journal)."""

    code = "bad_checkpoint"


class Part(Protocol):
    """State a host derives from the journal's records (through `recover`'s `on_record`)
    and keeps in a checkpoint, so that a start from it needs no earlier record. `dump()`
    returns it as plain values (msgpack), `load(data)` replaces it (`None`: empty, before
    a replay from the first record)."""

    name: str

    def dump(self) -> object: ...

    def load(self, data: object | None) -> None: ...


@dataclass(slots=True)
class Checkpoint:
    """A decoded checkpoint: the journaled engine as of record `gseq`, where the next
    record goes (`position`), the last record's place and SHA-256, the host's parts."""

    gseq: int
    position: Position
    last: tuple[int, int, bytes] | None  # (segment index, offset, SHA-256) of record gseq; None if gseq 0
    state_hash: str
    journaled: Journaled
    created: int
    parts: dict[str, object] = field(default_factory=dict)


def path_for(journal_dir: Path, gseq: int) -> Path:
    return journal_dir / DIRECTORY / f"{gseq:020d}{SUFFIX}"


def encode(journaled: Journaled, position: Position, last: tuple[int, int, bytes] | None,
           parts: Sequence[Part], created: int) -> list[bytes]:
    """The bytes of a checkpoint of `journaled` (every record up to its gseq durable and
    `position` where the next one goes), in pieces to write one after the other."""
    host = journaled.host
    body = {
        "gseq": journaled.gseq,
        "position": [position.index, position.size, position.records],
        "last": None if last is None else list(last),
        "created": created,
        "state_hash": host.state_hash(),
        "host": host.dump_state(),
        "chains": [[aid, aseq, digest] for aid, (aseq, digest) in journaled.chains.items()],
        "bids": _bids(journaled),
        "parts": {part.name: part.dump() for part in parts},
    }
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    del body  # the plain values: as large as the packed bytes
    head = HEAD.pack(MAGIC, VERSION, 0, len(packed))
    seal = sha256(head)
    seal.update(packed)
    return [head, packed, seal.digest()]  # in pieces: never a second copy of the body


def decode(data: bytes) -> Checkpoint:
    """A checkpoint from its bytes; `CheckpointError` if anything is off (its own state
    hash is recomputed from the rebuilt engine and compared)."""
    if len(data) < HEAD.size + 32:
        raise CheckpointError("too short to be a checkpoint")
    magic, version, _reserved, length = HEAD.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError("not a checkpoint (wrong magic bytes)")
    if version != VERSION:
        raise CheckpointError(f"checkpoint format version {version}; this build reads {VERSION}")
    if length > MAX_BODY or HEAD.size + length + 32 != len(data):
        raise CheckpointError("the checkpoint's length does not match its size (cut short?)")
    if sha256(data[:-32]).digest() != data[-32:]:
        raise CheckpointError("the checkpoint fails its SHA-256")
    try:
        body = msgpack.unpackb(data[HEAD.size:-32], raw=False, strict_map_key=True)
        return _checkpoint(body)
    except CheckpointError:
        raise
    except Exception as exc:  # a body of the wrong shape (msgpack, the engine's loader, the events)
        raise CheckpointError(f"the checkpoint's body is not valid: {type(exc).__name__}: {exc}") from None


def _checkpoint(body: Any) -> Checkpoint:
    if type(body) is not dict:
        raise CheckpointError("the checkpoint's body is not a map")
    gseq, (index, size, records), last = body["gseq"], body["position"], body["last"]
    if not all(type(v) is int and v >= 0 for v in (gseq, index, size, records)):
        raise CheckpointError("gseq and position must be non-negative integers")
    if last is not None:
        if not (type(last) is list and len(last) == 3 and type(last[0]) is int and type(last[1]) is int
                and type(last[2]) is bytes and len(last[2]) == 32):
            raise CheckpointError("last must be [segment, offset, SHA-256]")
        last = (last[0], last[1], last[2])
        if last[0] != index or not 0 < last[1] < size:
            raise CheckpointError("its last record must be in the segment of its position, before it")
    elif gseq:
        raise CheckpointError("a checkpoint after records must say where the last one is")
    journaled = Journaled(Host.load_state(body["host"]))
    journaled.gseq = gseq
    for aid, aseq, digest in body["chains"]:
        if type(aid) is not str or type(aseq) is not int or type(digest) is not bytes or len(digest) != 32:
            raise CheckpointError("a chain head must be [auction, aseq, SHA-256]")
        journaled.chains[aid] = (aseq, digest)
    bids = body["bids"]
    if type(bids) is not list or len(bids) != 4 or any(type(column) is not list for column in bids) \
            or not len(bids[0]) == len(bids[1]) == len(bids[2]) == len(bids[3]):
        raise CheckpointError("journaled bids must be four columns of one length")
    journaled.bids = dict(zip(zip(*bids[:3], strict=True), bids[3], strict=True))
    for (aid, bidder, cid), outcome in journaled.bids.items():  # types only: decoded when a retry needs one
        if type(aid) is not str or type(bidder) is not str or type(cid) is not str or type(outcome) is not bytes:
            raise CheckpointError("a journaled bid is an auction, a bidder, a client_bid_id and a packed outcome")
    state_hash = body["state_hash"]
    if journaled.host.state_hash() != state_hash:
        raise CheckpointError("the rebuilt host's state hash is not the checkpoint's")
    parts = body["parts"]
    if type(parts) is not dict or type(body["created"]) is not int:
        raise CheckpointError("parts must be a map, created an integer")
    return Checkpoint(gseq, Position(index, size, gseq + 1, records), last, state_hash, journaled,
                      body["created"], parts)


def _bids(journaled: Journaled) -> list[list[Any]]:
    """Every journaled bid's key and packed outcome, as four columns (auction, bidder,
    client_bid_id, msgpack of the encoded events, as in a record)."""
    columns: list[list[Any]] = [[], [], [], []]
    aids, bidders, cids, outcomes = columns
    for (aid, bidder, cid), outcome in journaled.bids.items():
        aids.append(aid)
        bidders.append(bidder)
        cids.append(cid)
        outcomes.append(outcome if type(outcome) is bytes else pack_outcome(outcome))  # type: ignore[arg-type]
    return columns


def candidates(journal_dir: Path) -> list[Path]:
    """The checkpoint files of a journal directory, newest (highest gseq) first."""
    directory = journal_dir / DIRECTORY
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.name.endswith(SUFFIX) and p.name[:-len(SUFFIX)].isdigit()]
    return sorted(found, key=lambda p: int(p.name[:-len(SUFFIX)]), reverse=True)


def gseq_of(path: Path) -> int:
    return int(path.name[:-len(SUFFIX)])


def check_last(journal_dir: Path, checkpoint: Checkpoint) -> None:
    """The journal still holds, where the checkpoint says, the record it ends with."""
    if checkpoint.last is None:
        return
    index, offset, digest = checkpoint.last
    segment = journal_dir / segment_name(index)
    try:
        with open(segment, "rb") as f:
            f.seek(offset)
            head = f.read(FRAME.size)
            length = FRAME.unpack(head)[0] if len(head) == FRAME.size else 0
            payload = f.read(length) if 0 < length <= 64 << 20 else b""
    except OSError as exc:
        raise CheckpointError(f"cannot read its last record: {exc}") from None
    if offset + FRAME.size + length != checkpoint.position.size:
        raise CheckpointError(f"its last record (gseq {checkpoint.gseq}) does not end where its position says")
    if not payload or len(payload) != length or sha256(payload).digest() != digest:
        raise CheckpointError(f"the journal does not hold its last record (gseq {checkpoint.gseq}) at byte "
                              f"{offset} of {segment.name}")
    try:
        record = unpack_payload(payload)
    except FormatError as exc:
        raise CheckpointError(str(exc)) from None
    if record.gseq != checkpoint.gseq or checkpoint.journaled.chains.get(record.auction_id, (0, b""))[1] != digest:
        raise CheckpointError("its last record is not the head of its auction's chain")


def write(journal_dir: Path, pieces: Sequence[bytes], gseq: int) -> Path:
    """Write a checkpoint (`encode`'s pieces) durably (a fsynced `.partial`, renamed, the
    directory fsynced) and remove all but the `KEEP` newest."""
    directory = journal_dir / DIRECTORY
    directory.mkdir(exist_ok=True)
    final = path_for(journal_dir, gseq)
    partial = final.with_name(final.name + ".partial")
    for stale in directory.glob(f"*{SUFFIX}.partial"):  # an earlier attempt's leftovers
        stale.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk is not made fuller by each attempt
        raise
    _FILES.sync_dir(directory)
    for old in candidates(journal_dir)[KEEP:]:
        old.unlink(missing_ok=True)
    return final


def remove_after(journal_dir: Path, gseq: int) -> list[Path]:
    """Remove every checkpoint past record `gseq` (the journal's end at a start: a
    checkpoint past it describes records the journal does not hold, or no longer holds
    the same) and every unfinished one; return what was removed."""
    removed = [p for p in candidates(journal_dir) if gseq_of(p) > gseq]
    directory = journal_dir / DIRECTORY
    if directory.is_dir():
        removed += list(directory.glob(f"*{SUFFIX}.partial"))
    for p in removed:
        p.unlink(missing_ok=True)
    if removed:
        _FILES.sync_dir(directory)
    return removed



class Child:
    """A checkpoint being written by a forked child (`fork_write`). `errors` (a pipe's
    read end) becomes readable when the child reports a failure or ends; then `poll()`."""

    def __init__(self, pid: int, errors: int, gseq: int) -> None:
        self.pid = pid
        self.gseq = gseq
        self.started = time.monotonic()
        self.seconds = 0.0  # once ended
        self.errors = errors  # the child writes why it failed here; end of file once it exits
        self.error = ""
        self._stopped = ""

    def poll(self) -> bool | None:
        """None while it runs; then True if the checkpoint was written (else `error` says
        why). Never blocks."""
        try:
            done, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            done, status = self.pid, 1 << 8
        if done == 0:
            return None
        self.seconds = time.monotonic() - self.started
        code = os.waitstatus_to_exitcode(status)
        message = ""
        if self.errors >= 0:
            with contextlib.suppress(OSError):
                message = os.read(self.errors, 4096).decode(errors="replace")
            os.close(self.errors)
            self.errors = -1
        if code != 0:
            self.error = self._stopped or message or (
                f"the checkpoint process was killed by signal {-code}" if code < 0
                else f"the checkpoint process exited with status {code}")
        return code == 0

    def stop(self, reason: str) -> None:
        """Kill it (reap it with `poll`); it leaves at most a `.partial` file, removed at
        the next start."""
        self._stopped = reason
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)


def fork_write(journal_dir: Path, journaled: Journaled, position: Position, last: tuple[int, int, bytes],
               parts: Sequence[Part], created: int) -> Child:
    """Write a checkpoint from a forked child (a copy-on-write image of this process at
    this instant), so that the service does not stop while it is encoded and written.
    Everything up to `journaled.gseq` must be durable and the host's parts up to date with
    it. The child closes every file it inherited (sockets, the journal's), ignores the
    terminal's and the service manager's stop signals (the parent waits for it or kills
    it), touches nothing of the parent's (no trio, no logging, no exit handlers), dies
    with the parent (Linux), and reports a failure through a pipe."""
    errors, report = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except BaseException:
        os.close(errors)
        os.close(report)
        raise
    if pid:
        os.close(report)
        return Child(pid, errors, journaled.gseq)
    status = 1
    try:  # the child
        gc.disable()  # a collection would touch (copy) every page of the parent's heap
        signal.set_wakeup_fd(-1)  # the parent's trio wakes up on that fd: not for our signals
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        if _PRCTL is not None:
            _PRCTL(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the parent
        if os.getppid() != parent:  # it died before that took effect
            os._exit(1)
        os.closerange(3, report)
        os.closerange(report + 1, 2**31 - 1)  # (close_range(2) on Linux: one call whatever the bound)
        try:
            write(journal_dir, encode(journaled, position, last, parts, created), journaled.gseq)
            status = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(report, f"{type(exc).__name__}: {exc}"[:4000].encode(errors="replace"))
    finally:
        os._exit(status)


def _prctl() -> Any:
    """libc's prctl, resolved once here (not in a forked child: the loader takes locks)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl() if sys.platform.startswith("linux") else None
