"""The journal of record in Redis: one Stream per case, appended under a fencing token.

`StreamJournal.append(lease, first_aseq, frames)` runs one Lua script that checks the
token is the case's current one and the lease is still the claim's, checks that the
stream ends with record `first_aseq - 1`, and adds each frame (the file journal's bytes:
length, CRCs, payload) as entry ``ASEQ-0`` with fields ``r`` (the frame) and ``t`` (the
token). It returns only once Redis answered (and, with `replicas`, once WAIT confirmed
them): only then may the command be acknowledged. `entries(case)` reads a stream back,
checking every entry's shape, frame and CRCs; anything else is a coded `ClusterError`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from coredis.exceptions import ReplicationError, ResponseError

from ..journal.format import FRAME, MAX_RECORD, FormatError, Record, unpack_payload
from .layout import ClusterError, Layout
from .lease import Client, Lease, _text

PAGE = 512  # entries per XRANGE while reading a stream back

# KEYS: lease, fence, journal; ARGV: lease value, token, first aseq, frame, frame, ...
APPEND = """
local fence = redis.call('GET', KEYS[2])
if fence ~= ARGV[2] then return {'stale_token', fence or ''} end
local lease = redis.call('GET', KEYS[1])
if lease ~= ARGV[1] then return {'lease_lost', lease or ''} end
local top = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local last = 0
if #top > 0 then last = tonumber(string.match(top[1][1], '^(%d+)%-0$') or -1) end
local first = tonumber(ARGV[3])
if last ~= first - 1 then return {'seq_conflict', tostring(last)} end
for i = 4, #ARGV do
  redis.call('XADD', KEYS[3], string.format('%d-0', first + i - 4), 'r', ARGV[i], 't', ARGV[2])
end
return {'ok', first + #ARGV - 4}
"""

_ENTRY_ID = re.compile(rb"([1-9][0-9]{0,15})-0")
_TOKEN = re.compile(rb"[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One checked stream entry: its record (decoded, payload kept), its frame's bytes
    and the fencing token it was appended under."""

    record: Record
    frame: bytes
    token: int
    entry_id: str


def unframe(data: bytes) -> bytes:
    """The payload of one whole frame, its length and CRCs checked (the reader's rules);
    `FormatError` otherwise."""
    if len(data) < FRAME.size:
        raise FormatError("truncated", "shorter than a record frame")
    length, crc, head_crc = FRAME.unpack_from(data, 0)
    if zlib.crc32(data[:8]) != head_crc:
        raise FormatError("bad_frame", "the record's length field fails its CRC")
    if length > MAX_RECORD or FRAME.size + length != len(data):
        raise FormatError("bad_frame", f"record length {length} is not the entry's {len(data) - FRAME.size} bytes")
    payload = data[FRAME.size:]
    if zlib.crc32(payload) != crc:
        raise FormatError("bad_crc", "the record's payload fails its CRC")
    return payload


class StreamJournal:
    """Fenced appends to, and checked reads of, the cases' streams under one namespace.
    `replicas` > 0: each append waits (WAIT, `wait_ms` at most) until that many replicas
    have it, else `ClusterError("not_replicated")`: the outcome is then unknown."""

    def __init__(self, client: Client, layout: Layout | None = None, *, replicas: int = 0,
                 wait_ms: int = 1000) -> None:
        self.client = client
        self.layout = layout or Layout()
        self.replicas = replicas
        self.wait_ms = wait_ms
        self._append = client.register_script(APPEND)

    async def append(self, lease: Lease, first_aseq: int, frames: Sequence[bytes]) -> int:
        """Append the case's records `first_aseq`, `first_aseq + 1`, ... under the lease's
        token; return the last one's aseq once Redis has them. Refusals (nothing written):
        `stale_token`, `lease_lost`, `seq_conflict`; `wrong_type` if the key is not a stream."""
        layout = self.layout
        case = lease.case_id
        keys = [layout.lease(case), layout.fence(case), layout.journal(case)]
        try:
            if self.replicas:  # WAIT on the script's own connection, right after it
                with self.client.ensure_replication(self.replicas, self.wait_ms):
                    reply: list[Any] = await self._append(keys, [lease.value, lease.token, first_aseq, *frames])
            else:
                reply = await self._append(keys, [lease.value, lease.token, first_aseq, *frames])
        except ReplicationError:
            raise ClusterError("not_replicated", f"fewer than {self.replicas} replicas confirmed in {self.wait_ms} "
                               "ms: the append's durability is unknown", key=keys[2]) from None
        except ResponseError as exc:
            raise ClusterError("wrong_type", f"the case's keys are not ours to use: {exc}", key=keys[2]) from None
        code = _text(reply[0])
        if code != "ok":
            messages = {"stale_token": f"token {lease.token} is not the case's current one ({_text(reply[1])})",
                        "lease_lost": f"the lease is no longer {lease.value!r}",
                        "seq_conflict": f"the stream ends at record {_text(reply[1])}, not {first_aseq - 1}"}
            raise ClusterError(code, messages.get(code, "refused"), key=keys[2])
        return int(reply[1])

    async def length(self, case_id: str) -> int:
        return int(await self.client.xlen(self.layout.journal(case_id)))

    async def entries(self, case_id: str, first: int = 1) -> AsyncIterator[Entry]:
        """Every entry of the case's stream in order (from aseq `first`), checked: the id ``ASEQ-0`` following
        the previous one (`entry_gap`), exactly the fields ``r`` and ``t`` (`malformed_entry`),
        tokens never decreasing (`token_regression`), the frame (`bad_frame`, `bad_crc`,
        `truncated`), the payload (`bad_payload`), the record's aseq and case being the
        entry's (`entry_mismatch`, `wrong_case`). The chain and outcomes are the verifier's."""
        key = self.layout.journal(case_id)
        start = "-" if first <= 1 else f"{first}-0"
        expected, token = max(first, 1), 0
        while True:
            try:
                page = await self.client.xrange(key, start, "+", count=PAGE)
            except ResponseError as exc:
                raise ClusterError("wrong_type", f"not a stream: {exc}", key=key) from None
            for item in page:
                fields = {bytes(k): bytes(v) for k, v in item.field_values.items()}  # type: ignore[arg-type]
                entry = _check(key, case_id, bytes(item.identifier), fields, expected, token)  # type: ignore[arg-type]
                expected, token = expected + 1, entry.token
                yield entry
            if len(page) < PAGE:
                return
            start = "(" + _text(page[-1].identifier)


def _check(key: str, case_id: str, identifier: bytes, fields: dict[bytes, bytes], expected: int,
           token: int) -> Entry:
    """One entry read back, checked (see `StreamJournal.entries`)."""
    entry_id = _text(identifier)
    match = _ENTRY_ID.fullmatch(identifier)
    if match is None or int(match.group(1)) != expected:
        raise ClusterError("entry_gap", f"expected entry {expected}-0", key=key, entry=entry_id)
    if set(fields) != {b"r", b"t"} or _TOKEN.fullmatch(fields[b"t"]) is None:
        raise ClusterError("malformed_entry", f"an entry holds exactly r (a frame) and t (a token): "
                           f"{sorted(fields)!r:.80}", key=key, entry=entry_id)
    entry_token = int(fields[b"t"])
    if entry_token < token:
        raise ClusterError("token_regression", f"token {entry_token} after {token}: written by a stale owner",
                           key=key, entry=entry_id)
    frame = fields[b"r"]
    try:
        record = unpack_payload(unframe(frame))
    except FormatError as exc:
        raise ClusterError(exc.code, str(exc), key=key, entry=entry_id) from None
    if record.aseq != expected:
        raise ClusterError("entry_mismatch", f"the record is aseq {record.aseq} in entry {entry_id}", key=key,
                           entry=entry_id)
    if record.auction_id != case_id:
        raise ClusterError("wrong_case", f"a record of case {record.auction_id!r:.60} in the stream of "
                           f"{case_id!r:.60}", key=key, entry=entry_id)
    return Entry(record, frame, entry_token, entry_id)
