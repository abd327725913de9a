"""The clock of one lot: scheduled -> open -> closed, suspension, cancellation, extensions.

Every legal move of a lot is one line of `TRANSITIONS` (status, move) -> new status; a move
missing there is refused with `REFUSED[move]` (a bid's code depends on the status). Sans-IO:
time only arrives as arguments. `deadline()` is the next instant at which the lot changes
by itself; the engine calls `fire(at)` exactly then. Instants are µs. A lot is open on
[opened, close): a bid stamped exactly at the close is late.
"""

from __future__ import annotations

from .config import ExtensionPolicy

SCHEDULED = "scheduled"
OPEN = "open"
SUSPENDED = "suspended"
CLOSED = "closed"
CANCELLED = "cancelled"
FINAL = (CLOSED, CANCELLED)
STATUSES = (SCHEDULED, OPEN, SUSPENDED, CLOSED, CANCELLED)
BEFORE = "the status before the suspension"  # where a resume goes

# (status, move) -> the status after it. Everything that affects a lot's status is here.
TRANSITIONS: dict[tuple[str, str], str] = {
    (SCHEDULED, "open"): OPEN,  # its opening time came (`fire`)
    (OPEN, "close"): CLOSED,  # its close, or its inactivity limit, came (`fire`)
    (OPEN, "bid"): OPEN,
    (SCHEDULED, "suspend"): SUSPENDED,
    (OPEN, "suspend"): SUSPENDED,
    (SUSPENDED, "resume"): BEFORE,
    (SCHEDULED, "cancel"): CANCELLED,
    (OPEN, "cancel"): CANCELLED,
    (SUSPENDED, "cancel"): CANCELLED,
}
# Why a move is refused: a portal command's code, or a bid's code and message by status.
REFUSED: dict[str, str] = {"suspend": "not_suspendable", "resume": "not_suspended", "cancel": "not_cancellable"}
BID_REFUSED: dict[str, tuple[str, str]] = {
    SCHEDULED: ("lot_not_open", "the lot opens at {}"),
    SUSPENDED: ("lot_suspended", "the lot is suspended since {}"),
    CLOSED: ("lot_closed", "the lot closed at {}"),
    CANCELLED: ("lot_cancelled", "the lot was cancelled at {}"),
}


def allows(status: str, move: str) -> bool:
    return (status, move) in TRANSITIONS


def from_states(move: str) -> tuple[str, ...]:
    """The statuses a move is legal from, in `STATUSES` order."""
    return tuple(status for status in STATUSES if (status, move) in TRANSITIONS)


class LotClock:
    """Deadlines of one lot. Suspension shifts every deadline by its length on resume."""

    __slots__ = ("policy", "status", "open_at", "close_at", "hard_close", "extensions",
                 "active_since", "suspended_at", "suspended_from", "closed_at", "close_reason")

    def __init__(self, policy: ExtensionPolicy, open_at: int, close_at: int) -> None:
        self.policy = policy
        self.status = SCHEDULED
        self.open_at = open_at
        self.close_at = close_at  # the current scheduled close, extensions included
        self.hard_close = policy.hard_close
        self.extensions = 0
        self.active_since = open_at  # later of the opening and the last accepted bid
        self.suspended_at: int | None = None
        self.suspended_from: str | None = None
        self.closed_at: int | None = None
        self.close_reason: str | None = None

    def inactivity_deadline(self) -> int | None:
        """When the lot closes for want of bids, if it has an inactivity rule."""
        limit = self.policy.inactivity_close
        return None if limit is None else self.active_since + limit

    def deadline(self) -> int | None:
        """The next instant at which the lot changes by itself, or None."""
        if self.status == OPEN:
            idle = self.inactivity_deadline()
            return self.close_at if idle is None or idle > self.close_at else idle
        if self.status == SCHEDULED:
            return self.open_at
        return None

    def _move(self, move: str) -> None:
        self.status = TRANSITIONS[self.status, move]  # a KeyError here is a bug in the engine

    def fire(self, at: int) -> str:
        """Apply the change due at `at` (== deadline()); return the new status."""
        if self.status == SCHEDULED:
            self._move("open")
            return OPEN
        self._move("close")
        self.closed_at = at
        self.close_reason = "scheduled" if at == self.close_at else "inactivity"
        return CLOSED

    def on_accepted_bid(self, time: int, rank: int) -> bool:
        """Note an accepted bid at `time` (the lot is open) that ranks `rank`; return
        True if it extended the close."""
        policy = self.policy
        self.active_since = time
        if not policy.window or time < self.close_at - policy.window:
            return False
        trigger = policy.trigger
        if (trigger == "new_best" and rank != 1) or (trigger == "top_n" and rank > policy.top_n):
            return False
        if policy.max_extensions is not None and self.extensions >= policy.max_extensions:
            return False
        if policy.mode == "from_bid":
            new_close = max(self.close_at, time + policy.extend_by)
        else:
            new_close = self.close_at + policy.extend_by
        if self.hard_close is not None and new_close > self.hard_close:
            new_close = self.hard_close
        if new_close <= self.close_at:
            return False
        self.close_at = new_close
        self.extensions += 1
        return True

    def suspend(self, now: int) -> None:
        """Suspend a scheduled or open lot at `now`."""
        self.suspended_from = self.status
        self.suspended_at = now
        self._move("suspend")

    def resume(self, now: int) -> None:
        """Resume at `now`; every deadline moves later by the suspension's length."""
        assert self.suspended_at is not None and self.suspended_from is not None
        assert TRANSITIONS[self.status, "resume"] is BEFORE
        shift = now - self.suspended_at
        self.open_at += shift
        self.close_at += shift
        self.active_since += shift
        if self.hard_close is not None:
            self.hard_close += shift
        self.status = self.suspended_from
        self.suspended_at = None
        self.suspended_from = None

    def cancel(self, now: int) -> None:
        """Cancel a lot that has not closed."""
        self._move("cancel")
        self.suspended_at = None
        self.suspended_from = None
        self.closed_at = now
        self.close_reason = "cancelled"
