"""One case owned by this engine: its lease, its host rebuilt from the stream, fenced appends.

`CaseOwner.claim` takes the lease (a new fencing token), then rebuilds the case from its
stream (no stale owner can append once the token moved). `execute(command)` runs the
command through the case's own `Journaled` and returns its submission only once the
records are in Redis under the token: then, and only then, may it be acknowledged. A
refused append (`stale_token`, `lease_lost`, `seq_conflict`) leaves this owner's state
ahead of the stream: it is `lost` for good, and the case must be claimed and rebuilt anew.
"""

from __future__ import annotations

import contextlib

import trio

from ..commands import Command
from ..journal.sequencer import Journaled, Submission
from ..kind import Tick
from .layout import ClusterError
from .lease import Lease, Leases
from .recovery import CaseReport, rebuild
from .stream import StreamJournal


class CaseOwner:
    """The writer of one case. Commands run one at a time (each append waits for the last)."""

    def __init__(self, journal: StreamJournal, leases: Leases, lease: Lease, journaled: Journaled,
                 report: CaseReport) -> None:
        self.journal = journal
        self.leases = leases
        self.lease = lease
        self.journaled = journaled
        self.recovered = report
        self.lost: ClusterError | None = None  # why this owner may no longer write (a refused append)
        self.expired: ClusterError | None = None  # a renewal refused: the next append will be too
        self._lock = trio.Lock()

    @classmethod
    async def claim(cls, journal: StreamJournal, leases: Leases, case_id: str, owner: str,
                    ttl_ms: int) -> CaseOwner:
        """Claim the case and rebuild it; `ClusterError` (`held`, or the stream's damage:
        then the lease is released and the case left alone)."""
        lease = await leases.claim(case_id, owner, ttl_ms)
        try:
            journaled, report = await rebuild(journal, case_id)
        except ClusterError:
            await leases.release(lease)
            raise
        return cls(journal, leases, lease, journaled, report)

    @property
    def case_id(self) -> str:
        return self.lease.case_id

    async def execute(self, command: Command) -> Submission:
        """Apply the command (its due ticks first) and append its records under the token;
        `ClusterError` if the command is not about this case (`wrong_case`, nothing changed)
        or if the append is refused (then the owner is `lost`). The fence, not this
        process's idea of its lease, decides: a paused owner's append reaches Redis and is
        refused there."""
        async with self._lock:
            if self.lost is not None:
                raise self.lost
            j = self.journaled
            if type(command) is Tick:
                case: object = self.case_id if command.case_id is None else command.case_id
            else:
                kind = j.host.kind_of(command)
                case = None if kind is None else kind.case_of(command)
            if case != self.case_id:
                raise ClusterError("wrong_case", f"this owner holds case {self.case_id!r:.60} only")
            first = j.chains.get(self.case_id, (0, b""))[0] + 1
            submission = j.submit(command)
            if submission.frames:
                try:
                    await self.journal.append(self.lease, first, submission.frames)
                except BaseException as exc:  # refused, or unknown (a lost connection): never acknowledged
                    self.lost = exc if isinstance(exc, ClusterError) else ClusterError(
                        "append_unknown", f"the append's outcome is unknown: {exc!r:.100}")
                    raise
            return submission

    async def keep(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew the lease every third of its ttl until a renewal is refused (then `expired`
        says why) or the task is cancelled."""
        task_status.started()
        while self.lost is None and self.expired is None:
            await trio.sleep(self.lease.ttl_ms / 3000)
            try:
                await self.leases.renew(self.lease)
            except ClusterError as exc:
                self.expired = exc

    async def release(self) -> None:
        """Give the case up (a clean stop); a lease already lost is left as it is."""
        if self.lost is None:
            self.lost = ClusterError("released", "this owner released the case")
            with contextlib.suppress(ClusterError):
                await self.leases.release(self.lease)
