"""The engine role: own the cases rendezvous hashing gives this engine, run their commands.

`EngineRole` runs beside an engine's `Runtime` (whose host is a `CaseHosts` and whose
writer is a `RedisWriter`):

- **membership**: every `beat_ms` it beats in the registry, lists the namespace's cases
  and compares each case's rendezvous owner among the live engines with what it holds. A
  case that is its own and not held is **taken**: claimed (a lease another live engine
  holds is left until it expires: a crashed engine's cases come over once their leases
  lapse), rebuilt from its stream in its own host and adopted. A held case that is now
  another engine's is **given**: no more commands taken for it, its records made durable,
  dropped, its lease released so that its new owner claims it at once.
- **inbox**: commands forwarded by gateways (wire.py, over pub/sub: channel.py) are stamped with this engine's clock
  and posted to the runtime; each is answered once its records are durable (or with an
  error code: `not_owner` for a case this engine does not own, so the gateway asks again).
  A command for a case being taken waits for it.
- **publishing**: answers go to each gateway's replies channel and every durable batch's
  frames to their cases' feed channels, one pipeline per wake-up.

A writer failure (a fencing refusal: another engine took a case while this one was
paused) ends the role with `ClusterError("lost")`: the process exits and restarts clean
(crash-only), since its leases all lapsed together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, cast

import trio

from ..host import CaseConflict
from ..journal.format import FormatError
from ..journal.sequencer import Submission
from ..kind import ClockRegression
from ..runtime import JournalUnavailable, Runtime, wall_clock_us
from .cache import CaseCache, rebuild_cached
from .channel import listen, pack, unpack
from .layout import ClusterError, check_case_id
from .lease import Client
from .recovery import survey
from .rendezvous import Registry, owner
from .stream import StreamJournal
from .wire import Answer, Forwarded, answer_fields, feed_fields, read_command
from .writer import UNREACHABLE, CaseBook, RedisWriter, frame_head

logger = logging.getLogger("auction_engine.cluster")

RELEASE_ERRORS: tuple[type[BaseException], ...] = (ClusterError, *UNREACHABLE)
TAKES_AT_ONCE = 8  # cases rebuilt at the same time (a failover brings many)
TAKE_LATER: tuple[type[BaseException], ...] = (JournalUnavailable, *UNREACHABLE)


class EngineRole:
    """See the module docstring. `run` in the runtime's nursery."""

    def __init__(self, runtime: Runtime, journal: StreamJournal, book: CaseBook, registry: Registry,
                 engine_id: str, connect: Callable[[], Client], *, beat_ms: int,
                 cache: CaseCache | None = None) -> None:
        self.runtime = runtime
        self.cache = cache  # local snapshots of the cases: a take reads only the stream past one
        self.connect = connect  # a new client: the inbox subscription has its own connection
        self.journal = journal
        self.book = book
        self.registry = registry
        self.engine_id = engine_id
        self.beat_ms = beat_ms
        self.live: list[str] = [engine_id]
        self.ready: set[str] = set(runtime.journaled.chains)  # adopted: commands go straight in
        self.arriving: dict[str, list[Forwarded]] = {}  # being taken: their commands wait
        self.leaving: set[str] = set()
        self.failovers = 0  # cases taken that had records (from another engine)
        self.taken = 0
        self.given = 0
        self.malformed = 0
        self.on_failover: Callable[[], None] = lambda: None  # a case taken from another engine (metrics)
        self._answers: list[tuple[str, Answer]] = []
        self._frames: dict[str, list[bytes]] = {}  # durable, not yet published: by case
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._reported: set[str] = set()
        self.damaged: dict[str, ClusterError] = {}  # cases whose stream failed a check: never taken
        self._takes = trio.CapacityLimiter(TAKES_AT_ONCE)

    def durable(self, frames: dict[str, list[bytes]]) -> None:
        """The writer's hook: a batch is durable; its frames (by case) go to the feed."""
        pending = self._frames
        for case, records in frames.items():
            if case in pending:
                pending[case] += records
            else:
                pending[case] = list(records)
        self._wake.set()

    def _answer(self, gateway: str, answer: Answer) -> None:
        self._answers.append((gateway, answer))
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._publish)
            await nursery.start(self._beat)  # its own task: long takes never starve the heartbeat
            await nursery.start(self._membership)
            await nursery.start(self._inbox)
            task_status.started()

    # -- membership ------------------------------------------------------------------------

    async def _beat(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            try:
                self.live = await self.registry.beat(self.engine_id, 3 * self.beat_ms)
            except UNREACHABLE as exc:
                logger.warning("heartbeat skipped: Redis unreachable (%r)", exc)
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(self.beat_ms / 1000)

    async def _membership(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        while True:
            try:
                self.runtime.writer.check()
                await self.rebalance()
            except UNREACHABLE as exc:
                logger.warning("membership round skipped: Redis unreachable (%r)", exc)
            except JournalUnavailable as exc:
                if self.runtime.writer.failure is None:  # an outage: the writer retries
                    logger.warning("membership round skipped: %s", exc)
                else:
                    raise ClusterError("lost", f"the journal stopped ({exc}): restart to claim cases afresh") from None
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(self.beat_ms / 1000)

    async def rebalance(self) -> None:
        """One round: lapsed cases dropped, this engine's cases taken (several at once),
        others' given, stray leases released."""
        found = await survey(self.journal)
        for problem in found.problems:
            if str(problem) not in self._reported:  # once each, not every round
                self._reported.add(str(problem))
                logger.warning("namespace: %s", problem)
        held, journaled = self.book.held, self.runtime.journaled
        for case in [case for case in self.ready if case not in held]:  # its lease lapsed (a pause, a slow disk)
            logger.warning("case %s: its lease lapsed; taken again (rebuilt) if it is still this engine's", case)
            self.ready.discard(case)
            journaled.drop(case)  # no command and no deadline of it runs here until it is rebuilt
        async with trio.open_nursery() as nursery:
            for case in found.cases:
                mine = owner(case, self.live) == self.engine_id
                if mine and case not in self.ready and case not in self.arriving and case not in self.damaged:
                    self.arriving[case] = []
                    nursery.start_soon(self.take, case)
                elif not mine and case in self.ready:
                    nursery.start_soon(self.give, case)
        chains = journaled.chains
        for case in self.ready:
            if self.cache is not None and case in chains and self.cache.due(case, chains[case][0]):
                self.snapshot(case)
        busy = self.ready | set(self.arriving) | self.leaving
        for case in [case for case in held if case not in busy]:  # claimed by the writer for a dropped case
            await self._release(case)

    async def take(self, case: str) -> bool:
        """Claim a case, rebuild it from its stream and adopt it; False if another engine
        holds it, its stream is damaged (remembered: `case_damaged`), or Redis is away."""
        self.arriving.setdefault(case, [])
        try:
            async with self._takes:
                return await self._take(case)
        except TAKE_LATER as exc:  # Redis away, the journal stopped: the next round sees to it
            logger.warning("case %s not taken now: %r", case, exc)
            return False
        finally:
            waiting = self.arriving.pop(case, [])
            for item in waiting:  # (not taken: answered not_owner, or case_damaged)
                self._take_command(item, take=False)

    async def _take(self, case: str) -> bool:
        journaled = self.runtime.journaled
        journaled.drop(case)  # a lapsed copy, if any: rebuilt below from what is durable
        try:
            await self.book.claim(case)
        except ClusterError as exc:
            if exc.code != "held":
                logger.error("case %s not taken: %s", case, exc)
            return False
        await self.runtime.writer.wait_durable(journaled.gseq)  # this engine's own records of it first
        try:
            alone, report = await rebuild_cached(self.journal, case, self.cache)
        except ClusterError as exc:
            logger.error("case %s left alone: its stream is damaged: %s", case, exc)
            self.damaged[case] = exc
            await self._release(case)
            return False
        if self.journal.replicas:  # its records may have landed unconfirmed (their engine died before WAIT)
            await cast(RedisWriter, self.runtime.writer).redis.confirm()
        journaled.adopt(case, alone)
        self.runtime.deadlines_moved()
        self.ready.add(case)
        self.taken += 1
        if report.records:
            self.failovers += 1
            self.on_failover()
        logger.info("took case %s (%d records, tokens %s)", case, report.records, report.tokens)
        return True

    async def give(self, case: str) -> None:
        """Hand a case to its new owner: no more commands or deadlines of it here (dropped
        first), its records already taken made durable, its lease released."""
        self.ready.discard(case)
        self.leaving.add(case)
        try:
            runtime = self.runtime
            self.snapshot(case)  # (should it come back here, a take reads only what came after)
            runtime.journaled.drop(case)
            await runtime.writer.wait_durable(runtime.journaled.gseq)
            await self._release(case)
            self.given += 1
            logger.info("gave case %s to %s", case, owner(case, self.live))
        except TAKE_LATER as exc:  # the journal stopped (the next round ends the engine), or Redis is away
            logger.warning("case %s not given cleanly: %r; its lease lapses", case, exc)
        finally:
            self.leaving.discard(case)

    def snapshot(self, case: str) -> None:
        """Write the case's local snapshot (a failure is logged: the stream stays the truth)."""
        if self.cache is not None:
            try:
                self.cache.write(case, self.runtime.journaled)
            except OSError as exc:
                logger.warning("snapshot of case %s not written: %s", case, exc)

    async def _release(self, case: str) -> None:
        lease = self.book.held.pop(case, None)
        if lease is not None:
            try:
                await self.book.leases.release(lease)
            except RELEASE_ERRORS as exc:
                logger.warning("lease of case %s not released (%r): it lapses", case, exc)

    # -- inbox -----------------------------------------------------------------------------

    async def _inbox(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await listen(self.connect, self.journal.layout.inbox(self.engine_id), self._on_inbox,
                     task_status=task_status)

    async def _on_inbox(self, data: bytes) -> None:
        try:
            item = read_command(unpack(data))
        except ClusterError as exc:
            self.malformed += 1
            logger.warning("inbox message refused: %s", exc)
            return
        self._take_command(item)

    def _take_command(self, item: Forwarded, *, take: bool = True) -> None:
        kind = self.runtime.journaled.host.kind_of(item.command)
        case = None if kind is None else kind.case_of(item.command)
        if type(case) is not str:
            self._answer(item.gateway, Answer(item.request, "bad_command", "not a command about a case"))
            return
        try:
            check_case_id(case)
        except ClusterError as exc:  # (the RPC's models refuse such ids first)
            self._answer(item.gateway, Answer(item.request, exc.code, exc.message))
            return
        if case in self.ready:
            self._post(item, case)
        elif case in self.damaged:
            self._answer(item.gateway, Answer(item.request, "case_damaged", f"case {case!r:.70}: its stream is "
                                              f"damaged ({self.damaged[case].code}); see auction-replay export"))
        elif case in self.arriving:
            self.arriving[case].append(item)
        elif take and case not in self.leaving and owner(case, self.live) == self.engine_id \
                and self._nursery is not None:
            self.arriving[case] = [item]
            self._nursery.start_soon(self.take, case)
        else:
            self._answer(item.gateway, Answer(item.request, "not_owner", f"engine {self.engine_id} does not own "
                                              f"case {case!r:.70}"))

    def _post(self, item: Forwarded, case: str) -> None:
        runtime = self.runtime
        command = item.command._replace(now=runtime.now())
        answer = partial(self._answer, item.gateway)
        try:
            runtime.post(command, partial(self._durable, item, case, answer),
                         lambda exc: answer(Answer(item.request, "journal_unavailable", str(exc))))
        except JournalUnavailable as exc:
            answer(Answer(item.request, "journal_unavailable", str(exc)))
        except (FormatError, CaseConflict, ClockRegression, TypeError) as exc:
            answer(Answer(item.request, getattr(exc, "code", "bad_command"), str(exc)[:300]))

    def _durable(self, item: Forwarded, case: str, answer: Callable[[Answer], None], submission: Submission) -> None:
        heads = [frame_head(frame) for frame in submission.frames]
        own = [(gseq, aseq) for gseq, aseq, of in heads if of == case]
        gseq, aseq = own[-1] if own else (0, self.runtime.journaled.chains.get(case, (0, b""))[0])
        answer(Answer(item.request, "ok", "", tuple(submission.events), submission.duplicate, case, aseq, gseq))

    # -- publishing ------------------------------------------------------------------------

    async def _publish(self) -> None:
        client, layout = self.journal.client, self.journal.layout
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            answers, self._answers = self._answers, []
            frames, self._frames = self._frames, {}
            while True:
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        now = wall_clock_us()
                        for case, records in frames.items():  # each case on its own channel
                            pipe.publish(layout.case_feed(case), pack(feed_fields(records, now)))
                        for gateway, answer in answers:
                            pipe.publish(layout.replies(gateway), pack(answer_fields(answer)))
                    break
                except UNREACHABLE as exc:  # the gateways time out and ask again meanwhile
                    logger.warning("publishing: Redis unreachable (%r)", exc)
                    await trio.sleep(0.1)

