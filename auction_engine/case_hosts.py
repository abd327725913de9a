"""A host with one clock per case: the host of an engine or a replica whose cases come and go.

`CaseHosts` has `Host`'s interface (what the sequencer, the runtime and the verifier call)
over one `Host` per case. A case's commands, ticks and deadlines run in its own host, on
its own clock, exactly as a replay of that case alone (its Redis stream) runs them: so a
case rebuilt elsewhere can be `adopt`ed while the others go on, and `drop`ped when it moves
away. That is what a single host cannot do: cases owned by engines with different clocks
would interleave times, and one case's due deadline would fire inside another's command.

Reads go through `kind(cls)`: a view of that kind over every case, routing a query to the
host of the case named by its first argument (an unknown case asks an empty kind, which
answers with its own "unknown" error); `cases()` and `auction_ids()` list them all, and
a kind's table of cases (a dict attribute such as `tenders`) is every case's, merged.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from .host import Host
from .kind import Kind, Tick

K = TypeVar("K")
AGGREGATES = frozenset({"cases", "auction_ids"})  # the kind queries that list every case


class CaseHosts(Host):
    """One `Host` per case, behind `Host`'s interface; itself (its kinds) never holds a
    case: its routes and codecs serve every case, its empty kinds answer for unknown cases.
    `now` is the latest time of any case: the runtime stamps nothing earlier. Not
    thread-safe: one owner calls it."""

    def __init__(self) -> None:
        super().__init__()
        self.hosts: dict[str, Host] = {}
        self._next: dict[str, int | None] = {}  # case -> its host's next deadline
        self._heap: list[tuple[int, str]] = []  # (deadline, case); stale entries skipped
        self._new: tuple[str, Host] | None = None  # the host `check` made for a new case, for `apply`
        self._views: dict[type[Any], _KindView] = {}

    # -- cases coming and going -----------------------------------------------------------

    def adopt(self, case_id: str, host: Host) -> None:
        """Take a case rebuilt in its own host (which holds it and nothing else; a host
        without it, a case with no record yet, adds nothing)."""
        if case_id not in host.case_kind:
            return
        if case_id in self.hosts:
            raise ValueError(f"case {case_id!r:.70} is already hosted")
        self.hosts[case_id] = host
        self.case_kind[case_id] = host.case_kind[case_id]
        self.now = max(self.now, host.now)
        self._changed(case_id, host)

    def drop(self, case_id: str) -> Host | None:
        """Forget a case (moved to another engine); its host, or None if not hosted."""
        self._next.pop(case_id, None)
        self.case_kind.pop(case_id, None)
        return self.hosts.pop(case_id, None)

    # -- commands -------------------------------------------------------------------------

    def kind_of(self, command: Any) -> Kind | None:
        if type(command) is Tick:
            host = self.hosts.get(command.case_id) if type(command.case_id) is str else None
            return None if host is None else host.kind_of(command)
        return self.route.get(type(command))

    def check(self, command: Any) -> tuple[Kind, object]:
        """As `Host.check`, on the case's own host (a new one for a case not hosted yet)."""
        kind = self.route.get(type(command))
        if kind is None:
            raise TypeError(f"not a command: {command!r:.200}")
        case = kind.case_of(command)
        host = self.hosts.get(case) if type(case) is str else None
        if host is None:
            host = Host()
            self._new = (case, host) if type(case) is str else None
        return host.check(command)

    def _host_of(self, case: object) -> Host:
        host = self.hosts.get(case) if type(case) is str else None
        if host is None:
            new, self._new = self._new, None
            host = new[1] if new is not None and new[0] == case else Host()
            if type(case) is str:
                self.hosts[case] = host
        return host

    def apply(self, kind: Kind, command: Any, case: object) -> list[Any]:
        host = self._host_of(case)
        events = host.apply(kind, command, case)
        if type(case) is str:
            if case not in host.case_kind:  # refused: no case was made; forget the empty host
                self.hosts.pop(case, None)
            else:
                self.case_kind[case] = host.case_kind[case]
                self._changed(case, host)
        self.now = max(self.now, command.now)
        return events

    def handle(self, command: Any) -> list[Any]:
        if type(command) is Tick:
            if command.case_id is None:
                return self.tick(command.now)
            host = self.hosts.get(command.case_id)
            if host is None:
                return []
            events = host.handle(command)
            self._changed(command.case_id, host)
            self.now = max(self.now, command.now)
            return events
        kind, case = self.check(command)
        host = self._host_of(case)
        events = host.tick(command.now) if host.due(command.now) else []
        events += self.apply(kind, command, case)
        return events

    def tick(self, now: int) -> list[Any]:
        """Every case's deadlines due at or before `now`, case by case in deadline order."""
        events: list[Any] = []
        heap, nexts = self._heap, self._next
        later: list[tuple[int, str]] = []
        while heap and heap[0][0] <= now:
            deadline, case = heapq.heappop(heap)
            if nexts.get(case) != deadline:
                continue  # stale: the case moved its deadline, or left
            host = self.hosts[case]
            if now < host.now:  # (a case adopted from a clock ahead): due at its own time, later
                later.append((deadline, case))
                continue
            events += host.tick(now)
            nexts[case] = None
            self._changed(case, host)
        for entry in later:
            heapq.heappush(heap, entry)
        self.now = max(self.now, now)
        return events

    def _changed(self, case: str, host: Host) -> None:
        deadline = host.next_deadline()
        if self._next.get(case, -1) != deadline:
            self._next[case] = deadline
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, case))

    def due(self, now: int) -> bool:
        deadline = self.next_deadline()
        return deadline is not None and deadline <= now

    def next_deadline(self) -> int | None:
        heap, nexts = self._heap, self._next
        while heap and nexts.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    deadline_bound = next_deadline

    # -- events and reads -----------------------------------------------------------------

    def public_event(self, event: Any) -> tuple[str, dict[str, Any]]:
        return self.hosts[self.event_case(event)].public_event(event)

    def kind(self, cls: type[K]) -> K:
        view = self._views.get(cls)
        if view is None:
            view = self._views[cls] = _KindView(self, cls)
        return cast(K, view)

    def case_states(self) -> dict[str, list[list[object]]]:
        states: dict[str, list[list[object]]] = {kind.name: [] for kind in self.kinds}
        for host in self.hosts.values():
            for name, cases in host.case_states().items():
                states[name] += cases
        return states

    def dump_state(self) -> list[object]:
        raise NotImplementedError("cases on their own clocks have no one host state: checkpoint each case")

    def __iter__(self) -> Iterator[str]:
        return iter(self.hosts)


class _KindView:
    """One kind's queries over every case of a `CaseHosts` (see the module docstring)."""

    def __init__(self, hosts: CaseHosts, cls: type[Any]) -> None:
        self._hosts = hosts
        self._cls = cls
        self._empty = Host.kind(hosts, cls)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        hosts, cls = self._hosts, self._cls
        if name in AGGREGATES:
            def listing() -> list[Any]:
                out: list[Any] = []
                for host in hosts.hosts.values():
                    out += getattr(host.kind(cls), name)()
                return out
            return listing
        if name == "now":
            raise AttributeError("a kind view has no single clock: ask a case's host")
        value = getattr(self._empty, name)
        if isinstance(value, dict):  # a table of cases (`tenders`, `collectives`): every case's, merged
            merged: dict[Any, Any] = {}
            for host in hosts.hosts.values():
                merged.update(getattr(host.kind(cls), name))
            return merged  # type: ignore[return-value]
        if not callable(value):
            return value  # type: ignore[no-any-return]

        def query(case: Any, *args: Any, **kwargs: Any) -> Any:
            host = hosts.hosts.get(case) if type(case) is str else None
            target = self._empty if host is None else host.kind(cls)
            return getattr(target, name)(case, *args, **kwargs)
        return query
