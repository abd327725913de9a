"""The journal of record in Redis: the file journal's bytes, rebuilt through its verifier,
exported as journal files; durability refused when Redis cannot promise it; hostile
input on the Redis side reported with a code and never trusted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from factories import START, S
from redis_local import case_frames, commands, local_redis

from auction_engine.cluster import (
    CaseOwner,
    ClusterError,
    Layout,
    Leases,
    StreamJournal,
    check_durability,
    connect,
    export_streams,
    rebuild,
    rebuild_all,
)
from auction_engine.cluster.durability import online_replicas
from auction_engine.cluster.local import LocalRedis
from auction_engine.journal.format import frame
from auction_engine.kind import Tick
from auction_engine.runtime import Runtime
from replay import verify
from replay.cli import main as replay_main
from replay.verify import export

L = Layout()


async def owned(url: str, case: str = "A1", bids: int = 4) -> CaseOwner:
    """Claim `case` and run `commands(case, bids)` through its owner (the client stays open)."""
    async with connect(url) as client:
        owner = await CaseOwner.claim(StreamJournal(client), Leases(client), case, "alpha", 60_000)
        for command in commands(case, bids):
            await owner.execute(command)
        return owner


@pytest.mark.trio
async def test_streams_hold_the_file_journals_bytes(redis_server: LocalRedis, tmp_path: Path) -> None:
    async with Runtime.open(tmp_path / "journal", clock=lambda: 0) as runtime:
        for command in commands():
            await runtime.execute(command)
        file_hash = runtime.host.state_hash()
    export(tmp_path / "journal", "A1", tmp_path / "file.journal")
    owner = await owned(redis_server.url)
    assert owner.journaled.host.state_hash() == file_hash
    async with connect(redis_server.url) as client:
        report = await export_streams(StreamJournal(client), tmp_path / "redis")
    assert report.problems == []
    [(case, path)] = report.written
    assert (path, case.records, case.tokens) == (tmp_path / "redis" / "A1.journal", 6, [1])
    assert path.read_bytes() == (tmp_path / "file.journal").read_bytes()
    result = verify(path)
    assert (result.ok, result.kind, result.records, result.state_hash) == (True, "export", 6, file_hash)
    assert result.auctions["A1"].head == case.head


@pytest.mark.trio
async def test_a_claim_rebuilds_the_case_and_goes_on(redis_server: LocalRedis) -> None:
    first = await owned(redis_server.url, bids=2)
    expected, frames = case_frames(bids=4)
    async with connect(redis_server.url) as client:
        leases, journal = Leases(client), StreamJournal(client)
        await leases.release(first.lease)
        second = await CaseOwner.claim(journal, leases, "A1", "beta", 60_000)
        assert (second.lease.token, second.recovered.records, second.recovered.tokens) == (2, 4, [1])
        assert second.journaled.host.state_hash() == first.journaled.host.state_hash()
        for command in commands(bids=4)[3:]:
            await second.execute(command)
        assert second.journaled.host.state_hash() == expected.host.state_hash()
        assert [e.frame async for e in journal.entries("A1")] == [f for fs in frames for f in fs]
        _j, report = await rebuild(journal, "A1")
        assert (report.records, report.tokens, report.state_hash) == (6, [1, 2], expected.host.state_hash())
        for other in (commands("B1")[0], Tick(START + 3600 * S, "B1")):  # another case's: refused, nothing changes
            with pytest.raises(ClusterError) as refused:
                await second.execute(other)
            assert refused.value.code == "wrong_case"
        assert (second.journaled.host.state_hash(), await journal.length("A1")) == (report.state_hash, 6)


@pytest.mark.trio
async def test_durability_is_checked(redis_server: LocalRedis, tmp_path: Path) -> None:
    async with connect(redis_server.url) as client:
        assert await check_durability(client) == "aof_always"
    for extra, replicas, code in ((("--appendfsync", "everysec"), 0, "not_durable"),
                                  (("--appendonly", "no"), 0, "not_durable"),
                                  (("--appendonly", "no"), 1, "too_few_replicas"),
                                  (("--rename-command", "CONFIG", ""), 0, "config_unreadable")):
        for server in local_redis(tmp_path / code / str(replicas), extra):
            async with connect(server.url) as client:
                with pytest.raises(ClusterError) as refused:
                    await check_durability(client, replicas=replicas)
                assert refused.value.code == code
                assert await check_durability(client, replicas=replicas, unsafe=True) == "unsafe"


@pytest.mark.trio
async def test_appends_wait_for_replicas(redis_server: LocalRedis, tmp_path: Path) -> None:
    _j, frames = case_frames()
    async with connect(redis_server.url) as client:
        await client.config_set({"repl-diskless-sync-delay": 0})  # the replica's first copy at once
    replica_of = ("--replicaof", "127.0.0.1", str(redis_server.port))
    for replica in local_redis(tmp_path / "replica", replica_of):
        async with connect(redis_server.url) as client, connect(replica.url) as mirror:
            with trio.fail_after(10):
                while await online_replicas(client) < 1:
                    await trio.sleep(0.01)  # polling the condition: the replica is in sync
            assert await check_durability(client, replicas=1) == "aof_always"
            journal = StreamJournal(client, replicas=1)
            lease = await Leases(client).claim("A1", "alpha", 60_000)
            assert await journal.append(lease, 1, frames[0]) == 1
            assert await mirror.xlen(L.journal("A1")) == 1  # WAIT returned: the replica has it
            more = StreamJournal(client, replicas=2, wait_ms=50)
            with pytest.raises(ClusterError) as refused:
                await more.append(lease, 2, frames[1])
            assert refused.value.code == "not_replicated"


def reframed(data: bytes, change: Any) -> bytes:
    """The frame of a record whose payload fields went through `change` (CRCs valid)."""
    fields = list(msgpack.unpackb(data[12:], raw=False))
    change(fields)
    return frame(msgpack.packb(fields, use_bin_type=True))


def hostile(frames: list[bytes], a1: list[bytes]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Streams that break one rule each: case -> (code expected, entries)."""
    def entries(case_frames: list[bytes], tokens: list[int] | None = None) -> list[dict[str, Any]]:
        return [{"r": f, "t": str(t)} for f, t in zip(case_frames, tokens or [1] * len(case_frames), strict=True)]

    def chain(fields: list[Any]) -> None:
        fields[6] = bytes(32)

    def outcome(fields: list[Any]) -> None:
        fields[5] = [["BidRejected", *fields[5][0][1:4], "not_admitted"]]

    flipped = bytearray(frames[1])
    flipped[-1] ^= 1
    return {
        "garbage": ("bad_frame", [{"r": b"\x01" * 20, "t": "1"}]),
        "short": ("truncated", [{"r": b"\x00\x01", "t": "1"}]),
        "fields": ("malformed_entry", [{"r": frames[0], "t": "1", "x": "1"}]),
        "token": ("malformed_entry", [{"r": frames[0], "t": "-1"}]),
        "crc": ("bad_crc", entries([frames[0], bytes(flipped)])),
        "payload": ("bad_payload", [{"r": frame(msgpack.packb([1, 2])), "t": "1"}]),
        "case": ("wrong_case", entries(a1[:1])),
        "chain": ("chain_broken", entries([frames[0], reframed(frames[1], chain)])),
        "outcome": ("divergence", entries([*frames[:2], reframed(frames[2], outcome)])),
        "tokens": ("token_regression", entries(frames[:2], [2, 1])),
    }


@pytest.mark.trio
async def test_hostile_streams_are_reported_never_trusted(redis_server: LocalRedis, tmp_path: Path) -> None:
    await owned(redis_server.url)
    a1 = [f for fs in case_frames()[1] for f in fs]
    cases = {}
    async with connect(redis_server.url) as client:
        journal, leases = StreamJournal(client), Leases(client)
        for name in ("garbage", "short", "fields", "token", "crc", "payload", "case", "chain", "outcome", "tokens"):
            frames = [f for fs in case_frames(name)[1] for f in fs]
            code, entries = hostile(frames, a1)[name]
            for n, fields in enumerate(entries, 1):
                await client.xadd(L.journal(name), fields, identifier=f"{n}-0")
            cases[name] = (code, f"{len(entries)}-0")
        gap = [f for fs in case_frames("gap")[1] for f in fs]
        await client.xadd(L.journal("gap"), {"r": gap[0], "t": "1"}, identifier="1-0")
        await client.xadd(L.journal("gap"), {"r": gap[2], "t": "1"}, identifier="3-0")
        cases["gap"] = ("entry_gap", "3-0")
        for key in ("ae:junk", "ae:{A1}:other", "ae:{A{1}:journal"):
            await client.set(key, "x")
        await client.hset(L.lease("Z9"), {"x": "1"})
        for name, (code, entry) in cases.items():
            with pytest.raises(ClusterError) as refused:
                await rebuild(journal, name)
            assert (name, refused.value.code, refused.value.key, refused.value.entry) == (
                name, code, L.journal(name), entry)
        with pytest.raises(ClusterError) as refused:  # an owner never takes a damaged case
            await CaseOwner.claim(journal, leases, "chain", "alpha", 60_000)
        assert refused.value.code == "chain_broken"
        assert (await client.exists([L.lease("chain")]), await client.get(L.fence("chain"))) == (0, b"1")
        before = await client.dbsize()
        report = await export_streams(journal, tmp_path / "out")
        rebuilt, problems = await rebuild_all(journal)
        assert await client.dbsize() == before
    assert sorted(rebuilt) == ["A1"]
    assert rebuilt["A1"][1].records == 6
    assert [str(p) for p in problems] == [str(p) for p in report.problems]
    assert [(case.case_id, path.name) for case, path in report.written] == [("A1", "A1.journal")]
    surveyed = [("foreign_key", "ae:junk"), ("wrong_type", "ae:{Z9}:lease"), ("foreign_key", "ae:{A1}:other"),
                ("foreign_key", "ae:{A{1}:journal")]
    assert [(p.code, p.key) for p in report.problems] == sorted(surveyed, key=lambda p: p[1]) + [
        (code, L.journal(name)) for name, (code, _e) in sorted(cases.items())]  # the cases in id order
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["A1.journal"]


def test_export_command_line(redis_server: LocalRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trio.run(owned, redis_server.url)
    assert replay_main(["export", "--redis", redis_server.url, str(tmp_path / "out")]) == 0
    assert replay_main(["verify", str(tmp_path / "out" / "A1.journal")]) == 0
    out = capsys.readouterr().out
    assert "case A1, 6 records, tokens 1, head " in out
    assert "1 cases exported to" in out
    assert "OK: every record verified" in out
    trio.run(_foreign, redis_server.url)
    assert replay_main(["export", "--redis", redis_server.url, str(tmp_path / "again")]) == 1
    assert "REFUSED foreign_key at ae:stray" in capsys.readouterr().err
    assert replay_main(["export", "--redis", "redis://127.0.0.1:1/0", str(tmp_path / "none")]) == 2


async def _foreign(url: str) -> None:
    async with connect(url) as client:
        await client.set("ae:stray", "x")



def test_the_engine_process_refuses_a_redis_that_may_lose_appends(tmp_path: Path) -> None:
    worker = [sys.executable, "-m", "auction_engine.cluster.worker"]
    for server in local_redis(tmp_path / "everysec", ("--appendfsync", "everysec")):
        refused = subprocess.run([*worker, server.url, "D1", "alpha", "--bids", "1"], capture_output=True,
                                 text=True, timeout=60, check=False)
        assert (refused.returncode, refused.stdout) == (5, '{"refused": "not_durable"}\n')
        unsafe = subprocess.run([*worker, server.url, "D1", "alpha", "--bids", "1", "--unsafe"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert unsafe.returncode == 0, unsafe.stderr
        assert unsafe.stdout.splitlines() == ['{"claimed": 1, "records": 0}', '{"ack": 2, "token": 1, "c": "alpha-0"}',
                                              '{"done": 1}']
