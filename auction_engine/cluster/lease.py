"""Leases with fencing: one owner per case, and a token that grows with every claim.

`claim` takes a free case (``SET lease OWNER|TOKEN NX PX ttl``, the token from ``INCR``
on the case's fence counter, both in one Lua script), `renew` extends it only while the
lease is still this claim's, `release` gives it back. A claim, renewal or release that
Redis refuses raises `ClusterError` with a code: `held` (another owner has it),
`lease_lost` (it expired or was taken over since).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import coredis
from coredis.commands.script import Script
from coredis.exceptions import ResponseError

from .layout import ClusterError, Layout

Client = coredis.Redis[bytes]

# KEYS: lease, fence; ARGV: owner, ttl ms. The token is counted only when the claim wins.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'held', redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'NX', 'PX', ARGV[2])
return {'ok', token}
"""

# KEYS: lease; ARGV: lease value, ttl ms.
RENEW = """
local value = redis.call('GET', KEYS[1])
if value ~= ARGV[1] then return {'lease_lost', value or ''} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok'}
"""

# KEYS: lease; ARGV: lease value.
RELEASE = """
local value = redis.call('GET', KEYS[1])
if value ~= ARGV[1] then return {'lease_lost', value or ''} end
redis.call('DEL', KEYS[1])
return {'ok'}
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on one case: its owner, its fencing token and its time to live."""

    case_id: str
    owner: str
    token: int
    ttl_ms: int

    @property
    def value(self) -> str:
        """What the lease key holds while this claim has it."""
        return f"{self.owner}|{self.token}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def run_script(script: Script[bytes], keys: list[str], args: list[Any]) -> list[Any]:
    """The script's reply; `ClusterError("wrong_type")` when Redis refuses it because a
    key holds what is not ours (a hash where a lease belongs, a fence that is no number)."""
    try:
        reply: list[Any] = await script(keys, args)
    except ResponseError as exc:
        raise ClusterError("wrong_type", f"a key is not of the type this script needs: {exc}", key=keys[0]) from None
    return reply


class Leases:
    """Claims, renewals and releases of cases' leases, under one namespace."""

    def __init__(self, client: Client, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()
        self._claim = client.register_script(CLAIM)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    async def claim(self, case_id: str, owner: str, ttl_ms: int) -> Lease:
        """Take the case for `ttl_ms`; `ClusterError("held")` if another claim holds it."""
        if ttl_ms <= 0 or not owner or "|" in owner:
            raise ClusterError("bad_claim", "an owner is a name without '|', a ttl is positive")
        layout = self.layout
        reply = await run_script(self._claim, [layout.lease(case_id), layout.fence(case_id)], [owner, ttl_ms])
        if _text(reply[0]) != "ok":
            raise ClusterError("held", f"held by {_text(reply[1])} for {int(reply[2])} ms more",
                               key=layout.lease(case_id))
        return Lease(case_id, owner, int(reply[1]), ttl_ms)

    async def renew(self, lease: Lease) -> None:
        """Extend the lease by its ttl from now; `ClusterError("lease_lost")` if it is no
        longer this claim's (then the owner must stop: another may hold the case)."""
        key = self.layout.lease(lease.case_id)
        reply = await run_script(self._renew, [key], [lease.value, lease.ttl_ms])
        if _text(reply[0]) != "ok":
            raise ClusterError("lease_lost", f"the lease holds {_text(reply[1])!r:.60}, not {lease.value!r}", key=key)

    async def release(self, lease: Lease) -> None:
        """Give the case up now (a clean stop); `ClusterError("lease_lost")` as in `renew`."""
        key = self.layout.lease(lease.case_id)
        reply = await run_script(self._release, [key], [lease.value])
        if _text(reply[0]) != "ok":
            raise ClusterError("lease_lost", f"the lease holds {_text(reply[1])!r:.60}, not {lease.value!r}", key=key)
