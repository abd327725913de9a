"""Grouped purchases benchmark: the BPDE's generation and the consolidation's update per
delivery, each against the raw limit of the same arithmetic on plain dicts.

    python -m benchmarks.grouped [--quick] [--repeat N] [--deliveries N] [--seed S]

(1) BPDE: a collective of 200 members and 2,000 articles (20 lots) where every member
needs every article (400,000 confirmed needs); `GenerateSchedule` through the kind
(lines, per-member parts, totals, the SHA-256 digest) against the raw limit: the same
sums (quantity per article and member, amounts, lot totals) over the same needs as plain
(member, article, quantity) tuples into dicts. Median of `--repeat` interleaved runs.

(2) Consolidation: 10,000 member contracts (1,000 members x 10 lots of 5 articles);
each delivery is `RecordDelivery` through the kind, which updates the contract and the
consolidation's running totals (`state.Progress`), timed per delivery (p50, p99, max),
against the raw limit: the same delivery applied to plain dicts of per-contract,
per-article and per-member counters, updated in place. The whole view the live
consolidation answers (`views.consolidation`, 1,000 member rows) is timed apart.

Human-readable lines first; the last line is one JSON object (docs/benchmarks.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    GenerateSchedule,
    LaunchProcurement,
    RecordDelivery,
    RecordLotPrices,
    consolidation,
)

from .common import Result, banner, emit, gc_off, interleaved, machine, parser, percentile_ms, runs_s, stamp

S = 1_000_000
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
DEADLINE = T0 + 3600 * S
CONVENTION = "c" * 64
CID = "G-BENCH"


def collective(members: int, articles: int, lots: int, seed: int) -> tuple[Collectives, list[tuple[str, str, int]]]:
    """A constituted collective, every member needing every article (random quantities), all
    confirmed and the needs closed; and the needs as plain tuples."""
    rng = random.Random(seed)
    kind = Collectives()
    ids = [f"m{i:04d}" for i in range(members)]
    kind.handle(CreateCollective(T0, CID, "coord", tuple(ids), CONVENTION, DEADLINE))
    for m in ids:
        kind.handle(AcceptConvention(T0 + 1, CID, m, CONVENTION))
    codes = [f"a{i:05d}" for i in range(articles)]
    for i, code in enumerate(codes):
        kind.handle(AddArticle(T0 + 2, CID, "coord", code, "article", "unit", rng.randint(100, 100_000),
                               f"L{i % lots:02d}"))
    needs = [(m, a, rng.randint(1, 500)) for m in ids for a in codes]
    for m, a, q in needs:
        kind.handle(DeclareNeed(T0 + 3, CID, m, a, q, "here"))
    for m in ids:
        kind.handle(ConfirmNeeds(T0 + 4, CID, m))
    return kind, needs


def raw_schedule(needs: list[tuple[str, str, int]], prices: dict[str, tuple[int, str]]) -> int:
    """The schedule's sums on plain dicts: parts per article and member, amounts, lot totals."""
    parts: dict[str, dict[str, int]] = {}
    for member, article, quantity in needs:
        by_member = parts.setdefault(article, {})
        by_member[member] = by_member.get(member, 0) + quantity
    lots: dict[str, int] = {}
    for article, by_member in parts.items():
        price, lot = prices[article]
        lots[lot] = lots.get(lot, 0) + price * sum(by_member.values())
    return sum(lots.values())


def bpde(repeat: int, seed: int) -> Result:
    t0 = time.perf_counter()
    kind, needs = collective(200, 2_000, 20, seed)
    c = kind.collectives[CID]
    prices = {code: (a.unit_price, a.lot) for code, a in c.articles.items()}
    setup_s = time.perf_counter() - t0
    now = [DEADLINE]

    def generate() -> None:
        now[0] += 1
        events = kind.handle(GenerateSchedule(now[0], CID, "coord"))
        assert type(events[-1]).__name__ == "ScheduleGenerated", events

    kind_s, raw_s = interleaved(repeat, [generate, lambda: raw_schedule(needs, prices)])
    assert c.schedules[-1].total == raw_schedule(needs, prices)  # the same arithmetic, the same figure
    kind_med, raw_med = sorted(kind_s)[len(kind_s) // 2], sorted(raw_s)[len(raw_s) // 2]
    return {"members": 200, "articles": 2_000, "lots": 20, "needs": len(needs), "kind_ms": round(kind_med * 1e3, 1),
            "raw_limit_ms": round(raw_med * 1e3, 1), "ratio": round(raw_med / kind_med, 3),
            "kind_runs_s": runs_s(kind_s), "raw_runs_s": runs_s(raw_s), "setup_s": round(setup_s, 1)}


def contracts(seed: int) -> Collectives:
    """10,000 member contracts: 1,000 members x 10 lots of 5 articles, awarded on unit prices."""
    kind, _ = collective(1_000, 50, 10, seed)
    kind.handle(GenerateSchedule(DEADLINE, CID, "coord"))
    kind.handle(LaunchProcurement(DEADLINE, CID, "coord", "P", 1))
    c = kind.collectives[CID]
    for lot in c.schedules[0].lots():
        prices = tuple((ln.article, ln.unit_price) for ln in c.schedules[0].lines if ln.lot == lot)
        kind.handle(RecordLotPrices(DEADLINE, CID, "coord", "P", lot, "supplier", prices))
    assert len(c.contracts) == 10_000
    return kind


def deliveries_run(count: int, seed: int) -> Result:
    t0 = time.perf_counter()
    kind = contracts(seed)
    c = kind.collectives[CID]
    setup_s = time.perf_counter() - t0
    rng = random.Random(seed)
    plan = [(cid, line.article) for cid, k in sorted(c.contracts.items()) for line in k.lines]
    picks = [rng.choice(plan) for _ in range(count)]
    # the raw limit's state: the same counters on plain dicts, updated in place
    delivered: dict[tuple[str, str], int] = {}
    by_article: dict[str, int] = {}
    by_member: dict[str, int] = {}
    members = {cid: k.member for cid, k in c.contracts.items()}
    kind_ns: list[int] = []
    view_ns: list[int] = []
    raw_ns: list[int] = []
    now = DEADLINE + 1
    with gc_off():
        for contract_id, article in picks:
            now += 1
            started = time.perf_counter_ns()
            kind.handle(RecordDelivery(now, CID, "coord", contract_id, article, 1, True))
            kind_ns.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            view = consolidation(c, "coord")
            view_ns.append(time.perf_counter_ns() - started)
            started = time.perf_counter_ns()
            delivered[contract_id, article] = delivered.get((contract_id, article), 0) + 1
            by_article[article] = by_article.get(article, 0) + 1
            member = members[contract_id]
            by_member[member] = by_member.get(member, 0) + 1
            raw_ns.append(time.perf_counter_ns() - started)
    assert sum(p.delivered for p in view.articles) == count == sum(by_article.values())
    for samples in (kind_ns, view_ns, raw_ns):
        samples.sort()
    p50, raw_p50 = percentile_ms(kind_ns, 0.5), percentile_ms(raw_ns, 0.5)
    return {"contracts": 10_000, "members": 1_000, "deliveries": count, "p50_ms": round(p50, 4),
            "p99_ms": round(percentile_ms(kind_ns, 0.99), 4), "max_ms": round(kind_ns[-1] / 1e6, 4),
            "raw_limit_p50_ms": round(raw_p50, 4), "raw_limit_p99_ms": round(percentile_ms(raw_ns, 0.99), 4),
            "ratio": round(raw_p50 / p50, 4), "view_p50_ms": round(percentile_ms(view_ns, 0.5), 3),
            "view_p99_ms": round(percentile_ms(view_ns, 0.99), 3), "setup_s": round(setup_s, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    options = parser("benchmarks.grouped", __doc__, "fewer repetitions and deliveries: well under 1 min")
    options.add_argument("--repeat", type=int, default=None, help="BPDE repetitions (median; 3 quick, 5 full)")
    options.add_argument("--deliveries", type=int, default=None, help="timed deliveries (1000 quick, 10000 full)")
    options.add_argument("--seed", type=int, default=2026)
    args = options.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    count = args.deliveries or (1_000 if args.quick else 10_000)
    t0 = time.perf_counter()
    print(f"{banner(args.quick)}, {repeat} repetitions, {count} deliveries", flush=True)
    schedule = bpde(repeat, args.seed)
    print(f"BPDE 200 members x 2,000 articles ({schedule['needs']:,} needs): {schedule['kind_ms']} ms, raw limit "
          f"{schedule['raw_limit_ms']} ms (ratio {schedule['ratio']:.2f})", flush=True)
    live = deliveries_run(count, args.seed)
    print(f"consolidation update per delivery, 10,000 contracts: p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms; "
          f"raw limit p50 {live['raw_limit_p50_ms']} ms (ratio {live['ratio']:.2f}); the whole view (1,000 members) "
          f"p50 {live['view_p50_ms']} ms", flush=True)
    out: dict[str, Any] = {"bpde_ms": schedule["kind_ms"], "bpde_raw_limit_ms": schedule["raw_limit_ms"],
                           "bpde_ratio": schedule["ratio"], "delivery_p50_ms": live["p50_ms"],
                           "delivery_p99_ms": live["p99_ms"], "delivery_raw_limit_p50_ms": live["raw_limit_p50_ms"],
                           "delivery_ratio": live["ratio"], "view_p50_ms": live["view_p50_ms"],
                           "mode": "quick" if args.quick else "full",
                           **stamp(time.perf_counter() - t0), "machine": machine(),
                           "bpde": schedule, "consolidation": live}
    emit(out)


if __name__ == "__main__":
    main()
