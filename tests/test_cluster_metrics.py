"""The Redis-mode metrics: exact values after driven events, on the service's own registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from auction_engine.cluster.metrics import ClusterMetrics
from gateway.metrics import Metrics


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_lease_renewals_failovers_and_callbacks() -> None:
    registry = CollectorRegistry()
    metrics = ClusterMetrics(registry)
    assert value(registry, "auction_redis_lease_renewals_total", outcome="ok") == 0  # present before any event
    assert value(registry, "auction_redis_lease_renewals_total", outcome="lost") == 0
    metrics.on_renewals(3, 1)
    metrics.on_renewals(2, 0)
    with pytest.raises(ValueError, match="renewal counts are not negative: ok=-1 lost=0"):
        metrics.on_renewals(-1, 0)
    assert value(registry, "auction_redis_lease_renewals_total", outcome="ok") == 5
    assert value(registry, "auction_redis_lease_renewals_total", outcome="lost") == 1
    metrics.on_failover()
    metrics.on_failover()
    assert value(registry, "auction_redis_failovers_total") == 2
    held = {"A1": 1, "A2": 2}
    appended, seen = [7], [4]
    assert value(registry, "auction_redis_owned_cases") == 0  # untracked yet
    metrics.track_owned_cases(lambda: len(held))
    metrics.track_stream_lag(lambda: appended[0] - seen[0])
    assert (value(registry, "auction_redis_owned_cases"), value(registry, "auction_redis_stream_lag_records")) \
        == (2, 3)
    del held["A1"]
    seen[0] = 7  # read at each scrape: the follower caught up
    assert (value(registry, "auction_redis_owned_cases"), value(registry, "auction_redis_stream_lag_records")) \
        == (1, 0)


def test_round_trips_and_probe_rounds() -> None:
    registry = CollectorRegistry()
    metrics = ClusterMetrics(registry)
    assert value(registry, "auction_redis_probe_ok") == 0
    metrics.observe_round_trip(0.0004, "append")
    metrics.observe_round_trip(0.003, "append")
    metrics.on_probe("ok", 0.0015)
    assert value(registry, "auction_redis_probe_ok") == 1
    assert value(registry, "auction_redis_round_trip_seconds_count", op="append") == 2
    assert value(registry, "auction_redis_round_trip_seconds_sum", op="append") == pytest.approx(0.0034)
    assert value(registry, "auction_redis_round_trip_seconds_bucket", op="append", le="0.0005") == 1
    assert value(registry, "auction_redis_round_trip_seconds_bucket", op="append", le="0.005") == 2
    assert value(registry, "auction_redis_round_trip_seconds_count", op="probe") == 1
    assert value(registry, "auction_redis_round_trip_seconds_bucket", op="probe", le="0.001") == 0
    assert value(registry, "auction_redis_round_trip_seconds_bucket", op="probe", le="0.002") == 1
    metrics.on_probe("probe_timeout", None)
    metrics.on_probe("subscription_lost", None)
    metrics.on_probe("probe_timeout", None)
    assert value(registry, "auction_redis_probe_ok") == 0
    assert value(registry, "auction_redis_probe_failures_total", code="probe_timeout") == 2
    assert value(registry, "auction_redis_probe_failures_total", code="subscription_lost") == 1
    assert value(registry, "auction_redis_round_trip_seconds_count", op="probe") == 1  # failures time nothing
    metrics.on_probe("ok", 0.002)
    assert value(registry, "auction_redis_probe_ok") == 1
    assert value(registry, "auction_redis_round_trip_seconds_count", op="probe") == 2


def test_they_join_the_service_registry() -> None:
    service = Metrics()
    metrics = ClusterMetrics(service.registry)
    metrics.on_renewals(1, 0)
    text = service.render().decode()
    assert 'auction_redis_lease_renewals_total{outcome="ok"} 1.0' in text.splitlines()
    assert "auction_redis_probe_ok 0.0" in text.splitlines()
    assert "auction_bid_ack_seconds_count 0.0" in text.splitlines()  # the service's own are still there
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ClusterMetrics(service.registry)  # one set per registry
    assert generate_latest(service.registry) == service.render()
