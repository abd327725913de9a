"""Edge forms of events and results: decimal strings for money, ISO-8601 for time.

Events and results become plain JSON-ready dicts here, for the CLI now and the gateway
later. Field names are kept; which fields are money or time is listed once below.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from .events import Event
from .money import format_amount
from .ranking import AuctionResults
from .timeutil import format_instant

MONEY_FIELDS = frozenset({
    "amount", "best", "price", "own_price", "best_price", "gap", "starting_price", "estimate",
    "awarded_price", "savings", "reserve_price", "awarded_estimate", "awarded_total",
})
TIME_FIELDS = frozenset({"time", "close_at", "closed_at"})


def _value(name: str, value: Any, decimals: int) -> Any:
    if name in MONEY_FIELDS and type(value) is int:
        return format_amount(value, decimals)
    if name in TIME_FIELDS and type(value) is int:
        return format_instant(value)
    if isinstance(value, tuple):
        return [_record(v, decimals) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _record(value, decimals)
    return value


def _record(obj: Any, decimals: int) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _value(f.name, getattr(obj, f.name), decimals) for f in fields(obj)}
    return obj


def event_to_dict(event: Event, decimals: int) -> dict[str, Any]:
    """An event as ``{"type": "BidAccepted", "time": "...Z", ...}``."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for name, value in event._asdict().items():
        out[name] = _value(name, value, decimals)
    return out


def results_to_dict(results: AuctionResults) -> dict[str, Any]:
    """Auction results with money as decimal strings and times as ISO-8601."""
    out: dict[str, Any] = _record(results, results.decimals)
    return out

