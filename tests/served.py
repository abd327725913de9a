"""A real service on a random loopback port for end-to-end tests, and auction bodies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from auction_engine.timeutil import format_instant
from gateway.app import serve
from gateway.client import RpcClient
from gateway.service import Service
from gateway.settings import ApiKey, Settings

KEYS = {"portal": "portal-key-0123456789abcdefghij", "buyer": "buyer-key-0123456789abcdefghijk",
        "auditor": "auditor-key-0123456789abcdefghi"}
TOKEN_SECRET = "test-token-secret-0123456789abcdefghijklmnop"


@dataclass
class Served:
    service: Service
    base: str

    @property
    def port(self) -> int:
        return self.service.port

    def room_url(self, auction_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/v1/auctions/{auction_id}"

    def rpc(self, role: str = "portal") -> RpcClient:
        return RpcClient(self.base, KEYS[role])


def settings(data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(data_dir=str(data_dir), port=0, token_secret=TOKEN_SECRET,
                    api_keys=tuple(ApiKey.from_plaintext(f"{role}-test", role, key)  # type: ignore[arg-type]
                                   for role, key in KEYS.items()))
    return Settings(**{**dict(base), **overrides})


@asynccontextmanager
async def served(data_dir: Path, **overrides: Any) -> AsyncIterator[Served]:
    """Serve on 127.0.0.1:<random> until the block ends (then shut down, journal flushed)."""
    async with trio.open_nursery() as nursery:
        service: Service = await nursery.start(serve, settings(data_dir, **overrides))
        try:
            yield Served(service, f"http://127.0.0.1:{service.port}")
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def served_split(data_dir: Path, redis_url: str, **overrides: Any) -> AsyncIterator[Served]:
    """An engine (`redis_role = "engine"`) and a gateway (`"gateway"`, every case) on the
    Redis at `redis_url`, both in this process on random ports; the gateway is served."""
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, settings(data_dir / "engine", redis_url=redis_url, redis_role="engine",
                                            redis_engine_id="e1", **overrides))
        gateway: Service = await nursery.start(serve, settings(data_dir / "gateway", redis_url=redis_url,
                                                               redis_role="gateway", redis_engine_id="g1",
                                                               **overrides))
        try:
            yield Served(gateway, f"http://127.0.0.1:{gateway.port}")
        finally:
            nursery.cancel_scope.cancel()


def auction_body(auction_id: str, *, start_in: float = 0.0, seconds: float = 30.0, lots: int = 1,
                 visibility: str = "ladder", bidders: tuple[str, ...] = (), window: str = "2s",
                 extend_by: str = "2s", **extra: Any) -> dict[str, Any]:
    """A valid auction body starting `start_in` seconds from now, closing `seconds` later."""
    start_us = int((time.time() + start_in) * 1_000_000)  # the wall clock, as the service reads it
    body: dict[str, Any] = {
        "auction_id": auction_id, "title": "Fournitures de bureau", "buyer_ref": "AO-1/2026", "currency": "MAD",
        "decimals": 2, "start": format_instant(start_us), "end": format_instant(start_us + int(seconds * 1e6)),
        "stagger": "0s", "bidders": list(bidders), "min_bidders": 1, "visibility": visibility,
        "rules": {"min_step": "1.00"},
        "extension": {"window": window, "extend_by": extend_by, "trigger": "any_bid", "mode": "from_bid",
                      "max_extensions": 100},
        "lots": [{"lot_id": f"L{i + 1}", "title": f"Lot {i + 1}", "estimate": "10000.00",
                  "starting_price": "10000.00"} for i in range(lots)],
    }
    body.update(extra)
    return body
