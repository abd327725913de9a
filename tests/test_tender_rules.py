"""The tender's evaluation rules against a deliberately naive model (Fractions, Decimals,
the decree's sentences read literally), and a worked example computed by hand (seed 003)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from auction_engine.money import Percent, parse_percent
from tenders.evaluation import (
    EXACT,
    Line,
    Offer,
    best_offer,
    convert,
    corrected_amount,
    evaluate_lot,
    flags,
    is_exempt,
    national_preference,
    reference_price,
)

# -- the naive model ------------------------------------------------------------------------


def naive_p(estimate: int, amounts: list[int]) -> Fraction:
    return (Fraction(estimate) + Fraction(sum(amounts), len(amounts))) / 2


def naive_round(x: Fraction) -> int:
    """Half up, through Decimal's own rounding (exact: a context with enough digits)."""
    with localcontext() as ctx:
        ctx.prec = 200
        return int((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def naive_best(amounts: dict[str, int], p: Fraction, order: dict[str, int]) -> str | None:
    """Walk the offers: keep the closest below (or at) P; only if none, the closest above."""
    best_below = best_above = None
    for b in sorted(amounts, key=lambda x: order[x]):  # earlier first, so a tie keeps the earlier
        a = amounts[b]
        if a <= p:
            if best_below is None or a > amounts[best_below]:
                best_below = b
        elif best_above is None or a < amounts[best_above]:
            best_above = b
    return best_below if best_below is not None else best_above


def naive_preference(offers: list[Offer], p: Fraction, pct: Fraction) -> dict[str, int]:
    ranked = {o.bidder_id: o.amount for o in offers}
    order = {o.bidder_id: o.order for o in offers}
    local = [o for o in offers if not o.foreign]
    if not local:
        return ranked
    done: set[str] = set()
    while True:
        best = naive_best(ranked, p, order)
        offer = next(o for o in offers if o.bidder_id == best)
        if not offer.foreign or best in done:
            return ranked
        below = ranked[best] <= p
        if below and any(o.amount <= p for o in local):  # case 1
            factor = 1 - pct
        elif below or not any(o.amount <= p for o in offers):  # case 3 (locals all above P) or case 2
            factor = 1 + pct
        else:
            return ranked
        ranked[best] = naive_round(ranked[best] * factor)
        done.add(best)


# -- strategies -----------------------------------------------------------------------------

amounts = st.integers(1, 10**12)
percents = st.builds(lambda n, d: Percent(n, 10**d), st.integers(0, 100), st.integers(0, 2)).filter(
    lambda p: p.numerator <= 100 * p.denominator)


@st.composite
def offer_lists(draw: st.DrawFn) -> list[Offer]:
    n = draw(st.integers(1, 8))
    base = draw(amounts)
    values = draw(st.lists(st.one_of(st.integers(max(1, base - 10**6), base + 10**6), amounts),
                           min_size=n, max_size=n))
    foreign = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return [Offer(f"b{i}", v, f, i) for i, (v, f) in enumerate(zip(values, foreign, strict=True))]


# -- properties -----------------------------------------------------------------------------


@given(amounts, st.lists(amounts, min_size=1, max_size=20))
def test_reference_price_is_exact(estimate: int, values: list[int]) -> None:
    p = reference_price(estimate, values)
    assert Fraction(p.numerator, p.denominator) == naive_p(estimate, values)
    assert p.rounded() == naive_round(naive_p(estimate, values))
    assert all(p.at_or_above(v) == (v <= naive_p(estimate, values)) for v in values)


@given(offer_lists(), amounts)
def test_best_offer_is_the_closest_below_else_above(offers: list[Offer], estimate: int) -> None:
    values = {o.bidder_id: o.amount for o in offers}
    order = {o.bidder_id: o.order for o in offers}
    p = reference_price(estimate, list(values.values()))
    assert best_offer(values, p, order) == naive_best(values, naive_p(estimate, list(values.values())), order)


@given(offer_lists(), amounts, percents)
def test_national_preference_follows_the_three_cases(offers: list[Offer], estimate: int, pct: Percent) -> None:
    p = reference_price(estimate, [o.amount for o in offers])
    ranked, steps = national_preference(offers, p, pct)
    naive = naive_preference(offers, naive_p(estimate, [o.amount for o in offers]),
                             Fraction(pct.numerator, 100 * pct.denominator))
    assert ranked == naive
    assert all(s["case"] in (1, 2, 3) and ranked[s["bidder_id"]] == s["ranked_at"] for s in steps)
    assert {s["bidder_id"] for s in steps} <= {o.bidder_id for o in offers if o.foreign}


def test_the_three_cases_one_by_one() -> None:
    fifteen = Percent(15, 1)
    # P = (1000 + 1000) / 2 = 1000 with offers 900 (foreign), 800 (local), 1300 (local)
    case1 = [Offer("f", 900, True, 0), Offer("l", 800, False, 1), Offer("m", 1300, False, 2)]
    p = reference_price(1000, [900, 800, 1300])
    assert national_preference(case1, p, fifteen)[0] == {"f": 765, "l": 800, "m": 1300}  # minus 15%: l wins
    assert evaluate_lot(1000, case1, fifteen).best == "l"
    # no offer below P = (1000 + 1150) / 2 = 1075: the foreign offer closest above gets plus 15%
    case2 = [Offer("f", 1100, True, 0), Offer("l", 1200, False, 1)]
    ranked, steps = national_preference(case2, reference_price(1000, [1100, 1200]), fifteen)
    assert ranked == {"f": 1265, "l": 1200} and steps[0]["case"] == 2
    assert evaluate_lot(1000, case2, fifteen).best == "l"
    # the foreign offer is below P = (1000 + 1050) / 2 = 1025 and every local one above: plus 15%
    case3 = [Offer("f", 1000, True, 0), Offer("l", 1100, False, 1)]
    ranked, steps = national_preference(case3, reference_price(1000, [1000, 1100]), fifteen)
    assert ranked == {"f": 1150, "l": 1100} and steps[0]["case"] == 3
    assert evaluate_lot(1000, case3, fifteen).best == "l"  # now both above P: the closest above


@given(st.integers(0, 100 * 10**4), st.integers(0, 4), percents)
def test_the_groupement_exemption_at_the_threshold(numerator: int, decimals: int, threshold: Percent) -> None:
    share = Percent(numerator // 10 ** (4 - decimals), 10**decimals)
    naive = Fraction(share.numerator, share.denominator) >= Fraction(threshold.numerator, threshold.denominator)
    assert is_exempt(share, threshold) == naive


def test_the_exemption_boundary() -> None:
    thirty = parse_percent("30")
    assert is_exempt(parse_percent("30"), thirty) and is_exempt(parse_percent("30.00"), thirty)
    assert not is_exempt(parse_percent("29.999999"), thirty)


@given(st.integers(0, 10**15), st.integers(1, 10**9), st.integers(0, 6))
def test_conversion_rounds_once_half_up(exact: int, rate: int, decimals: int) -> None:
    value = Fraction(exact, EXACT) * Fraction(rate, 10**6) * 10**decimals
    assert convert(exact, rate, decimals) == naive_round(value)


def test_conversion_halves_go_up() -> None:
    # 0.005 EUR at rate 1 is half a centime: one centime
    assert convert(5 * EXACT // 1000, 10**6, 2) == 1 and convert(4 * EXACT // 1000, 10**6, 2) == 0


lines = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**9),
                           st.integers(0, 6)), min_size=1, max_size=30)


@given(lines, st.integers(0, 10**15))
def test_the_bpde_total_prevails(raw: list[tuple[int, int, int, int]], form_total: int) -> None:
    bpde = [Line(str(i), q * 1000 + qf % 1000, p * 10**d) for i, (q, qf, p, d) in enumerate(raw)]
    with localcontext() as ctx:
        ctx.prec = 100
        naive = sum(Decimal(line.quantity) / 1000 * Decimal(line.unit_price) / 10**6 for line in bpde)
        form = Decimal(form_total) / 10**6
        exact, corrected = corrected_amount(form_total, bpde)
        assert Decimal(exact) / EXACT == naive
    assert corrected == (naive != form)
    if exact % 1000 == 0:  # a bid form total equal to the BPDE's is not corrected
        assert not corrected_amount(exact // 1000, bpde)[1]


@given(amounts, offer_lists(), percents, percents)
def test_flags_against_the_fractions(estimate: int, offers: list[Offer], low: Percent, high: Percent) -> None:
    values = [o.amount for o in offers]
    p, naive = reference_price(estimate, values), naive_p(estimate, values)
    for v in values:
        lo, hi = Fraction(low.numerator, 100 * low.denominator), Fraction(high.numerator, 100 * high.denominator)
        expected = "abnormally_low" if v < naive * (1 - lo) else "excessive" if v > naive * (1 + hi) else None
        assert flags(v, p, low, high) == expected
    assert all(flags(v, p, None, None) is None for v in values)


# -- a worked example, computed by hand from seed 003 --------------------------------------


def test_a_worked_example_from_seed_003() -> None:
    """Estimate 1,000,000.00 MAD. A local 900,000.00; B local 1,050,000.00; C foreign, 80,000.00
    EUR at the recorded rate 10.85 = 868,000.00; D a groupement, 940,000.00; E local, bid form
    880,000.00 but BPDE 100 x 8,900.00 = 890,000.00 (the BPDE prevails).
    Sum 4,648,000.00, mean 929,600.00, P = (1,000,000.00 + 929,600.00) / 2 = 964,800.00.
    At or below P: A, C, D, E; the closest is D (940,000.00)."""
    exact_e, corrected = corrected_amount(880_000_000_000, [Line("1", 100_000, 8_900_000_000)])
    assert corrected and convert(exact_e, 10**6, 2) == 890_000_00
    c = convert(80_000 * EXACT, 10_850_000, 2)
    assert c == 868_000_00

    def offers(d_foreign: bool) -> list[Offer]:
        return [Offer("A", 900_000_00, False, 0), Offer("B", 1_050_000_00, False, 1), Offer("C", c, True, 2),
                Offer("D", 940_000_00, d_foreign, 3), Offer("E", 890_000_00, False, 4)]

    # D holds 30% Moroccan members: exempt, treated as local; it is the closest below P and wins
    assert is_exempt(parse_percent("30"), parse_percent("30"))
    exempt = evaluate_lot(1_000_000_00, offers(False), Percent(15, 1))
    assert (exempt.best, exempt.amount, exempt.reference and exempt.reference.rounded()) == ("D", 940_000_00,
                                                                                             964_800_00)
    # D holds 20%: foreign. It is the closest below P and local offers (A, E) are below P:
    # case 1, D is ranked at 940,000.00 - 15% = 799,000.00; the closest below P is now A.
    foreign = evaluate_lot(1_000_000_00, offers(True), Percent(15, 1))
    steps = {s["step"]: s for s in foreign.explain}
    assert steps["national_preference"]["adjustments"] == [{"bidder_id": "D", "case": 1, "amount": 940_000_00,
                                                            "ranked_at": 799_000_00}]
    assert (foreign.best, foreign.amount) == ("A", 900_000_00)
    assert steps["best_offer"]["ranking"] == ["A", "E", "C", "D", "B"]
    # an abnormally-low threshold of 10%: below 0.9 x 964,800.00 = 868,320.00, C is flagged
    flagged = evaluate_lot(1_000_000_00, offers(True), Percent(15, 1), low=Percent(10, 1))
    assert {s["step"]: s for s in flagged.explain}["flags"]["flagged"] == {"C": "abnormally_low"}


def test_an_adjusted_amount_is_rounded_once_half_up() -> None:
    """Hypothesis found it: 2,256.75 at -2% is 2,211.615 -> 2,211.62 (rounding the
    adjustment, 45.135 -> 45.14, gave 2,211.61). Both directions, exactly."""
    local, foreign = Offer("l", 300_000, False, 0), Offer("f", 225_675, True, 1)
    p = reference_price(100_000, [local.amount, foreign.amount])  # P = 1,814.1875: both above, f the closest
    assert national_preference([local, foreign], p, Percent(2, 1))[0]["f"] == 230_189  # case 2: +2%, 230,188.5 up
    local = Offer("l", 100_000, False, 0)
    p = reference_price(1_000_000, [local.amount, foreign.amount])  # P = 5,814.1875: both below, f the closest
    ranked, steps = national_preference([local, foreign], p, Percent(2, 1))
    assert steps == [{"bidder_id": "f", "case": 1, "amount": 225_675, "ranked_at": 221_162}]  # -2%, 221,161.5 up
    assert ranked["f"] == 221_162
