"""A collective's auction outcomes fed back to the collective as award commands, exactly
once (grouped_purchases/procurement.py builds the auction a launch creates).

`CollectiveAwards` is a consumer of the durable journal: when an auction lot that is a
collective's pending lot ends, it submits `RecordLotAward` (the winner's lot price, unit
prices derived pro rata by the kind) or `RecordLotUnsuccessful`. Exactly once across a
crash: at start it records every pending lot whose auction lot has already ended, and a
lot is recorded only while the collective still holds it pending (the kind refuses a
second record with `lot_not_pending`), and only from the auction the launch created (its
`buyer_ref` names the collective and schedule version: an auction someone else created
under that id is never taken for it). It also wakes the live views (`wait_changed`) on
every durable event of a collective.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import trio

from auction_engine.engine import QueryError
from auction_engine.events import Event, LotAwarded, LotUnsuccessful
from auction_engine.ranking import lot_result
from auction_engine.runtime import Consumer, JournalUnavailable, Runtime
from grouped_purchases import CollectiveRefused, Collectives, RecordLotAward, RecordLotUnsuccessful
from grouped_purchases.messages import EVENTS
from grouped_purchases.procurement import buyer_ref

from .logs import log

logger = logging.getLogger("gateway.collectives")
_COLLECTIVE_EVENTS = frozenset(EVENTS) - {CollectiveRefused}


class CollectiveAwards(Consumer):
    """Feeds ended auction lots into their collectives (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.kind = runtime.host.kind(Collectives)
        self._send, self._receive = trio.open_memory_channel[tuple[str, str]](math.inf)
        self._changed: dict[str, trio.Event] = {}
        self.recorded = 0  # awards and failures this process submitted (for tests and logs)

    def on_events(self, events: list[Event]) -> None:
        for event in events:
            kind = type(event)
            if isinstance(event, LotAwarded | LotUnsuccessful):
                self._send.send_nowait((event.auction_id, event.lot_id))
            elif kind in _COLLECTIVE_EVENTS:
                woken = self._changed.pop(str(event[1]), None)
                if woken is not None:
                    woken.set()

    def watched(self, collective_id: str) -> bool:
        """Whether a live view waits for this collective's next event."""
        return collective_id in self._changed

    async def wait_changed(self, collective_id: str) -> None:
        """Until the next durable event of this collective."""
        await self._changed.setdefault(collective_id, trio.Event()).wait()

    def pending(self) -> list[tuple[str, str, str]]:
        """(collective, procurement, lot) of every lot awaiting its procurement's result."""
        return [(cid, pid, lot) for cid, c in self.kind.collectives.items()
                for lot, (status, pid) in sorted(c.lots.items()) if status == "pending"]

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Catch up on the lots that ended before a crash, then follow the journal."""
        for cid, pid, lot in self.pending():
            await self.record(cid, pid, lot)
        task_status.started()
        async for auction_id, lot in self._receive:
            for cid, c in list(self.kind.collectives.items()):
                if auction_id in c.procurements:
                    await self.record(cid, auction_id, lot)

    async def record(self, cid: str, pid: str, lot: str) -> None:
        """Submit the lot's outcome if the auction lot has ended and the collective still
        holds the lot pending for this procurement (so never twice)."""
        c = self.kind.collectives.get(cid)
        if c is None or c.lots.get(lot) != ("pending", pid):
            return
        try:
            auction = self.runtime.engine.auction(pid)
        except QueryError:
            return  # launched, but the auction was never created (see the launch's retry)
        expected = buyer_ref(cid, c.procurements[pid][0])
        if auction.config.buyer_ref != expected:  # an auction of that id that this launch did not create
            log(logger, logging.WARNING, "not the collective's auction: its outcome is not recorded",
                collective_id=cid, procurement_id=pid, lot=lot)
            return
        auction_lot = auction.lots.get(lot)
        if auction_lot is None:
            return
        result = lot_result(auction, auction_lot, reveal=True)
        now = self.runtime.now()
        if result.status == "pending":
            return
        if result.status == "awarded" and result.winner_id is not None and result.awarded_price is not None:
            command: Any = RecordLotAward(now, cid, c.coordinator, pid, lot, result.winner_id, result.awarded_price)
        else:
            command = RecordLotUnsuccessful(now, cid, c.coordinator, pid, lot)
        try:
            events: list[Any] = list((await self.runtime.execute(command)).events)
        except JournalUnavailable:
            return  # intake stopped: the next start records it
        refused = [e for e in events if type(e) is CollectiveRefused]
        if refused:  # e.g. a total below one minor unit per unit: the coordinator records it by hand
            log(logger, logging.WARNING, "the award was refused by the collective", collective_id=cid,
                procurement_id=pid, lot=lot, code=refused[0].code)
            return
        self.recorded += 1
        log(logger, logging.INFO, "lot outcome recorded", collective_id=cid, procurement_id=pid, lot=lot,
            command=type(command).__name__)
