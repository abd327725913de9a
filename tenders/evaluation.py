"""The financial evaluation of one lot (seed 003 art. 15, 18, 19; decree 2-22-431 art. 43-44).

Pure functions over integers: the BPDE arithmetic check, conversion at the reference
rate, the reference price P, the abnormally-low / excessive flags, the national
preference and the best offer. Comparisons with P are exact (P is a fraction); an amount
is rounded once, half up, where it becomes tender minor units (conversion, preference).
`evaluate_lot` returns every step's inputs and result: the *explain* of the lot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from auction_engine.money import Percent

QUANTITY_DECIMALS = 3  # a BPDE quantity such as "12.125"
PRICE_DECIMALS = 6  # an offer's prices, in its own currency's units ("1234.50")
RATE_DECIMALS = 6  # a reference rate: tender units per one foreign unit ("10.852500")
EXACT = 10 ** (QUANTITY_DECIMALS + PRICE_DECIMALS)  # BPDE amounts are exact in 1/EXACT units


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, halves away from zero
    (the documented rounding of every amount that becomes minor units)."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    q, r = divmod(abs(numerator), abs(denominator))
    return sign * (q + (1 if 2 * r >= abs(denominator) else 0))


class Line(NamedTuple):
    """One BPDE line: quantity in 1/1000 units, unit price in 1e-6 currency units."""

    ref: str
    quantity: int
    unit_price: int


def bpde_total(lines: Sequence[Line]) -> int:
    """The BPDE total recomputed from its lines, exact, in 1/EXACT currency units."""
    return sum(line.quantity * line.unit_price for line in lines)


def corrected_amount(form_total: int, lines: Sequence[Line]) -> tuple[int, bool]:
    """The amount an offer is evaluated at, in 1/EXACT units, and whether it was corrected:
    the recomputed BPDE total prevails over the bid form's total (1e-6 units)."""
    recomputed = bpde_total(lines)
    return recomputed, recomputed != form_total * 10**QUANTITY_DECIMALS


def convert(exact_amount: int, rate: int, decimals: int) -> int:
    """An exact amount (1/EXACT foreign units) at `rate` (1e-6 tender units per foreign
    unit) in tender minor units (`decimals`), rounded once, half up."""
    return half_up(exact_amount * rate * 10**decimals, EXACT * 10**RATE_DECIMALS)


class Offer(NamedTuple):
    """A retained offer for a lot: `amount` corrected and converted (tender minor units),
    `foreign` when the bidder is not established in Morocco and not an exempt groupement,
    `order` its deposit order (the earlier wins a tie)."""

    bidder_id: str
    amount: int
    foreign: bool
    order: int


class Reference(NamedTuple):
    """P = (estimate + mean of the offers) / 2, exactly `numerator / denominator`."""

    numerator: int
    denominator: int

    def rounded(self) -> int:
        return half_up(self.numerator, self.denominator)

    def at_or_above(self, amount: int) -> bool:
        """True if `amount` <= P: the offer is "par défaut" (from below, P itself included)."""
        return amount * self.denominator <= self.numerator


def reference_price(estimate: int, amounts: Sequence[int]) -> Reference:
    n = len(amounts)
    return Reference(estimate * n + sum(amounts), 2 * n)


def best_offer(amounts: dict[str, int], p: Reference, order: dict[str, int]) -> str | None:
    """The closest to P from below (P included), else the closest from above; on equal
    amounts the earlier deposit."""
    below = [b for b, a in amounts.items() if p.at_or_above(a)]
    if below:
        return min(below, key=lambda b: (-amounts[b], order[b]))
    return min(amounts, key=lambda b: (amounts[b], order[b]), default=None)


def is_exempt(moroccan_share: Percent, threshold: Percent) -> bool:
    """A groupement whose members established in Morocco hold `threshold` or more."""
    return moroccan_share.numerator * threshold.denominator >= threshold.numerator * moroccan_share.denominator


def flags(amount: int, p: Reference, low: Percent | None, high: Percent | None) -> str | None:
    """"abnormally_low" below P × (1 - low%), "excessive" above P × (1 + high%), else None."""
    scaled = amount * p.denominator * 100
    if low is not None and scaled * low.denominator < p.numerator * (100 * low.denominator - low.numerator):
        return "abnormally_low"
    if high is not None and scaled * high.denominator > p.numerator * (100 * high.denominator + high.numerator):
        return "excessive"
    return None


def _adjust(amount: int, pct: Percent, sign: int) -> int:
    """amount × (1 ± pct%), rounded once, half up (rounding the adjustment instead would
    round a reduced amount's halves down)."""
    return half_up(amount * (100 * pct.denominator + sign * pct.numerator), 100 * pct.denominator)


def national_preference(offers: Sequence[Offer], p: Reference, pct: Percent) -> tuple[dict[str, int], list[Any]]:
    """Art. 18: the amounts each offer is ranked at, and the adjustments made. While the
    would-be best offer is a foreign one not yet adjusted, and a local offer competes:
    case 1, it is from below and a local offer is at or below P: minus pct;
    case 3, it is from below and every local offer is above P: plus pct;
    case 2, it is from above and no offer is at or below P: plus pct.
    Cases are read on the unadjusted amounts; each offer is adjusted at most once."""
    ranked = {o.bidder_id: o.amount for o in offers}
    order = {o.bidder_id: o.order for o in offers}
    foreign = {o.bidder_id for o in offers if o.foreign}
    locals_below = any(not o.foreign and p.at_or_above(o.amount) for o in offers)
    any_local = any(not o.foreign for o in offers)
    any_below = any(p.at_or_above(o.amount) for o in offers)
    steps: list[Any] = []
    adjusted: set[str] = set()
    while any_local:
        best = best_offer(ranked, p, order)
        if best is None or best not in foreign or best in adjusted:
            break
        amount = ranked[best]
        if p.at_or_above(amount):
            case, sign = (1, -1) if locals_below else (3, 1)
        elif not any_below:
            case, sign = 2, 1
        else:
            break  # from above while offers below exist (moved there by case 3): no case applies
        ranked[best] = _adjust(amount, pct, sign)
        adjusted.add(best)
        steps.append({"bidder_id": best, "case": case, "amount": amount, "ranked_at": ranked[best]})
    return ranked, steps


class LotResult(NamedTuple):
    """The outcome of a lot's financial evaluation and its explain steps."""

    best: str | None
    amount: int | None  # the best offer's own amount (corrected, converted), not its ranked one
    reference: Reference | None
    explain: list[dict[str, Any]]


def evaluate_lot(estimate: int, offers: Sequence[Offer], preference: Percent,
                 low: Percent | None = None, high: Percent | None = None) -> LotResult:
    """P, flags, national preference and the best offer of a lot's retained offers."""
    if not offers:
        return LotResult(None, None, None, [{"step": "no_offer"}])
    p = reference_price(estimate, [o.amount for o in offers])
    explain: list[dict[str, Any]] = [{
        "step": "reference_price", "estimate": estimate, "amounts": {o.bidder_id: o.amount for o in offers},
        "p": [p.numerator, p.denominator], "p_rounded": p.rounded()}]
    flagged = {o.bidder_id: f for o in offers if (f := flags(o.amount, p, low, high))}
    explain.append({"step": "flags", "low": None if low is None else str(low),
                    "high": None if high is None else str(high), "flagged": flagged})
    ranked, adjustments = national_preference(offers, p, preference)
    explain.append({"step": "national_preference", "percent": str(preference),
                    "foreign": sorted(o.bidder_id for o in offers if o.foreign), "adjustments": adjustments})
    order = {o.bidder_id: o.order for o in offers}
    best = best_offer(ranked, p, order)
    assert best is not None
    ranking = sorted(ranked, key=lambda b: (not p.at_or_above(ranked[b]),
                                            -ranked[b] if p.at_or_above(ranked[b]) else ranked[b], order[b]))
    explain.append({"step": "best_offer", "ranked_at": ranked, "ranking": ranking, "best": best})
    return LotResult(best, next(o.amount for o in offers if o.bidder_id == best), p, explain)
