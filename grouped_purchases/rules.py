"""The collective's arithmetic, pure and exact: the consolidated schedule (BPDE) from
confirmed needs, its digest, and member contracts from an award. Integers only; the same
inputs give the same schedule, the same digest and the same contracts.

Rounding (docs/grouped-purchases.md): a line is unit price x quantity, exact in minor
units; a member's contract total is the sum of its lines. A lot awarded on its total T
gets unit prices pro rata to the estimates, floor(e * T / E), and the remainder
R = T - sum(p * q) (always < the lot's total units) goes one minor unit per unit to the
member lines in order of (article's fractional part descending, article code, member id),
each line taking at most its quantity, so member contracts add up to T exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import msgpack


class Article(NamedTuple):
    description: str
    unit: str
    unit_price: int  # estimated, minor units
    lot: str


class ScheduleLine(NamedTuple):
    """One article of the schedule: its total and each member's part (by member id)."""

    article: str
    lot: str
    unit_price: int
    quantity: int
    members: tuple[tuple[str, int], ...]

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity


class Schedule(NamedTuple):
    version: int
    time: int
    final: bool
    digest: str
    lines: tuple[ScheduleLine, ...]  # by lot, then article code

    def lots(self) -> list[str]:
        return sorted({line.lot for line in self.lines})

    def lot_total(self, lot: str) -> int:
        return sum(line.amount for line in self.lines if line.lot == lot)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class ContractLine(NamedTuple):
    """`amount` = unit_price * quantity + `extra` (the lot remainder's share, <= quantity)."""

    article: str
    unit_price: int
    quantity: int
    extra: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity + self.extra


def build_lines(articles: Mapping[str, Article], confirmed: Iterable[tuple[str, str, int]]) -> tuple[ScheduleLine, ...]:
    """The schedule's lines from confirmed (member, article, quantity) needs."""
    parts: dict[str, dict[str, int]] = {}
    for member, article, quantity in confirmed:
        by_member = parts.setdefault(article, {})
        by_member[member] = by_member.get(member, 0) + quantity
    lines = [ScheduleLine(code, articles[code].lot, articles[code].unit_price, sum(by_member.values()),
                          tuple(sorted(by_member.items())))
             for code, by_member in parts.items()]
    return tuple(sorted(lines, key=lambda line: (line.lot, line.article)))


def schedule_digest(collective_id: str, version: int, lines: tuple[ScheduleLine, ...]) -> str:
    """SHA-256 of msgpack([collective id, version, [[article, lot, unit price, quantity,
    [[member, quantity], ...]], ...]]): an auditor recomputes it from the exports."""
    # A ScheduleLine is a tuple of these fields in this order, and msgpack packs a tuple as
    # the array a list gives: the lines go in as they are, with no copy of 400,000 parts.
    return hashlib.sha256(msgpack.packb([collective_id, version, lines])).hexdigest()


def lot_lines(schedule: Schedule, lot: str) -> list[ScheduleLine]:
    return [line for line in schedule.lines if line.lot == lot]


def contracts_at_prices(lines: list[ScheduleLine], prices: Mapping[str, int]) -> dict[str, list[ContractLine]]:
    """Each member's lines at awarded unit prices (no remainder: every line is exact)."""
    out: dict[str, list[ContractLine]] = {}
    for line in lines:
        for member, quantity in line.members:
            out.setdefault(member, []).append(ContractLine(line.article, prices[line.article], quantity, 0))
    return {member: out[member] for member in sorted(out)}


def pro_rata_prices(lines: list[ScheduleLine], total: int) -> tuple[dict[str, int], dict[str, int]]:
    """Unit prices floor(e * T / E) and each article's fractional part's numerator
    (e * T mod E), which orders the remainder's distribution."""
    estimate = sum(line.amount for line in lines)
    prices = {line.article: line.unit_price * total // estimate for line in lines}
    fractions = {line.article: line.unit_price * total % estimate for line in lines}
    return prices, fractions


def contracts_on_total(lines: list[ScheduleLine], total: int) -> dict[str, list[ContractLine]]:
    """Each member's lines for a lot awarded on `total`: they add up to `total` exactly."""
    prices, fractions = pro_rata_prices(lines, total)
    left = total - sum(prices[line.article] * line.quantity for line in lines)
    order = sorted(((-fractions[line.article], line.article, member, quantity)
                    for line in lines for member, quantity in line.members))
    extra: dict[tuple[str, str], int] = {}
    for _fraction, article, member, quantity in order:
        share = min(quantity, left)
        extra[(article, member)] = share
        left -= share
    assert left == 0, "the remainder is below the lot's units"  # a broken invariant is a bug
    out: dict[str, list[ContractLine]] = {}
    for line in lines:
        for member, quantity in line.members:
            out.setdefault(member, []).append(
                ContractLine(line.article, prices[line.article], quantity, extra[(line.article, member)]))
    return {member: out[member] for member in sorted(out)}
