"""The journal's bytes: segment headers, framed records, and commands and events as msgpack.

A segment is a header then records. A record is a 12-byte frame (payload length, CRC-32
of the payload, CRC-32 of those 8 bytes) and a msgpack payload
``[gseq, aseq, time, case_id, command, outcome, prev]``; docs/journal-format.md is the
reference. Commands and events are named by their class names, those of every kind the
host knows (`host.registered()`). Nothing here touches a file.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import Any, NamedTuple

import msgpack

from ..commands import Command
from ..events import Event
from ..host import registered
from ..kind import Kind, Tick

MAGIC = b"\x89AUCJNL\n"  # high bit and newline: a text-mode copy breaks it visibly
VERSION = 1  # the format version in every segment header; readers refuse others
SEGMENT_SUFFIX = ".journal"
FRAME = struct.Struct("<III")  # payload length, crc32(payload), crc32(the first 8 bytes)
LENGTH_CRC = struct.Struct("<II")
HEADER = struct.Struct("<8sHHII")  # magic, version, reserved, body length, crc32(the 16 bytes before + body)
MAX_RECORD = 64 << 20  # the largest payload a reader accepts (a configuration with many bidders)
GENESIS = bytes(32)  # `prev` of an auction's first record
KINDS = ("engine", "export")  # an engine's own journal, or one auction's exported records

_packer = msgpack.Packer(use_bin_type=True)


class _Names:
    """The commands and events of a set of kinds, by journal name."""

    def __init__(self, kinds: tuple[type[Kind], ...]) -> None:
        self.kinds = kinds
        commands: list[type[Any]] = [Tick]
        self.events: dict[str, type[Any]] = {}
        self.encoders: dict[type[Any], Any] = {}
        self.decoders: dict[type[Any], Any] = {}
        for kind in kinds:
            commands += kind.codec.commands
            self.events.update((cls.__name__, cls) for cls in kind.codec.events)
            self.encoders.update(kind.codec.encoders)
            self.decoders.update(kind.codec.decoders)
        # name -> (class, fewest fields, most fields)
        self.arity: dict[str, tuple[type[Any], int, int]] = {
            cls.__name__: (cls, len(cls._fields) - len(cls._field_defaults), len(cls._fields)) for cls in commands}


_names: _Names | None = None


def names() -> _Names:
    """The journal names of the registered kinds (rebuilt when a kind is registered)."""
    global _names
    kinds = registered()
    if _names is None or _names.kinds != kinds:
        _names = _Names(kinds)
    return _names


class FormatError(ValueError):
    """Bytes that are not a valid journal element; `code` says which rule failed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# -- commands and events --------------------------------------------------------------------

def encode_command(command: Command) -> list[Any]:
    """``[type name, field, ...]``; a structured field as its kind's encoder writes it
    (a CreateAuction carries its canonical configuration)."""
    encoder = names().encoders.get(type(command))
    if encoder is not None:
        encoded: list[Any] = encoder(command)
        return encoded
    return [type(command).__name__, *command]


def decode_command(data: object) -> Command:
    """The command `encode_command` wrote (as a list, or a tuple as msgpack decodes it);
    `FormatError("bad_command")` for anything else."""
    if (type(data) is not tuple and type(data) is not list) or not data:
        raise FormatError("bad_command", "a command must be [type name, fields...]")
    table = names()
    arity = table.arity.get(data[0])
    if arity is None:
        raise FormatError("bad_command", f"unknown command type {data[0]!r:.40}")
    cls, least, most = arity
    n = len(data) - 1
    if not least <= n <= most or type(data[1]) is not int:
        raise FormatError("bad_command", f"{data[0]} takes {least} to {most} fields, time first")
    decoder = table.decoders.get(cls)
    if decoder is not None:
        try:
            decoded: Command = decoder(tuple(data[1:]))
        except ValueError as exc:
            raise FormatError("bad_command", str(exc)) from None
        return decoded
    command: Command = cls(*data[1:])
    return command


def encode_events(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """Each event as ``(type name, field, ...)``: equal to what msgpack decodes as tuples."""
    return [(type(e).__name__, *e) for e in events]


class _Prefixes(dict[type[Any], bytes]):
    """The msgpack bytes that start an encoded command or event, by class: the array
    header of its 1 + n elements and its type name. msgpack packs a NamedTuple as the
    array of its fields, so the encoding is this prefix followed by the packed tuple
    without its own array header (one byte: a journaled tuple has fewer than 15 fields).
    `lead`: bytes put before each prefix."""

    def __init__(self, lead: bytes = b"") -> None:
        super().__init__()
        self.lead = lead

    def __missing__(self, cls: type[Any]) -> bytes:
        if len(cls._fields) >= 15:
            raise TypeError(f"{cls.__name__} has 15 fields or more: not journaled")
        prefix: bytes = self.lead + bytes([0x90 + len(cls._fields) + 1]) + _packer.pack(cls.__name__)
        self[cls] = prefix
        return prefix


EVENT_PREFIX: dict[type[Any], bytes] = _Prefixes()
ONE_EVENT_PREFIX: dict[type[Any], bytes] = _Prefixes(b"\x91")  # an outcome of one event


def array_header(n: int) -> bytes:
    """The msgpack header of an array of `n` elements."""
    if n < 16:
        return bytes((0x90 + n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def pack_outcome(events: Sequence[Event]) -> bytes:
    """The msgpack bytes of `encode_events(events)` (what `pack_payload` writes for it)."""
    pack = _packer.pack
    if len(events) == 1:
        event = events[0]
        packed: bytes = pack(event)
        return ONE_EVENT_PREFIX[type(event)] + packed[1:]
    return b"".join([array_header(len(events)), *[EVENT_PREFIX[type(e)] + pack(e)[1:] for e in events]])


def decode_event(data: Sequence[Any]) -> Event:
    """An event from its encoded form (for reports; verification compares encoded forms)."""
    cls = names().events.get(data[0]) if data and isinstance(data[0], str) else None
    if cls is None or len(data) - 1 != len(cls._fields):
        raise FormatError("bad_event", f"not an event: {list(data)!r:.80}")
    event: Event = cls(*data[1:])
    return event


# -- records --------------------------------------------------------------------------------

class Record(NamedTuple):
    """One decoded record. `command` and `outcome` stay encoded (tuples, as msgpack
    decodes them); `digest` is the SHA-256 of the payload: the next record of the auction
    names it. (A NamedTuple: one is built per record read, on the verify path.)"""

    gseq: int
    aseq: int
    time: int
    auction_id: str
    command: tuple[Any, ...]
    outcome: tuple[Any, ...]
    prev: bytes
    digest: bytes
    payload: bytes


def pack_payload(gseq: int, aseq: int, time: int, auction_id: str, command: list[Any],
                 outcome: list[tuple[Any, ...]], prev: bytes) -> bytes:
    """The payload bytes of one record."""
    payload: bytes = _packer.pack([gseq, aseq, time, auction_id, command, outcome, prev])
    return payload


def frame(payload: bytes) -> bytes:
    """Length, CRCs and payload: the bytes a record occupies in a segment."""
    head = LENGTH_CRC.pack(len(payload), zlib.crc32(payload))
    return head + zlib.crc32(head).to_bytes(4, "little") + payload


def unpack_payload(payload: bytes) -> Record:
    """Decode and type-check a payload; `FormatError("bad_payload")` if it is not a record."""
    try:
        fields = msgpack.unpackb(payload, use_list=False, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise FormatError("bad_payload", f"not msgpack: {exc}") from None
    if type(fields) is not tuple or len(fields) != 7:
        raise FormatError("bad_payload", "a record payload is an array of 7 fields")
    gseq, aseq, time, auction_id, command, outcome, prev = fields
    if not (type(gseq) is int and type(aseq) is int and type(time) is int and gseq > 0 and aseq > 0):
        raise FormatError("bad_payload", "gseq, aseq and time must be integers, the sequences positive")
    if type(auction_id) is not str or type(command) is not tuple or type(outcome) is not tuple:
        raise FormatError("bad_payload", "auction_id must be a string, command and outcome arrays")
    if type(prev) is not bytes or len(prev) != 32:
        raise FormatError("bad_payload", "prev must be 32 bytes")
    return Record(gseq, aseq, time, auction_id, command, outcome, prev, _sha256(payload).digest(), payload)


# -- segment headers --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What a segment says about itself: its kind, its index in the journal, the global
    sequence of its first record, and for an export the auction it holds."""

    kind: str
    index: int
    first_gseq: int
    auction_id: str | None = None

    def encode(self) -> bytes:
        fields: dict[str, Any] = {"kind": self.kind, "index": self.index, "first_gseq": self.first_gseq}
        if self.auction_id is not None:
            fields["auction_id"] = self.auction_id
        body: bytes = _packer.pack(fields)
        fixed = HEADER.pack(MAGIC, VERSION, 0, len(body), 0)[:16]
        return fixed + zlib.crc32(fixed + body).to_bytes(4, "little") + body


def decode_header(data: bytes | memoryview) -> tuple[SegmentHeader, int]:
    """The header at the start of `data` and its size; `FormatError` if it is not one."""
    if len(data) < HEADER.size:
        raise FormatError("truncated_header", f"a segment starts with a {HEADER.size}-byte header; "
                          f"{len(data)} bytes here")
    magic, version, reserved, length, crc = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError("bad_magic", "not a journal segment (wrong magic bytes)")
    if version != VERSION:
        raise FormatError("bad_version", f"journal format version {version}; this reader knows {VERSION}")
    body = bytes(data[HEADER.size:HEADER.size + length])
    if len(body) != length:
        raise FormatError("truncated_header", "the segment ends inside its header")
    if zlib.crc32(bytes(data[:16]) + body) != crc or reserved != 0:
        raise FormatError("bad_header", "the segment header fails its CRC")
    try:
        fields = msgpack.unpackb(body, raw=False)
        header = SegmentHeader(fields["kind"], fields["index"], fields["first_gseq"], fields.get("auction_id"))
    except Exception:
        raise FormatError("bad_header", "the segment header fields are unreadable") from None
    if header.kind not in KINDS or type(header.index) is not int or type(header.first_gseq) is not int:
        raise FormatError("bad_header", f"segment header has unknown kind or bad fields: {fields!r:.100}")
    return header, HEADER.size + length


# -- where a problem is ---------------------------------------------------------------------

@dataclass(slots=True)
class Location:
    """A record's place: its segment file, the byte offset of its frame, and its index in
    the segment (0 is the first record; -1 is the segment header)."""

    file: str
    offset: int
    index: int

    def __str__(self) -> str:
        return f"{self.file} at byte {self.offset} (record {self.index} of the segment)"


class JournalCorruption(Exception):
    """The journal breaks a rule: `code` names it, `location` says where, and for a
    divergence `expected` (what the journal says) and `found` (what replay decided)."""

    def __init__(self, code: str, message: str, location: Location | None = None, *,
                 gseq: int | None = None, expected: object = None, found: object = None) -> None:
        self.code = code
        self.message = message
        self.location = location
        self.gseq = gseq
        self.expected = expected
        self.found = found
        where = f" in {location}" if location else ""
        record = f" (gseq {gseq})" if gseq is not None else ""
        super().__init__(f"{code}{where}{record}: {message}")
