"""A standalone HTML audit report of one auction, rebuilt from its journal by replay.

`render_report(history)` returns one self-contained, deterministic HTML document (inline CSS
and SVG only, nothing loaded from anywhere): verification, summary, per-lot results and charts.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auction_engine.auction import Auction
from auction_engine.events import (
    REJECTION_CODES,
    BidAccepted,
    BidderRevoked,
    CommandRejected,
    Event,
    LotAwarded,
    LotCancelled,
    LotClosed,
    LotExtended,
    LotOpened,
    LotResumed,
    LotSuspended,
    LotUnsuccessful,
)
from auction_engine.money import format_amount
from auction_engine.ranking import AuctionResults, LotResult
from auction_engine.timeutil import format_instant
from replay.history import BidRow, History

US_PER_S = 1_000_000
WIDTH, HEIGHT = 760, 300  # the chart's size in SVG units (and CSS pixels)
LEFT, RIGHT, TOP, BOTTOM = 100, 130, 16, 48  # margins around the plot area
_TIME_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;margin:0;background:#f5f6f8}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:2px solid #d5d9e0}
h3{font-size:15px;margin:18px 0 6px}section{background:#fff;padding:4px 16px 16px;margin:16px 0;border-radius:6px}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{border:1px solid #d5d9e0;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#eef0f4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{width:30%}
code,.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.verify{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600;margin:12px 0}
.verify.ok{background:#e3f4e6;border:2px solid #2e7d32}.verify.failed{background:#fde7e7;border:2px solid #c62828}
.verify.unknown{background:#fff6dd;border:2px solid #b8860b}.muted{color:#5b6473}
.status{display:inline-block;padding:0 6px;border-radius:4px;font-weight:600}
.status.awarded{background:#e3f4e6}.status.unsuccessful{background:#fde7e7}.status.pending{background:#fff6dd}
tr.accepted td{background:#fbfffb}tr.rejected td{color:#8a1c1c;background:#fff8f8}
svg{background:#fff;border:1px solid #d5d9e0;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif;fill:#333}svg .grid{stroke:#e6e8ec}svg .axis{stroke:#555}
svg .best{fill:none;stroke:#1565c0;stroke-width:2}svg .bid{fill:#1565c0;fill-opacity:.55}
svg .ref-start{stroke:#777;stroke-dasharray:6 4}svg .ref-reserve{stroke:#c62828;stroke-dasharray:2 3}
svg .ext{stroke:#ef6c00;stroke-dasharray:3 3}svg .susp{fill:#b0b7c3;fill-opacity:.3}
.legend span{margin-right:14px}.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
"""


class _Html(str):
    """Markup that is already safe: `_e` never escapes it again."""

    __slots__ = ()


def _e(value: object) -> _Html:
    """Escape text that comes from data (markup from this module passes unchanged)."""
    return value if isinstance(value, _Html) else _Html(html.escape(str(value), quote=True))


def _join(parts: Iterable[str]) -> _Html:
    return _Html("".join(parts))


def _tr(cells: Iterable[object], *, cls: str = "", num: Sequence[int] = ()) -> _Html:
    """A table row; cells are escaped, those at `num` positions right-aligned."""
    attr = f' class="{cls}"' if cls else ""
    tds = (f'<td class="num">{_e(c)}</td>' if i in num else f"<td>{_e(c)}</td>" for i, c in enumerate(cells))
    return _Html(f"<tr{attr}>{''.join(tds)}</tr>")


def _table(headers: Sequence[str], rows: Sequence[_Html], *, num: Sequence[int] = (), empty: str = "none") -> _Html:
    """A table with a header row; a single muted row saying `empty` when there is no row."""
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join(rows) or f'<tr><td colspan="{len(headers)}" class="muted">{_e(empty)}</td></tr>'
    return _Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _facts(pairs: Iterable[tuple[str, object]]) -> _Html:
    """A two-column table of labelled values."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return _Html(f'<table class="facts"><tbody>{rows}</tbody></table>')


def _time(us: int | None) -> str:
    return "—" if us is None else format_instant(us)


def _hms(us: int) -> str:
    return format_instant(us)[11:19]


def _lot_of(event: Event) -> str | None:
    lot_id = getattr(event, "lot_id", None)
    return lot_id if isinstance(lot_id, str) else None


@dataclass(frozen=True, slots=True)
class _Ctx:
    """What every part of the report needs: the history, its results and the reveal rule."""

    h: History
    auction: Auction
    results: AuctionResults
    reveal: bool
    events: tuple[Event, ...] = ()
    by_lot: dict[str, list[Event]] = field(default_factory=dict)

    def money(self, minor: int | None) -> str:
        return "—" if minor is None else format_amount(minor, self.results.decimals)

    def cash(self, minor: int | None) -> str:
        return "—" if minor is None else f"{self.money(minor)} {self.results.currency}"

    def who(self, bidder_id: str) -> str:
        """A bidder as this report may name it: the pseudonym, and the identity only if revealed."""
        name = self.auction.pseudonyms.get(bidder_id, "(not admitted)")
        return f"{name} {bidder_id}" if self.reveal else name

    def amount(self, value: object) -> str:
        """A bid's amount as sent: money if it was minor units, else what was sent, shortened."""
        return self.money(value) if type(value) is int else repr(value)[:40]


def _context(h: History, reveal: bool) -> _Ctx:
    auction = h.engine.auction(h.auction_id)
    reveal = reveal and auction.finished
    events = tuple(e for step in h.steps for e in step.events)
    by_lot: dict[str, list[Event]] = {}
    for event in events:
        lot_id = _lot_of(event)
        if lot_id is not None:
            by_lot.setdefault(lot_id, []).append(event)
    return _Ctx(h, auction, h.results(reveal=reveal), reveal, events, by_lot)


def render_report(h: History, *, reveal: bool = False, verification: Mapping[str, Any] | None = None) -> str:
    """One standalone HTML document reporting the auction replayed in `h`.

    Identities appear only with `reveal`, and only once the auction is final; elsewhere
    bidders are named by pseudonym. `verification` is a `VerifyResult.to_dict()`-like
    mapping (at least ``ok``), shown first; without it the report says it is unverified.
    """
    ctx = _context(h, reveal)
    title = f"Auction report {ctx.results.auction_id}: {ctx.results.title}"
    body = _join([
        f"<h1>{_e(ctx.results.title)}</h1>",
        f'<p class="muted">Audit report of auction <code>{_e(ctx.results.auction_id)}</code>, '
        "rebuilt by replaying its journal through the auction core.</p>",
        _verification(ctx, verification), _summary(ctx), _totals(ctx), _overview(ctx),
        *(_lot_section(ctx, lot) for lot in ctx.results.lots),
        _rejections(ctx), _auction_incidents(ctx), _footer(ctx),
    ])
    return _document(title, body)


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


# -- verification, summary, totals ------------------------------------------------------------


def _verification(ctx: _Ctx, verification: Mapping[str, Any] | None) -> _Html:
    """The verification outcome, first and prominent, then its details."""
    if verification is None:
        cls, text = "unknown", "NOT VERIFIED: no verification result was supplied with this report."
    elif verification.get("ok") is True:
        cls, text = "ok", f"Journal VERIFIED: {verification.get('records', '?')} record(s) checked and replayed."
    else:
        cls, text = "failed", "Journal verification FAILED: " + _problem_text(verification.get("problem"))
    banner = f'<div class="verify {cls}" id="verification">{_e(text)}</div>'
    if verification is None:
        return _Html(banner)
    return _Html(banner + _facts(_verification_details(ctx, verification)))


def _problem_text(problem: object) -> str:
    if isinstance(problem, Mapping):
        return f"{problem.get('code', '?')}: {problem.get('message', '')}"
    return "see the details below" if problem is None else str(problem)


def _verification_details(ctx: _Ctx, verification: Mapping[str, Any]) -> list[tuple[str, object]]:
    """Every entry of the verification result but the other auctions; this auction's head compared."""
    shown = sorted((str(k), v) for k, v in verification.items() if k not in ("ok", "auctions"))
    pairs: list[tuple[str, object]] = [(k, _plain(v)) for k, v in shown]
    auctions = verification.get("auctions")
    mine = auctions.get(ctx.h.auction_id) if isinstance(auctions, Mapping) else None
    if isinstance(mine, Mapping) and "head" in mine:
        same = mine["head"] == ctx.h.head
        pairs.append(("verified head of this auction", f"{mine['head']} ({'matches' if same else 'DIFFERS from'} "
                                                       "the replayed head)"))
    return pairs


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _summary(ctx: _Ctx) -> _Html:
    cfg, steps = ctx.auction.config, ctx.h.steps
    pairs: list[tuple[str, object]] = [
        ("Auction id", cfg.auction_id), ("Title", cfg.title), ("Buyer reference", cfg.buyer_ref),
        ("Currency", f"{cfg.currency} ({cfg.decimals} decimals)"), ("Start", _time(cfg.start)),
        ("End (first lot's scheduled close)", _time(cfg.end)), ("Lots", len(cfg.lots)),
        ("Bidders admitted", len(ctx.auction.pseudonyms)), ("Minimum bidders per lot", cfg.min_bidders),
        ("Visibility during the auction", cfg.visibility),
        ("Status", "final" if ctx.results.final else "not final (lots still pending)"),
        ("Journal records of this auction", len(steps)),
        ("Global sequence range", f"{steps[0].gseq} – {steps[-1].gseq}" if steps else "—"),
        ("Head (SHA-256 of the last record)", ctx.h.head),
        ("Identities", "revealed" if ctx.reveal else "withheld (pseudonyms only)"),
    ]
    return _Html(f'<section id="summary"><h2>Summary</h2>{_facts(pairs)}</section>')


def _totals(ctx: _Ctx) -> _Html:
    r = ctx.results
    awarded = sum(1 for lot in r.lots if lot.status == "awarded")
    pairs: list[tuple[str, object]] = [
        ("Lots awarded", f"{awarded} of {len(r.lots)}"),
        ("Estimates of all lots", ctx.cash(sum(lot.estimate for lot in r.lots))),
        ("Estimates of the awarded lots", ctx.cash(r.awarded_estimate)),
        ("Total awarded", ctx.cash(r.awarded_total)),
        ("Savings on the awarded lots", f"{ctx.cash(r.savings)} ({r.savings_percent} %)"),
    ]
    return _Html(f'<section id="totals"><h2>Totals</h2>{_facts(pairs)}</section>')


def _status(lot: LotResult) -> _Html:
    reason = f" ({lot.reason})" if lot.reason else ""
    return _Html(f'<span class="status {_e(lot.status)}">{_e(lot.status)}</span>{_e(reason)}')


def _winner(lot: LotResult) -> str:
    if lot.winner_pseudonym is None:
        return "—"
    return f"{lot.winner_pseudonym} {lot.winner_id}" if lot.winner_id else lot.winner_pseudonym


def _overview(ctx: _Ctx) -> _Html:
    rows = [
        _tr([_Html(f'<a href="#lot-{_e(lot.lot_id)}">{_e(lot.lot_id)}</a>'), lot.title, _status(lot),
             _winner(lot), ctx.money(lot.awarded_price), ctx.money(lot.estimate),
             "—" if lot.savings_percent is None else f"{lot.savings_percent} %", lot.bids, lot.rejected_bids,
             lot.extensions], num=(4, 5, 6, 7, 8, 9))
        for lot in ctx.results.lots
    ]
    headers = ["Lot", "Title", "Status", "Winner", f"Awarded ({ctx.results.currency})",
               f"Estimate ({ctx.results.currency})", "Savings", "Accepted", "Rejected", "Extensions"]
    return _Html(f'<section id="lots"><h2>Lots</h2>{_table(headers, rows, num=(4, 5, 6, 7, 8, 9))}</section>')


# -- one lot ------------------------------------------------------------------------------------


def _lot_section(ctx: _Ctx, lot: LotResult) -> _Html:
    return _join([
        f'<section class="lot" id="lot-{_e(lot.lot_id)}"><h2>Lot {_e(lot.lot_id)}: {_e(lot.title)}</h2>',
        _lot_facts(ctx, lot), "<h3>Price over time</h3>", _chart(ctx, lot),
        "<h3>Final ranking</h3>", _ranking(ctx, lot),
        "<h3>Clock history: opening, extensions, incidents, close</h3>", _clock_history(ctx, lot),
        "<h3>Every bid</h3>", _bid_log(ctx, lot), "</section>",
    ])


def _lot_facts(ctx: _Ctx, lot: LotResult) -> _Html:
    cfg = ctx.auction.lots[lot.lot_id].config
    savings = "—" if lot.savings is None else f"{ctx.cash(lot.savings)} ({lot.savings_percent} %)"
    pairs: list[tuple[str, object]] = [
        ("Status", _status(lot)), ("Winner", _winner(lot)), ("Awarded price", ctx.cash(lot.awarded_price)),
        ("Starting (ceiling) price", ctx.cash(lot.starting_price)), ("Estimate", ctx.cash(lot.estimate)),
        ("Reserve price", ctx.cash(cfg.reserve_price)), ("Savings against the estimate", savings),
        ("Accepted bids", lot.bids), ("Rejected bids", lot.rejected_bids), ("Extensions", lot.extensions),
        ("Opened", _time(_opened_at(ctx, lot.lot_id))),
        ("Closed", f"{_time(lot.closed_at)} ({lot.close_reason or 'not closed'})"),
    ]
    return _facts(pairs)


def _ranking(ctx: _Ctx, lot: LotResult) -> _Html:
    headers = ["Rank", "Bidder", f"Price ({ctx.results.currency})", "Bid time"]
    rows = [
        _tr([r.rank, f"{r.pseudonym} {r.bidder_id}" if r.bidder_id else r.pseudonym, ctx.money(r.price),
             _time(r.time)], num=(0, 2))
        for r in lot.ranking
    ]
    return _table(headers, rows, num=(0, 2), empty="no standing bid")


def _clock_history(ctx: _Ctx, lot: LotResult) -> _Html:
    rows = [row for e in ctx.by_lot.get(lot.lot_id, []) if (row := _clock_row(ctx, e)) is not None]
    return _table(["Time", "Event", "Close", "Extensions", "Detail"], rows, num=(3,))


def _clock_row(ctx: _Ctx, e: Event) -> _Html | None:
    """One row of a lot's clock history, None for the events it does not show (bids)."""
    match e:
        case LotOpened():
            return _tr([_time(e.time), "opened", _time(e.close_at), "", "scheduled close"], cls="ev-opened")
        case LotExtended():
            return _tr([_time(e.time), "extended", _time(e.close_at), e.extensions, ""], cls="ev-extended", num=(3,))
        case LotSuspended():
            return _tr([_time(e.time), "suspended", "", "", e.reason], cls="ev-suspended")
        case LotResumed():
            return _tr([_time(e.time), "resumed", _time(e.close_at), "", "close moved by the suspension"],
                       cls="ev-resumed")
        case LotCancelled():
            return _tr([_time(e.time), "cancelled", "", "", e.reason], cls="ev-cancelled")
        case LotClosed():
            return _tr([_time(e.time), "closed", _time(e.time), "", e.reason], cls="ev-closed")
        case LotAwarded():
            return _tr([_time(e.time), "awarded", "", "", f"{ctx.who(e.bidder_id)} at {ctx.cash(e.amount)}"],
                       cls="ev-awarded")
        case LotUnsuccessful():
            return _tr([_time(e.time), "unsuccessful", "", "", e.reason], cls="ev-unsuccessful")
    return None


def _bid_log(ctx: _Ctx, lot: LotResult) -> _Html:
    headers = ["Record", "Time", "Bidder", f"Amount ({ctx.results.currency})", "Outcome", "Rank after",
               "Best after", "Extended to"]
    rows = [_bid_row(ctx, b) for b in ctx.h.bids if b.lot_id == lot.lot_id]
    return _table(headers, rows, num=(0, 3, 5, 6), empty="no bid")


def _bid_row(ctx: _Ctx, b: BidRow) -> _Html:
    outcome = "accepted" if b.outcome == "accepted" else f"rejected: {b.code}"
    cells = [b.gseq, _time(b.time), ctx.who(b.bidder_id), ctx.amount(b.amount), outcome,
             "—" if b.rank is None else b.rank, ctx.money(b.best), _time(b.extended_to)]
    return _tr(cells, cls=b.outcome, num=(0, 3, 5, 6))


def _opened_at(ctx: _Ctx, lot_id: str) -> int | None:
    return next((e.time for e in ctx.by_lot.get(lot_id, []) if isinstance(e, LotOpened)), None)


# -- the chart ----------------------------------------------------------------------------------


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


def _frame(ctx: _Ctx, lot: LotResult, accepted: Sequence[BidAccepted]) -> _Frame:
    """From the lot's opening to its close (or scheduled close); prices padded by 5 %."""
    clock = ctx.auction.lots[lot.lot_id].clock
    t0 = _opened_at(ctx, lot.lot_id) or ctx.auction.config.start
    t1 = lot.closed_at if lot.closed_at is not None else clock.close_at
    t1 = max(t1, t0 + US_PER_S)
    lo, hi = _price_domain(ctx, lot, accepted)
    return _Frame(t0, t1, lo, hi)


def _price_domain(ctx: _Ctx, lot: LotResult, accepted: Sequence[BidAccepted]) -> tuple[int, int]:
    reserve = ctx.auction.lots[lot.lot_id].config.reserve_price
    values = [lot.starting_price, *(e.amount for e in accepted), *([] if reserve is None else [reserve])]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) // 20, hi // 50 if hi == lo else 0, 1)
    return max(lo - pad, 0), hi + pad


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


def _chart(ctx: _Ctx, lot: LotResult) -> _Html:
    """The lot's price over time as inline SVG, with its legend."""
    events = ctx.by_lot.get(lot.lot_id, [])
    accepted = [e for e in events if isinstance(e, BidAccepted)]
    f = _frame(ctx, lot, accepted)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">',
        f"<title>Lot {_e(lot.lot_id)}: price over time</title>",
        _suspensions(f, events), _axes(ctx, f), _references(ctx, lot, f), _extension_marks(f, events),
        _best_line(f, accepted), _points(ctx, f, accepted), _empty_note(accepted), "</svg>",
    ]
    return _join([*parts, _legend(ctx, lot, f)])


def _axes(ctx: _Ctx, f: _Frame) -> _Html:
    """The plot's frame, price grid with labels, time ticks with labels, and the time caption."""
    width, height = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    out = [f'<rect class="axis" x="{LEFT}" y="{TOP}" width="{width}" height="{height}" fill="none"/>']
    out += [_price_tick(f.y(p), ctx.money(p)) for p in _price_ticks(f)]
    out += [_time_tick(f.x(t), _hms(t)) for t in _time_ticks(f)]
    out.append(f'<text x="{LEFT + width / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{_e(_days(f))}</text>')
    return _join(out)


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


def _hline(f: _Frame, price: int, cls: str, label: str) -> _Html:
    y = f"{f.y(price):.1f}"
    return _Html(f'<line class="{cls}" x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}"/>'
                 f'<text x="{WIDTH - RIGHT + 4}" y="{y}" dominant-baseline="middle">{_e(label)}</text>')


def _references(ctx: _Ctx, lot: LotResult, f: _Frame) -> _Html:
    out = [_hline(f, lot.starting_price, "ref-start", f"starting {ctx.money(lot.starting_price)}")]
    reserve = ctx.auction.lots[lot.lot_id].config.reserve_price
    if reserve is not None:
        out.append(_hline(f, reserve, "ref-reserve", f"reserve {ctx.money(reserve)}"))
    return _join(out)


def _extension_marks(f: _Frame, events: Sequence[Event]) -> _Html:
    out = []
    for e in events:
        if isinstance(e, LotExtended):
            x = f"{f.x(e.time):.1f}"
            tip = f"extension {e.extensions} at {_hms(e.time)}: close moved to {_hms(e.close_at)}"
            out.append(f'<line class="ext" x1="{x}" y1="{TOP}" x2="{x}" y2="{HEIGHT - BOTTOM}">'
                       f"<title>{_e(tip)}</title></line>")
    return _join(out)


def _suspensions(f: _Frame, events: Sequence[Event]) -> _Html:
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
    return _join(out)


def _best_line(f: _Frame, accepted: Sequence[BidAccepted]) -> _Html:
    """The best price after each accepted bid, as a step line running on to the close."""
    if not accepted:
        return _Html("")
    path = [f"M{f.x(accepted[0].time):.1f},{f.y(accepted[0].best):.1f}"]
    path += [f"H{f.x(e.time):.1f}V{f.y(e.best):.1f}" for e in accepted[1:]]
    path.append(f"H{f.x(f.t1):.1f}")
    return _Html(f'<path class="best" d="{"".join(path)}"/>')


def _points(ctx: _Ctx, f: _Frame, accepted: Sequence[BidAccepted]) -> _Html:
    return _join(
        f'<circle class="bid" cx="{f.x(e.time):.1f}" cy="{f.y(e.amount):.1f}" r="3.5">'
        f"<title>{_e(f'{_hms(e.time)} {ctx.who(e.bidder_id)} {ctx.money(e.amount)}')}</title></circle>"
        for e in accepted
    )


def _empty_note(accepted: Sequence[BidAccepted]) -> _Html:
    if accepted:
        return _Html("")
    x, y = (LEFT + WIDTH - RIGHT) / 2, (TOP + HEIGHT - BOTTOM) / 2
    return _Html(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">no accepted bid</text>')


def _legend(ctx: _Ctx, lot: LotResult, f: _Frame) -> _Html:
    keys = [("#1565c0", "best price"), ("#777", "starting price"), ("#ef6c00", "extension"), ("#b0b7c3", "suspension")]
    if ctx.auction.lots[lot.lot_id].config.reserve_price is not None:
        keys.insert(2, ("#c62828", "reserve price"))
    swatches = "".join(f'<span><span class="sw" style="background:{c}"></span>{t}</span>' for c, t in keys)
    return _Html(
        f'<p class="legend muted">{swatches}<span>● accepted bid</span>'
        f"<br>From {_e(_time(f.t0))} to {_e(_time(f.t1))}; prices in {_e(ctx.results.currency)}.</p>"
    )


# -- auction-wide tables ------------------------------------------------------------------------


def _rejections(ctx: _Ctx) -> _Html:
    """Rejected bids counted by lot and code, with what each code means."""
    counts = Counter((b.lot_id, b.code) for b in ctx.h.bids if b.outcome == "rejected")
    rows = [_tr([lot_id, code, REJECTION_CODES.get(code, ""), n], num=(3,)) for (lot_id, code), n in
            sorted(counts.items(), key=lambda item: (str(item[0][0]), item[0][1]))]
    if counts:
        rows.append(_tr(["all lots", "", "total", sum(counts.values())], cls="total", num=(3,)))
    table = _table(["Lot", "Code", "Meaning", "Count"], rows, num=(3,), empty="no rejected bid")
    return _Html(f'<section id="rejections"><h2>Rejected bids by reason</h2>{table}</section>')


def _auction_incidents(ctx: _Ctx) -> _Html:
    """Revocations and refused portal commands (reasons and messages only when identities are revealed)."""
    rows = []
    for e in ctx.events:
        if isinstance(e, BidderRevoked):
            rows.append(_tr([_time(e.time), "bidder revoked", ctx.who(e.bidder_id),
                             e.reason if ctx.reveal else "(withheld: may identify the bidder)"]))
        elif isinstance(e, CommandRejected):
            rows.append(_tr([_time(e.time), f"{e.command} refused", e.code,
                             e.message if ctx.reveal else "(message withheld: may identify a bidder)"]))
    table = _table(["Time", "What", "Who / code", "Detail"], rows)
    return _Html(f'<section id="incidents"><h2>Revocations and refused commands</h2>{table}</section>')


def _footer(ctx: _Ctx) -> _Html:
    return _Html(
        f'<p class="muted">Report of {_e(len(ctx.h.steps))} journal record(s) ending at head '
        f'<span class="hash">{_e(ctx.h.head)}</span>. It is deterministic: the same journal gives the same '
        "document, so its own hash can be published alongside the head.</p>"
    )
