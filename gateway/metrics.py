"""Prometheus metrics of one service, in its own registry (docs/operations.md lists them).

Counters and histograms are updated on the hot path with no locking (one trio thread);
gauges that are cheap to compute on demand (open auctions) are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 8192)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.bids = Counter("auction_bids", "Bids by outcome and rejection reason", ["outcome", "reason"],
                            registry=registry)
        self.bid_ack_seconds = Histogram("auction_bid_ack_seconds", "From a bid's arrival to its ack or reject "
                                         "(includes the journal fsync)", buckets=LATENCY_BUCKETS, registry=registry)
        self.connections = Gauge("auction_ws_connections", "Open auction-room connections", ["role"],
                                 registry=registry)
        self.closed = Counter("auction_ws_closed", "Room connections closed by the service, by close code",
                              ["code"], registry=registry)
        self.views_sent = Counter("auction_views_sent", "Lot views sent to room connections", registry=registry)
        self.views_conflated = Counter("auction_views_conflated", "Unsent lot views replaced by a newer one",
                                       registry=registry)
        self.views_unchanged = Counter("auction_views_unchanged", "Lot views not sent: equal to the last view of "
                                       "the lot the connection was sent", registry=registry)
        self.protocol_errors = Counter("auction_ws_errors", "Room messages answered with an error, by code",
                                       ["code"], registry=registry)
        self.journal_batch = Histogram("auction_journal_batch_records", "Records per journal write + fsync",
                                       buckets=BATCH_BUCKETS, registry=registry)
        self.journal_sync_seconds = Histogram("auction_journal_sync_seconds", "Duration of a batch's write + fsync",
                                              buckets=LATENCY_BUCKETS, registry=registry)
        self.loop_lag_seconds = Histogram("auction_event_loop_lag_seconds", "How late the event loop wakes a "
                                          "sleeping task", buckets=LATENCY_BUCKETS, registry=registry)
        self.rpc = Counter("auction_rpc_requests", "RPC requests by route and status", ["route", "status"],
                           registry=registry)
        self.journal_failed = Gauge("auction_journal_failed", "1 once the journal has stopped taking records "
                                    "(disk full, IO error): intake is stopped until a restart", registry=registry)
        self.open_auctions = Gauge("auction_open_auctions", "Auctions not yet finished", registry=registry)

    def track_open_auctions(self, count: Callable[[], int]) -> None:
        self.open_auctions.set_function(count)

    def track_journal(self, stats: dict[str, Any]) -> None:
        """The journal writer's counts, read from its `stats` at each scrape."""
        gauge = Gauge("auction_journal_batches_pipelined", "Journal batches sent behind the one being synced (their "
                      "fdatasync queued), since the start", registry=self.registry)
        gauge.set_function(lambda: float(stats["pipelined"]))

    def track_checkpoints(self, status: Callable[[], dict[str, Any]]) -> None:
        """Recovery checkpoints, read from `status()` (the runtime's) at each scrape."""
        for key, name, text in (
                ("written", "auction_checkpoints_written", "Recovery checkpoints written since the start"),
                ("failed", "auction_checkpoints_failed", "Recovery checkpoints that could not be written since the "
                                                         "start"),
                ("deferred", "auction_checkpoints_deferred", "Due checkpoints put off because the load never paused "
                                                             "long enough"),
                ("last_gseq", "auction_checkpoint_last_record", "The last record of the newest checkpoint (0: none)"),
                ("last_seconds", "auction_checkpoint_seconds", "How long writing the newest checkpoint took")):
            gauge = Gauge(name, text, registry=self.registry)
            gauge.set_function(lambda key=key: float(status().get(key) or 0))  # type: ignore[misc]

    def on_write(self, records: int, seconds: float) -> None:
        """A write + fsync made durable (a runtime consumer's)."""
        self.journal_batch.observe(records)
        self.journal_sync_seconds.observe(seconds)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
