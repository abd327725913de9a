"""A standalone HTML audit report of one auction, rebuilt from its journal by replay.

`render_report(history)` returns one self-contained, deterministic HTML document (inline CSS
and SVG only, nothing loaded from anywhere): verification, summary, per-lot results and charts.
This module gathers what the report says; templates/report.html.j2 lays it out (autoescaped),
replay/chart.py draws the charts.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup

from auction_engine.auction import Auction
from auction_engine.events import (
    REJECTION_CODES,
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
from replay.chart import Series, chart
from replay.history import BidRow, History

Pairs = list[tuple[str, object]]


def _escape(value: object) -> object:
    """Every {{ value }} as html.escape writes it (``&#x27;``, as the report always has), not
    markupsafe's entities; Markup passes unchanged."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("replay", "templates"), autoescape=True, finalize=_escape,
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


@dataclass(frozen=True, slots=True)
class Row:
    cells: Sequence[object]
    cls: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Row]


def _time(us: int | None) -> str:
    return "—" if us is None else format_instant(us)


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

    def opened_at(self, lot_id: str) -> int | None:
        return next((e.time for e in self.by_lot.get(lot_id, []) if isinstance(e, LotOpened)), None)


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
    return _TEMPLATES.get_template("report.html.j2").render(
        results=ctx.results, verification=_verification(ctx, verification), summary=_summary(ctx),
        totals=_totals(ctx), overview=_overview(ctx), lots=[_lot(ctx, lot) for lot in ctx.results.lots],
        rejections=_rejections(ctx), incidents=_incidents(ctx), records=len(h.steps), head=h.head)


# -- verification, summary, totals ------------------------------------------------------------


def _verification(ctx: _Ctx, verification: Mapping[str, Any] | None) -> dict[str, Any]:
    """The verification outcome (shown first and prominent), then its details."""
    if verification is None:
        return {"cls": "unknown", "text": "NOT VERIFIED: no verification result was supplied with this report.",
                "details": None}
    if verification.get("ok") is True:
        text = f"Journal VERIFIED: {verification.get('records', '?')} record(s) checked and replayed."
        return {"cls": "ok", "text": text, "details": _verification_details(ctx, verification)}
    problem = verification.get("problem")
    if isinstance(problem, Mapping):
        why = f"{problem.get('code', '?')}: {problem.get('message', '')}"
    else:
        why = "see the details below" if problem is None else str(problem)
    return {"cls": "failed", "text": "Journal verification FAILED: " + why,
            "details": _verification_details(ctx, verification)}


def _verification_details(ctx: _Ctx, verification: Mapping[str, Any]) -> Pairs:
    """Every entry of the verification result but the other auctions; this auction's head compared."""
    shown = sorted((str(k), v) for k, v in verification.items() if k not in ("ok", "auctions"))
    pairs: Pairs = [(k, v if isinstance(v, str) else json.dumps(v, sort_keys=True, ensure_ascii=False, default=str))
                    for k, v in shown]
    auctions = verification.get("auctions")
    mine = auctions.get(ctx.h.auction_id) if isinstance(auctions, Mapping) else None
    if isinstance(mine, Mapping) and "head" in mine:
        same = mine["head"] == ctx.h.head
        pairs.append(("verified head of this auction", f"{mine['head']} ({'matches' if same else 'DIFFERS from'} "
                                                       "the replayed head)"))
    return pairs


def _summary(ctx: _Ctx) -> Pairs:
    cfg, steps = ctx.auction.config, ctx.h.steps
    return [
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


def _totals(ctx: _Ctx) -> Pairs:
    r = ctx.results
    awarded = sum(1 for lot in r.lots if lot.status == "awarded")
    return [
        ("Lots awarded", f"{awarded} of {len(r.lots)}"),
        ("Estimates of all lots", ctx.cash(sum(lot.estimate for lot in r.lots))),
        ("Estimates of the awarded lots", ctx.cash(r.awarded_estimate)),
        ("Total awarded", ctx.cash(r.awarded_total)),
        ("Savings on the awarded lots", f"{ctx.cash(r.savings)} ({r.savings_percent} %)"),
    ]


def _status(lot: LotResult) -> Markup:
    reason = f" ({lot.reason})" if lot.reason else ""
    status = html.escape(lot.status)
    return Markup(f'<span class="status {status}">{status}</span>{html.escape(reason)}')


def _link(lot_id: str) -> Markup:
    return Markup(f'<a href="#lot-{html.escape(lot_id)}">{html.escape(lot_id)}</a>')


def _winner(lot: LotResult) -> str:
    if lot.winner_pseudonym is None:
        return "—"
    return f"{lot.winner_pseudonym} {lot.winner_id}" if lot.winner_id else lot.winner_pseudonym


def _overview(ctx: _Ctx) -> Table:
    currency = ctx.results.currency
    rows = [
        Row([_link(lot.lot_id), lot.title, _status(lot), _winner(lot), ctx.money(lot.awarded_price),
             ctx.money(lot.estimate), "—" if lot.savings_percent is None else f"{lot.savings_percent} %",
             lot.bids, lot.rejected_bids, lot.extensions])
        for lot in ctx.results.lots
    ]
    return Table(["Lot", "Title", "Status", "Winner", f"Awarded ({currency})", f"Estimate ({currency})", "Savings",
                  "Accepted", "Rejected", "Extensions"], rows)


# -- one lot ------------------------------------------------------------------------------------


def _lot(ctx: _Ctx, lot: LotResult) -> dict[str, Any]:
    cfg = ctx.auction.lots[lot.lot_id].config
    savings = "—" if lot.savings is None else f"{ctx.cash(lot.savings)} ({lot.savings_percent} %)"
    opened = ctx.opened_at(lot.lot_id)
    facts: Pairs = [
        ("Status", _status(lot)), ("Winner", _winner(lot)), ("Awarded price", ctx.cash(lot.awarded_price)),
        ("Starting (ceiling) price", ctx.cash(lot.starting_price)), ("Estimate", ctx.cash(lot.estimate)),
        ("Reserve price", ctx.cash(cfg.reserve_price)), ("Savings against the estimate", savings),
        ("Accepted bids", lot.bids), ("Rejected bids", lot.rejected_bids), ("Extensions", lot.extensions),
        ("Opened", _time(opened)), ("Closed", f"{_time(lot.closed_at)} ({lot.close_reason or 'not closed'})"),
    ]
    end = lot.closed_at if lot.closed_at is not None else ctx.auction.lots[lot.lot_id].clock.close_at
    series = Series(lot.lot_id, ctx.by_lot.get(lot.lot_id, []), opened or ctx.auction.config.start, end,
                    lot.starting_price, cfg.reserve_price, ctx.results.currency, ctx.money, ctx.who)
    currency = ctx.results.currency
    ranking = [Row([r.rank, f"{r.pseudonym} {r.bidder_id}" if r.bidder_id else r.pseudonym, ctx.money(r.price),
                    _time(r.time)]) for r in lot.ranking]
    clock = [row for e in ctx.by_lot.get(lot.lot_id, []) if (row := _clock_row(ctx, e)) is not None]
    bids = [_bid_row(ctx, b) for b in ctx.h.bids if b.lot_id == lot.lot_id]
    return {
        "lot_id": lot.lot_id, "title": lot.title, "facts": facts, "chart": chart(series),
        "ranking": Table(["Rank", "Bidder", f"Price ({currency})", "Bid time"], ranking),
        "clock": Table(["Time", "Event", "Close", "Extensions", "Detail"], clock),
        "bids": Table(["Record", "Time", "Bidder", f"Amount ({currency})", "Outcome", "Rank after", "Best after",
                       "Extended to"], bids),
    }


def _clock_row(ctx: _Ctx, e: Event) -> Row | None:
    """One row of a lot's clock history, None for the events it does not show (bids)."""
    match e:
        case LotOpened():
            return Row([_time(e.time), "opened", _time(e.close_at), "", "scheduled close"], "ev-opened")
        case LotExtended():
            return Row([_time(e.time), "extended", _time(e.close_at), e.extensions, ""], "ev-extended")
        case LotSuspended():
            return Row([_time(e.time), "suspended", "", "", e.reason], "ev-suspended")
        case LotResumed():
            return Row([_time(e.time), "resumed", _time(e.close_at), "", "close moved by the suspension"],
                       "ev-resumed")
        case LotCancelled():
            return Row([_time(e.time), "cancelled", "", "", e.reason], "ev-cancelled")
        case LotClosed():
            return Row([_time(e.time), "closed", _time(e.time), "", e.reason], "ev-closed")
        case LotAwarded():
            return Row([_time(e.time), "awarded", "", "", f"{ctx.who(e.bidder_id)} at {ctx.cash(e.amount)}"],
                       "ev-awarded")
        case LotUnsuccessful():
            return Row([_time(e.time), "unsuccessful", "", "", e.reason], "ev-unsuccessful")
    return None


def _bid_row(ctx: _Ctx, b: BidRow) -> Row:
    outcome = "accepted" if b.outcome == "accepted" else f"rejected: {b.code}"
    return Row([b.gseq, _time(b.time), ctx.who(b.bidder_id), ctx.amount(b.amount), outcome,
                "—" if b.rank is None else b.rank, ctx.money(b.best), _time(b.extended_to)], b.outcome)


# -- auction-wide tables ------------------------------------------------------------------------


def _rejections(ctx: _Ctx) -> Table:
    """Rejected bids counted by lot and code, with what each code means."""
    counts = Counter((b.lot_id, b.code) for b in ctx.h.bids if b.outcome == "rejected")
    rows = [Row([lot_id, code, REJECTION_CODES.get(code, ""), n]) for (lot_id, code), n in
            sorted(counts.items(), key=lambda item: (str(item[0][0]), item[0][1]))]
    if counts:
        rows.append(Row(["all lots", "", "total", sum(counts.values())], "total"))
    return Table(["Lot", "Code", "Meaning", "Count"], rows)


def _incidents(ctx: _Ctx) -> Table:
    """Revocations and refused portal commands (reasons and messages only when identities are revealed)."""
    rows = []
    for e in ctx.events:
        if isinstance(e, BidderRevoked):
            rows.append(Row([_time(e.time), "bidder revoked", ctx.who(e.bidder_id),
                             e.reason if ctx.reveal else "(withheld: may identify the bidder)"]))
        elif isinstance(e, CommandRejected):
            rows.append(Row([_time(e.time), f"{e.command} refused", e.code,
                             e.message if ctx.reveal else "(message withheld: may identify a bidder)"]))
    return Table(["Time", "What", "Who / code", "Detail"], rows)
