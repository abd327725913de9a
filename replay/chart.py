"""The audit report's chart: one lot's price over time as inline SVG (no script, nothing loaded).

`chart(series)` returns safe markup: the step line of the best price, a point per accepted
bid, the starting and reserve prices, a mark per extension and shaded suspensions, with
axes at round prices and round UTC instants; then its legend. Text from data is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from auction_engine.events import BidAccepted, Event, LotCancelled, LotExtended, LotResumed, LotSuspended
from auction_engine.timeutil import format_instant

US_PER_S = 1_000_000
WIDTH, HEIGHT = 760, 300  # the chart's size in SVG units (and CSS pixels)
LEFT, RIGHT, TOP, BOTTOM = 100, 130, 16, 48  # margins around the plot area
_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True, slots=True)
class Series:
    """What one lot's chart shows: its events in journal order, from `start` (its opening)
    to `end` (its close, or scheduled close); `money` and `who` name prices and bidders as
    the report may (pseudonyms unless revealed)."""

    lot_id: str
    events: Sequence[Event]
    start: int
    end: int
    starting_price: int
    reserve: int | None
    currency: str
    money: Callable[[int | None], str]
    who: Callable[[str], str]


def _e(value: object) -> str:
    """Text from data, escaped as the template escapes it (html.escape: the same entities)."""
    return html.escape(str(value), quote=True)


def _time(us: int) -> str:
    return format_instant(us)


def _hms(us: int) -> str:
    return format_instant(us)[11:19]


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps time (µs) and price (minor units) to SVG coordinates; both spans are non-zero."""

    t0: int
    t1: int
    lo: int
    hi: int

    def x(self, t: int) -> float:
        t = min(max(t, self.t0), self.t1)
        return LEFT + (t - self.t0) * (WIDTH - LEFT - RIGHT) / (self.t1 - self.t0)

    def y(self, price: int) -> float:
        return TOP + (self.hi - price) * (HEIGHT - TOP - BOTTOM) / (self.hi - self.lo)


def _frame(s: Series, accepted: Sequence[BidAccepted]) -> _Frame:
    """From the lot's opening to its close (or scheduled close); prices padded by 5 %."""
    values = [s.starting_price, *(e.amount for e in accepted), *([] if s.reserve is None else [s.reserve])]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) // 20, hi // 50 if hi == lo else 0, 1)
    return _Frame(s.start, max(s.end, s.start + US_PER_S), max(lo - pad, 0), hi + pad)


def _nice_step(raw: int) -> int:
    """The smallest of 1, 2, 5 × 10^k that is at least `raw` (itself at least 1)."""
    scale = 1
    while True:
        for base in (1, 2, 5):
            if base * scale >= raw:
                return base * scale
        scale *= 10


def _price_ticks(f: _Frame) -> list[int]:
    step = _nice_step(max(-(-(f.hi - f.lo) // 6), 1))
    first = -(-f.lo // step) * step
    return list(range(first, f.hi + 1, step))


def _time_ticks(f: _Frame) -> list[int]:
    """Ticks at round UTC instants, about 4 to 8 of them across the frame."""
    raw = (f.t1 - f.t0) / 7
    step_s = next((s for s in _TIME_STEPS_S if s * US_PER_S >= raw), 0)
    step = step_s * US_PER_S or _nice_step(int(raw // (86400 * US_PER_S)) + 1) * 86400 * US_PER_S
    first = -(-f.t0 // step) * step
    return list(range(first, f.t1 + 1, step))


def chart(s: Series) -> Markup:
    """The lot's price over time as inline SVG, with its legend."""
    accepted = [e for e in s.events if isinstance(e, BidAccepted)]
    f = _frame(s, accepted)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">',
        f"<title>Lot {_e(s.lot_id)}: price over time</title>",
        _suspensions(f, s.events), _axes(s, f), _references(s, f), _extension_marks(f, s.events),
        _best_line(f, accepted), _points(s, f, accepted), _empty_note(accepted), "</svg>", _legend(s, f),
    ]
    return Markup("".join(parts))  # every piece built here, data escaped by _e


def _axes(s: Series, f: _Frame) -> str:
    """The plot's frame, price grid with labels, time ticks with labels, and the time caption."""
    width, height = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    out = [f'<rect class="axis" x="{LEFT}" y="{TOP}" width="{width}" height="{height}" fill="none"/>']
    out += [_price_tick(f.y(p), s.money(p)) for p in _price_ticks(f)]
    out += [_time_tick(f.x(t), _hms(t)) for t in _time_ticks(f)]
    out.append(f'<text x="{LEFT + width / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{_e(_days(f))}</text>')
    return "".join(out)


def _price_tick(y: float, label: str) -> str:
    return (f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
            f'<text x="{LEFT - 6}" y="{y:.1f}" text-anchor="end" dominant-baseline="middle">{_e(label)}</text>')


def _time_tick(x: float, label: str) -> str:
    bottom = HEIGHT - BOTTOM
    return (f'<line class="axis" x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}"/>'
            f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{_e(label)}</text>')


def _days(f: _Frame) -> str:
    first, last = format_instant(f.t0)[:10], format_instant(f.t1)[:10]
    return f"time (UTC) {first}" if first == last else f"time (UTC) {first} to {last}"


def _hline(f: _Frame, price: int, cls: str, label: str) -> str:
    y = f"{f.y(price):.1f}"
    return (f'<line class="{cls}" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
            f'<text x="{WIDTH - RIGHT + 4}" y="{y}" dominant-baseline="middle">{_e(label)}</text>')


def _references(s: Series, f: _Frame) -> str:
    out = [_hline(f, s.starting_price, "ref-start", f"starting {s.money(s.starting_price)}")]
    if s.reserve is not None:
        out.append(_hline(f, s.reserve, "ref-reserve", f"reserve {s.money(s.reserve)}"))
    return "".join(out)


def _extension_marks(f: _Frame, events: Iterable[Event]) -> str:
    out = []
    for e in events:
        if isinstance(e, LotExtended):
            x = f"{f.x(e.time):.1f}"
            tip = f"extension {e.extensions} at {_hms(e.time)}: close moved to {_hms(e.close_at)}"
            out.append(f'<line class="ext" x1="{x}" y1="{TOP}" x2="{x}" y2="{HEIGHT - BOTTOM}">'
                       f"<title>{_e(tip)}</title></line>")
    return "".join(out)


def _suspensions(f: _Frame, events: Sequence[Event]) -> str:
    """Shaded spans while the lot was suspended (to its resumption, cancellation or the frame's end)."""
    out, since = [], None
    for e in [*events, None]:
        if isinstance(e, LotSuspended):
            since = e.time
        elif since is not None and (e is None or isinstance(e, LotResumed | LotCancelled)):
            x0, x1 = f.x(since), f.x(f.t1 if e is None else e.time)
            out.append(f'<rect class="susp" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 1):.1f}" '
                       f'height="{HEIGHT - TOP - BOTTOM}"><title>suspended</title></rect>')
            since = None
    return "".join(out)


def _best_line(f: _Frame, accepted: Sequence[BidAccepted]) -> str:
    """The best price after each accepted bid, as a step line running on to the close."""
    if not accepted:
        return ""
    path = [f"M{f.x(accepted[0].time):.1f},{f.y(accepted[0].best):.1f}"]
    path += [f"H{f.x(e.time):.1f}V{f.y(e.best):.1f}" for e in accepted[1:]]
    path.append(f"H{f.x(f.t1):.1f}")
    return f'<path class="best" d="{"".join(path)}"/>'


def _points(s: Series, f: _Frame, accepted: Sequence[BidAccepted]) -> str:
    return "".join(
        f'<circle class="bid" cx="{f.x(e.time):.1f}" cy="{f.y(e.amount):.1f}" r="3.5">'
        f"<title>{_e(f'{_hms(e.time)} {s.who(e.bidder_id)} {s.money(e.amount)}')}</title></circle>"
        for e in accepted
    )


def _empty_note(accepted: Sequence[BidAccepted]) -> str:
    if accepted:
        return ""
    x, y = (LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">no accepted bid</text>'


def _legend(s: Series, f: _Frame) -> str:
    keys = [("#1565c0", "best price"), ("#777", "starting price"), ("#ef6c00", "extension"), ("#b0b7c3", "suspension")]
    if s.reserve is not None:
        keys.insert(2, ("#c62828", "reserve price"))
    swatches = "".join(f'<span><span class="sw" style="background:{c}"></span>{t}</span>' for c, t in keys)
    return (f'<p class="legend muted">{swatches}<span>● accepted bid</span>'
            f"<br>From {_e(_time(f.t0))} to {_e(_time(f.t1))}; prices in {_e(s.currency)}.</p>")
