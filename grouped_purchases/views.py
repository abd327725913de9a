"""What each role may read of a collective: a member its own needs and contracts, the
coordinator everything, including the live consolidation. Pure functions of the state;
a forbidden or unknown read raises `QueryError` with a stable code."""

from __future__ import annotations

from typing import NamedTuple

from .state import Collective, Contract


class QueryError(LookupError):
    """`code`: "not_member" (not the reader's to see) or "unknown_need"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ArticleProgress(NamedTuple):
    """Units of one article over every contract: outstanding = ordered - received."""

    article: str
    ordered: int
    delivered: int
    received: int
    rejected: int
    outstanding: int


class MemberProgress(NamedTuple):
    """One member over its contracts: units, and money in minor units (outstanding = due - paid)."""

    member: str
    ordered: int
    delivered: int
    received: int
    amount: int
    paid: int
    outstanding: int


class Consolidation(NamedTuple):
    articles: tuple[ArticleProgress, ...]  # by article code
    members: tuple[MemberProgress, ...]  # in the collective's member order


def need_versions(c: Collective, reader: str, member: str, article: str) -> list[tuple[int, int, str]]:
    """Every version (time, quantity, place) of a member's need: for it or the coordinator."""
    if reader not in (member, c.coordinator):
        raise QueryError("not_member", "a member reads only its own needs")
    versions = c.needs.get((member, article))
    if versions is None:
        raise QueryError("unknown_need", f"{member!r:.60} declared no need of {article!r:.60}")
    return list(versions)


def contracts_of(c: Collective, reader: str) -> dict[str, Contract]:
    """The contracts `reader` may see: its own, or all of them for the coordinator."""
    if reader != c.coordinator and reader not in c.members:
        raise QueryError("not_member", "not a party to the collective")
    return {cid: k for cid, k in sorted(c.contracts.items()) if reader in (k.member, c.coordinator)}


def consolidation(c: Collective, reader: str) -> Consolidation:
    """The coordinator's view: ordered, delivered, received, paid and outstanding (from the
    running totals `state.Progress`: no scan of the contracts)."""
    if reader != c.coordinator:
        raise QueryError("not_member", "the consolidation is the coordinator's")
    return Consolidation(
        tuple(ArticleProgress(a, o, d, r, x, o - r) for a, (o, d, r, x) in sorted(c.progress.articles.items())),
        tuple(MemberProgress(m, o, d, r, due, paid, due - paid)
              for m, (o, d, r, due, paid) in c.progress.members.items()))
