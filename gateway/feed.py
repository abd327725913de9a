"""The portals' lifecycle feed: every auction's created / opened / extended / suspended /
resumed / closed / cancelled / awarded / unsuccessful events, numbered from 1. The feed
names no bidder (an award carries the price, not the winner): identities come only with
the results, once every lot has ended.

The feed is rebuilt from the journal at start, in journal order, so a sequence number
means the same event across restarts and a portal resumes with `?after=SEQ`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from auction_engine.edge import event_to_dict
from auction_engine.events import (
    AuctionClosed,
    AuctionCreated,
    Event,
    LotAwarded,
    LotCancelled,
    LotClosed,
    LotExtended,
    LotOpened,
    LotResumed,
    LotSuspended,
    LotUnsuccessful,
)
from auction_engine.runtime import Consumer, decode_event, encode_events

FEED_EVENTS = frozenset({AuctionCreated, LotOpened, LotExtended, LotSuspended, LotResumed, LotClosed,
                         LotCancelled, LotAwarded, LotUnsuccessful, AuctionClosed})


class Feed(Consumer):
    """Lifecycle events in journal order; `wait_after` is the long poll."""

    def __init__(self) -> None:
        self.entries: list[Event] = []
        self.decimals_of: Callable[[str], int] = lambda _auction_id: 2  # set once the engine exists
        self._changed = trio.Event()

    @property
    def last_seq(self) -> int:
        return len(self.entries)

    name = "feed"  # a journal checkpoint keeps the feed (`dump` / `load`), so a start from one needs no earlier record

    def dump(self) -> object:
        return encode_events(self.entries)

    def load(self, data: object | None) -> None:
        if data is not None and type(data) is not list:
            raise ValueError("a checkpointed feed is a list of events")
        self.entries = [] if data is None else [decode_event(e) for e in data]

    def on_events(self, events: list[Event]) -> None:
        """Append the lifecycle events among `events` (durable, from the runtime; or
        replayed, at a start)."""
        added = False
        for event in events:
            if type(event) in FEED_EVENTS:
                self.entries.append(event)
                added = True
        if added:
            self._changed.set()
            self._changed = trio.Event()

    def after(self, seq: int, limit: int, auction_id: str | None = None) -> list[dict[str, Any]]:
        """Up to `limit` entries after `seq` (of one auction if given), in edge form."""
        out = []
        for index in range(max(seq, 0), len(self.entries)):
            event = self.entries[index]
            if auction_id is None or event.auction_id == auction_id:
                entry = event_to_dict(event, self.decimals_of(event.auction_id))
                entry.pop("bidder_id", None)
                entry["seq"] = index + 1
                out.append(entry)
                if len(out) >= limit:
                    break
        return out

    async def wait_after(self, seq: int, limit: int, timeout: float,
                         auction_id: str | None = None) -> list[dict[str, Any]]:
        """Entries after `seq`, waiting up to `timeout` seconds for one to arrive."""
        with trio.move_on_after(timeout):
            while True:
                entries = self.after(seq, limit, auction_id)
                if entries:
                    return entries
                seq = max(seq, self.last_seq)
                await self._changed.wait()
        return []

    async def wait_changed(self) -> None:
        await self._changed.wait()
