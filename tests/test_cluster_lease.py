"""Leases and fencing on a real redis-server: one owner per case, and a stale owner writes nothing."""

from __future__ import annotations

import pytest
from redis_local import case_frames, until_gone

from auction_engine.cluster import ClusterError, Layout, Leases, Registry, StreamJournal, connect
from auction_engine.cluster.local import LocalRedis

L = Layout()


@pytest.mark.trio
async def test_two_claimants_one_owner(redis_server: LocalRedis) -> None:
    async with connect(redis_server.url) as client:
        leases = Leases(client)
        first = await leases.claim("A1", "alpha", 60_000)
        assert (first.token, first.value) == (1, "alpha|1")
        with pytest.raises(ClusterError) as refused:
            await leases.claim("A1", "beta", 60_000)
        assert refused.value.code == "held"
        assert refused.value.key == "ae:{A1}:lease"
        assert refused.value.message.startswith("held by alpha|1 for ")
        assert await client.get("ae:{A1}:lease") == b"alpha|1"
        assert await client.get("ae:{A1}:fence") == b"1"  # a refused claim counts no token
        other = await leases.claim("A2", "beta", 60_000)  # another case: its own counter
        assert other.token == 1


@pytest.mark.trio
async def test_expiry_takeover_and_late_renewal(redis_server: LocalRedis) -> None:
    async with connect(redis_server.url) as client:
        leases = Leases(client)
        old = await leases.claim("A1", "alpha", 50)
        await until_gone(client, L.lease("A1"))
        new = await leases.claim("A1", "beta", 60_000)
        assert new.token == 2
        for late in (leases.renew, leases.release):
            with pytest.raises(ClusterError) as refused:
                await late(old)
            assert refused.value.code == "lease_lost"
        assert await client.get(L.lease("A1")) == b"beta|2"  # the late renewal changed nothing
        await leases.renew(new)
        assert 59_000 < await client.pttl(L.lease("A1")) <= 60_000
        await leases.release(new)
        assert await client.exists([L.lease("A1")]) == 0
        again = await leases.claim("A1", "alpha", 60_000)
        assert again.token == 3


@pytest.mark.trio
async def test_bad_claims_are_refused(redis_server: LocalRedis) -> None:
    async with connect(redis_server.url) as client:
        leases = Leases(client)
        for case, owner, ttl, code in (("A1", "a|b", 1000, "bad_claim"), ("A1", "", 1000, "bad_claim"),
                                       ("A1", "alpha", 0, "bad_claim"), ("A{1}", "alpha", 1000, "bad_case_id"),
                                       ("", "alpha", 1000, "bad_case_id")):
            with pytest.raises(ClusterError) as refused:
                await leases.claim(case, owner, ttl)
            assert refused.value.code == code
        assert await client.dbsize() == 0


@pytest.mark.trio
async def test_append_under_a_stale_token_writes_nothing(redis_server: LocalRedis) -> None:
    _j, frames = case_frames()
    async with connect(redis_server.url) as client:
        leases, journal = Leases(client), StreamJournal(client)
        old = await leases.claim("A1", "alpha", 50)
        assert await journal.append(old, 1, frames[0]) == 1
        await until_gone(client, L.lease("A1"))
        # expired, nobody else yet: the token is still current but the lease is not held
        with pytest.raises(ClusterError) as refused:
            await journal.append(old, 2, frames[1])
        assert refused.value.code == "lease_lost"
        new = await leases.claim("A1", "beta", 60_000)
        with pytest.raises(ClusterError) as refused:
            await journal.append(old, 2, frames[1])
        assert (refused.value.code, refused.value.key) == ("stale_token", "ae:{A1}:journal")
        assert refused.value.message == "token 1 is not the case's current one (2)"
        assert await journal.length("A1") == 1
        assert await journal.append(new, 2, frames[1]) == 3  # the tick that opens the lot, then the bid
        entries = [e async for e in journal.entries("A1")]
        assert [(e.entry_id, e.token) for e in entries] == [("1-0", 1), ("2-0", 2), ("3-0", 2)]
        assert [e.frame for e in entries] == [*frames[0], *frames[1]]


@pytest.mark.trio
async def test_append_out_of_sequence_or_onto_foreign_data_is_refused(redis_server: LocalRedis) -> None:
    _j, frames = case_frames()
    async with connect(redis_server.url) as client:
        leases, journal = Leases(client), StreamJournal(client)
        lease = await leases.claim("A1", "alpha", 60_000)
        for first in (0, 2):
            with pytest.raises(ClusterError) as refused:
                await journal.append(lease, first, frames[0])
            assert refused.value.code == "seq_conflict"
        assert await client.exists([L.journal("A1")]) == 0
        await journal.append(lease, 1, frames[0])
        with pytest.raises(ClusterError) as refused:  # the same record again: no fork of the chain
            await journal.append(lease, 1, frames[0])
        assert refused.value.message == "the stream ends at record 1, not 0"
        await client.set(L.journal("B1"), "not a stream")
        other = await leases.claim("B1", "alpha", 60_000)
        with pytest.raises(ClusterError) as refused:
            await journal.append(other, 1, frames[0])
        assert refused.value.code == "wrong_type"
        assert await client.get(L.journal("B1")) == b"not a stream"


@pytest.mark.trio
async def test_keys_holding_foreign_data_are_refused(redis_server: LocalRedis) -> None:
    async with connect(redis_server.url) as client:
        leases = Leases(client)
        await client.hset(L.lease("H1"), {"owner": "mallory"})
        await client.set(L.fence("H2"), "not a number")
        await client.set("ae:engines", "not a set")
        for case in ("H1", "H2"):
            with pytest.raises(ClusterError) as refused:
                await leases.claim(case, "alpha", 60_000)
            assert (refused.value.code, refused.value.key) == ("wrong_type", L.lease(case))
        with pytest.raises(ClusterError) as refused:
            await Registry(client).beat("e1", 1000)
        assert refused.value.code == "wrong_type"
        assert (await client.hgetall(L.lease("H1")), await client.get(L.fence("H2"))) == (
            {b"owner": b"mallory"}, b"not a number")
        assert await client.exists([L.lease("H2")]) == 0
