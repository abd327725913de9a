"""Money and time at the edges: exact parsing, formatting and rounding."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from auction_engine.money import (
    MAX_AMOUNT,
    MoneyError,
    Percent,
    amount_problem,
    format_amount,
    parse_amount,
    parse_percent,
    percent_of,
)
from auction_engine.timeutil import TimeFormatError, format_duration, format_instant, parse_duration, parse_instant


@pytest.mark.parametrize(("text", "decimals", "minor"), [
    ("0", 2, 0), ("1234.50", 2, 123450), ("1234.5", 2, 123450), ("1234", 2, 123400), ("0.01", 2, 1),
    ("7", 0, 7), ("1.234", 3, 1234), ("9999999999999999.99", 2, 10**18 - 1),
    ("999999999999999999", 0, 10**18 - 1), ("999999999999.999999", 6, 10**18 - 1),
])
def test_parse_amount(text: str, decimals: int, minor: int) -> None:
    assert parse_amount(text, decimals) == minor


@pytest.mark.parametrize("text", [
    "", ".", "1.", ".5", "-1", "+1", "1e3", " 1", "1 ", "1,50", "1.234", "１２", "1_000", "0x10", "NaN",
    "1234567890123456789", "1.2.3", "²", "10000000000000000.00", "184467440737095516.16", "9" * 5000,
])
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(MoneyError) as exc:
        parse_amount(text, 2)
    assert exc.value.code == "invalid_amount"


@pytest.mark.parametrize("value", [12, 1.5, None, b"1", ["1"]])
def test_parse_amount_rejects_non_strings(value: object) -> None:
    with pytest.raises(MoneyError):
        parse_amount(value, 2)


@given(st.integers(min_value=0, max_value=MAX_AMOUNT), st.integers(min_value=0, max_value=6))
def test_format_parse_round_trip(minor: int, decimals: int) -> None:
    assert parse_amount(format_amount(minor, decimals), decimals) == minor


@given(st.from_regex(r"[0-9]{1,19}(\.[0-9]{1,6})?", fullmatch=True), st.integers(min_value=0, max_value=6))
@example("0" * 19, 0)  # leading zeros: a small number, not a long one
def test_every_amount_that_parses_is_within_the_one_bound(text: str, decimals: int) -> None:
    """The edge's grammar over and past its documented range: what parses is at most
    MAX_AMOUNT (so the journal and a checkpoint hold it); the rest is a coded refusal."""
    whole, _, frac = text.partition(".")
    exact = int(whole) * 10**decimals + int(frac.ljust(decimals, "0") or "0") if len(frac) <= decimals else None
    try:
        minor = parse_amount(text, decimals)
    except MoneyError as exc:
        assert exc.code == "invalid_amount"
        assert exact is None or exact > MAX_AMOUNT, (text, decimals)
        assert amount_problem(text, decimals) == str(exc)
    else:
        assert minor == exact and 0 <= minor <= MAX_AMOUNT


def test_amount_problem_says_why() -> None:
    assert amount_problem("abc", 2) == "amount 'abc' is not a decimal string such as '1234.50'"
    assert amount_problem("1.234", 2) == "amount '1.234' has more than 2 decimals"
    assert amount_problem(MAX_AMOUNT + 1, 2) == amount_problem("10000000000000000.00", 2) \
        == "an amount is at most 9999999999999999.99"
    assert amount_problem(0, 2) == amount_problem(None, 2) == "the amount must be a positive number of minor units"


def test_format_amount_negative_and_zero_decimals() -> None:
    assert format_amount(-150, 2) == "-1.50"
    assert format_amount(42, 0) == "42"


def test_percent_rounding_directions() -> None:
    half = parse_percent("0.5")
    assert half == Percent(5, 10)
    assert str(half) == "0.5"
    assert half.of_rounded_up(1001) == 6  # 5.005 -> 6: never less than the percent
    assert half.of_rounded_down(1001) == 5  # 5.005 -> 5: never more than the percent
    assert half.of_rounded_up(1000) == half.of_rounded_down(1000) == 5
    assert parse_percent("100").of_rounded_down(777) == 777


@pytest.mark.parametrize("text", ["100.0000001", "101", "-1", "abc", "1e2", "1" + "0" * 20, "5.", ".5"])
def test_parse_percent_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_percent(text)


def test_parse_percent_says_above_100_for_huge_numbers() -> None:
    with pytest.raises(MoneyError, match="above 100"):
        parse_percent("1" + "0" * 20)


@pytest.mark.parametrize(("part", "whole", "expected"), [
    (1, 3, "33.33"), (2, 3, "66.67"), (1, 8, "12.50"), (1, 800, "0.12"), (3, 800, "0.38"),
    (-1, 3, "-33.33"), (0, 5, "0.00"), (5, 0, "0.00"), (2175, 10000, "21.75"),
])
def test_percent_of_half_even(part: int, whole: int, expected: str) -> None:
    assert percent_of(part, whole) == expected


def test_instants() -> None:
    assert parse_instant("1970-01-01T00:00:00Z") == 0
    assert parse_instant("2026-03-02T10:00:00.000001Z") == 1772445600000001
    assert parse_instant("2026-03-02T11:00:00+01:00") == parse_instant("2026-03-02T10:00:00Z")
    assert format_instant(1772445600000001) == "2026-03-02T10:00:00.000001Z"
    for bad in ("2026-03-02T10:00:00", "yesterday", "", 5):
        with pytest.raises(TimeFormatError):
            parse_instant(bad)


@given(st.integers(min_value=0, max_value=253402300799999999))  # up to 9999-12-31T23:59:59.999999Z
def test_instant_round_trip(us: int) -> None:
    assert parse_instant(format_instant(us)) == us


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400 * 10**6
    assert parse_duration("250ms") == 250_000
    assert parse_duration("2m") == parse_duration(120)
    assert format_duration(5_400_250_000) == "1h30m250ms"
    for bad in ("", "2x", "m2", "1.5s", -1, "2m ", 1.5, None):
        with pytest.raises(TimeFormatError):
            parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_round_trip(us: int) -> None:
    assert parse_duration(format_duration(us)) == us
