"""Commands in, records out. No IO.

`Journaled.submit(command)` runs a command through the host (every procedure kind) and
returns the framed records of what changed, one per case touched, each chained to its
case's previous record: the shell writes them and acknowledges once they are durable.
Reading them back is `verifier.Verifier`'s.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from hashlib import sha256

import msgpack

from ..commands import Command
from ..engine import Engine
from ..events import Event
from ..host import Host
from ..kind import RetryKey, Tick
from .format import (
    EVENT_PREFIX,
    GENESIS,
    LENGTH_CRC,
    ONE_EVENT_PREFIX,
    FormatError,
    decode_event,
    names,
    pack_outcome,
)

_pack = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb
_crc32 = zlib.crc32
_LENGTH_CRC_PACK = LENGTH_CRC.pack
_U32_PACK = struct.Struct("<I").pack
_COMMAND_PREFIX = EVENT_PREFIX  # the same prefixes: [type name, *fields] of any NamedTuple


@dataclass(slots=True)
class Submission:
    """What one command produced: every event (a due tick may touch other cases first),
    in the order of the records (a due tick's events grouped by case, as a replay sees
    them), the framed records to write in order, and the global sequence of the last one."""

    events: list[Event]
    frames: list[bytes] = field(default_factory=list)
    last_gseq: int = 0
    duplicate: bool = False  # a command whose retry key was seen: `events` is its first outcome


class Journaled:
    """A host whose every state change becomes a record with sequences and a hash chain
    per case."""

    def __init__(self, host: Host | None = None) -> None:
        self.host = host or Host()
        self.gseq = 0  # the global sequence of the last record
        self.chains: dict[str, tuple[int, bytes]] = {}  # case -> (its last aseq, that record's SHA-256)
        # case -> the gseq of its last record, for a case adopted from another writer whose
        # sequence ran ahead of this one: its next records' gseq follow that one instead
        self.floors: dict[str, int] = {}
        # retry key (case, actor, client id) -> outcome, as a tuple: tuples of events (plain
        # values) leave the garbage collector's lists, so millions of them cost it nothing;
        # values loaded from a checkpoint stay packed (msgpack bytes of the encoded events)
        # until a retry needs one: a start from a checkpoint does not decode every outcome
        self.bids: dict[RetryKey, tuple[Event, ...] | bytes] = {}
        self._encoders = names().encoders

    @property
    def engine(self) -> Engine:
        """The auction kind (its queries: views, results)."""
        return self.host.kind(Engine)

    def previous_outcome(self, command: Command) -> list[Event] | None:
        """The outcome of a journaled command with the same retry key, if any."""
        kind = self.host.kind_of(command)
        key = None if kind is None else kind.retry_key(command)
        if key is None:
            return None
        previous = self.bids.get(key)
        return None if previous is None else list(self._outcome(key, previous))

    def _outcome(self, key: RetryKey, value: tuple[Event, ...] | bytes) -> tuple[Event, ...]:
        """A journaled command's outcome (decoded now if it came packed from a checkpoint)."""
        if type(value) is not bytes:
            return value  # type: ignore[return-value]
        events = tuple(decode_event(e) for e in _unpackb(value, use_list=False, raw=False))
        self.bids[key] = events
        return events

    def remember(self, command: Command, events: list[Event]) -> None:
        """Index a journaled command's outcome under its retry key."""
        kind = self.host.kind_of(command)
        key = None if kind is None else kind.retry_key(command)
        if key is not None:
            self.bids[key] = tuple(events)

    def adopt(self, case_id: str, other: Journaled) -> None:
        """Take a case rebuilt alone in `other` (its host, chain head, retry keys) into this
        one, whose host must be a `CaseHosts`. The case's next records are numbered past its
        last one's gseq, so that they keep increasing in its stream, while this writer's own
        sequence (what its writer counts) goes on unchanged."""
        self.host.adopt(case_id, other.host)  # type: ignore[attr-defined]
        chain = other.chains.get(case_id)
        if chain is not None:
            self.chains[case_id] = chain
        self.bids.update((key, value) for key, value in other.bids.items() if key[0] == case_id)
        if other.gseq > self.gseq:
            self.floors[case_id] = other.gseq

    def drop(self, case_id: str) -> None:
        """Forget a case (it moved away): its host (a `CaseHosts`'s), chain and retry keys."""
        self.host.drop(case_id)  # type: ignore[attr-defined]
        self.chains.pop(case_id, None)
        self.floors.pop(case_id, None)
        for key in [key for key in self.bids if key[0] == case_id]:
            del self.bids[key]

    def submit(self, command: Command) -> Submission:
        """Apply `command` (after every deadline due by its time) and frame the records.
        Raises `FormatError` (unjournalable) or `CaseConflict` before changing anything."""
        host = self.host
        ctype = type(command)
        now = command.now
        scoped = ctype is not Tick or command[1] is not None
        kind = None
        key = target = None
        if ctype is not Tick:
            kind, target = host.check(command)
            key = kind.retry_key(command)
            if key is not None:
                previous = self.bids.get(key)
                if previous is not None:
                    return Submission(list(self._outcome(key, previous)), [], self.gseq, duplicate=True)
        packed = b""
        if scoped:
            try:  # first: what cannot be journaled changes nothing (not even a due tick)
                encoder = self._encoders.get(ctype)
                if encoder is None:  # = _pack([type name, *fields]): the name spliced in front of the fields
                    packed = _COMMAND_PREFIX[ctype] + _pack(command)[1:]
                else:
                    packed = _pack(encoder(command))
            except (OverflowError, TypeError, ValueError) as exc:
                raise FormatError("unjournalable",  # no repr: this text may reach a client
                                  f"a {ctype.__name__} field cannot be journaled ({exc})") from None
        out = Submission([], [], self.gseq)
        if ctype is not Tick or command[1] is None:
            if type(now) is int and host.due(now):
                ticked = host.tick(now)  # raises ClockRegression before changing anything
                by_case: dict[str, list[Event]] = {}
                event_case = host.event_case
                for e in ticked:
                    by_case.setdefault(event_case(e), []).append(e)
                for case, events in by_case.items():  # one record per case: `events` in record order,
                    out.events += events  # as a replay sees them (an event feed numbers them the same way)
                    self.record(out, now, case, _pack(("Tick", now, case)), events)
            if ctype is Tick:
                return out
        events = host.handle(command) if kind is None else host.apply(kind, command, target)
        if out.events:
            out.events += events
        else:
            out.events = events
        if kind is None:
            kind = host.kind_of(command)
            target = None if kind is None else kind.case_of(command)
        if kind is not None and kind.changes_state(events):
            assert type(target) is str, command
            self.record(out, now, target, packed, events)
            if key is not None:  # (a Tick has none)
                self.bids[key] = tuple(events)
        return out

    def record(self, out: Submission, now: int, aid: str, command: bytes, events: list[Event]) -> None:
        """Frame the next record of `aid` into `out` (what `submit` does once the core has
        run): the bytes of `frame(pack_payload(...))`, spliced from the packed command,
        each event packed behind its type name's prefix (`format.pack_outcome`), the
        sequences and `prev`. The engine is not consulted: `events` must be its outcome."""
        chain = self.chains.get(aid)
        if chain is None:
            aseq, prev = 1, GENESIS
        else:
            aseq, prev = chain[0] + 1, chain[1]
        gseq = self.gseq + 1  # committed only once the record is encoded
        numbered = gseq  # the record's gseq: this writer's sequence, or past an adopted case's own
        if self.floors:
            floor = self.floors.get(aid)
            if floor is not None:
                if floor >= gseq:
                    numbered = self.floors[aid] = floor + 1
                else:
                    del self.floors[aid]
        if len(events) == 1:
            event = events[0]
            outcome = ONE_EVENT_PREFIX[type(event)] + _pack(event)[1:]
        else:
            outcome = pack_outcome(events)
        payload = b"".join((b"\x97", _pack((numbered, aseq, now, aid))[1:], command, outcome, b"\xc4\x20", prev))
        head = _LENGTH_CRC_PACK(len(payload), _crc32(payload))
        self.gseq = gseq
        self.chains[aid] = (aseq, sha256(payload).digest())
        out.frames.append(b"".join((head, _U32_PACK(_crc32(head)), payload)))
        out.last_gseq = gseq
