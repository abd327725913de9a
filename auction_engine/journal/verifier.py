"""Records in, the same host back: every rule of the journal checked, every command re-executed.

`Verifier.feed(record)` checks a record's sequences and hash chain, re-executes its command
through the host and compares the outcome: recovery and the auditors' tool are the same
loop. `Verifier.run(reader)` is that loop over a whole journal, with the checks of the
common records (auction bids and ticks) inlined: the same rules in the same order, and any
other record goes through `feed`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from hashlib import sha256
from typing import TYPE_CHECKING, Any

import msgpack

from ..commands import Command, PlaceBid
from ..engine import Engine
from ..events import Event
from ..host import Host
from ..kind import ClockRegression, Tick
from .format import (
    FRAME,
    GENESIS,
    MAX_RECORD,
    FormatError,
    JournalCorruption,
    Location,
    Record,
    SegmentHeader,
    decode_command,
    decode_header,
    encode_events,
    unpack_payload,
)
from .sequencer import Journaled

if TYPE_CHECKING:
    from .reader import JournalReader

_unpackb = msgpack.unpackb
_new_tuple = tuple.__new__
_EVENT_NAMES: dict[type[Any], str] = {}  # filled lazily: every event type's name


RecordHook = Callable[[Record, list[Event]], None]


class Undecided(Exception):
    """A shared verification met what only a verification in one process can judge."""


class Verifier:
    """Feeds records, in journal order, through a fresh engine and checks every rule.

    `contiguous`: the global sequence must have no gap (an engine's journal); otherwise it
    must only increase (an export, or `only` one auction). `only`: re-execute one auction.
    `journaled`: start from this state (a checkpoint's) instead of an empty engine.
    """

    def __init__(self, *, contiguous: bool = True, only: str | None = None,
                 journaled: Journaled | None = None) -> None:
        self.journaled = journaled or Journaled()  # a checkpoint's: go on from its last record
        self.contiguous = contiguous and only is None
        self.only = only
        self.records = 0  # records whose global sequence was checked
        self.replayed = 0  # records re-executed
        self.passed = 0  # records that passed every check
        self.first_gseq: dict[str, int] = {}  # auction -> the gseq of its first record re-executed
        self.last_gseq: dict[str, int] = {}  # auction -> the gseq of its last record re-executed

    def feed(self, record: Record, where: Location | None = None) -> list[Event]:
        """Check one record and re-execute it; return the replayed events.
        Raise `JournalCorruption` at the first broken rule."""
        j = self.journaled
        gseq, aseq, _time, aid, _command, outcome, prev, digest, _payload = record
        if gseq != j.gseq + 1 and (self.contiguous or gseq <= j.gseq):
            if self.contiguous:
                raise _fail(record, where, "gseq_gap", "the global sequence must follow the previous record's",
                            j.gseq + 1, gseq)
            raise _fail(record, where, "gseq_order", "the global sequence must increase", f"> {j.gseq}", gseq)
        j.gseq = gseq
        self.records += 1
        if self.only is not None and aid != self.only:
            self.passed += 1
            return []
        last, head = j.chains.get(aid, _NO_CHAIN)
        if aseq != last + 1:
            raise _fail(record, where, "aseq_gap", f"auction {aid!r:.70}: its sequence must follow its previous "
                        "record's", last + 1, aseq)
        if prev != head:
            raise _fail(record, where, "chain_broken", f"auction {aid!r:.70}: prev is not the SHA-256 of its "
                        "previous record", head.hex(), prev.hex())
        command = self._command(record, where)
        if j.previous_outcome(command) is not None:
            raise _fail(record, where, "duplicate_bid", "a bid with this bidder and client_bid_id is already journaled")
        try:
            events = j.host.handle(command)
        except ClockRegression as exc:
            raise _fail(record, where, "time_regression", str(exc)) from None
        if not _same_outcome(events, outcome):
            raise _fail(record, where, "divergence", "re-executing the command gives another outcome",
                        _plain(outcome), _plain(encode_events(events)))
        j.chains[aid] = (aseq, digest)
        j.remember(command, events)
        if aseq == 1:
            self.first_gseq[aid] = gseq
        self.last_gseq[aid] = gseq
        self.replayed += 1
        self.passed += 1
        return events

    def run(self, reader: JournalReader, on_record: RecordHook | None = None, *,
            on_first: Callable[[SegmentHeader], None] | None = None, exports: bool = False,
            share: tuple[int, int] | None = None) -> None:
        """Check and re-execute every record `reader` reads, in order (as `feed` would,
        record by record; `on_record(record, events)` after each). `on_first(header)` is
        called before the first record; with `exports`, a record of a segment exported for
        another auction is a `foreign_record`. Raise `JournalCorruption` at the first
        broken rule: that record's checks stop there, as in `feed`.

        `share=(k, n)`: re-execute only the auctions that fall to worker k of n (the i-th
        auction to appear goes to worker i % n), for an engine journal verified by n
        processes at once. Every worker walks every frame and checks that no record's time
        is before the previous one's; the CRCs, sequences, chain, command and outcome of a
        record are checked by the worker it falls to. What a worker cannot decide alone
        raises `Undecided` (then verify the journal in one process): anything unusual in
        the framing, a time going back, and a command of another worker's auction (other
        than a tick naming it) at a time when one of this worker's deadlines is due, which
        in one engine would fire inside it."""
        j = self.journaled
        chains = j.chains
        bids = j.bids
        host = j.host
        # The fast path: bids and ticks of auctions, through the auction kind at once when
        # no other kind has a deadline due (else `feed`, through the host, decides).
        auction = host.kind(Engine)
        others = tuple(kind for kind in host.kinds if kind is not auction)
        case_kind = host.case_kind
        handle = auction.handle
        last_gseq = self.last_gseq
        only = self.only
        names = _EVENT_NAMES
        export: str | None = None
        first = True
        if share is None:
            frames = reader.frames()
        elif only is not None or not self.contiguous or on_first is not None or exports:
            raise ValueError("only an engine journal's full verification is shared")
        else:
            frames = self._own_frames(reader, *share)
        contiguous = self.contiguous
        fast = 0  # records that took the fast path: checked, replayed and passed
        try:
            for payload, offset, index in frames:
                if index == 0:  # a new segment
                    header = reader.headers[-1]
                    if first and on_first is not None:
                        on_first(header)  # it may set the rules (contiguous, the gseq before)
                    first = False
                    contiguous = self.contiguous
                    export = header.auction_id if exports and header.kind == "export" else None
                try:
                    fields = _unpackb(payload, use_list=False, raw=False, strict_map_key=True)
                except Exception:  # msgpack raises several unrelated types on garbage: feed's path reports it
                    fields = None
                if type(fields) is not tuple or len(fields) != 7 or export is not None:
                    self._slow(reader, payload, offset, index, export, on_record)
                    continue
                gseq, aseq, time, aid, command, outcome, prev = fields
                expected_gseq = j.gseq + 1
                if not (type(gseq) is int and type(aseq) is int and type(time) is int and type(aid) is str
                        and type(command) is tuple and type(outcome) is tuple and type(prev) is bytes
                        and len(prev) == 32 and aseq > 0 and gseq > 0
                        and (gseq == expected_gseq or (not contiguous and gseq > expected_gseq))):
                    self._slow(reader, payload, offset, index, export, on_record)
                    continue
                if only is not None and aid != only:
                    j.gseq = gseq
                    self.records += 1
                    self.passed += 1
                    if on_record is not None:
                        on_record(Record(gseq, aseq, time, aid, command, outcome, prev, sha256(payload).digest(),
                                         payload), [])
                    continue
                chain = chains.get(aid)
                if chain is not None and (case_kind.get(aid) is not auction or any(k.due(time) for k in others)):
                    chain = None  # another kind's case, or another kind's deadline due: `feed` decides
                if chain is None or aseq != chain[0] + 1 or prev != chain[1] or len(command) != 7 \
                        or command[0] != "PlaceBid" or type(command[1]) is not int or command[1] != time \
                        or command[2] != aid or type(command[6]) is not str:
                    # the first record of an auction, a tick, any other command, or a broken rule
                    if chain is not None and len(command) == 3 and command[0] == "Tick" and aseq == chain[0] + 1 \
                            and prev == chain[1] and type(command[1]) is int and command[1] == time \
                            and command[2] == aid:
                        cmd: Command = Tick(time, aid)
                        key = None
                    else:
                        self._slow(reader, payload, offset, index, export, on_record)
                        continue
                else:
                    cmd = _new_tuple(PlaceBid, command[1:])
                    cid = command[6]
                    key = (aid, command[4], cid) if cid else None
                    if key is not None and key in bids:  # duplicate_bid: feed reports it
                        self._slow(reader, payload, offset, index, export, on_record)
                        continue
                j.gseq = gseq
                if time < host.now:
                    self.records += 1
                    raise JournalCorruption("time_regression", f"command at {time} µs is before the host time "
                                            f"{host.now} µs", reader.location(offset, index), gseq=gseq)
                try:
                    events = handle(cmd)
                except ClockRegression as exc:
                    self.records += 1
                    raise JournalCorruption("time_regression", str(exc), reader.location(offset, index),
                                            gseq=gseq) from None
                host.now = time
                if len(events) == 1:
                    event = events[0]
                    kind = type(event)
                    name = names.get(kind) or _event_name(kind)
                    same = len(outcome) == 1 and (name, *event) == outcome[0]
                else:
                    same = _same_outcome(events, outcome)
                if not same:
                    self.records += 1
                    raise JournalCorruption("divergence", "re-executing the command gives another outcome",
                                            reader.location(offset, index), gseq=gseq, expected=_plain(outcome),
                                            found=_plain(encode_events(events)))
                digest = sha256(payload).digest()
                chains[aid] = (aseq, digest)
                if key is not None:
                    bids[key] = tuple(events)
                last_gseq[aid] = gseq
                fast += 1  # checked, replayed and passed (added to the counts as the loop ends)
                if on_record is not None:
                    on_record(Record(gseq, aseq, time, aid, command, outcome, prev, digest, payload), events)
        finally:
            self.records += fast
            self.replayed += fast
            self.passed += fast

    def _own_frames(self, reader: JournalReader, mine: int, workers: int) -> Iterator[tuple[bytes, int, int]]:
        """The records of this worker's auctions (see `run`'s `share`), framing checked;
        every other record is only looked into for its time, auction and command type
        (its owner checks the rest), and counted. Anything unusual raises `Undecided`."""
        j = self.journaled
        engine = j.host
        owners: dict[bytes, int] = {}
        seen = j.gseq  # records so far
        foreign = 0
        latest = b""  # the previous record's time, packed: a uint 64 (bytes order is time order)
        bound = _packed_bound(engine)  # no deadline of ours is before it
        unpack_frame = FRAME.unpack_from
        crc32 = zlib.crc32
        int_size = _INT_SIZE
        for path in reader.paths:
            data = path.read_bytes()
            name = reader.file = str(path)
            try:
                header, offset = decode_header(data)
            except FormatError:
                raise Undecided("bad_header") from None
            previous = reader.headers[-1] if reader.headers else None
            if header.kind != "engine" or header.first_gseq != seen + 1 or (
                    previous is not None and header.index != previous.index + 1):
                raise Undecided("segment")
            reader.headers.append(header)
            size = len(data)
            index = 0
            while offset < size:
                start = offset + 12
                if start > size:
                    raise Undecided("truncated")
                length, crc, head_crc = unpack_frame(data, offset)
                end = start + length
                if length == 0 or length > MAX_RECORD or end > size or data[start] != 0x97:
                    raise Undecided("frame")
                i = start + 1  # [gseq, aseq, time, auction_id, command, ...]: skip the sequences
                i += int_size[data[i]]
                i += int_size[data[i]]
                time = data[i + 1:i + 9]
                if data[i] != 0xcf or time < latest:  # not a uint 64 (a time before 1970-01-01T01:12), or back
                    raise Undecided("time")
                latest = time
                i += 9
                kind = data[i]
                if 0xa0 <= kind <= 0xbf:
                    aid = data[i + 1:i + 1 + kind - 0xa0]
                    i += 1 + kind - 0xa0
                elif kind == 0xd9 and i + 1 < end:
                    aid = data[i + 2:i + 2 + data[i + 1]]
                    i += 2 + data[i + 1]
                else:
                    raise Undecided("auction_id")
                owner = owners.get(aid)
                if owner is None:
                    owner = owners[aid] = len(owners) % workers
                if owner == mine:  # the CRCs of a record are checked by its owner: every frame has one
                    payload = data[start:end]
                    if crc32(payload) != crc or crc32(data[offset:offset + 8]) != head_crc:
                        raise Undecided("crc")
                    j.gseq = seen
                    reader.file = name
                    yield payload, offset, index
                    if data[i:i + 10] != b"\x97\xa8PlaceBid":  # not a bid: it may move a deadline earlier
                        bound = _packed_bound(engine)  # (a bid only moves its lot's close later)
                else:  # its owner checks it; here: would one of our deadlines fire inside it?
                    foreign += 1
                    if time >= bound and data[i:i + 6] != b"\x93\xa4Tick":
                        if engine.due(int.from_bytes(time, "big")):
                            raise Undecided("deadline_due")
                        bound = _packed_bound(engine)
                seen += 1
                offset = end
                index += 1
        j.gseq = seen
        self.records += foreign
        self.passed += foreign

    def _slow(self, reader: JournalReader, payload: bytes, offset: int, index: int, export: str | None,
              on_record: RecordHook | None) -> None:
        """One record the way `records()` and `feed` take it: every check, in order."""
        where = reader.location(offset, index)
        try:
            record = unpack_payload(payload)
        except FormatError as exc:
            raise JournalCorruption(exc.code, str(exc), where) from None
        if export is not None and record.auction_id != export:
            raise JournalCorruption("foreign_record", f"an export of {export!r} holds a record of "
                                    f"{record.auction_id!r}", where)
        events = self.feed(record, where)
        if on_record is not None:
            on_record(record, events)

    def _command(self, record: Record, where: Location | None) -> Command:
        """The record's command, decoded and checked against the record: its kind, case,
        time and retry key (the host's rules, whatever the kind)."""
        try:
            command = decode_command(record.command)
        except FormatError as exc:
            raise _fail(record, where, exc.code, str(exc)) from None
        host = self.journaled.host
        if type(command) is Tick:
            if command.case_id is None:
                raise _fail(record, where, "bad_command", "a journaled tick names its case")
            target: object = command.case_id
        else:
            kind = host.route.get(type(command))
            if kind is None:
                raise _fail(record, where, "bad_command", f"no hosted kind takes {type(command).__name__}")
            target = kind.case_of(command)
            owner = host.case_kind.get(record.auction_id)
            if owner is not None and owner is not kind:
                raise _fail(record, where, "wrong_kind", f"the record's case is a case of kind {owner.name!r}",
                            owner.name, kind.name)
            try:
                key = kind.retry_key(command)
            except ValueError as exc:
                raise _fail(record, where, "bad_command", str(exc)) from None
            if key is not None and not all(type(part) is str for part in key):
                raise _fail(record, where, "bad_command", "a retry key is made of strings")
        if target != record.auction_id:
            raise _fail(record, where, "wrong_auction", "the command is about another case than the record",
                        record.auction_id, target)
        if command.now != record.time:
            raise _fail(record, where, "bad_time", "the command's time is not the record's", record.time, command.now)
        return command


_NO_CHAIN = (0, GENESIS)


def _packed_bound(engine: Host) -> bytes:
    """`engine.deadline_bound()` packed as a uint 64 (past every time if there is none)."""
    bound = engine.deadline_bound()
    return b"\xff" * 9 if bound is None else max(bound, 0).to_bytes(8, "big")

# The size of a msgpack non-negative integer from its first byte (0: not one).
_INT_SIZE = bytes(1 if b < 0x80 else {0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9}.get(b, 0) for b in range(256))


def _event_name(kind: type[Any]) -> str:
    _EVENT_NAMES[kind] = kind.__name__
    return kind.__name__


def _same_outcome(events: list[Event], outcome: Sequence[Any]) -> bool:
    """True if the replayed events are the journaled outcome (encoded, as decoded)."""
    if len(events) == 1:  # the common case, a bid's one event, without building a list
        return len(outcome) == 1 and (type(events[0]).__name__, *events[0]) == outcome[0]
    return [(type(e).__name__, *e) for e in events] == list(outcome)


def _fail(record: Record, where: Location | None, code: str, message: str, expected: object = None,
          found: object = None) -> JournalCorruption:
    return JournalCorruption(code, message, where, gseq=record.gseq, expected=expected, found=found)


def _plain(outcome: Sequence[Any]) -> list[list[Any]]:
    """Encoded events as lists, for messages and JSON."""
    return [list(e) for e in outcome]
