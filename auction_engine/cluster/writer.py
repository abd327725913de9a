"""The runtime's journal writer with Redis as the journal of record (`serve --redis`).

`RedisWriter` is the file writer (`JournalWriter`: group commit, batch cuts, listener
calls, `wait_durable`) whose batches go to the cases' streams instead of a segment file:
`RedisSync` splits a batch by case and sends every case's fenced append (stream.py's
script) in one pipeline, one round trip per batch. A batch is durable only once Redis
answered `ok` for every case in it (or a retry found exactly its records in the stream).
With replicas the pipeline ends with a lease renewal (a write of ours) and WAIT: the
primary's replication offset is global, so a replica confirming that write has every
record before it, including those an earlier try landed on a connection since lost;
`run` also confirms that way, before serving, the records recovery read.
Each case is claimed (lease and fencing token) before its first append; `CaseBook.keep`
renews every lease each third of its ttl. While Redis cannot be reached, or the replicas
do not confirm, the batch is retried (the seq check makes a retry of an append that did
land harmless) and `check()` refuses new commands with `JournalUnavailable`
(`journal_unavailable`); a refusal that means another writer moved on (`stale_token`,
`held`, a stream that is not ours) stops the journal for good.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import msgpack
import trio
from coredis.exceptions import ConnectionError as RedisConnectionError
from coredis.exceptions import NoScriptError, ResponseError

from ..journal.format import FRAME
from ..journal.store import Position
from ..journal.writer import JournalUnavailable, JournalWriter
from .layout import ClusterError, Layout
from .lease import RENEW, Client, Lease, Leases, _text
from .stream import APPEND, StreamJournal

logger = logging.getLogger("auction_engine.cluster")

RETRY_FIRST = 0.05  # seconds before the first retry while Redis is unreachable
RETRY_MAX = 1.0  # seconds between retries at most
# What a lost or refused connection raises: the append's outcome is unknown, so retried.
UNREACHABLE: tuple[type[BaseException], ...] = (RedisConnectionError, TimeoutError, OSError,
                                                anyio.BrokenResourceError, anyio.ClosedResourceError,
                                                anyio.EndOfStream)
RENEWAL_ERRORS: tuple[type[BaseException], ...] = (*UNREACHABLE, ResponseError)  # tried again next round


def frame_case(frame: bytes) -> tuple[str, int]:
    """(case id, aseq) of a framed record: the payload's second and fourth fields."""
    _gseq, aseq, case = frame_head(frame)
    return case, aseq


def frame_head(frame: bytes) -> tuple[int, int, str]:
    """(gseq, aseq, case id) of a framed record: the payload's first, second and fourth fields."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(frame[FRAME.size:FRAME.size + 64 + 4 * 256])  # the head fields come first
    unpacker.read_array_header()
    gseq = unpacker.unpack()
    aseq = unpacker.unpack()
    unpacker.skip()  # time
    case = unpacker.unpack()
    return gseq, aseq, case


@dataclass(slots=True)
class RedisStore:
    """The writer's `Store` in Redis mode: no file; where the next record's gseq starts."""

    position: Position
    durable: bool = True

    def close(self) -> None:
        pass


class CaseBook:
    """The leases this engine holds, one per case it writes: claimed on a case's first
    append (or at recovery), renewed together every third of the ttl."""

    def __init__(self, leases: Leases, engine_id: str, ttl_ms: int) -> None:
        self.leases = leases
        self.engine_id = engine_id
        self.ttl_ms = ttl_ms
        self.held: dict[str, Lease] = {}
        self.renewals = 0
        self.on_renewals: Callable[[int, int], None] = lambda ok, lost: None  # each round's outcomes (metrics)
        self._claiming: dict[str, trio.Lock] = {}

    async def claim(self, case_id: str) -> Lease:
        """This engine's lease on the case (claimed now if it holds none); `ClusterError`
        `held` if another engine has it. One claim of a case at a time: a second caller
        (the writer and the engine role both after the same lapsed lease) gets the first's
        lease, not a refusal from its own engine's claim."""
        lease = self.held.get(case_id)
        if lease is not None:
            return lease
        lock = self._claiming.setdefault(case_id, trio.Lock())
        try:
            async with lock:
                return await self._claim(case_id)
        finally:
            if not lock.statistics().tasks_waiting:
                self._claiming.pop(case_id, None)

    async def _claim(self, case_id: str) -> Lease:
        lease = self.held.get(case_id)
        if lease is not None:
            return lease
        try:
            lease = await self.leases.claim(case_id, self.engine_id, self.ttl_ms)
        except ClusterError as exc:
            # a lease naming this engine is its own (ids are unique among live processes): a
            # claim whose answer was lost, or this engine's other task claiming at once
            lease = await self._adopt(case_id) if exc.code == "held" else None
            if lease is None:
                raise
        self.held[case_id] = lease
        logger.info("claimed case %s with token %d", case_id, lease.token)
        return lease

    async def _adopt(self, case_id: str) -> Lease | None:
        """The lease a claim of ours took though its answer was lost (it names this engine,
        whose id no other live process shares), or None."""
        value = await self.leases.client.get(self.leases.layout.lease(case_id))
        owner, _, token = _text(value or b"").rpartition("|")
        if owner != self.engine_id or not token.isdigit():
            return None
        return Lease(case_id, self.engine_id, int(token), self.ttl_ms)

    async def claim_waiting(self, case_id: str, patience_ms: int) -> Lease:
        """`claim`, waiting out a lease another process still holds (a crashed engine's,
        which expires within its ttl) for `patience_ms` at most."""
        with trio.move_on_after(patience_ms / 1000):
            while True:
                try:
                    return await self.claim(case_id)
                except ClusterError as exc:
                    if exc.code != "held":
                        raise
                    pttl = await self.leases.client.pttl(self.leases.layout.lease(case_id))
                    await trio.sleep(max(pttl, 10) / 1000)
        return await self.claim(case_id)

    async def keep(self) -> None:
        """Renew every held lease each third of the ttl, in one pipeline. A lease found
        lost is dropped: the next append re-claims the case, which succeeds only if no one
        else did (the fence moved: `stale_token`), and the stream's seq check refuses it if
        anyone appended meanwhile. Unreachable Redis: tried again next round."""
        while True:
            await trio.sleep(self.ttl_ms / 3000)
            leases = list(self.held.values())
            if not leases:
                continue
            try:
                replies = await self._renew_all(leases)
            except RENEWAL_ERRORS:
                continue
            lost = 0
            for lease, reply in zip(leases, replies, strict=True):
                if isinstance(reply, Exception) or _text(reply[0]) != "ok":
                    lost += 1
                    logger.warning("lease of case %s lost (%r): re-claimed on its next append", lease.case_id, reply)
                    if self.held.get(lease.case_id) == lease:
                        del self.held[lease.case_id]
            self.renewals += 1
            self.on_renewals(len(leases) - lost, lost)

    async def _renew_all(self, leases: Sequence[Lease]) -> list[Any]:
        client, layout = self.leases.client, self.leases.layout
        script = self.leases._renew
        async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
            requests: list[Any] = [script([layout.lease(lease.case_id)], [lease.value, lease.ttl_ms], client=pipe)
                        for lease in leases]
        return [await _settled(r) for r in requests]

    async def release_all(self) -> None:
        """Give every held case back (a clean stop), so a restart need not wait for them."""
        for lease in list(self.held.values()):
            with contextlib.suppress(ClusterError, *UNREACHABLE):
                await self.leases.release(lease)
        self.held.clear()


async def _settled(request: Any) -> Any:
    """A pipelined command's reply, or the error it got (pipelines with raise_on_error off)."""
    try:
        return await request
    except Exception as exc:  # judged by the caller: NOSCRIPT, a refusal, a lost connection
        return exc


class RedisSync:
    """The `Sync` of a `RedisWriter`: each batch becomes one pipeline of fenced appends,
    one per case in it. One batch at a time; the trio thread goes on meanwhile."""

    overlaps = True
    pipelines = False

    def __init__(self, journal: StreamJournal, book: CaseBook) -> None:
        self.journal = journal
        self.book = book
        self.sha = journal._append.sha
        self.renew_sha = book.leases._renew.sha
        self.outage: str | None = None  # why Redis cannot be reached now (None: it can)
        self.back = trio.Event()  # set when an outage ends
        self.back.set()
        self.round_trips = 0
        self._batch: list[bytes] = []
        # hears each batch, its frames by case, once it is in Redis
        self.on_durable: Callable[[dict[str, list[bytes]]], None] | None = None
        self.on_round_trip: Callable[[float], None] = lambda seconds: None  # each batch's pipeline (metrics)

    def start(self, batch: list[bytes]) -> None:
        self._batch = batch

    def can_add(self, batch: list[bytes]) -> bool:
        return False

    def add(self, batch: list[bytes]) -> None:
        raise RuntimeError("Redis appends go one batch at a time")

    def alive(self) -> bool:
        return True

    def close(self) -> None:
        pass

    async def finish(self) -> None:
        """Return once every case's records of the batch are in Redis (and confirmed by
        the replicas asked for); retry while Redis is unreachable or the replicas do not
        confirm; raise `ClusterError` on a refusal that retrying cannot cure."""
        todo: dict[str, tuple[int, list[bytes]]] = {}
        for frame in self._batch:
            case, aseq = frame_case(frame)
            if case in todo:
                todo[case][1].append(frame)
            else:
                todo[case] = (aseq, [frame])
        by_case = {case: frames for case, (_first, frames) in todo.items()}  # (`_retried` empties todo)
        await self._retried(todo, confirm=False)
        if self.on_durable is not None:
            self.on_durable(by_case)

    async def confirm(self) -> None:
        """With replicas, return once they confirmed everything Redis holds now (a renewal
        of a held lease, then WAIT, retried as a batch is). At start: records recovered
        from the streams may have landed unconfirmed (an engine stopped between its append
        and its WAIT), and the runtime treats them as durable (a resent bid is answered
        from them). Nothing to do without replicas or without a case held."""
        if self.journal.replicas and self.book.held:
            await self._retried({}, confirm=True)

    async def _retried(self, todo: dict[str, tuple[int, list[bytes]]], *, confirm: bool) -> None:
        """Pipelines until every case of `todo` is settled and, if `confirm`, one WAIT
        followed a write of ours; backoff while Redis is unreachable or unconfirmed."""
        delay = RETRY_FIRST
        while todo or (confirm and self.book.held):
            try:
                replies, covered = await self._append_all(todo)
            except UNREACHABLE as exc:
                self._down(f"Redis is unreachable: {exc!r:.200}")
            except ClusterError as exc:
                if exc.code != "not_replicated":
                    raise
                self._down(str(exc))  # landed or not, the retry's own WAIT decides
            else:
                for case, reply in replies.items():
                    if await self._settle(case, todo[case], reply, covered):
                        del todo[case]
                confirm = confirm and not covered
                continue
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        if self.outage is not None:
            logger.warning("Redis is reachable again: the journal takes commands")
            self.outage = None
            self.back.set()

    def _down(self, reason: str) -> None:
        if self.outage is None:
            logger.error("%s: commands are refused (journal_unavailable) until it answers", reason)
            self.back = trio.Event()
        self.outage = reason

    async def _append_all(self, todo: dict[str, tuple[int, list[bytes]]]) -> tuple[dict[str, Any], bool]:
        """Claim the cases not held yet, then one pipeline: every case's append, and with
        replicas a renewal of one held lease then WAIT. Returns the appends' replies and
        whether a confirmed WAIT followed a write made after every append's check (always
        true without replicas): only then may a retry that found its records count."""
        book, layout, journal = self.book, self.journal.layout, self.journal
        leases = {case: await book.claim(case) for case in todo}
        marker = next(iter(leases.values()), None) or next(iter(book.held.values()))
        renewed = waited = None
        started = trio.current_time()
        async with journal.client.pipeline(transaction=False, raise_on_error=False) as pipe:
            requests = {case: pipe.evalsha(self.sha, [layout.lease(case), layout.fence(case), layout.journal(case)],
                                           [leases[case].value, leases[case].token, first, *frames])
                        for case, (first, frames) in todo.items()}
            if journal.replicas:  # WAIT covers the connection's last write: make it ours, after every check
                renewed = pipe.evalsha(self.renew_sha, [layout.lease(marker.case_id)], [marker.value, marker.ttl_ms])
                waited = pipe.wait(journal.replicas, journal.wait_ms)
        self.round_trips += 1
        self.on_round_trip(trio.current_time() - started)
        replies = {case: await _settled(r) for case, r in requests.items()}
        mark: Any = await _settled(renewed) if renewed is not None else None
        if any(isinstance(r, NoScriptError) for r in replies.values()):  # a restarted Redis forgot it
            await journal.client.script_load(APPEND)
        if isinstance(mark, NoScriptError):
            await journal.client.script_load(RENEW)
        for reply in (*replies.values(), mark):
            if isinstance(reply, UNREACHABLE):
                raise reply
        if waited is None:
            return replies, True
        confirmed = await _settled(waited)
        if isinstance(confirmed, UNREACHABLE):
            raise confirmed
        if isinstance(confirmed, Exception) or int(confirmed) < journal.replicas:
            raise ClusterError("not_replicated", f"WAIT: {confirmed!r:.80} of {journal.replicas} replicas "
                               "confirmed: the batch is retried until they do")
        if isinstance(mark, Exception):  # NOSCRIPT (loaded above), LOADING: tried again
            return replies, False
        covered = _text(mark[0]) == "ok"
        if not covered and book.held.get(marker.case_id) == marker:  # its lease is gone: claimed anew next try
            logger.warning("lease of case %s lost (%r): re-claimed on its next append", marker.case_id, mark)
            del book.held[marker.case_id]
        return replies, covered

    async def _settle(self, case: str, appended: tuple[int, list[bytes]], reply: Any, covered: bool) -> bool:
        """True if the case's records are now in its stream (and, with replicas, confirmed:
        `covered`); False to retry them; raise `ClusterError` for good."""
        key = self.journal.layout.journal(case)
        if isinstance(reply, NoScriptError):
            return False
        if isinstance(reply, ResponseError) and "LOADING" in str(reply):
            return False
        if isinstance(reply, Exception):
            raise ClusterError("wrong_type", f"the case's keys are not ours to use: {reply}", key=key)
        code = _text(reply[0])
        first, frames = appended
        if code == "ok":
            return True
        if code == "lease_lost":  # expired (Redis was away longer than the ttl): claim again, or fail
            self.book.held.pop(case, None)
            return False
        if code == "seq_conflict" and not covered:
            return False  # landed or not, decided by a try whose WAIT follows a write of ours
        if code == "seq_conflict" and await self._landed(case, first, frames):
            return True  # an earlier try landed before its answer was lost
        raise ClusterError(code, f"the append of records {first} to {first + len(frames) - 1} was refused "
                           f"({_text(reply[1])!r:.60}): another writer moved on", key=key)

    async def _landed(self, case: str, first: int, frames: list[bytes]) -> bool:
        """Whether the stream ends with exactly these records (a retried append)."""
        last = first + len(frames) - 1
        page = await self.journal.client.xrange(self.journal.layout.journal(case), f"{first}-0", "+",
                                                count=len(frames) + 1)
        found = [bytes(item.field_values.get(b"r", b"")) for item in page]  # type: ignore[arg-type]
        ids = [_text(item.identifier) for item in page]
        return found == frames and ids[-1:] == [f"{last}-0"]


class RedisWriter(JournalWriter):
    """A `JournalWriter` whose journal of record is Redis (see the module docstring).
    The runtime drives it as the file writer; `close` also releases the leases."""

    def __init__(self, journal: StreamJournal, book: CaseBook, last_gseq: int, *, max_batch: int) -> None:
        super().__init__(RedisStore(Position(0, 0, last_gseq + 1)), max_batch=max_batch, sync_in="thread")
        self.redis = RedisSync(journal, book)
        self.book = book

    def _open_sync(self) -> RedisSync:
        return self.redis

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.book.keep)
            try:
                await self.redis.confirm()  # before serving what recovery read as durable
                await super().run(task_status=task_status)
            finally:
                nursery.cancel_scope.cancel()
                if self.failure is None:
                    with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                        await self.book.release_all()

    def check(self) -> None:
        super().check()
        if self.redis.outage is not None:
            raise JournalUnavailable(self.redis.outage)

    def trouble(self) -> str | None:
        return super().trouble() or self.redis.outage

    async def until_available(self) -> bool:
        while True:
            if self.failure is not None or self._stopped or self._closing:
                return False
            if self.redis.outage is None:
                return True
            await self.redis.back.wait()


def open_journal(client: Client, namespace: str, replicas: int, wait_ms: int) -> StreamJournal:
    """The namespace's streams, with WAIT for `replicas` after each batch."""
    return StreamJournal(client, Layout(namespace), replicas=replicas, wait_ms=wait_ms)
