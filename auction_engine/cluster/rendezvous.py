"""Which live engine owns which case: rendezvous (highest random weight) hashing, and the
registry of engines with heartbeats in Redis.

`owner(case, engines)` is the engine with the highest `weight(engine, case)` (BLAKE2b of
both): every process computes the same answer from the same list, and adding or removing
an engine moves only the cases it gains or loses. `Registry` keeps ``NS:engines``, a
sorted set of engine ids scored by the Redis time (ms) their heartbeat expires at.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

from .layout import ClusterError, Layout
from .lease import Client, _text, run_script

# KEYS: engines; ARGV: engine id, ttl ms (0: leave). Times are Redis's: no clock is compared
# across machines. Expired members are dropped on every beat.
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')
"""


def weight(engine: str, case_id: str) -> int:
    """The engine's weight for the case: 64 bits of BLAKE2b over both (length-prefixed)."""
    e, c = engine.encode(), case_id.encode()
    digest = blake2b(len(e).to_bytes(4, "big") + e + c, digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(case_id: str, engines: Iterable[str]) -> str | None:
    """The engine that should own the case (None when no engine is live)."""
    return max(engines, key=lambda e: (weight(e, case_id), e), default=None)


class Registry:
    """The live engines, by heartbeat: `beat` every ttl/3 or so; `live` lists the others too."""

    def __init__(self, client: Client, layout: Layout | None = None) -> None:
        self.client = client
        self.layout = layout or Layout()
        self._beat = client.register_script(BEAT)

    async def beat(self, engine: str, ttl_ms: int) -> list[str]:
        """Mark `engine` live for `ttl_ms`; return every live engine, sorted."""
        if ttl_ms <= 0 or not engine:
            raise ClusterError("bad_beat", "an engine id is not empty, a heartbeat's ttl is positive")
        return await self._run(engine, ttl_ms)

    async def leave(self, engine: str) -> list[str]:
        """Take `engine` out now (a clean stop); return the live engines left."""
        return await self._run(engine, 0)

    async def live(self) -> list[str]:
        """The engines whose heartbeat has not expired."""
        return await self._run("", 0)

    async def _run(self, engine: str, ttl_ms: int) -> list[str]:
        reply = await run_script(self._beat, [self.layout.engines], [engine, ttl_ms])
        return sorted(_text(e) for e in reply)
