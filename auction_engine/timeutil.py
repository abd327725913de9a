"""Time at the edges: ISO-8601 UTC instants and human durations, to integer microseconds.

The core only sees integers (microseconds since the Unix epoch, UTC); these helpers are
for configuration, scenarios and output. Errors raise `TimeFormatError`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

US_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION = re.compile(r"(\d+)(h|ms|m|s|us)")
_UNIT_US = {"h": 3600 * US_PER_S, "m": 60 * US_PER_S, "s": US_PER_S, "ms": 1000, "us": 1}


class TimeFormatError(ValueError):
    """An instant or duration that cannot be read."""


def parse_instant(text: object) -> int:
    """Parse an ISO-8601 instant with an explicit offset (``...Z`` or ``+01:00``) to µs."""
    if type(text) is not str:
        raise TimeFormatError(f"expected an ISO-8601 time such as '2026-03-02T10:00:00Z', got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TimeFormatError(f"{text[:40]!r} is not an ISO-8601 time such as '2026-03-02T10:00:00Z'") from None
    if moment.tzinfo is None:
        raise TimeFormatError(f"{text[:40]!r} has no UTC offset; add 'Z' or '+00:00'")
    try:
        delta = moment - _EPOCH
    except OverflowError:  # an offset that takes the instant out of years 1-9999
        raise TimeFormatError(f"{text[:40]!r} is out of range") from None
    return (delta.days * 86400 + delta.seconds) * US_PER_S + delta.microseconds


def format_instant(us: int) -> str:
    """Format µs since the epoch as ISO-8601 UTC with microseconds and a ``Z``."""
    moment = _EPOCH + timedelta(microseconds=us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def parse_duration(value: object) -> int:
    """Parse a duration to µs: whole seconds as an integer, or a string like ``"1h30m"``,
    ``"2m"``, ``"90s"``, ``"250ms"``, ``"500us"`` (units may be combined, largest first)."""
    if type(value) is int:
        if value < 0:
            raise TimeFormatError(f"duration {value} is negative")
        return value * US_PER_S
    if type(value) is not str or not value:
        raise TimeFormatError(f"expected a duration such as '2m' or '90s', got {value!r:.40}")
    parts = _DURATION.findall(value)
    if "".join(n + u for n, u in parts) != value:
        raise TimeFormatError(f"{value[:40]!r} is not a duration such as '1h30m', '2m', '90s' or '250ms'")
    return sum(int(n) * _UNIT_US[u] for n, u in parts)


def format_duration(us: int) -> str:
    """Format µs as the shortest duration string `parse_duration` reads back."""
    if us == 0:
        return "0s"
    out = []
    for unit in ("h", "m", "s", "ms", "us"):
        count, us = divmod(us, _UNIT_US[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
