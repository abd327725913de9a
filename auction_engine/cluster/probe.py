"""The pub/sub health probe: proof that Redis delivers what this process publishes.

`PubSubProbe.run` subscribes to the namespace's probe channel (``NS:probe``) on a client of
its own, then every `period` publishes a fresh nonce there and waits, at most `timeout`,
for its own subscription to deliver it back. `status` is `ok` or the failure's code
(`probe_timeout`, `redis_unreachable`, `subscription_lost`; `starting` before the first
round). A failure ends the session: both connections are dropped and, a period later, a
new session connects and subscribes afresh, so the probe heals by itself once Redis
delivers again. docs/scale-out.md, "Health: the pub/sub probe".
"""

from __future__ import annotations

import collections
import logging
import math
import secrets
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import coredis
import trio
from coredis.exceptions import PubSubError, RedisError
from coredis.patterns.pubsub import PubSub

from .layout import Layout
from .lease import Client
from .metrics import ClusterMetrics
from .writer import UNREACHABLE

logger = logging.getLogger("auction_engine.cluster.probe")

PERIOD = 1.0  # seconds between the starts of two probe rounds
TIMEOUT = 2.0  # seconds a round (publish, then its delivery) may take, and a connection attempt

STARTING = "starting"  # no round has ended yet
OK = "ok"
PROBE_TIMEOUT = "probe_timeout"  # published, not delivered in time: a subscription silently dead, a stuck Redis
REDIS_UNREACHABLE = "redis_unreachable"  # connecting, subscribing (or their timeout) or publishing failed
SUBSCRIPTION_LOST = "subscription_lost"  # our subscription's connection ended, or Redis counts no subscriber
CODES = (STARTING, OK, PROBE_TIMEOUT, REDIS_UNREACHABLE, SUBSCRIPTION_LOST)

# What ends a session as a Redis-side failure (anything else is a bug, and raised).
FAILURES: tuple[type[BaseException], ...] = (*UNREACHABLE, RedisError, PubSubError)

Connect = Callable[[], AbstractAsyncContextManager[Client]]


def connector(url: str, timeout: float = TIMEOUT) -> Connect:
    """A new client for `url` each call (bytes in and out), giving up a connection attempt
    after `timeout` seconds."""
    def connect() -> Client:
        client: Client = coredis.Redis.from_url(url, decode_responses=False, connect_timeout=timeout)
        return client
    return connect


class PubSubProbe:
    """The probe of one process (see the module docstring). `connect` makes a new client
    each call (`connector(url)`, or one from a Sentinel). `status`, `round_trip` (the last
    ok round's publish-to-delivery seconds, None before one), `detail` (what the last
    failure said), `rounds` (ok rounds) and `failures` (by code) are read live."""

    def __init__(self, connect: Connect, layout: Layout | None = None, *, period: float = PERIOD,
                 timeout: float = TIMEOUT, metrics: ClusterMetrics | None = None) -> None:
        if period <= 0 or timeout <= 0:
            raise ValueError(f"the probe's period and timeout are positive: {period}, {timeout}")
        self.connect = connect
        self.channel = (layout or Layout()).probe
        self.period = period
        self.timeout = timeout
        self.metrics = metrics
        self.status = STARTING
        self.round_trip: float | None = None
        self.detail = ""
        self.rounds = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.sessions = 0  # sessions opened (each subscribes on new connections), the first included
        self._subscribed = False  # the current session's subscription was acknowledged

    @classmethod
    def for_url(cls, url: str, layout: Layout | None = None, *, period: float = PERIOD, timeout: float = TIMEOUT,
                metrics: ClusterMetrics | None = None) -> PubSubProbe:
        """The probe of the Redis at `url` (``redis://host:port/db``)."""
        return cls(connector(url, timeout), layout, period=period, timeout=timeout, metrics=metrics)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def trouble(self) -> str | None:
        """None while ok; else why, for `/readyz` (the code, then what failed)."""
        if self.status == OK:
            return None
        if self.status == STARTING:
            return f"Redis pub/sub probe: {STARTING} (no round has come back yet)"
        return f"Redis pub/sub probe: {self.status} ({self.detail})"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe until cancelled; `task_status.started()` at once (the status says the rest)."""
        task_status.started()
        while True:
            try:
                await self._session()
            except FAILURES as exc:
                self._ended(exc)
            except BaseExceptionGroup as group:  # the clients' and the pubsub's task groups wrap it
                cancelled, rest = group.split(trio.Cancelled)
                if cancelled is not None:  # the probe is stopped: what coredis's teardown raised is moot
                    raise cancelled from None
                if rest is None or rest.split(FAILURES)[1] is not None:
                    raise
                self._ended(_first(group))
            await trio.sleep(self.period)

    def _ended(self, exc: BaseException) -> None:
        """A session ended by an error: once subscribed, the subscription's own task failed
        (its connection ended); before that, connecting or subscribing failed."""
        self._note(SUBSCRIPTION_LOST if self._subscribed else REDIS_UNREACHABLE, repr(exc))

    async def _session(self) -> None:
        """One subscription on new connections: a round every period until one fails.
        Connecting and subscribing get `timeout` in all (a stuck Redis may accept a TCP
        connection and never answer)."""
        self.sessions += 1
        self._subscribed = False
        # the scope encloses the clients' task groups (trio requires it); lifted once subscribed
        with trio.CancelScope(deadline=trio.current_time() + self.timeout) as setup:
            # retry_policy=None: coredis would re-subscribe behind our back, and we would not see it
            async with self.connect() as publisher, self.connect() as listener, \
                    listener.pubsub(channels=[self.channel], ignore_subscribe_messages=True, retry_policy=None,
                                    subscription_timeout=self.timeout) as subscription:
                setup.deadline = math.inf
                self._subscribed = True
                while True:
                    started = trio.current_time()
                    code, detail = await self._round(publisher, subscription)
                    self._note(code, detail)
                    if code != OK:
                        return
                    await trio.sleep_until(started + self.period)
        if setup.cancelled_caught:
            self._note(REDIS_UNREACHABLE, f"no subscription within {self.timeout} s")

    async def _round(self, publisher: Client, subscription: PubSub[bytes]) -> tuple[str, str]:
        """Publish a nonce and wait for its delivery: (code, what failed)."""
        nonce = secrets.token_hex(16).encode()
        started = trio.current_time()
        with trio.move_on_after(self.timeout):
            try:
                receivers = await publisher.publish(self.channel, nonce)
            except FAILURES as exc:
                return REDIS_UNREACHABLE, f"publish: {exc!r}"
            if receivers == 0:  # other engines' probes may listen too, so only 0 is sure
                return SUBSCRIPTION_LOST, "Redis counts no subscriber on the probe channel"
            while True:  # skip other probes' nonces and our own late ones
                message = await subscription.get_message()
                if message is not None and message["type"] == "message" and message["data"] == nonce:
                    self.round_trip = trio.current_time() - started
                    return OK, ""
        return PROBE_TIMEOUT, f"the probe was not delivered back within {self.timeout} s"

    def _note(self, code: str, detail: str) -> None:
        """Record a round's (or a session's) end; log transitions only."""
        previous, self.status = self.status, code
        if code == OK:
            self.rounds += 1
        else:
            self.failures[code] += 1
            self.detail = detail
        if self.metrics is not None:
            self.metrics.on_probe(code, self.round_trip if code == OK else None)
        if code == previous:
            return
        if code != OK:
            logger.error("Redis pub/sub probe failing: %s (%s)", code, detail)
        elif previous == STARTING:
            logger.info("Redis pub/sub probe ok")
        else:
            logger.warning("Redis pub/sub probe ok again (was %s)", previous)


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    """The first leaf of nested groups, to say what failed."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
