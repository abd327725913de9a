"""The real redis-server for the scale-out tests, and the records they append.

`local_redis(tmp)` starts a private Debian redis-server on a loopback port with AOF and
fsync on every write (auction_engine.cluster.local); a missing binary fails the run in CI
(CI=true) and skips elsewhere (`make test` installs it). `case_frames` runs commands
through the file journal's sequencer: the very bytes the streams must hold.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from factories import START, S, config

from auction_engine import CreateAuction, PlaceBid
from auction_engine.cluster import Client
from auction_engine.cluster.local import LocalRedis, RedisMissing
from auction_engine.journal import Journaled


def local_redis(directory: Path, extra: tuple[str, ...] = ()) -> Iterator[LocalRedis]:
    try:
        server = LocalRedis(directory, extra=extra)
    except RedisMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with server:
        yield server


def commands(case: str = "A1", bids: int = 4) -> list[Any]:
    """An auction created an hour before it opens, then `bids` lower and lower bids after
    it opened (the first bid's record is preceded by the tick that opens the lot)."""
    out: list[Any] = [CreateAuction(START - 3600 * S, config(auction_id=case))]
    bidders = ["alice", "bob", "carol"]
    out += [PlaceBid(START + (i + 1) * S, case, "L1", bidders[i % 3], 99_000 - 1000 * i, f"c{i}")
            for i in range(bids)]
    return out


def case_frames(case: str = "A1", bids: int = 4) -> tuple[Journaled, list[list[bytes]]]:
    """The frames of each command of `commands()` as the file journal frames them."""
    journaled = Journaled()
    return journaled, [journaled.submit(c).frames for c in commands(case, bids)]


async def until_gone(client: Client, key: str, timeout: float = 10.0) -> None:
    """Return once `key` no longer exists (a lease's TTL ran out), polled every 5 ms."""
    with trio.fail_after(timeout):
        while await client.exists([key]):
            await trio.sleep(0.005)  # polling the condition itself, with a deadline
