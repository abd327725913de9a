"""One serving process's parts, opened together: runtime (engine + journal), credentials,
the room, the lifecycle feed and the metrics.

`Service.open(settings)` recovers the engine from `<data_dir>/journal` (or, with
`redis_url`, from the cases' streams in Redis), rebuilding the
feed and the revocation times from the same replay, loads (or on first start creates,
mode 0600) the token secret, the receipt signing key and, when none are configured, API
keys in `<data_dir>`.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auction_engine.events import Event
from auction_engine.runtime import Consumer, Part, Record, Runtime

from .auth import ApiKeys, TokenIssuer, load_or_create_secret, write_private
from .collective_awards import CollectiveAwards
from .feed import Feed
from .logs import log
from .metrics import Metrics
from .receipts import RECEIPT_KEY_FILE, ReceiptIndex, load_or_create_key
from .rooms import Rooms, note_revocations
from .settings import ROLES, ApiKey, Settings

if TYPE_CHECKING:
    from auction_engine.cluster.probe import PubSubProbe

logger = logging.getLogger("gateway.service")

LAG_PROBE = 0.25  # seconds between event-loop lag probes
API_KEYS_FILE = "api-keys.json"
TOKEN_SECRET_FILE = "token-secret"


class Revocations:
    """When each bidder was last revoked, as a checkpoint part (see `Feed` for the other)."""

    name = "revocations"

    def __init__(self, revoked_at: dict[tuple[str, str], int]) -> None:
        self.revoked_at = revoked_at

    def dump(self) -> object:
        return [[aid, bidder, at] for (aid, bidder), at in self.revoked_at.items()]

    def load(self, data: object | None) -> None:
        if data is not None and type(data) is not list:
            raise ValueError("checkpointed revocations are a list")
        self.revoked_at.clear()
        for aid, bidder, at in data or ():
            if type(aid) is not str or type(bidder) is not str or type(at) is not int:
                raise ValueError("a checkpointed revocation is [auction, bidder, time]")
            self.revoked_at[aid, bidder] = at


@dataclass(slots=True)
class Service:
    settings: Settings
    runtime: Runtime
    keys: ApiKeys
    tokens: TokenIssuer
    metrics: Metrics
    feed: Feed
    rooms: Rooms
    journal_dir: Path
    receipt_key: Ed25519PrivateKey
    receipts: ReceiptIndex
    awards: CollectiveAwards  # collectives' award records from their auctions, and their live views
    ready: bool = True
    port: int = 0  # the port it listens on, once serving
    probe: PubSubProbe | None = None  # Redis mode: the pub/sub health probe
    stopping: trio.Event = field(default_factory=trio.Event)

    def stop(self) -> None:
        """Ask `serve` to shut down gracefully."""
        self.stopping.set()

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Service]:
        data = Path(settings.data_dir)
        data.mkdir(parents=True, exist_ok=True)
        secret = settings.token_secret or load_or_create_secret(data / TOKEN_SECRET_FILE)
        keys = settings.api_keys or load_or_create_api_keys(data / API_KEYS_FILE)
        receipt_key = load_or_create_key(Path(settings.receipt_key_file or data / RECEIPT_KEY_FILE))
        feed = Feed()
        revoked_at: dict[tuple[str, str], int] = {}
        receipts = ReceiptIndex()

        def replayed(record: Record, events: list[Event]) -> None:
            feed.on_events(events)
            note_revocations(revoked_at, events)
            receipts.note(record.command, record.gseq)

        parts = (feed, Revocations(revoked_at), receipts)  # what `replayed` rebuilds: kept in journal checkpoints

        metrics = Metrics()
        journal_dir = data / "journal"
        async with open_runtime(settings, journal_dir, replayed, parts) as runtime:
            log(logger, logging.INFO, "journal recovered", summary=runtime.recovery.summary(),
                records=runtime.recovery.records, auctions=runtime.recovery.auctions,
                checkpoint=runtime.recovery.checkpoint, replayed=runtime.recovery.replayed,
                skipped=list(runtime.recovery.skipped), removed=list(runtime.recovery.removed))
            for skipped in runtime.recovery.skipped:
                log(logger, logging.WARNING, "checkpoint skipped at start: more records were replayed", reason=skipped)
            engine = runtime.engine
            feed.render = runtime.host.public_event
            if settings.redis_role == "gateway":  # deposits made through another gateway: their receipts too
                runtime.on_live_record = lambda record, _events: receipts.note(  # type: ignore[attr-defined]
                    record.command, record.gseq)
            metrics.track_checkpoints(runtime.checkpoints.status)
            metrics.track_journal(runtime.writer.stats)
            metrics.track_open_auctions(lambda: sum(not engine.auction(a).finished for a in engine.auction_ids()))
            tokens = TokenIssuer(secret, settings.token_ttl_s)
            rooms = Rooms(runtime, tokens, settings, metrics, revoked_at)
            awards = CollectiveAwards(runtime)
            runtime.attach(feed, rooms, awards, JournalReport(metrics))  # the order they hear of each durable batch
            service = cls(settings, runtime, ApiKeys(keys), tokens, metrics, feed, rooms, journal_dir, receipt_key,
                          receipts, awards)
            if settings.redis_url is not None:
                service.probe = redis_health(settings, runtime, metrics)
            async with trio.open_nursery() as nursery:
                if service.probe is not None:
                    await nursery.start(service.probe.run)
                every_case = settings.redis_role == "both" or (settings.redis_follow == "all" \
                    and settings.redis_role == "gateway")
                if every_case:
                    # every case in view: collectives' awards recorded here (an engine holds only its own
                    # cases; several gateways may submit one award: the kind refuses a second, lot_not_pending)
                    await nursery.start(awards.run)  # ended lots not yet recorded (a crash) first
                nursery.start_soon(service._probe_lag)
                nursery.start_soon(rooms.watchdog)
                nursery.start_soon(rooms.outflow.run)
                try:
                    yield service
                finally:
                    service.ready = False
                    nursery.cancel_scope.cancel()

    async def _probe_lag(self) -> None:
        while True:
            started = trio.current_time()
            await trio.sleep(LAG_PROBE)
            self.metrics.loop_lag_seconds.observe(max(0.0, trio.current_time() - started - LAG_PROBE))

    def is_ready(self) -> bool:
        """Taking commands: the journal can make records durable (not failed, not stopped,
        its sync process running) and the service is not stopping."""
        return self.ready and self.runtime.writer.healthy and (self.probe is None or self.probe.ok)

    def trouble(self) -> str | None:
        """Why the service takes no command (None: it does)."""
        if not self.ready:
            return "stopping"
        return self.runtime.writer.trouble() or (self.probe.trouble() if self.probe is not None else None)


def redis_health(settings: Settings, runtime: Runtime, metrics: Metrics) -> PubSubProbe:
    """Redis mode: the Redis series on the service's registry (docs/operations.md, "Redis
    mode"), fed by the writer, the engine role or the gateway's forwarding, and the pub/sub
    probe that /readyz also waits on."""
    from auction_engine.cluster import Layout
    from auction_engine.cluster.metrics import ClusterMetrics
    from auction_engine.cluster.probe import PubSubProbe
    from auction_engine.cluster.remote import RemoteRuntime
    from auction_engine.cluster.writer import RedisWriter

    assert settings.redis_url is not None
    cluster = ClusterMetrics(metrics.registry)
    writer = runtime.writer
    if isinstance(writer, RedisWriter):  # an engine (or both)
        book = writer.book
        cluster.track_owned_cases(lambda: len(book.held))
        book.on_renewals = cluster.on_renewals
        writer.redis.on_round_trip = lambda seconds: cluster.observe_round_trip(seconds, "append")
        journaled = runtime.journaled
        cluster.track_stream_lag(lambda: journaled.gseq - writer.durable_gseq)
        role = getattr(runtime, "role", None)
        if role is not None:
            role.on_failover = cluster.on_failover
            cluster.track("cases_given", "Cases this engine handed to a new owner since the start", lambda: role.given)
            cluster.track("malformed_commands", "Inbox entries refused since the start", lambda: role.malformed)
    remote = cast(object, runtime)
    if isinstance(remote, RemoteRuntime):  # a gateway
        follower = remote.follower
        remote.on_round_trip = lambda seconds: cluster.observe_round_trip(seconds, "forward")
        for name, text, value in (
                ("feed_lag_seconds", "From the latest feed entry's Redis time to its records in the replica",
                 lambda: follower.lag_seconds),
                ("replicated_cases", "Cases in this gateway's replica", lambda: len(follower.hosts.hosts)),
                ("broken_cases", "Cases no longer followed: a record failed a check", lambda: len(follower.broken)),
                ("catch_ups", "Cases read from their stream because the feed missed records (since the start)",
                 lambda: follower.catch_ups),
                ("malformed_entries", "Feed entries and answers refused since the start",
                 lambda: follower.malformed + remote.malformed),
                ("forwarded", "Commands sent to engines since the start (sends again included)",
                 lambda: remote.forwarded),
                ("resent", "Commands sent again (no answer in time, or the owner changed) since the start",
                 lambda: remote.resent),
                ("pending", "Commands waiting for their engine's answer", lambda: len(remote.pending))):
            cluster.track(name, text, value)
    return PubSubProbe.for_url(settings.redis_url, Layout(settings.redis_namespace), metrics=cluster)


def open_runtime(settings: Settings, journal_dir: Path, replayed: Callable[[Record, list[Event]], None],
                 parts: tuple[Part, ...]) -> AbstractAsyncContextManager[Runtime]:
    """The runtime on the file journal in `journal_dir`, or on Redis with `redis_url`
    (auction_engine.cluster.serving: every case rebuilt from its stream, no checkpoints)."""
    if settings.redis_url is None:
        return Runtime.open(journal_dir, durability=settings.durability, sync_in=settings.sync_in,
                            segment_size=settings.segment_size,
                            max_batch=settings.max_batch, max_delay=settings.max_delay_ms / 1000,
                            on_record=replayed, checkpoint_every=settings.checkpoint_every, parts=parts)
    from auction_engine.cluster.serving import RedisOptions, open_engine, open_gateway
    from auction_engine.cluster.serving import open_runtime as open_on_redis

    options = RedisOptions(settings.redis_url, namespace=settings.redis_namespace, lease_ms=settings.redis_lease_ms,
                           engine_id=settings.redis_engine_id, unsafe=settings.redis_unsafe,
                           replicas=settings.redis_replicas, wait_ms=settings.redis_wait_ms,
                           max_batch=settings.max_batch, cache_dir=str(journal_dir.parent / "cases"))
    if settings.redis_role == "engine":
        return open_engine(options, replayed)
    if settings.redis_role == "gateway":  # a Runtime's surface over a replica (cluster/remote.py)
        return cast(AbstractAsyncContextManager[Runtime],
                    open_gateway(options, replayed, timeout_s=settings.redis_forward_timeout_ms / 1000,
                                 every_case=settings.redis_follow == "all"))
    return open_on_redis(options, replayed)


class JournalReport(Consumer):
    """The journal's health in metrics and logs."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_write(self, records: int, seconds: float) -> None:
        self.metrics.on_write(records, seconds)

    def on_failure(self, exc: BaseException) -> None:
        self.metrics.journal_failed.set(1)
        log(logger, logging.ERROR, "the journal failed: intake stopped until a restart", error=repr(exc))

    def on_checkpoint(self, written: bool, gseq: int, seconds: float, error: str) -> None:
        if written:
            log(logger, logging.INFO, "checkpoint written", gseq=gseq, seconds=round(seconds, 3))
        else:
            log(logger, logging.WARNING, "checkpoint failed: the next start replays more", gseq=gseq, error=error)


def load_or_create_api_keys(path: Path) -> tuple[ApiKey, ...]:
    """The embedded default's keys: one per role, kept in `path` (0600), made on first start."""
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {role: secrets.token_urlsafe(32) for role in ROLES}
        write_private(path, json.dumps(stored, indent=2) + "\n")
        log(logger, logging.WARNING, "no API keys configured: generated one per role", file=str(path))
    return tuple(ApiKey.from_plaintext(f"{role}-local", role, stored[role]) for role in ROLES)
