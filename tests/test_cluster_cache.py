"""An engine's local snapshots of its cases (cluster/cache.py) on a real redis-server: a
take from a snapshot reads only the stream past it and gives the state the whole stream
gives; a damaged, foreign or forked snapshot is refused and the whole stream read."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import START, config

from auction_engine.cluster import CaseOwner, Leases, StreamJournal, connect, rebuild
from auction_engine.cluster.cache import CaseCache, rebuild_cached
from auction_engine.cluster.local import LocalRedis
from auction_engine.commands import CreateAuction, PlaceBid
from auction_engine.journal.sequencer import Journaled

S = 1_000_000


@pytest.mark.trio
async def test_a_take_from_a_snapshot_reads_only_what_came_after(redis_server: LocalRedis, tmp_path: Path) -> None:
    cache = CaseCache(tmp_path / "cases")
    async with connect(redis_server.url) as client:
        journal = StreamJournal(client)
        owner = await CaseOwner.claim(journal, Leases(client), "A1", "e1", 60_000)
        await owner.execute(CreateAuction(START - S, config()))
        for i in range(10):
            await owner.execute(PlaceBid(START + i * S, "A1", "L1", f"b{i % 3}", 90_000 - 100 * i, f"c{i}"))
        cache.write("A1", owner.journaled)
        at = owner.journaled.chains["A1"][0]
        for i in range(10, 15):
            await owner.execute(PlaceBid(START + i * S, "A1", "L1", f"b{i % 3}", 90_000 - 100 * i, f"c{i}"))
        whole, _ = await rebuild(journal, "A1")
        taken, report = await rebuild_cached(journal, "A1", cache)
        assert (cache.used, cache.refused) == (1, 0)
        assert report.records == owner.journaled.chains["A1"][0] - at == 5
        assert taken.host.state_hash() == whole.host.state_hash()
        assert taken.chains == whole.chains and taken.gseq == whole.gseq
        assert taken.previous_outcome(PlaceBid(START, "A1", "L1", "b0", 1, "c0")) == \
            whole.previous_outcome(PlaceBid(START, "A1", "L1", "b0", 1, "c0"))  # the retry keys came along

        path = cache.path("A1")
        data = path.read_bytes()
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])  # damaged
        again, _ = await rebuild_cached(journal, "A1", cache)
        assert (cache.used, cache.refused) == (1, 1) and again.host.state_hash() == whole.host.state_hash()

        fork = Journaled()  # the same case, other records: the stream's record at its aseq is not its
        fork.submit(CreateAuction(START - S, config()))
        fork.submit(PlaceBid(START, "A1", "L1", "zz", 80_000, "fork"))
        cache.write("A1", fork)
        forked, _ = await rebuild_cached(journal, "A1", cache)
        assert (cache.used, cache.refused) == (1, 2) and forked.host.state_hash() == whole.host.state_hash()

        path.write_bytes(b"not a snapshot")
        assert cache.read("A1") is None and cache.refused == 3
        assert cache.read("A2") is None and cache.refused == 3  # none at all: nothing refused
