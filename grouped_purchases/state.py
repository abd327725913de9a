"""One collective's state and its plain form (lists of plain values): the same form is
its part of the state hash and of a checkpoint, so a loaded collective hashes the same."""

from __future__ import annotations

from typing import Any

from .rules import Article, ContractLine, Schedule, ScheduleLine


class Contract:
    """A member's particular contract (marché particulier) and its execution."""

    __slots__ = ("member", "lot", "procurement_id", "supplier", "lines", "delivered", "received", "rejected",
                 "paid", "discrepancies")

    def __init__(self, member: str, lot: str, procurement_id: str, supplier: str,
                 lines: tuple[ContractLine, ...]) -> None:
        self.member = member
        self.lot = lot
        self.procurement_id = procurement_id
        self.supplier = supplier
        self.lines = lines
        self.delivered: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.paid = 0
        self.discrepancies: list[tuple[int, str, int, str]] = []  # (time, article, rejected, reason)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    def line(self, article: str) -> ContractLine | None:
        return next((line for line in self.lines if line.article == article), None)

    def to_plain(self) -> list[object]:
        return [self.member, self.lot, self.procurement_id, self.supplier, [list(ln) for ln in self.lines],
                sorted(self.delivered.items()), sorted(self.received.items()), sorted(self.rejected.items()),
                self.paid, [list(d) for d in self.discrepancies]]

    @classmethod
    def from_plain(cls, plain: Any) -> Contract:
        member, lot, pid, supplier, lines, delivered, received, rejected, paid, discrepancies = plain
        contract = cls(member, lot, pid, supplier, tuple(ContractLine(*ln) for ln in lines))
        contract.delivered = {a: q for a, q in delivered}
        contract.received = {a: q for a, q in received}
        contract.rejected = {a: q for a, q in rejected}
        contract.paid = paid
        contract.discrepancies = [(t, a, q, r) for t, a, q, r in discrepancies]
        return contract


class Progress:
    """The consolidation's running totals, kept as contracts are issued and executed (so the
    live view costs no scan of every contract): per article [ordered, delivered, received,
    rejected] units; per member [ordered, delivered, received] units and [amount due, paid].
    Derived from the contracts, so neither hashed nor checkpointed: rebuilt on load."""

    __slots__ = ("articles", "members")

    def __init__(self, members: tuple[str, ...]) -> None:
        self.articles: dict[str, list[int]] = {}
        self.members: dict[str, list[int]] = {m: [0, 0, 0, 0, 0] for m in members}

    def add(self, k: Contract) -> None:
        row = self.members[k.member]
        for line in k.lines:
            a = line.article
            self.receive(k, a, k.received.get(a, 0), k.rejected.get(a, 0))
            self.deliver(k, a, k.delivered.get(a, 0))
            self.articles[a][0] += line.quantity
            row[0] += line.quantity
        row[3] += k.total
        row[4] += k.paid

    def deliver(self, k: Contract, article: str, quantity: int) -> None:
        self.articles.setdefault(article, [0, 0, 0, 0])[1] += quantity
        self.members[k.member][1] += quantity

    def receive(self, k: Contract, article: str, quantity: int, rejected: int) -> None:
        row = self.articles.setdefault(article, [0, 0, 0, 0])
        row[2] += quantity
        row[3] += rejected
        self.members[k.member][2] += quantity

    def pay(self, k: Contract, amount: int) -> None:
        self.members[k.member][4] += amount


class Collective:
    """A purchasing collective: members, coordinator, catalogue, needs, schedules,
    procurements and contracts. The kind (collectives.py) alone changes it."""

    def __init__(self, coordinator: str, members: tuple[str, ...], convention_hash: str, needs_deadline: int) -> None:
        self.coordinator = coordinator
        self.members = members
        self.convention_hash = convention_hash
        self.needs_deadline = needs_deadline
        self.accepted: dict[str, int] = {}  # member -> when it accepted the convention
        self.articles: dict[str, Article] = {}
        self.needs: dict[tuple[str, str], list[tuple[int, int, str]]] = {}  # (member, article) -> versions
        self.confirmed: dict[str, int] = {}  # member -> when it confirmed; a revision withdraws it
        self.needs_closed = False
        self.excluded: tuple[str, ...] = ()
        self.schedules: list[Schedule] = []
        self.procurements: dict[str, tuple[int, tuple[str, ...]]] = {}  # id -> (schedule version, lots)
        self.lots: dict[str, tuple[str, str]] = {}  # lot -> ("pending" | "awarded", procurement id); open if absent
        self.contracts: dict[str, Contract] = {}
        self.commission: tuple[tuple[str, str], ...] = ()  # (member, representative), in member order
        self.progress = Progress(members)  # the consolidation's totals (derived, not hashed)

    @property
    def constituted(self) -> bool:
        return len(self.accepted) == len(self.members)

    def confirmed_needs(self) -> list[tuple[str, str, int]]:
        """(member, article, quantity): the latest version of each need of a confirmed member."""
        return [(member, article, versions[-1][1]) for (member, article), versions in self.needs.items()
                if member in self.confirmed and versions[-1][1] > 0]  # 0: withdrawn

    def standing_needs(self, member: str) -> int:
        return sum(1 for (m, _a), versions in self.needs.items() if m == member and versions[-1][1] > 0)

    def to_plain(self) -> list[object]:
        return [self.coordinator, list(self.members), self.convention_hash, self.needs_deadline,
                sorted(self.accepted.items()),
                [[code, *a] for code, a in sorted(self.articles.items())],
                [[m, a, [list(v) for v in versions]] for (m, a), versions in sorted(self.needs.items())],
                sorted(self.confirmed.items()), self.needs_closed, list(self.excluded),
                [[s.version, s.time, s.final, s.digest,
                  [[ln.article, ln.lot, ln.unit_price, ln.quantity, [list(p) for p in ln.members]] for ln in s.lines]]
                 for s in self.schedules],
                [[pid, version, list(lots)] for pid, (version, lots) in sorted(self.procurements.items())],
                [[lot, status, pid] for lot, (status, pid) in sorted(self.lots.items())],
                [[cid, *c.to_plain()] for cid, c in sorted(self.contracts.items())],
                # Last, and only once designated: a collective without one hashes as before it existed.
                *([[list(pair) for pair in self.commission]] if self.commission else [])]

    @classmethod
    def from_plain(cls, plain: Any) -> Collective:
        (coordinator, members, convention, deadline, accepted, articles, needs, confirmed, closed, excluded,
         schedules, procurements, lots, contracts, *commission) = plain
        c = cls(coordinator, tuple(members), convention, deadline)
        c.accepted = {m: t for m, t in accepted}
        c.articles = {code: Article(*rest) for code, *rest in articles}
        c.needs = {(m, a): [(t, q, p) for t, q, p in versions] for m, a, versions in needs}
        c.confirmed = {m: t for m, t in confirmed}
        c.needs_closed = closed
        c.excluded = tuple(excluded)
        c.schedules = [Schedule(v, t, f, d, tuple(ScheduleLine(a, lot, p, q, tuple((m, n) for m, n in parts))
                                                  for a, lot, p, q, parts in lines))
                       for v, t, f, d, lines in schedules]
        c.procurements = {pid: (v, tuple(lots_)) for pid, v, lots_ in procurements}
        c.lots = {lot: (status, pid) for lot, status, pid in lots}
        c.contracts = {cid: Contract.from_plain(rest) for cid, *rest in contracts}
        c.commission = tuple((m, r) for m, r in commission[0]) if commission else ()
        for contract in c.contracts.values():
            c.progress.add(contract)
        return c
