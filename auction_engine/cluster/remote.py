"""The gateway role's runtime: commands go to each case's owner, state comes from a replica.

`RemoteRuntime` stands where a `Runtime` stands in a serving process (the room, the RPC,
the feed use the same calls), with no engine of its own:

- `post(command, on_durable, on_lost)` forwards the command to the owner of its case
  (wire.py): the engine named by the case's lease, or, with no lease, the rendezvous owner
  among the live engines. The owner's answer (sent once the records are durable) calls
  `on_durable` with the outcome. An answer `not_owner`, or none within `timeout_s` for a
  command with a retry key (a bid's `client_bid_id`), sends it again to the owner found
  afresh: a bid that had landed is answered from the new owner's record of it (the
  `client_bid_id` idempotency), so each bid is answered once. A command with no retry key
  that goes unanswered is lost to its poster (`JournalUnavailable`: its outcome unknown).
- State is the `Follower`'s replica: `engine`, `host`, `durable_snapshots`; consumers
  attached hear every replicated record's events and the snapshots of the lots it changed,
  as a `Runtime`'s do. `execute` returns once the replica holds the command's record, so
  that a read after a write sees it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ..commands import Command
from ..engine import Engine, QueryError
from ..events import Event
from ..journal.recovery import RecordHook, RecoveryReport
from ..journal.sequencer import Submission
from ..journal.store import Position
from ..ranking import LotSnapshot
from ..runtime import LOT_EVENTS, Consumer, JournalUnavailable, wall_clock_us
from .channel import listen, pack, unpack
from .follower import Applied, Follower
from .layout import ClusterError
from .lease import _text
from .rendezvous import Registry, owner
from .wire import Answer, command_fields, read_answer
from .writer import UNREACHABLE

logger = logging.getLogger("auction_engine.cluster")

SEND_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, ClusterError)
LIVE_FOR = 1.0  # seconds a list of live engines is used before it is read again
UNFOLLOW_AFTER = 30.0  # seconds a case stays followed after its last room closed (reconnections)
GIVE_UP_AFTER = 60.0  # seconds a command may wait for an engine's answer, resends included
NOT_OWNER_PAUSE = 0.05  # seconds before asking again after `not_owner` (an owner changing hands)


@dataclass(slots=True)
class Pending:
    command: Command
    case: str
    on_durable: Callable[[Submission], None]
    on_lost: Callable[[JournalUnavailable], None]
    retry: bool  # safe to send again: the command has a retry key
    posted: float = field(default_factory=time.monotonic)
    unavailable: bool = False  # an engine answered journal_unavailable once
    sent_at: float = 0.0
    sends: int = 0
    to: str = ""


@dataclass(slots=True)
class RemoteSubmission(Submission):
    """A forwarded command's outcome: `last_gseq` is its record's gseq (0 for a repeat),
    `aseq` the case's record a read after it must see."""

    aseq: int = 0


@dataclass(slots=True)
class RemoteWriter:
    """What the room and the health checks ask of a writer, for a gateway."""

    runtime: RemoteRuntime
    durable_gseq: int = 0
    pending: bool = False
    failure: BaseException | None = None
    stats: dict[str, Any] = field(default_factory=lambda: {"pipelined": 0})

    def trouble(self) -> str | None:
        follower = self.runtime.follower
        if not follower.reachable:
            return "Redis is unreachable"
        if not self.runtime.engines:
            return "no engine is live"
        return None

    @property
    def healthy(self) -> bool:
        return self.trouble() is None

    def check(self) -> None:
        if not self.runtime.follower.reachable:
            raise JournalUnavailable("Redis is unreachable")

    async def until_available(self) -> bool:
        return True


class NoCheckpoints:
    def status(self) -> dict[str, Any]:
        return {}


class RemoteRuntime:
    """See the module docstring. `run` in a nursery before serving."""

    def __init__(self, follower: Follower, registry: Registry, gateway_id: str, *, timeout_s: float = 2.0,
                 clock: Callable[[], int] = wall_clock_us, on_record: RecordHook | None = None) -> None:
        self.follower = follower
        self.connect = follower.connect
        self.journal = follower.journal
        self.registry = registry
        self.gateway_id = gateway_id
        self.timeout_s = timeout_s
        self.clock = clock
        self.journaled = follower.journaled
        self.host = follower.hosts
        self.engine: Engine = self.host.kind(Engine)
        self.writer = RemoteWriter(self)
        self.checkpoints = NoCheckpoints()
        self.recovery = RecoveryReport(0, 0, None, Position(0, 0, 1), "", 0.0)
        self.consumers: tuple[Consumer, ...] = ()
        self.engines: list[str] = []
        self.pending: dict[int, Pending] = {}
        self.owners: dict[str, str] = {}
        self.forwarded = 0
        self.resent = 0
        self.answered = 0
        self.malformed = 0
        self.round_trip = 0.0  # seconds, the latest answer's (send to answer)
        self.on_round_trip: Callable[[float], None] = lambda seconds: None  # each answer's (metrics)
        self._ids = itertools.count(1)
        self._outbox: list[int] = []
        self._wake = trio.Event()
        self._live_at = 0.0
        self._on_record = on_record
        self.on_live_record: RecordHook | None = None  # every record replicated after the start (receipts)
        self._nursery: trio.Nursery | None = None
        self._released: dict[str, float] = {}  # case -> when it is unfollowed (no room left)

    # -- a Runtime's surface ---------------------------------------------------------------

    def attach(self, *consumers: Consumer) -> None:
        self.consumers = consumers

    def now(self) -> int:
        return self.clock()

    def post(self, command: Command, on_durable: Callable[[Submission], None],
             on_lost: Callable[[JournalUnavailable], None]) -> None:
        self.writer.check()
        kind = self.host.kind_of(command)
        if kind is None:
            raise TypeError(f"not a command: {command!r:.100}")
        case = kind.case_of(command)
        if type(case) is not str:
            raise TypeError(f"not a command about a case: {command!r:.100}")
        request = next(self._ids)
        self.pending[request] = Pending(command, case, on_durable, on_lost, kind.retry_key(command) is not None)
        self._outbox.append(request)
        self._wake.set()

    async def execute(self, command: Command, on_durable: Callable[[Submission], None] | None = None) -> Submission:
        done = trio.Event()
        result: list[Submission | JournalUnavailable] = []

        def durable(submission: Submission) -> None:
            if on_durable is not None:
                on_durable(submission)
            result.append(submission)
            done.set()

        def lost(exc: JournalUnavailable) -> None:
            result.append(exc)
            done.set()

        self.post(command, durable, lost)
        await done.wait()
        outcome = result[0]
        if isinstance(outcome, JournalUnavailable):
            raise outcome
        case = self.host.route[type(command)].case_of(command)
        await self._replicated_up_to(case, getattr(outcome, "aseq", 0))  # type: ignore[arg-type]
        return outcome

    async def _replicated_up_to(self, case: str, aseq: int) -> None:
        """Once the replica holds the case's record `aseq` (read after write): from the feed,
        else (its message lost, its engine gone before publishing) from the case's stream."""
        follower = self.follower
        with trio.move_on_after(self.timeout_s):
            await follower.wait_applied(case, aseq)
            return
        await follower.catch_up(case)
        if follower.applied(case) < aseq:
            raise JournalUnavailable(f"case {case!r:.70} is not replicated here "
                                     f"({follower.broken.get(case) or 'its record is not in its stream'})")

    async def submit(self, command_type: type[Any], *fields: Any) -> list[Event]:
        return (await self.execute(command_type(self.now(), *fields))).events

    async def serve_case(self, case_id: str) -> None:
        self._released.pop(case_id, None)
        await self.follower.follow(case_id)

    def release_case(self, case_id: str) -> None:
        """Unfollowed `UNFOLLOW_AFTER` seconds later, unless a room opens again meanwhile."""
        if self.follower.served is not None and self._nursery is not None and case_id not in self._released:
            self._released[case_id] = trio.current_time() + UNFOLLOW_AFTER
            self._nursery.start_soon(self._unfollow_later, case_id)

    async def _unfollow_later(self, case_id: str) -> None:
        await trio.sleep(UNFOLLOW_AFTER)
        at = self._released.get(case_id)
        if at is not None and trio.current_time() >= at:
            del self._released[case_id]
            await self.follower.unfollow(case_id)

    async def durable_snapshots(self, auction_id: str) -> list[LotSnapshot] | None:
        auction = self.engine.auction(auction_id)
        return [self.engine.lot_snapshot(auction_id, lot_id) for lot_id in auction.lots]

    def _replicated(self, items: Applied) -> None:
        """The follower applied records: their events, then the lots they changed."""
        dirty: set[tuple[str, str]] = set()
        live = self.on_live_record
        for record, events in items:
            if live is not None:
                live(record, events)
            for consumer in self.consumers:
                consumer.on_events(events)
            for event in events:
                if type(event) in LOT_EVENTS:
                    dirty.add((event[1], event[2]))  # type: ignore[misc]
        if not dirty:
            return
        snapshots = []
        for aid, lid in dirty:
            with contextlib.suppress(QueryError):
                snapshots.append(self.engine.lot_snapshot(aid, lid))
        for consumer in self.consumers:
            consumer.on_views(snapshots)

    # -- forwarding ------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        hook = self._on_record
        if hook is not None:  # the first catch-up, as a recovery's replay

            def replayed(items: Applied) -> None:
                for record, events in items:
                    hook(record, events)
            self.follower.on_records = replayed
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.follower.run)
            self.follower.on_records = self._replicated  # then live, to the consumers
            self.recovery = RecoveryReport(self.follower.records, len(self.host.hosts), None, Position(0, 0, 1),
                                           self.host.state_hash(), 0.0)
            await self._live()
            await nursery.start(self._answers)
            nursery.start_soon(self._send)
            nursery.start_soon(self._watch)
            task_status.started()

    async def _live(self) -> list[str]:
        if not self.engines or time.monotonic() - self._live_at > LIVE_FOR:
            self.engines = await self.registry.live()
            self._live_at = time.monotonic()
        return self.engines

    async def _owner(self, case: str) -> str | None:
        known = self.owners.get(case)
        if known is not None:
            return known
        value = await self.journal.client.get(self.journal.layout.lease(case))
        holder = _text(value or b"").rpartition("|")[0]
        found = holder or owner(case, await self._live())
        if found is not None and holder:
            self.owners[case] = found
        return found

    async def _send(self) -> None:
        client, layout, gateway = self.journal.client, self.journal.layout, self.gateway_id
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            batch, self._outbox = self._outbox, []
            sends: list[tuple[int, Pending, str]] = []
            try:
                for request in batch:
                    item = self.pending.get(request)
                    if item is None:
                        continue
                    to = await self._owner(item.case)
                    if to is None:
                        self._settle_lost(request, "no engine is live")
                        continue
                    sends.append((request, item, to))
                now = time.monotonic()
                for _request, item, to in sends:  # counted before: a send whose answer is lost may have landed
                    item.sent_at, item.to = now, to
                    item.sends += 1
                    self.forwarded += 1
                async with client.pipeline(transaction=False) as pipe:
                    heard = [pipe.publish(layout.inbox(to), pack(command_fields(request, gateway, item.command)))
                             for request, item, to in sends]
                for (request, item, _to), receivers in zip(sends, heard, strict=True):
                    if await receivers == 0:  # its engine is not listening (gone): nobody got it
                        self.owners.pop(item.case, None)
                        item.sends -= 1
                        self._nursery_later(request, item)
            except SEND_ERRORS as exc:
                logger.warning("forwarding: %r; sent again shortly", exc)
                for request, item, _to in sends:  # may have landed: only what is safe to repeat goes again
                    if not item.retry:
                        self._settle_lost(request, "Redis went away as it was sent: the outcome is unknown")
                self._outbox = [r for r in batch if r in self.pending] + self._outbox
                await trio.sleep(0.1)
                self._wake.set()

    async def _answers(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await listen(self.connect, self.journal.layout.replies(self.gateway_id), self._on_answer,
                     task_status=task_status)

    async def _on_answer(self, data: bytes) -> None:
        try:
            answer = read_answer(unpack(data))
        except ClusterError as exc:
            self.malformed += 1
            logger.warning("answer refused: %s", exc)
            return
        self._settle(answer)

    def _settle(self, answer: Answer) -> None:
        item = self.pending.get(answer.request)
        if item is None:
            return  # answered already (an earlier send's answer came first)
        if answer.code == "not_owner" or (answer.code == "journal_unavailable" and item.retry and not item.unavailable):
            # asked again shortly, of the owner found afresh: nobody took it; or, once, it was
            # lost to a dying engine (the retry key makes a repeat safe)
            self.owners.pop(item.case, None)
            if answer.code == "not_owner":
                item.sends -= 1
            else:
                item.unavailable = True
            self._nursery_later(answer.request, item)
            return
        del self.pending[answer.request]
        self.answered += 1
        self.round_trip = time.monotonic() - item.sent_at
        self.on_round_trip(self.round_trip)
        if answer.code != "ok":
            item.on_lost(JournalUnavailable(f"{answer.code}: {answer.message}"))
            return
        # a duplicate only if the bidder repeated it, not because this gateway sent it again
        duplicate = answer.duplicate and item.sends == 1
        item.on_durable(RemoteSubmission(list(answer.events), [], answer.gseq, duplicate, aseq=answer.aseq))

    def _nursery_later(self, request: int, item: Pending) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._later, request, item)

    async def _later(self, request: int, item: Pending) -> None:
        await trio.sleep(NOT_OWNER_PAUSE)
        if request in self.pending:
            self._again(request, item)

    def _again(self, request: int, item: Pending) -> None:
        self.resent += 1
        self._outbox.append(request)
        self._wake.set()

    def _settle_lost(self, request: int, why: str) -> None:
        item = self.pending.pop(request, None)
        if item is not None:
            item.on_lost(JournalUnavailable(why))

    async def _watch(self) -> None:
        """Send again what went unanswered (its owner may have died), or give it up."""
        while True:
            await trio.sleep(self.timeout_s / 4)
            now = time.monotonic()
            with contextlib.suppress(*UNREACHABLE):
                await self._live()
            for request, item in list(self.pending.items()):
                if now - item.posted > GIVE_UP_AFTER:
                    self._settle_lost(request, f"no engine answered in {GIVE_UP_AFTER:.0f} s: the outcome is unknown")
                elif item.sends and now - item.sent_at > self.timeout_s and request not in self._outbox:
                    self.owners.pop(item.case, None)
                    if item.retry:
                        item.sent_at = now
                        self._again(request, item)
                    else:
                        self._settle_lost(request, "no answer from the case's engine: the outcome is unknown")
