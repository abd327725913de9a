"""The contract of a procedure kind, and the one command the host itself defines.

A procedure kind (an auction, a tender, a grouped purchase) is a deterministic, IO-free
state machine over all its cases: commands in, events out, deadlines, a state hash and a
dump. `host.Host` routes commands to kinds, ticks them, and keeps each case in one kind;
the journal names commands and events by their class names, unique across kinds.
docs/architecture.md shows how to add a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol, Self


class Tick(NamedTuple):
    """Let time pass: apply every deadline due at or before `now`, in every case, or only
    in `case_id` when it is given (the journal records ticks per case, so that one case's
    records replay alone)."""

    now: int
    case_id: str | None = None


class ClockRegression(RuntimeError):
    """The shell sent a command stamped before the previous one: a bug in the shell."""


class StateError(ValueError):
    """A value given to `load_state` that `dump_state` could not have produced."""


RetryKey = tuple[str, str, str]  # (case, actor, the actor's own id for the command)


@dataclass(frozen=True)
class Codec:
    """How a kind's commands and events are journaled: ``[class name, *fields]``.
    `encoders` / `decoders` handle a command with a structured field (an auction's
    configuration): encode to plain values, decode from them (raise ValueError).
    `public`: the events the portals' lifecycle feed shows (`Kind.public_event`)."""

    commands: tuple[type[Any], ...]
    events: tuple[type[Any], ...]
    encoders: Mapping[type[Any], Callable[[Any], list[Any]]] = field(default_factory=dict)
    decoders: Mapping[type[Any], Callable[[tuple[Any, ...]], Any]] = field(default_factory=dict)
    public: frozenset[type[Any]] = frozenset()


class Kind(Protocol):
    """What the host needs of a procedure kind. Commands are NamedTuples whose first
    field is `now` (µs); `handle` also takes `Tick(now)` and `Tick(now, case_id)`."""

    name: ClassVar[str]  # "auction": in checkpoints and state hashes
    codec: ClassVar[Codec]

    def __init__(self) -> None: ...

    @property
    def now(self) -> int:
        """The time of the latest command."""
        ...

    def handle(self, command: Any) -> list[Any]:
        """Apply what is due at `command.now`, then the command; return the events."""
        ...

    def due(self, now: int) -> bool:
        """True if a deadline is due at or before `now`."""
        ...

    def deadline_bound(self) -> int | None:
        """A time at or before `next_deadline()`, in O(1)."""
        ...

    def next_deadline(self) -> int | None: ...

    def case_of(self, command: Any) -> object:
        """The case a command is about (a str when it is well formed)."""
        ...

    def event_case(self, event: Any) -> str:
        """The case an event happened in."""
        ...

    def has_case(self, case_id: str) -> bool: ...

    def public_event(self, event: Any) -> dict[str, Any]:
        """A `codec.public` event as the feed shows it: plain JSON values, money and time
        at the edge, no identity."""
        ...

    def cases(self) -> Iterable[str]: ...

    def changes_state(self, events: list[Any]) -> bool:
        """False if the outcome is only refusals that changed nothing (not journaled)."""
        ...

    def retry_key(self, command: Any) -> RetryKey | None:
        """For a command answered once per key (a bid's client_bid_id), its key."""
        ...

    def case_states(self) -> list[list[object]]:
        """Each case's part of the state hash, the case id first (see `hash_of`)."""
        ...

    @staticmethod
    def hash_of(case_states: list[list[object]]) -> str:
        """The state hash of a kind holding exactly these cases, in any order."""
        ...

    def dump_state(self) -> object: ...

    @classmethod
    def load_state(cls, state: object) -> Self: ...


class CaseTable:
    """Defaults for a kind whose cases are the values of one dict (`case_table`), whose
    commands carry the case id right after `now`, whose events name it in `case_field`,
    and whose deadlines all come from `next_deadline()` (its `deadline_bound`)."""

    case_field: ClassVar[str]  # the events' field naming the case ("tender_id")

    def case_table(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def next_deadline(self) -> int | None:
        raise NotImplementedError

    @staticmethod
    def case_of(command: Any) -> object:
        return command[1]

    def event_case(self, event: Any) -> str:
        return str(getattr(event, self.case_field))

    def has_case(self, case_id: str) -> bool:
        return case_id in self.case_table()

    def cases(self) -> list[str]:
        return list(self.case_table())

    def due(self, now: int) -> bool:
        deadline = self.next_deadline()
        return deadline is not None and deadline <= now

    def deadline_bound(self) -> int | None:
        # A scan, not O(1): the host keeps each kind's bound until that kind handles a command.
        return self.next_deadline()
