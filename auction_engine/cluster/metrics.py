"""Prometheus metrics of a process in Redis mode, registered on the registry it is given.

`ClusterMetrics(registry)` adds the Redis series (docs/operations.md, "Redis mode") to a
service's own registry; the writer, the probe and the lease keeper call its hooks (one
trio thread: no locking). Gauges that are cheap to read (owned cases, stream lag) are
callbacks read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Loopback to a remote AOF-fsyncing Redis: from a fraction of a millisecond to seconds.
ROUND_TRIP_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RENEWAL_OUTCOMES = ("ok", "lost")


class ClusterMetrics:
    """The Redis-mode series of one process (names prefixed `auction_redis_`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.owned_cases = Gauge("auction_redis_owned_cases", "Cases whose lease this engine holds (read at scrape "
                                 "time)", registry=registry)
        self.lease_renewals = Counter("auction_redis_lease_renewals", "Lease renewals by outcome: ok, or lost "
                                      "(expired or taken over)", ["outcome"], registry=registry)
        self.failovers = Counter("auction_redis_failovers", "Cases this engine claimed after another engine had "
                                 "held them", registry=registry)
        self.stream_lag = Gauge("auction_redis_stream_lag_records", "Records appended to Redis not yet seen by a "
                                "follower (read at scrape time)", registry=registry)
        self.round_trip_seconds = Histogram("auction_redis_round_trip_seconds", "Round trips to Redis, by "
                                            "operation (probe: publish to own subscription)", ["op"],
                                            buckets=ROUND_TRIP_BUCKETS, registry=registry)
        self.probe_ok = Gauge("auction_redis_probe_ok", "1 while the pub/sub probe's last round came back, "
                              "else 0", registry=registry)
        self.probe_failures = Counter("auction_redis_probe_failures", "Failed pub/sub probe rounds, by code",
                                      ["code"], registry=registry)
        for outcome in RENEWAL_OUTCOMES:  # both series exist from the start: a rate of lost is 0, not absent
            self.lease_renewals.labels(outcome)

    def track_owned_cases(self, count: Callable[[], int]) -> None:
        """Read `count()` (e.g. the held leases) at each scrape."""
        self.owned_cases.set_function(lambda: float(count()))

    def track(self, name: str, text: str, value: Callable[[], float]) -> None:
        """One more series read at scrape time (`auction_redis_` + `name`): a role's counts."""
        Gauge(f"auction_redis_{name}", text, registry=self.registry).set_function(lambda: float(value()))

    def track_stream_lag(self, lag: Callable[[], int]) -> None:
        """Read `lag()` at each scrape: records appended to the streams and not yet seen by
        the follower it measures (for one engine, its last appended minus its last read)."""
        self.stream_lag.set_function(lambda: float(lag()))

    def on_renewals(self, ok: int, lost: int) -> None:
        """One renewal round's outcomes: leases extended, leases found lost."""
        if ok < 0 or lost < 0:
            raise ValueError(f"renewal counts are not negative: ok={ok} lost={lost}")
        self.lease_renewals.labels("ok").inc(ok)
        self.lease_renewals.labels("lost").inc(lost)

    def on_failover(self) -> None:
        """This engine claimed a case another engine had held (it waited out that lease)."""
        self.failovers.inc()

    def observe_round_trip(self, seconds: float, op: str) -> None:
        """One Redis round trip of `op` (a small fixed set: `probe`, `append`, `renew`...)."""
        self.round_trip_seconds.labels(op).observe(seconds)

    def on_probe(self, code: str, round_trip: float | None) -> None:
        """A probe round ended with `code` (`ok` with its round trip, else a failure code)."""
        if code == "ok":
            self.probe_ok.set(1)
            if round_trip is not None:
                self.observe_round_trip(round_trip, "probe")
        else:
            self.probe_ok.set(0)
            self.probe_failures.labels(code).inc()
