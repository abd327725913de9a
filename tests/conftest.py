"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_local import local_redis

from auction_engine.cluster.local import LocalRedis
from gateway import transport


@pytest.fixture(params=["direct", "asgi"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the room writes: its direct path, and the ASGI send it falls back to."""
    if request.param == "asgi":
        monkeypatch.setattr(transport, "direct_sender", lambda scope: None)
    return str(request.param)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[LocalRedis]:
    """A private redis-server (AOF, appendfsync always) on a loopback port, for one test."""
    yield from local_redis(tmp_path / "redis")
