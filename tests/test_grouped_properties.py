"""Properties of the collective kind against trivially correct sums: the schedule is the
sum of confirmed needs, member contracts add up exactly to each awarded lot (on unit
prices and on a lot total), and the consolidation is the sum of what was recorded."""

from __future__ import annotations

from grouped_example import CID, CONVENTION, DEADLINE, T0, S, commands, preparation
from hypothesis import given
from hypothesis import strategies as st

from auction_engine import Tick
from grouped_purchases import (
    COMMANDS,
    REFUSAL_CODES,
    AcceptConvention,
    AddArticle,
    CollectiveRefused,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    DeliveryRecorded,
    GenerateSchedule,
    PaymentRecorded,
    ReceiptRecorded,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordPayment,
    RecordReceipt,
    ScheduleLine,
    WithdrawNeed,
    consolidation,
)
from grouped_purchases.rules import contracts_on_total, pro_rata_prices
from grouped_purchases.state import Collective
from grouped_purchases.views import ArticleProgress, Consolidation, MemberProgress

MEMBERS = ("m1", "m2", "m3", "m4")
ARTICLES = {"A": ("L1", 3_000), "B": ("L1", 45_001), "C": ("L2", 7), "D": ("L2", 120_000)}

acts = st.lists(st.one_of(
    st.tuples(st.just("need"), st.sampled_from(MEMBERS), st.sampled_from(sorted(ARTICLES)),
              st.integers(1, 10**6)),
    st.tuples(st.just("withdraw"), st.sampled_from(MEMBERS), st.sampled_from(sorted(ARTICLES)), st.just(0)),
    st.tuples(st.just("confirm"), st.sampled_from(MEMBERS), st.just(""), st.just(0))), max_size=40)


def constituted() -> Collectives:
    kind = Collectives()
    kind.handle(CreateCollective(T0, CID, "coord", MEMBERS, CONVENTION, DEADLINE))
    for m in MEMBERS:
        kind.handle(AcceptConvention(T0, CID, m, CONVENTION))
    for code, (lot, price) in ARTICLES.items():
        kind.handle(AddArticle(T0, CID, "coord", code, code, "unit", price, lot))
    return kind


@given(acts)
def test_the_schedule_is_the_sum_of_confirmed_needs(steps: list[tuple[str, str, str, int]]) -> None:
    kind = constituted()
    latest: dict[tuple[str, str], int] = {}
    confirmed: set[str] = set()
    for i, (act, member, article, quantity) in enumerate(steps):
        now = T0 + (i + 1) * S
        if act == "need":
            kind.handle(DeclareNeed(now, CID, member, article, quantity, "here"))
            latest[(member, article)] = quantity
            confirmed.discard(member)
        elif act == "withdraw":
            if latest.get((member, article)):
                kind.handle(WithdrawNeed(now, CID, member, article))
                latest[(member, article)] = 0
                confirmed.discard(member)
        elif any(m == member and q for (m, _), q in latest.items()):
            kind.handle(ConfirmNeeds(now, CID, member))
            confirmed.add(member)
    kind.handle(Tick(DEADLINE))
    kind.handle(GenerateSchedule(DEADLINE, CID, "coord"))
    expected: dict[str, dict[str, int]] = {}
    for (member, article), quantity in latest.items():
        if member in confirmed and quantity:
            expected.setdefault(article, {})[member] = quantity
    schedules = kind.collectives[CID].schedules
    if not expected:
        assert schedules == []
        return
    got = {line.article: dict(line.members) for line in schedules[0].lines}
    assert got == expected
    for line in schedules[0].lines:
        assert line.quantity == sum(expected[line.article].values())
        assert line.amount == ARTICLES[line.article][1] * line.quantity
    assert schedules[0].total == sum(ARTICLES[a][1] * sum(q.values()) for a, q in expected.items())


lines_strategy = st.lists(
    st.tuples(st.integers(1, 10**6), st.lists(st.integers(1, 10**4), min_size=1, max_size=4)),
    min_size=1, max_size=5)


@given(lines_strategy, st.integers(0, 10**12))
def test_contracts_on_a_lot_total_add_up_exactly(spec: list[tuple[int, list[int]]], extra: int) -> None:
    lines = [ScheduleLine(f"a{i}", "L", price, sum(qs), tuple((f"m{j}", q) for j, q in enumerate(qs)))
             for i, (price, qs) in enumerate(spec)]
    units = sum(line.quantity for line in lines)
    total = units + extra  # at least one minor unit per unit, as the kind requires
    contracts = contracts_on_total(lines, total)
    assert sum(ln.amount for member in contracts.values() for ln in member) == total
    prices, _ = pro_rata_prices(lines, total)
    estimate = sum(line.amount for line in lines)
    for member in contracts.values():
        for ln in member:
            assert 0 <= ln.extra <= ln.quantity and ln.unit_price == prices[ln.article]
            assert ln.unit_price * estimate <= _estimate_of(lines, ln.article) * total


def _estimate_of(lines: list[ScheduleLine], article: str) -> int:
    return next(line.unit_price for line in lines if line.article == article)


@given(st.integers(1, 10**9), st.integers(1, 10**6), st.integers(1, 10**6))
def test_the_kinds_contracts_add_up_to_each_awarded_lot(total_extra: int, price_c: int, price_d: int) -> None:
    kind = Collectives()
    for command in preparation():
        kind.handle(command)
    l1 = 166 + total_extra  # L1 has 166 units
    kind.handle(RecordLotAward(DEADLINE + 9 * S, CID, "coord", "A-G1", "L1", "s", l1))
    kind.handle(RecordLotPrices(DEADLINE + 9 * S, CID, "coord", "A-G1", "L2", "s", (("CH", price_d),)))
    c = kind.collectives[CID]
    assert sum(k.total for k in c.contracts.values() if k.lot == "L1") == l1
    assert sum(k.total for k in c.contracts.values() if k.lot == "L2") == 10 * price_d


execution = st.lists(st.tuples(st.sampled_from(["deliver", "receive", "pay"]),
                               st.sampled_from(["A-G1/L1/m1", "A-G1/L1/m3", "A-G1/L2/m1"]),
                               st.sampled_from(["A4", "TN", "CH"]), st.integers(0, 120), st.integers(0, 10),
                               st.integers(1, 500_000)), max_size=40)


@given(execution)
def test_the_consolidation_is_the_sum_of_what_was_recorded(steps: list[tuple[str, str, str, int, int, int]]) -> None:
    kind = Collectives()
    for command in commands()[:-6]:  # up to the awards
        kind.handle(command)
    events: list[object] = []
    for i, (act, contract, article, quantity, rejected, amount) in enumerate(steps):
        now = DEADLINE + (100 + i) * S
        if act == "deliver":
            events += kind.handle(RecordDelivery(now, CID, "coord", contract, article, quantity))
        elif act == "receive":
            events += kind.handle(RecordReceipt(now, CID, "coord", contract, article, quantity, rejected, "damaged"))
        else:
            events += kind.handle(RecordPayment(now, CID, "coord", contract, amount))
    c = kind.collectives[CID]
    view = consolidation(c, "coord")
    by_article = {a.article: a for a in view.articles}
    for article, row in by_article.items():
        contracts = {cid for cid, k in c.contracts.items() if k.line(article)}
        def total(cls: type, field: str, article: str = article, contracts: set[str] = contracts) -> int:
            return sum(getattr(e, field) for e in events
                       if type(e) is cls and e.article == article and e.contract_id in contracts)  # type: ignore[attr-defined]
        assert row.delivered == total(DeliveryRecorded, "quantity")
        assert row.received == total(ReceiptRecorded, "quantity")
        assert row.rejected == total(ReceiptRecorded, "rejected")
        assert row.outstanding == row.ordered - row.received and row.delivered - row.rejected <= row.ordered
    for member in view.members:
        paid = sum(e.amount for e in events  # type: ignore[attr-defined]
                   if type(e) is PaymentRecorded and c.contracts[e.contract_id].member == member.member)
        assert member.paid == paid <= member.amount and member.outstanding == member.amount - paid
    assert sum(m.paid for m in view.members) == sum(k.paid for k in c.contracts.values())
    assert view == recount(c)  # the running totals are a scan of the contracts
    reloaded = Collectives.load_state(kind.dump_state()).collectives[CID]
    assert consolidation(reloaded, "coord") == view  # rebuilt on load


def recount(c: Collective) -> Consolidation:
    """The consolidation by a scan of every contract: the naive model of `state.Progress`."""
    articles: dict[str, list[int]] = {}
    members = {m: [0, 0, 0, 0, 0] for m in c.members}
    for k in c.contracts.values():
        row = members[k.member]
        for line in k.lines:
            a = line.article
            units = [line.quantity, k.delivered.get(a, 0), k.received.get(a, 0), k.rejected.get(a, 0)]
            articles[a] = [x + y for x, y in zip(articles.get(a, [0, 0, 0, 0]), units, strict=True)]
            row[:3] = [row[0] + units[0], row[1] + units[1], row[2] + units[2]]
        row[3] += k.total
        row[4] += k.paid
    return Consolidation(
        tuple(ArticleProgress(a, o, d, r, x, o - r) for a, (o, d, r, x) in sorted(articles.items())),
        tuple(MemberProgress(m, o, d, r, due, paid, due - paid) for m, (o, d, r, due, paid) in members.items()))


junk = st.one_of(st.none(), st.booleans(), st.integers(-2, 10**19), st.text(max_size=5),
                 st.sampled_from(["coord", "m1", "m3", "A4", "TN", "L1", "A-G1", "A-G1/L1/m1", CID, CONVENTION]),
                 st.lists(st.integers(), max_size=2), st.tuples(st.text(max_size=2), st.integers()))


@given(st.sampled_from(COMMANDS), st.lists(junk, min_size=8, max_size=8))
def test_any_field_values_are_applied_or_refused_never_raised(cls: type, values: list[object]) -> None:
    """Whatever a damaged journal or a careless shell sends: an outcome, and a refusal
    changes nothing."""
    kind = Collectives()
    for command in commands():
        kind.handle(command)
    before = kind.state_hash()
    fields = [DEADLINE + 200 * S, CID, *values][:len(cls._fields)]  # type: ignore[attr-defined]
    events = kind.handle(cls(*fields))
    if all(type(e) is CollectiveRefused for e in events):
        assert kind.state_hash() == before and all(e.code in REFUSAL_CODES for e in events)
    Collectives.load_state(kind.dump_state())  # still a state that loads
