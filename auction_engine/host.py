"""The host of every procedure kind: one clock, one case per id, every kind ticked.

`Host` has the interface of one kind (handle, due, deadlines, state hash, dump) over all
the registered kinds: a command goes to the kind that declares its type, a `Tick` to
every kind (or to the kind of the case it names); a case id belongs to the first kind
that holds it, and a command of another kind about it is refused (`CaseConflict`).
The kinds are `registered()`: the built-in ones in `kinds.py`, plus any `register`ed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import msgpack

from .kind import ClockRegression, Kind, StateError, Tick

HOST_STATE_FORMAT = 1  # bump when dump_state() changes shape
K = TypeVar("K")

_extra: list[type[Kind]] = []  # kinds registered at run time (tests, plug-ins)


def register(kind: type[Kind]) -> None:
    """Add a kind to every host made from now on (once; its names must be new)."""
    if kind not in _extra:
        _extra.append(kind)
        try:
            Host(k() for k in registered())  # check the names now, not at the first command
        except ValueError:
            _extra.remove(kind)
            raise


def unregister(kind: type[Kind]) -> None:
    if kind in _extra:
        _extra.remove(kind)


def registered() -> tuple[type[Kind], ...]:
    """The built-in kinds, then the registered ones, in that (deterministic) order."""
    from .kinds import BUILT_IN

    return (*BUILT_IN, *_extra)


class CaseConflict(ValueError):
    """A command about a case that belongs to another kind; nothing changed."""

    code = "case_conflict"


class Host:
    """Every case of every kind. Not thread-safe: one owner calls it."""

    def __init__(self, kinds: Iterable[Kind] | None = None) -> None:
        self.kinds: tuple[Kind, ...] = tuple(kinds) if kinds is not None else tuple(k() for k in registered())
        self._by_class: dict[type[Any], Kind] = {}
        self.route: dict[type[Any], Kind] = {}  # command type -> its kind
        names: set[str] = set()
        journal_names = {"Tick"}  # the journal names commands and events by class name: one each
        for kind in self.kinds:
            if kind.name in names or type(kind) in self._by_class:
                raise ValueError(f"two kinds named {kind.name!r}")
            names.add(kind.name)
            self._by_class[type(kind)] = kind
            for cls in (*kind.codec.commands, *kind.codec.events):
                if cls.__name__ in journal_names:
                    raise ValueError(f"{kind.name}: {cls.__name__} is already the host's or another kind's name")
                journal_names.add(cls.__name__)
            for cls in kind.codec.commands:
                self.route[cls] = kind
        self._event_kind = {cls: kind for kind in self.kinds for cls in kind.codec.events}
        self.case_kind: dict[str, Kind] = {}
        for kind in self.kinds:
            for case in kind.cases():
                self.case_kind[case] = kind
        self.now = max((kind.now for kind in self.kinds), default=0)  # the time of the latest command
        # Each kind's `deadline_bound()`, kept until the kind handles something: a kind's
        # state (so its deadlines) changes only through its `handle`, and a bound scan of a
        # kind's cases on every other kind's command would cost more than the command.
        self._bounds: dict[Kind, int | None] = {}

    def kind(self, cls: type[K]) -> K:
        """The instance of kind `cls` (KeyError if it is not hosted)."""
        return self._by_class[cls]  # type: ignore[return-value]

    def kind_of(self, command: Any) -> Kind | None:
        """The kind that takes `command` (a scoped Tick: its case's kind; None if unknown)."""
        if type(command) is Tick:
            return self.case_kind.get(command.case_id) if type(command.case_id) is str else None
        return self.route.get(type(command))

    def handle(self, command: Any) -> list[Any]:
        """Apply what is due at `command.now` in every kind, then the command."""
        now = command.now
        if type(now) is not int:
            raise TypeError(f"command time must be int µs, got {now!r:.40}")
        if now < self.now:
            raise ClockRegression(f"command at {now} µs is before the host time {self.now} µs")
        if type(command) is Tick:
            if command.case_id is None:
                return self.tick(now)
            owner = self.kind_of(command)
            self.now = now
            if owner is None:
                return []
            self._bounds.pop(owner, None)
            return owner.handle(command)
        kind, case = self.check(command)
        events = self.tick(now) if self.due(now) else []
        events += self.apply(kind, command, case)
        return events

    def check(self, command: Any) -> tuple[Kind, object]:
        """The kind that takes a (non-Tick) command, and its case; `CaseConflict` if the case
        is another kind's, `ClockRegression` if it is stamped before the host's time,
        TypeError if no kind takes it. Changes nothing."""
        kind = self.route.get(type(command))
        if kind is None:
            raise TypeError(f"not a command: {command!r:.200}")
        now = command.now
        if type(now) is int and now < self.now:
            raise ClockRegression(f"command at {now} µs is before the host time {self.now} µs")
        case = kind.case_of(command)
        owner = self.case_kind.get(case) if type(case) is str else kind
        if owner is not kind and owner is not None:
            raise CaseConflict(f"{case!r:.70} is a case of kind {owner.name!r}, not {kind.name!r}")
        return kind, case

    def apply(self, kind: Kind, command: Any, case: object) -> list[Any]:
        """`kind.handle(command)`, once `check`ed (giving `kind` and `case`) and nothing is
        due: the host's clock and case register follow."""
        self._bounds.pop(kind, None)
        events = kind.handle(command)
        self.now = command.now
        if type(case) is str and case not in self.case_kind and kind.has_case(case):
            self.case_kind[case] = kind
        return events

    def tick(self, now: int) -> list[Any]:
        """Every deadline due at or before `now`, kind by kind in registration order."""
        if now < self.now:
            raise ClockRegression(f"tick at {now} µs is before the host time {self.now} µs")
        self.now = now
        events: list[Any] = []
        for kind in self.kinds:
            if kind.due(now):
                self._bounds.pop(kind, None)
                events += kind.handle(Tick(now))
        return events

    def _bound(self, kind: Kind) -> int | None:
        bounds = self._bounds
        if kind in bounds:
            return bounds[kind]
        bound = bounds[kind] = kind.deadline_bound()
        return bound

    def due(self, now: int) -> bool:
        """True if some kind has a deadline at or before `now` (`next_deadline() <= now`)."""
        bounds = self._bounds
        for kind in self.kinds:
            bound = bounds[kind] if kind in bounds else self._bound(kind)  # (inlined: once per command)
            if bound is not None and bound <= now and kind.due(now):
                return True
        return False

    def deadline_bound(self) -> int | None:
        """A time at or before `next_deadline()` (None if there is none), cheaply."""
        bounds = self._bounds
        best = None
        for kind in self.kinds:  # (a plain loop: twice per command in the runtime)
            bound = bounds[kind] if kind in bounds else self._bound(kind)
            if bound is not None and (best is None or bound < best):
                best = bound
        return best

    def next_deadline(self) -> int | None:
        deadlines = [d for kind in self.kinds if (d := kind.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def event_case(self, event: Any) -> str:
        return self.kind_of_event(event).event_case(event)

    def kind_of_event(self, event: Any) -> Kind:
        kind = self._event_kind.get(type(event))
        if kind is None:
            raise TypeError(f"not an event of a hosted kind: {event!r:.100}")
        return kind

    def public_event(self, event: Any) -> tuple[str, dict[str, Any]]:
        """A public event's case and its feed entry (its kind's `public_event`)."""
        kind = self.kind_of_event(event)
        return kind.event_case(event), kind.public_event(event)

    # -- state ---------------------------------------------------------------------------

    def case_states(self) -> dict[str, list[list[object]]]:
        """Each kind's case states, by kind name (see `hash_of`)."""
        return {kind.name: kind.case_states() for kind in self.kinds}

    def hash_of(self, states: dict[str, list[list[object]]]) -> str:
        """The state hash of a host whose kinds hold exactly these cases: SHA-256 over
        each kind's own hash, kinds with no case left out (so hosting one more kind
        changes no hash)."""
        parts = [[kind.name, kind.hash_of(states[kind.name])] for kind in self.kinds if states.get(kind.name)]
        return hashlib.sha256(msgpack.packb([HOST_STATE_FORMAT, parts])).hexdigest()

    def state_hash(self) -> str:
        return self.hash_of(self.case_states())

    def dump_state(self) -> list[object]:
        """``[format, now, [[kind name, its dump_state()], ...]]``, kinds with cases only."""
        return [HOST_STATE_FORMAT, self.now,
                [[kind.name, kind.dump_state()] for kind in self.kinds if next(iter(kind.cases()), None) is not None]]

    @classmethod
    def load_state(cls, state: object, kinds: Sequence[type[Kind]] | None = None) -> Host:
        """The host `dump_state()` described (with `kinds`, default the registered ones)."""
        classes = {k.name: k for k in (kinds if kinds is not None else registered())}
        if not (type(state) in (list, tuple) and len(state) == 3 and state[0] == HOST_STATE_FORMAT  # type: ignore[arg-type,index]
                and type(state[1]) is int and type(state[2]) in (list, tuple)):  # type: ignore[index]
            raise StateError(f"not a host state of format {HOST_STATE_FORMAT}")
        loaded: dict[str, Kind] = {}
        for item in state[2]:  # type: ignore[index]
            if not (type(item) in (list, tuple) and len(item) == 2 and item[0] in classes):
                raise StateError(f"not a kind's state: {str(item)[:60]}")
            if item[0] in loaded:
                raise StateError(f"kind {item[0]!r} appears twice")
            loaded[item[0]] = classes[item[0]].load_state(item[1])
        host = cls(loaded.get(name) or kind() for name, kind in classes.items())
        if state[1] < host.now:  # type: ignore[index]
            raise StateError("the host's time is before a kind's")
        host.now = state[1]  # type: ignore[index]
        return host
