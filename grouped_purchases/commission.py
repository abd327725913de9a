"""The commission of a collective: every member's representative, designated by the
coordinator once the collective is constituted (seed 004, art. 17 and 29: the members'
representatives sit on the commission of a grouped purchase). A new designation replaces
the last; the journal keeps every one. Each refusal raises `Refused` with its code."""

from __future__ import annotations

from typing import Any

from .checks import Refused, ident
from .messages import CommissionDesignated, DesignateCommission
from .state import Collective


def designate(cmd: DesignateCommission, c: Collective) -> list[Any]:
    if cmd.actor != c.coordinator:
        raise Refused("not_coordinator", "only the coordinator may do this")
    if not c.constituted:
        raise Refused("not_constituted", "every member must accept the convention first")
    entries = cmd.representatives
    if type(entries) is not tuple or not all(type(e) is tuple and len(e) == 2 for e in entries):
        raise Refused("invalid_command", "representatives must be a list of [member id, representative's name]")
    named: dict[str, str] = {}
    for member, name in entries:
        if member not in c.members:
            raise Refused("not_member", f"{member!r:.60} is not a member of the collective")
        if member in named:
            raise Refused("invalid_command", f"{member!r:.60} is named twice: one representative a member")
        named[member] = ident(name, "a representative's name")
    missing = [m for m in c.members if m not in named]
    if missing:
        raise Refused("commission_incomplete", f"every member names its representative; missing: "
                                               f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    c.commission = tuple((m, named[m]) for m in c.members)
    return [CommissionDesignated(cmd.now, cmd.collective_id, c.commission)]
