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
from typing import cast

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
            metrics.track_checkpoints(runtime.checkpoints.status)
            metrics.track_journal(runtime.writer.stats)
            metrics.track_open_auctions(lambda: sum(not engine.auction(a).finished for a in engine.auction_ids()))
            tokens = TokenIssuer(secret, settings.token_ttl_s)
            rooms = Rooms(runtime, tokens, settings, metrics, revoked_at)
            awards = CollectiveAwards(runtime)
            runtime.attach(feed, rooms, awards, JournalReport(metrics))  # the order they hear of each durable batch
            service = cls(settings, runtime, ApiKeys(keys), tokens, metrics, feed, rooms, journal_dir, receipt_key,
                          receipts, awards)
            async with trio.open_nursery() as nursery:
                if settings.redis_role == "both":  # (the split roles do not record collectives' awards yet)
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
        return self.ready and self.runtime.writer.healthy


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
                           max_batch=settings.max_batch)
    if settings.redis_role == "engine":
        return open_engine(options, replayed)
    if settings.redis_role == "gateway":  # a Runtime's surface over a replica (cluster/remote.py)
        return cast(AbstractAsyncContextManager[Runtime],
                    open_gateway(options, replayed, timeout_s=settings.redis_forward_timeout_ms / 1000))
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
