"""The pub/sub health probe on a real redis-server: it turns ok, catches a killed
subscription, a stopped server, a stuck publish and a subscriber left on an old primary,
and heals by itself. Real time (the server is real); every wait polls a condition."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from coredis.tokens import PureToken
from prometheus_client import CollectorRegistry
from redis_local import local_redis

from auction_engine.cluster import Client, Layout, connect
from auction_engine.cluster.local import LocalRedis
from auction_engine.cluster.metrics import ClusterMetrics
from auction_engine.cluster.probe import Connect, PubSubProbe, connector


@pytest.fixture
def other_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A second server: the new primary of a failover, the old one being `redis_server`."""
    yield from local_redis(tmp_path / "other")


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.005)  # polling the condition itself, with a deadline


@asynccontextmanager
async def probing(probe: PubSubProbe) -> AsyncIterator[PubSubProbe]:
    async with trio.open_nursery() as nursery:
        await nursery.start(probe.run)
        yield probe
        nursery.cancel_scope.cancel()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def numsub(url: str, channel: str) -> int:
    async with connect(url) as client:
        counts = await client.pubsub_numsub(channel)
        return int(counts[channel.encode()])


@pytest.mark.trio
async def test_probe_turns_ok_and_feeds_its_metrics(redis_server: LocalRedis) -> None:
    registry = CollectorRegistry()
    probe = PubSubProbe.for_url(redis_server.url, metrics=ClusterMetrics(registry))
    assert (probe.status, probe.ok, probe.round_trip, probe.channel) == ("starting", False, None, "ae:probe")
    assert probe.trouble() == "Redis pub/sub probe: starting (no round has come back yet)"
    assert sample(registry, "auction_redis_probe_ok") == 0
    async with probing(probe):
        await until(lambda: probe.rounds >= 2)
        rounds, round_trip = probe.rounds, probe.round_trip
        assert (probe.status, probe.trouble(), probe.failures, probe.sessions) == ("ok", None, {}, 1)
        assert round_trip is not None and 0 < round_trip < probe.timeout
        assert sample(registry, "auction_redis_probe_ok") == 1
        assert sample(registry, "auction_redis_round_trip_seconds_count", op="probe") == rounds
        assert sample(registry, "auction_redis_probe_failures_total", code="probe_timeout") is None
        assert await numsub(redis_server.url, "ae:probe") == 1


@pytest.mark.trio
async def test_a_killed_subscription_fails_then_heals(redis_server: LocalRedis) -> None:
    registry = CollectorRegistry()
    probe = PubSubProbe.for_url(redis_server.url, metrics=ClusterMetrics(registry))
    async with probing(probe), connect(redis_server.url) as admin:
        await until(lambda: probe.ok)
        assert await admin.client_kill(type_=PureToken.PUBSUB) == 1  # the probe's subscriber, and only it
        with trio.fail_after(probe.timeout):
            await until(lambda: not probe.ok)
        assert probe.status == "subscription_lost"
        assert probe.trouble() == "Redis pub/sub probe: subscription_lost (ConnectionError('Connection lost while " \
                                  "waiting for push messages'))"
        assert sample(registry, "auction_redis_probe_ok") == 0
        rounds = probe.rounds
        await until(lambda: probe.ok, probe.period + 2 * probe.timeout)  # by itself: a new subscription
        assert (probe.failures, probe.sessions, probe.rounds) == ({"subscription_lost": 1}, 2, rounds + 1)
        assert sample(registry, "auction_redis_probe_failures_total", code="subscription_lost") == 1
        assert sample(registry, "auction_redis_probe_ok") == 1
        assert await numsub(redis_server.url, "ae:probe") == 1


@pytest.mark.trio
async def test_a_stopped_server_is_unreachable_then_heals_on_restart(redis_server: LocalRedis) -> None:
    registry = CollectorRegistry()
    probe = PubSubProbe.for_url(redis_server.url, period=0.2, timeout=1.0, metrics=ClusterMetrics(registry))
    async with probing(probe):
        await until(lambda: probe.ok)
        await trio.to_thread.run_sync(redis_server.stop)
        await until(lambda: probe.status == "redis_unreachable", probe.period + 2 * probe.timeout)
        assert probe.trouble() == f"Redis pub/sub probe: redis_unreachable (ConnectionError('Unable to establish " \
                                  f"a connection to 127.0.0.1:{redis_server.port}'))"
        assert sample(registry, "auction_redis_probe_ok") == 0
        await until(lambda: probe.failures["redis_unreachable"] >= 2)  # it keeps trying, once a period
        await trio.to_thread.run_sync(redis_server.start)  # the same port and files
        await until(lambda: probe.ok, probe.period + 2 * probe.timeout)
        failures = dict(probe.failures)
        assert set(failures) <= {"subscription_lost", "redis_unreachable"}
        assert probe.sessions == sum(failures.values()) + 1  # every failure ended a session
        for code, count in failures.items():
            assert sample(registry, "auction_redis_probe_failures_total", code=code) == count
        assert sample(registry, "auction_redis_probe_ok") == 1
        assert await numsub(redis_server.url, "ae:probe") == 1


@pytest.mark.trio
async def test_a_stuck_publish_times_out_then_heals(redis_server: LocalRedis) -> None:
    probe = PubSubProbe.for_url(redis_server.url, period=0.2, timeout=0.5)
    async with probing(probe), connect(redis_server.url) as admin:
        await until(lambda: probe.ok)
        await admin.client_pause(1500, PureToken.WRITE)  # PUBLISH waits; the subscription stays up
        with trio.fail_after(probe.period + probe.timeout + 0.5):
            await until(lambda: probe.status == "probe_timeout")
        assert probe.trouble() == "Redis pub/sub probe: probe_timeout (the probe was not delivered back within 0.5 s)"
        await until(lambda: probe.ok)
        assert set(probe.failures) == {"probe_timeout"}


@pytest.mark.trio
async def test_a_frozen_server_fails_every_round_then_heals(redis_server: LocalRedis) -> None:
    probe = PubSubProbe.for_url(redis_server.url, period=0.2, timeout=0.5)
    assert redis_server.process is not None
    async with probing(probe):
        await until(lambda: probe.ok)
        os.kill(redis_server.process.pid, signal.SIGSTOP)  # TCP still accepts; nothing answers
        try:
            await until(lambda: probe.status == "probe_timeout")
            # connecting anew gets its timeout too: no session hangs, each period fails again
            await until(lambda: probe.failures["redis_unreachable"] >= 2)
            assert probe.status == "redis_unreachable" and probe.rounds >= 1
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        await until(lambda: probe.ok)
        assert set(probe.failures) == {"probe_timeout", "redis_unreachable"}


def split(publisher: str, listener: str) -> Connect:
    """A probe's connections after a failover went wrong: it publishes to the new primary
    while its subscription stayed on the old one (each session connects publisher first)."""
    calls = itertools.count()

    def connect_one() -> Client:
        return connector(publisher if next(calls) % 2 == 0 else listener)()
    return connect_one


@pytest.mark.trio
async def test_a_subscriber_on_the_old_primary_is_caught(redis_server: LocalRedis, other_redis: LocalRedis) -> None:
    new, old = other_redis.url, redis_server.url
    alone = PubSubProbe(split(new, old), period=0.2, timeout=0.5)
    async with probing(alone):  # nobody listens on the new primary: Redis says so at once
        await until(lambda: alone.failures["subscription_lost"] >= 2)
    assert (alone.status, alone.rounds, set(alone.failures)) == ("subscription_lost", 0, {"subscription_lost"})
    assert alone.detail == "Redis counts no subscriber on the probe channel"
    # another engine listens on the new primary: publishing "works", nothing comes back to us
    healthy = PubSubProbe.for_url(new, period=0.2, timeout=0.5)
    stranded = PubSubProbe(split(new, old), period=0.2, timeout=0.5)
    async with probing(healthy):
        await until(lambda: healthy.ok)
        async with probing(stranded):
            await until(lambda: stranded.failures["probe_timeout"] >= 2)
            assert (stranded.status, stranded.rounds, set(stranded.failures)) == ("probe_timeout", 0,
                                                                                  {"probe_timeout"})
            assert healthy.ok and not healthy.failures  # other nonces on its channel are ignored


@pytest.mark.trio
async def test_probes_share_a_namespace_channel_and_not_another(redis_server: LocalRedis) -> None:
    first, second = PubSubProbe.for_url(redis_server.url), PubSubProbe.for_url(redis_server.url)
    elsewhere = PubSubProbe.for_url(redis_server.url, Layout("other"))
    assert elsewhere.channel == "other:probe"
    async with probing(first), probing(second), probing(elsewhere):
        await until(lambda: min(first.rounds, second.rounds, elsewhere.rounds) >= 2)
        assert [p.failures for p in (first, second, elsewhere)] == [{}, {}, {}]
        assert await numsub(redis_server.url, "ae:probe") == 2
        assert await numsub(redis_server.url, "other:probe") == 1


def test_bad_timings_are_refused() -> None:
    for period, timeout in ((0, 1.0), (1.0, 0), (-1.0, 2.0)):
        with pytest.raises(ValueError, match="the probe's period and timeout are positive"):
            PubSubProbe.for_url("redis://127.0.0.1:1/0", period=period, timeout=timeout)
