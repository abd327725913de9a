"""Pub/sub between engines and gateways: the messages that need no durability of their own.

Commands, answers and the feed travel by `PUBLISH`, which Redis neither writes to its AOF
nor keeps: a command or answer costs no fsync (the bid's one fsync is its record's append
to the case's stream, the journal of record). What a subscriber misses while its
connection is down is made good by its owner: a gateway sends unanswered bids again and
reads the cases' streams again after every (re)subscription; an engine's commands are
sent again by their gateways.

`listen(connect, channel, on_message, on_subscribed)` keeps one subscription on its own
connection for as long as it runs: `on_subscribed()` after each (re)subscription, then
`on_message(data)` for every message in order; a lost connection is re-established after
a pause, never silently (coredis's own re-subscription is off).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import trio
from coredis.patterns.pubsub import PubSub

from .lease import Client
from .writer import UNREACHABLE

logger = logging.getLogger("auction_engine.cluster")

RESUBSCRIBE_PAUSE = 0.1  # seconds before subscribing again after a lost connection


def pack(fields: dict[str, bytes]) -> bytes:
    return msgpack.packb(fields)  # type: ignore[no-any-return]


def unpack(data: bytes) -> dict[bytes, bytes]:
    """A message's fields, or {} for one that is not a map of strings to bytes (the reader
    then refuses it with its own code: a message with no field is malformed)."""
    try:
        fields = msgpack.unpackb(data, raw=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return {}
    if type(fields) is not dict or not all(type(k) is bytes and type(v) is bytes for k, v in fields.items()):
        return {}
    return fields


async def listen(connect: Callable[[], Client], channel: str, on_message: Callable[[bytes], Awaitable[None]],
                 on_subscribed: Callable[[PubSub[bytes]], Awaitable[None]] | None = None, *,
                 on_lost: Callable[[], None] | None = None, pattern: bool = False,
                 task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """See the module docstring; `task_status.started()` once first subscribed; `on_lost()`
    when the subscription's connection is lost. `pattern`: `channel` is a pattern
    (PSUBSCRIBE). `on_subscribed(subscription)` may subscribe to more channels."""
    started = False
    while True:
        try:
            where = {"patterns": [channel]} if pattern else {"channels": [channel]}
            async with connect() as client, client.pubsub(**where, ignore_subscribe_messages=True,  # type: ignore[arg-type]
                                                          retry_policy=None) as subscription:
                if on_subscribed is not None:
                    await on_subscribed(subscription)
                if not started:
                    started = True
                    task_status.started()
                while True:
                    message = await subscription.get_message(ignore_subscribe_messages=True)
                    if message is not None and message["type"] in ("message", "pmessage"):
                        data = message["data"]
                        await on_message(data if isinstance(data, bytes) else str(data).encode())
        except UNREACHABLE as exc:
            logger.warning("subscription to %s lost (%r): subscribing again", channel, exc)
        except BaseExceptionGroup as group:  # coredis's task groups wrap a lost connection
            cancelled, rest = group.split(trio.Cancelled)
            if cancelled is not None:
                raise cancelled from None
            if rest is None or rest.split(UNREACHABLE)[1] is not None:
                raise
            logger.warning("subscription to %s lost (%r): subscribing again", channel, rest)
        if on_lost is not None:
            on_lost()
        await trio.sleep(RESUBSCRIBE_PAUSE)
