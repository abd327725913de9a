"""What gateways and engines send each other through Redis pub/sub, and its checks.

Each travels as a msgpack map of these fields over pub/sub (channel.py). A **command**
(gateway -> channel ``NS:inbox:ENGINE``): fields ``q`` (the gateway's request id, a
positive decimal), ``g`` (the gateway's id: where the answer goes) and ``c`` (the command
in the journal's encoding, msgpack; the engine stamps its time). An **answer** (engine ->
``NS:replies:GATEWAY``): ``q``, ``k`` (``ok`` or an error code), ``m`` (a message), and
for ``ok``: ``e`` (the outcome's events, journal encoding), ``d`` (``1`` for a repeated
retry key), ``s`` (the case), ``a`` (the aseq of the command's record; for a repeat, the
case's last) and ``g`` (that record's gseq; 0 for a repeat). A **feed
message** (engine -> ``NS:feed``, once a batch is durable): ``f``, the batch's frames end
to end, byte for byte as in the cases' streams, and ``t`` (when it was published, µs).

Everything read is checked; what fails a check raises `ClusterError` (`malformed_command`,
`malformed_reply`, `malformed_feed`): the reader reports it and skips the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgpack

from ..commands import Command
from ..events import Event
from ..journal.format import (
    FRAME,
    MAX_RECORD,
    FormatError,
    Record,
    decode_command,
    decode_event,
    encode_command,
    encode_events,
    unpack_payload,
)
from .layout import ClusterError, valid_process_id
from .stream import unframe

_ID = re.compile(rb"[1-9][0-9]{0,18}")
_SEQ = re.compile(rb"0|[1-9][0-9]{0,18}")
MAX_COMMAND = 1 << 20  # bytes of one forwarded command


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A command read from an engine's inbox."""

    request: int
    gateway: str
    command: Command


@dataclass(frozen=True, slots=True)
class Answer:
    """An engine's answer to one forwarded command."""

    request: int
    code: str  # "ok" or an error code
    message: str = ""
    events: tuple[Event, ...] = ()
    duplicate: bool = False
    case: str = ""
    aseq: int = 0  # the case's record of the command (or its last, for a repeat)
    gseq: int = 0  # that record's gseq (0 for a repeat)


def command_fields(request: int, gateway: str, command: Command) -> dict[str, bytes]:
    return {"q": str(request).encode(), "g": gateway.encode(), "c": msgpack.packb(encode_command(command))}


def read_command(fields: dict[bytes, bytes]) -> Forwarded:
    if set(fields) != {b"q", b"g", b"c"} or _ID.fullmatch(fields[b"q"]) is None or len(fields[b"c"]) > MAX_COMMAND:
        raise ClusterError("malformed_command", f"a command holds exactly q, g and c: {sorted(fields)!r:.80}")
    gateway = fields[b"g"].decode("utf-8", "replace")
    if not valid_process_id(gateway):
        raise ClusterError("malformed_command", f"not a gateway id: {gateway!r:.60}")
    try:
        command = decode_command(msgpack.unpackb(fields[b"c"], raw=False, strict_map_key=True))
    except (FormatError, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ClusterError("malformed_command", f"not a command: {exc}") from None
    return Forwarded(int(fields[b"q"]), gateway, command)


def answer_fields(answer: Answer) -> dict[str, bytes]:
    out = {"q": str(answer.request).encode(), "k": answer.code.encode(), "m": answer.message.encode()}
    if answer.code == "ok":
        out |= {"e": msgpack.packb(encode_events(answer.events)), "d": b"1" if answer.duplicate else b"0",
                "s": answer.case.encode(), "a": str(answer.aseq).encode(), "g": str(answer.gseq).encode()}
    return out


def read_answer(fields: dict[bytes, bytes]) -> Answer:
    if not {b"q", b"k", b"m"} <= set(fields) or _ID.fullmatch(fields[b"q"]) is None:
        raise ClusterError("malformed_reply", f"an answer holds q, k and m: {sorted(fields)!r:.80}")
    request, code = int(fields[b"q"]), fields[b"k"].decode("utf-8", "replace")
    message = fields[b"m"].decode("utf-8", "replace")[:500]
    if code != "ok":
        if set(fields) != {b"q", b"k", b"m"} or not code.isidentifier():
            raise ClusterError("malformed_reply", f"an error answer holds exactly q, k and m: {code!r:.40}")
        return Answer(request, code, message)
    if set(fields) != {b"q", b"k", b"m", b"e", b"d", b"s", b"a", b"g"} or fields[b"d"] not in (b"0", b"1") \
            or _SEQ.fullmatch(fields[b"a"]) is None or _SEQ.fullmatch(fields[b"g"]) is None:
        raise ClusterError("malformed_reply", f"an ok answer holds q, k, m, e, d, s, a and g: {sorted(fields)!r:.80}")
    try:
        events = tuple(decode_event(e) for e in msgpack.unpackb(fields[b"e"], raw=False, strict_map_key=True))
    except (FormatError, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ClusterError("malformed_reply", f"not an outcome: {exc}") from None
    return Answer(request, "ok", message, events, fields[b"d"] == b"1", fields[b"s"].decode("utf-8", "replace"),
                  int(fields[b"a"]), int(fields[b"g"]))


def feed_fields(frames: list[bytes], now_us: int) -> dict[str, bytes]:
    return {"f": b"".join(frames), "t": str(now_us).encode()}


def read_feed(fields: dict[bytes, bytes]) -> tuple[list[tuple[Record, bytes]], int]:
    """The records of a feed message with their frames, each frame checked (CRCs,
    payload), and when its engine published it (µs, its clock)."""
    if set(fields) != {b"f", b"t"} or _ID.fullmatch(fields[b"t"]) is None:
        raise ClusterError("malformed_feed", f"a feed message holds exactly f and t: {sorted(fields)!r:.80}")
    data, at, out = fields[b"f"], 0, []
    while at < len(data):
        if len(data) - at < FRAME.size:
            raise ClusterError("malformed_feed", "a frame cut short")
        length = FRAME.unpack_from(data, at)[0]
        if length > MAX_RECORD:
            raise ClusterError("malformed_feed", f"a frame of {length} bytes")
        frame = data[at:at + FRAME.size + length]
        try:
            record = unpack_payload(unframe(frame))
        except FormatError as exc:
            raise ClusterError("malformed_feed", f"{exc.code}: {exc}") from None
        out.append((record, frame))
        at += FRAME.size + length
    return out, int(fields[b"t"])
