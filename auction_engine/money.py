"""Money: integer minor units inside, decimal strings at the edges, never floats.

`parse_amount` turns an edge string such as ``"1234.50"`` into minor units and raises
`MoneyError` (code ``invalid_amount``) on anything else; `format_amount` is its inverse.
`MAX_AMOUNT` bounds every amount at every edge and in the core, so any amount that parses
fits the journal (msgpack) and a checkpoint. Percentages are exact fractions.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_DECIMALS = 6  # more than any ISO 4217 currency needs (most use 2, a few 0 or 3)
MAX_AMOUNT = 10**18 - 1  # minor units: 18 digits, below 2**63 (far above any public budget)
MAX_AMOUNT_DIGITS = 18  # so no amount string has more integer digits than this
_SCALE: tuple[int, ...] = tuple(10**i for i in range(MAX_DECIMALS + 1))


class MoneyError(ValueError):
    """An amount or percentage that is not a valid decimal string for its currency."""

    code = "invalid_amount"


def _is_digits(text: str) -> bool:
    # str.isdigit() alone accepts other scripts' digits and superscripts.
    return text.isascii() and text.isdigit()


def parse_amount(text: object, decimals: int) -> int:
    """Parse a non-negative decimal string with at most `decimals` decimals and at most
    `MAX_AMOUNT` minor units ("5.", ".5", signs and exponents are refused)."""
    if type(text) is not str:
        raise MoneyError(f"amount must be a decimal string such as '1234.50', got {type(text).__name__}")
    whole, dot, frac = text.partition(".")
    if not _is_digits(whole) or (dot and not _is_digits(frac)):
        raise MoneyError(f"amount {text[:40]!r} is not a decimal string such as '1234.50'")
    if len(frac) > decimals:
        raise MoneyError(f"amount {text[:40]!r} has more than {decimals} decimals")
    if len(whole.lstrip("0")) > MAX_AMOUNT_DIGITS:  # before int(): a long number costs nothing to refuse
        raise MoneyError(_too_large(decimals))
    minor = int(whole) * _SCALE[decimals] + (int(frac) * _SCALE[decimals - len(frac)] if frac else 0)
    if minor > MAX_AMOUNT:
        raise MoneyError(_too_large(decimals))
    return minor


def _too_large(decimals: int) -> str:
    return f"an amount is at most {format_amount(MAX_AMOUNT, decimals)}"


def amount_problem(value: object, decimals: int) -> str:
    """Why `value` is not a valid amount in minor units: the core's `invalid_amount`
    message (an edge string that did not parse gets what `parse_amount` said)."""
    if type(value) is str:
        try:
            parse_amount(value, decimals)
        except MoneyError as exc:
            return str(exc)
        return f"amount {value[:40]!r} was not converted to minor units"
    if type(value) is int and value > MAX_AMOUNT:
        return _too_large(decimals)
    return "the amount must be a positive number of minor units"


def format_amount(minor: int, decimals: int) -> str:
    """Format minor units as a decimal string with exactly `decimals` decimals."""
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), _SCALE[decimals])
    return f"{sign}{whole}.{frac:0{decimals}d}" if decimals else f"{sign}{whole}"


class Percent(NamedTuple):
    """An exact percentage `numerator / denominator` percent (``"2.5"`` is 25/10)."""

    numerator: int
    denominator: int

    def __str__(self) -> str:
        digits = len(str(self.denominator)) - 1
        return format_amount(self.numerator, digits)

    def of_rounded_up(self, base: int) -> int:
        """`self` percent of `base` minor units, rounded up to a whole minor unit."""
        return -(-base * self.numerator // (100 * self.denominator))

    def of_rounded_down(self, base: int) -> int:
        """`self` percent of `base` minor units, rounded down to a whole minor unit."""
        return base * self.numerator // (100 * self.denominator)


def parse_percent(text: object) -> Percent:
    """Parse a percentage such as ``"0.5"`` (at most 6 decimals, at most 100) exactly."""
    if type(text) is not str:
        raise MoneyError(f"percent must be a decimal string such as '0.5', got {type(text).__name__}")
    whole = text.partition(".")[0]
    if _is_digits(whole) and int(whole[:4]) > 100:  # before parse_amount: its own bound would speak first
        raise MoneyError(f"percent {text[:40]!r} is above 100")
    try:
        numerator = parse_amount(text, MAX_DECIMALS)
    except MoneyError as exc:
        raise MoneyError(f"percent {text[:40]!r} is not a decimal string with at most 6 decimals") from exc
    if numerator > 100 * 10**MAX_DECIMALS:
        raise MoneyError(f"percent {text!r} is above 100")
    decimals = len(text.partition(".")[2])
    denominator = 10**decimals
    return Percent(numerator // 10 ** (MAX_DECIMALS - decimals), denominator)


def percent_of(part: int, whole: int, decimals: int = 2) -> str:
    """`part / whole` as a percentage string with `decimals` decimals, rounded half-even."""
    if whole == 0:
        return format_amount(0, decimals)
    negative = (part < 0) != (whole < 0)
    quotient, remainder = divmod(abs(part) * 100 * 10**decimals, abs(whole))
    if 2 * remainder > abs(whole) or (2 * remainder == abs(whole) and quotient % 2 == 1):
        quotient += 1
    return format_amount(-quotient if negative else quotient, decimals)
