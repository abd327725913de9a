"""A gateway's replica of every case, rebuilt from the streams and kept current by the feed.

`Follower.run()` subscribes to the feed (wire.py: each durable batch's frames, by pub/sub),
then, after every (re)subscription, reads every case of the namespace from its stream
past what the replica holds (at the first one: all of it), each through its own
`Verifier` (every entry, chain and outcome checked, as a new owner does), its host
adopted into one `CaseHosts` for reads; then applies each feed message's records to their
cases' verifiers. The feed is a hint, the streams are the truth: a record already applied
is skipped, one past the next expected makes the follower read the case's stream from
where it stands (a message lost or malformed); what was published while the subscription
was down is read from the streams when it is back. A record that fails a check marks its
case `broken` (reported, never applied, never trusted); the others go on.

A follower follows every case of the namespace (a gateway serving the RPC), or only the
cases it serves (`every_case=False`: a gateway serving rooms, `follow(case)` when a room
opens, `unfollow(case)` some time after its last connection closed): each case's feed is
its own channel, so a gateway replays only the records of the cases it shows.

`on_records(items)` hears every record applied with its replayed events, in order, after
each catch-up and each feed message. `wait_applied(case, aseq)` returns once the replica
holds that record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio
from coredis.patterns.pubsub import PubSub

from ..case_hosts import CaseHosts
from ..events import Event
from ..journal.format import JournalCorruption, Record
from ..journal.sequencer import Journaled
from ..journal.verifier import Verifier
from .channel import listen, unpack
from .layout import ClusterError
from .lease import Client
from .recovery import in_applied_order, survey
from .stream import StreamJournal
from .wire import read_feed

logger = logging.getLogger("auction_engine.cluster")

Applied = list[tuple[Record, list[Event]]]


class Follower:
    """See the module docstring."""

    def __init__(self, journal: StreamJournal, connect: Callable[[], Client], *, every_case: bool = True) -> None:
        self.journal = journal
        self.served: set[str] | None = None if every_case else set()  # None: every case of the namespace
        self._subscription: PubSub[bytes] | None = None
        self.connect = connect  # a new client: the feed subscription has its own connection
        self.hosts = CaseHosts()
        self.journaled = Journaled(self.hosts)  # reads only: its host is the replicas'
        self.verifiers: dict[str, Verifier] = {}
        self.broken: dict[str, ClusterError] = {}
        self.on_records: Callable[[Applied], None] = lambda items: None
        self.records = 0  # records applied since the start
        self.catch_ups = 0  # cases read from their stream because the feed missed records
        self.malformed = 0  # feed entries refused
        self.lag_seconds = 0.0  # from a feed message's publication (its engine's clock) to its records applied
        self.subscriptions = 0
        self.reachable = True
        self._waiters: dict[str, list[tuple[int, trio.Event]]] = {}

    def applied(self, case: str) -> int:
        """The aseq of the case's last record in the replica (0: none)."""
        verifier = self.verifiers.get(case)
        return 0 if verifier is None else verifier.journaled.chains.get(case, (0, b""))[0]

    async def wait_applied(self, case: str, aseq: int) -> None:
        if self.applied(case) >= aseq:
            return
        event = trio.Event()
        self._waiters.setdefault(case, []).append((aseq, event))
        await event.wait()

    async def catch_up_all(self) -> int:
        """Every case followed read from its stream past the replica; the number of records
        applied. The first time, `on_records` hears them all at once, merged by (time, gseq,
        case) as one engine applied them (a gateway's event feed then numbers them in a
        stable order); later, case by case."""
        self.subscriptions += 1
        before = self.records
        if self.served is None:
            found = await survey(self.journal)
            for problem in found.problems:
                if self.subscriptions == 1:
                    logger.warning("namespace: %s", problem)
            cases = found.cases
        else:
            cases = sorted(self.served)
        if self.subscriptions > 1:
            for case in cases:
                await self.catch_up(case)
            return self.records - before
        replays = []
        for case in cases:
            replays.append(await self.catch_up(case, deliver=False))
        self.on_records(in_applied_order(replays))
        return self.records - before

    async def follow(self, case: str) -> None:
        """Serve a case (following only served cases): subscribe to its feed, then read its
        stream; returns once the replica holds everything durable so far."""
        if self.served is None or case in self.served:
            return
        self.served.add(case)
        if self._subscription is not None:
            await self._subscription.subscribe(self.journal.layout.case_feed(case))
        await self.catch_up(case)

    async def unfollow(self, case: str) -> None:
        """No longer serve a case: its replica is dropped."""
        if self.served is None or case not in self.served:
            return
        self.served.discard(case)
        if self._subscription is not None:
            await self._subscription.unsubscribe(self.journal.layout.case_feed(case))
        self.hosts.drop(case)
        self.verifiers.pop(case, None)
        self.broken.pop(case, None)

    async def catch_up(self, case: str, *, deliver: bool = True) -> Applied:
        """Apply the case's records past the replica's from its stream; `on_records` hears
        what was applied (`deliver`), even when reading stops midway (Redis away)."""
        out: Applied = []
        if case in self.broken:
            return out
        self.catch_ups += 1
        try:
            async for entry in self.journal.entries(case, self.applied(case) + 1):
                self._apply(entry.record, out)
        except ClusterError as exc:
            self._break(case, exc)
        finally:
            if deliver and out:
                self.on_records(out)
        return out

    def _break(self, case: str, exc: ClusterError) -> None:
        logger.error("case %s is no longer followed: %s", case, exc)
        self.broken[case] = exc

    def _apply(self, record: Record, out: Applied) -> bool:
        """Apply the case's next record (True), skip one already applied (True), or False
        when records are missing before it."""
        case = record.auction_id
        last = self.applied(case)
        if record.aseq <= last:
            return True
        if record.aseq != last + 1:
            return False
        verifier = self.verifiers.get(case)
        if verifier is None:
            verifier = self.verifiers[case] = Verifier(contiguous=False)
        try:
            events = verifier.feed(record)
        except JournalCorruption as exc:
            raise ClusterError(exc.code, exc.message, key=self.journal.layout.journal(case),
                               entry=f"{record.aseq}-0") from None
        if case not in self.hosts.hosts and case in verifier.journaled.host.case_kind:
            self.hosts.adopt(case, verifier.journaled.host)
        self.records += 1
        out.append((record, events))
        waiters = self._waiters.get(case)
        if waiters:
            still = [(aseq, event) for aseq, event in waiters if aseq > record.aseq or event.set()]
            if still:
                self._waiters[case] = still
            else:
                del self._waiters[case]
        return True

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Follow until cancelled; started once the first catch-up is done."""
        layout = self.journal.layout

        async def subscribed(subscription: PubSub[bytes]) -> None:
            if self.served is not None:
                for case in sorted(self.served):
                    await subscription.subscribe(layout.case_feed(case))
            self._subscription = subscription
            await self.catch_up_all()
            self.reachable = True

        def lost() -> None:
            self._subscription = None
            self.reachable = False
        # following every case: one pattern; else a quiet channel, then each served case's
        channel, pattern = (layout.feeds, True) if self.served is None else (layout.feed, False)
        await listen(self.connect, channel, self._on_feed, subscribed, on_lost=lost, pattern=pattern,
                     task_status=task_status)

    async def _on_feed(self, data: bytes) -> None:
        try:
            records, published = read_feed(unpack(data))
        except ClusterError as exc:
            self.malformed += 1
            logger.warning("feed message refused: %s", exc)
            return
        out: Applied = []
        served = self.served
        for record, _frame in records:
            case = record.auction_id
            if case in self.broken or (served is not None and case not in served):
                continue  # (a message sent before an unsubscription)
            try:
                if not self._apply(record, out):
                    if out:  # (in order: what came before the gap first)
                        self.on_records(out)
                        out = []
                    await self.catch_up(case)
            except ClusterError as exc:
                self._break(case, exc)
        self.lag_seconds = max(0.0, time.time() - published / 1e6)
        if out:
            self.on_records(out)
