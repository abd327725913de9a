"""A tender's minutes (procès-verbaux), built from its state alone: the opening session's
and the evaluation's, in French or English, as HTML or PDF bytes.

`render_minutes(tender_id, tender, which, fmt, lang)` is a pure function of the tender's
state (the journal rebuilds it: `replay.minutes` verifies and replays first). The minutes
are a list of sections (facts, tables, paragraphs) that replay/minutes_render.py lays out
as HTML (Jinja2) or PDF (fpdf2). No section ever names who asked a question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from tenders.evaluation import EXACT
from tenders.messages import FINANCIAL
from tenders.offer import OfferError, parse_financial
from tenders.tender import CANCELLED, DECIDED, EVALUATION, Tender, lot_outcome

from .minutes_text import text

WHICH = ("opening", "evaluation")
FORMATS = ("html", "pdf")


class MinutesError(ValueError):
    """Minutes that cannot be drawn up yet (`code`: not_opened, not_evaluated) or a bad choice."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(slots=True)
class Section:
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Minutes:
    lang: str
    title: str
    subtitle: str
    sections: list[Section]
    footer: str


def render_minutes(tender_id: str, tender: Tender, which: str, fmt: str, lang: str = "fr") -> bytes:
    """The minutes `which` ("opening" or "evaluation") of a tender, as `fmt` ("html" or
    "pdf") bytes in `lang`; `MinutesError` if that session has not happened yet."""
    from .minutes_render import to_html, to_pdf  # the PDF library loads only when minutes are drawn up

    if which not in WHICH or fmt not in FORMATS:
        raise MinutesError("malformed", f"minutes are {'/'.join(WHICH)} as {'/'.join(FORMATS)}")
    minutes = build(tender_id, tender, which, lang)
    return to_html(minutes) if fmt == "html" else to_pdf(minutes)


def build(tender_id: str, tender: Tender, which: str, lang: str) -> Minutes:
    """The minutes as sections (see the module docstring)."""
    w = text(lang)
    if which == "opening":
        if not tender.private_key and not (tender.status == DECIDED and not tender.deposits):
            raise MinutesError("not_opened", f"tender {tender_id} has not been opened")
        sections = _opening(tender, _Fmt(tender, w))
    else:
        evaluated = any(lot[0] != "pending" for lot in tender.lots.values())  # a cancelled one too
        if tender.status not in (EVALUATION, DECIDED) and not (tender.status == CANCELLED and evaluated):
            raise MinutesError("not_evaluated", f"tender {tender_id} has not been evaluated")
        sections = _evaluation(tender, _Fmt(tender, w))
    return Minutes(lang, w(f"{which}_title"), f"{w('tender')} {tender_id}", sections, w("footer"))


@dataclass(slots=True)
class _Fmt:
    """How values read in the minutes' language."""

    tender: Tender
    w: Callable[[str], str]

    def money(self, minor: int) -> str:
        return f"{format_amount(minor, self.tender.spec.decimals)} {self.tender.spec.currency}"

    def price(self, micro: int, currency: str) -> str:
        """An amount in 1e-6 units of its currency, with at least 2 decimals."""
        return f"{_trim(format_amount(micro, 6))} {currency}"

    def exact(self, value: int, currency: str) -> str:
        """A BPDE amount in 1/EXACT units."""
        whole, frac = divmod(abs(value), EXACT)
        return f"{'-' if value < 0 else ''}{_trim(f'{whole}.{frac:0{len(str(EXACT)) - 1}d}')} {currency}"

    def time(self, us: int) -> str:
        return format_instant(us)

    def yes(self, flag: object) -> str:
        return self.w("yes" if flag else "no")


def _trim(decimal: str) -> str:
    """Trailing zeros off a decimal string, keeping 2 decimals: "80000.000000" -> "80000.00"."""
    whole, _, frac = decimal.partition(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def _object(tender: Tender, f: _Fmt) -> Section:
    spec, w = tender.spec, f.w
    facts = [(w("buyer"), spec.buyer_id), (w("opening_at"), f.time(tender.opening_at))]
    if tender.opening_at != spec.opening_at:
        facts.append((w("first_opening"), f.time(spec.opening_at)))
    facts += [(w("opened_at"), f.time(tender.opened_at) if tender.opened_at else w("not_opened")),
              (w("currency"), f"{spec.currency} ({spec.decimals})"),
              (w("lots"), ", ".join(f"{lot}: {f.money(estimate)}" for lot, estimate in spec.lots)),
              (w("status"), w(tender.status))]
    return Section(w("s_object"), facts=facts)


def _opening(tender: Tender, f: _Fmt) -> list[Section]:
    w, spec = f.w, tender.spec
    commission = Section(w("s_commission"), facts=[(w("threshold"), f"{spec.threshold} / {len(spec.members)}")],
                         headers=[w("member"), w("present")],
                         rows=[[m, f.yes(m in tender.shares)] for m in spec.members])
    sections = [_object(tender, f), commission]
    if tender.amendments:
        sections.append(Section(w("s_amendments"), headers=[w("id"), w("date"), w("text"), w("file_digest"),
                                                             w("opening_after")],
                                rows=[[a, f.time(at), txt, dg.hex() or "—", f.time(after)]
                                      for a, at, txt, dg, after in tender.amendments]))
    answered = [[q, v[1], v[2]] for q, v in tender.questions.items() if v[2]]  # v[0], the asker: never shown
    if tender.questions:
        unanswered = len(tender.questions) - len(answered)
        sections.append(Section(w("s_clarifications"), headers=[w("id"), w("question"), w("answer")], rows=answered,
                                facts=[(w("unanswered"), str(unanswered))]))
    bidders = sorted(tender.deposits, key=lambda b: tender.orders[b])
    deposits = Section(w("s_deposits"), headers=[w("order"), w("bidder"), w("deposited_at"), w("envelopes")])
    for i, b in enumerate(bidders, 1):
        parts = tender.opened.get(b, {})
        deposits.rows.append([str(i), b, f.time(tender.deposited_at[b]),
                              "; ".join(f"{w(p)}: {w(parts[p][0]) if p in parts else '—'}"
                                        for p, _, _ in sorted(tender.deposits[b]))])
    if not bidders:
        deposits.paragraphs.append(w("no_deposit"))
    sections += [deposits, _amounts(tender, f, bidders), _anomalies(tender, f, bidders)]
    if tender.private_key:
        sections.append(Section(w("s_key"), facts=[(w("public_key"), spec.public_key.hex()),
                                                   (w("key_check"), w("key_ok"))]))
    return sections


def _offer(tender: Tender, bidder: str) -> Any:
    """The bidder's opened financial offer, or None if it did not open or parse."""
    code, _, content = tender.opened.get(bidder, {}).get(FINANCIAL, ["missing", b"", b""])
    if code != "ok":
        return None
    try:
        return parse_financial(content, frozenset(lot for lot, _ in tender.spec.lots))
    except OfferError:  # checked at the opening: cannot happen
        return None


def _amounts(tender: Tender, f: _Fmt, bidders: list[str]) -> Section:
    w = f.w
    section = Section(w("s_amounts"), headers=[w("bidder"), w("lot"), w("form_total")])
    for b in bidders:
        offer = _offer(tender, b)
        if offer is None:
            section.rows.append([b, "—", w(tender.opened.get(b, {}).get(FINANCIAL, ["missing"])[0])])
            continue
        for lot, bid in offer.lots.items():
            section.rows.append([b, lot, f.price(bid.form_total, offer.currency)])
    return section


def _anomalies(tender: Tender, f: _Fmt, bidders: list[str]) -> Section:
    w = f.w
    rows = [[w("unreadable"), b, f"{w(p)}: {w(v[0])}"] for b in bidders
            for p, v in sorted(tender.opened.get(b, {}).items()) if v[0] != "ok"]
    rows += [[w("withdrawal"), b, f.time(at)] for b, at in tender.withdrawals]
    rows += [[w("set_aside"), b, f"{f.time(at)}: {w(code)}"] for b, (at, code, _) in tender.set_aside.items()]
    return Section(w("s_anomalies"), headers=[w("what"), w("bidder"), w("detail")], rows=rows,
                   paragraphs=[] if rows else [w("no_anomaly")])


def _evaluation(tender: Tender, f: _Fmt) -> list[Section]:
    w = f.w
    sections = [_object(tender, f)]
    admission = Section(w("s_admission"), headers=[w("bidder"), w("decision"), w("reason"), w("decided_by"),
                                                   w("established"), w("moroccan_share")])
    for b in sorted(tender.decisions, key=lambda b: tender.orders.get(b, 0)):
        admitted, reason, member, established, share = tender.decisions[b]
        admission.rows.append([b, w("admitted" if admitted else "rejected"), reason or "—", member,
                               f.yes(established), f"{share} %" if share else "—"])
    sections.append(admission)
    if tender.rates:
        sections.append(Section(w("s_rates"), headers=[w("currency"), w("rate")],
                                rows=[[c, r] for c, r in sorted(tender.rates.items())]))
    sections.append(Section(w("s_validity"), facts=[(w("validity_until"), f.time(tender.validity_until)),
                                                    (w("lapsed"), ", ".join(tender.lapsed) or w("none"))]))
    sections += [_lot(tender, f, lot, estimate) for lot, estimate in tender.spec.lots]
    if tender.reason:
        sections.append(Section(w("s_cancelled"), paragraphs=[w("cancelled_reason").format(reason=tender.reason)]))
    return sections


def _lot(tender: Tender, f: _Fmt, lot_id: str, estimate: int) -> Section:
    """A lot's offers (read, corrected, converted, excluded), P, flags, preference, ranking, outcome."""
    w, spec = f.w, tender.spec
    section = Section(f"{w('s_lot')} {lot_id}", facts=[(w("estimate"), f.money(estimate))],
                      headers=[w("bidder"), w("form_total"), w("bpde_total"), w("corrected"), w("rate"),
                               w("converted"), w("excluded")])
    steps = lot_outcome(tender, lot_id)[3] if tender.private_key else []
    rows: dict[str, list[str]] = {}
    currency = {b: o.currency for b in tender.opened if (o := _offer(tender, b)) is not None}
    for s in steps:
        b = s.get("bidder_id")
        if b is None:
            continue
        row = rows.setdefault(b, [b, "—", "—", "—", "—", "—", "—"])
        if s["step"] == "arithmetic":
            row[1:4] = [f.price(s["form_total_micro"], currency[b]), f.exact(s["bpde_total_exact"], currency[b]),
                        f.yes(s["corrected"])]
        elif s["step"] == "conversion":
            rate = "—" if s["currency"] == spec.currency else f"{s['rate']} {spec.currency}/{s['currency']}"
            row[4:6] = [rate, f.money(s["amount"])]
        elif s["step"] == "excluded":
            row[6] = w(s["code"]) + (f" ({s['reason']})" if s.get("reason") else "")
    section.rows = list(rows.values())
    by_step = {s["step"]: s for s in steps}
    if "reference_price" in by_step:
        p = by_step["reference_price"]
        n, total = len(p["amounts"]), sum(p["amounts"].values())
        section.facts += [(w("reference"), f.money(p["p_rounded"])),
                          (w("reference_exact"), f"({f.money(estimate)} × {n} + {f.money(total)}) / {2 * n}")]
        flags = by_step["flags"]
        section.facts.append((w("thresholds"), f"{flags['low'] or w('unset')} / {flags['high'] or w('unset')}"))
        section.facts.append((w("flags"), "; ".join(_flag(tender, f, lot_id, b, flag)
                                                     for b, flag in flags["flagged"].items()) or w("none")))
        pref = by_step["national_preference"]
        section.facts.append((f"{w('preference')} ({pref['percent']} %)", "; ".join(
            f"{a['bidder_id']}: {w('case')} {a['case']}, {f.money(a['amount'])} → {w('ranked_at')} "
            f"{f.money(a['ranked_at'])}" for a in pref["adjustments"]) or w("none")))
        best = by_step["best_offer"]
        section.facts.append((w("ranking"), ", ".join(f"{i}. {b} ({f.money(best['ranked_at'][b])})"
                                                      for i, b in enumerate(best["ranking"], 1))))
    status, bidder, amount, _, reason = tender.lots[lot_id]
    outcome = (w("awarded_to").format(bidder=bidder, amount=f.money(amount)) if status == "awarded"
               else w("unsuccessful").format(reason=w(reason)) if status == "unsuccessful"
               else w("cancelled") if tender.status == CANCELLED else w("pending"))
    section.facts.append((w("outcome"), outcome))
    return section


def _flag(tender: Tender, f: _Fmt, lot_id: str, bidder: str, flag: str) -> str:
    """A flagged offer and its justification: answered (digest), decided by whom, why."""
    w = f.w
    digest, decision, member, reason = tender.justifications.get(lot_id, {}).get(bidder, [b"", "", "", ""])
    said = f"{w('justification')} {digest.hex()[:16]}…" if digest else f"{w('justification')} {w('not_answered')}"
    decided = f", {w(decision)}" + (f" ({member})" if member else "") + (f": {w(reason)}" if reason else "") \
        if decision else ""
    return f"{bidder}: {w(flag)}, {said}{decided}"


__all__ = ["FORMATS", "WHICH", "Minutes", "MinutesError", "Section", "build", "render_minutes"]
