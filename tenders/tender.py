"""One tender's state: its spec, deposits, shares, opened envelopes, decisions and lots.

Plain values only, so `dump` / `load` round-trip through msgpack and `canonical` is the
tender's part of the state hash (envelopes by their digests). `spec_problem` checks a
published spec; `lot_outcome` turns the state into each lot's evaluation and explain.
"""

from __future__ import annotations

import re
from typing import Any

from auction_engine.money import MAX_AMOUNT, MoneyError, Percent, parse_amount, parse_percent

from .evaluation import Offer, convert, corrected_amount, evaluate_lot, is_exempt
from .messages import FINANCIAL, PARTS, TenderSpec, tuples
from .offer import OfferError, parse_financial
from .sealing import KEY_SIZE, MAX_MEMBERS

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
DAY = 86_400_000_000  # µs
MAX_LOTS = 100
MAX_VALIDITY_DAYS = 3650
MAX_INSTANT = 253_402_300_800 * 1_000_000  # 10000-01-01T00:00Z: every deadline stays far below 2**63 µs

# statuses of a tender
PUBLISHED, OPENING, ADMISSION, EVALUATION, DECIDED, CANCELLED = (
    "published", "opening", "admission", "evaluation", "decided", "cancelled")
LIVE = (OPENING, ADMISSION, EVALUATION)  # offers opened or to open, not all lots decided


def is_id(value: object) -> bool:
    return type(value) is str and ID.fullmatch(value) is not None


def _percent(text: object) -> Percent | None:
    if text == "":
        return None
    return parse_percent(text)


def spec_problem(spec: object, now: int, draft: bool = False) -> str | None:
    """The code of what is wrong with a published spec, or None. A `draft`'s spec is
    checked alike, except what only publication fixes: the opening may be past (checked at
    publication), the public key b"" and the share digests () (made at publication)."""
    if type(spec) is not TenderSpec:
        return "malformed"
    if not is_id(spec.buyer_id) or type(spec.opening_at) is not int or type(spec.threshold) is not int:
        return "malformed"
    if spec.opening_at <= now and not draft:
        return "opening_in_past"
    if not 0 < spec.opening_at < MAX_INSTANT:
        return "malformed"
    lots = spec.lots
    if (type(lots) is not tuple or not 0 < len(lots) <= MAX_LOTS
            or not all(type(x) is tuple and len(x) == 2 and is_id(x[0]) and type(x[1]) is int
                       and 0 < x[1] <= MAX_AMOUNT for x in lots) or len({x[0] for x in lots}) != len(lots)):
        return "invalid_lots"
    if type(spec.public_key) is not bytes or (len(spec.public_key) != KEY_SIZE and not (draft and not spec.public_key)):
        return "invalid_public_key"
    members, digests = spec.members, spec.share_digests
    if draft and digests == ():
        digests = tuple(b"\0" * 32 for _ in members) if type(members) is tuple else digests  # made at publication
    if (type(members) is not tuple or not all(is_id(m) for m in members) or len(set(members)) != len(members)
            or not 0 < len(members) <= MAX_MEMBERS or type(digests) is not tuple or len(digests) != len(members)
            or not all(type(d) is bytes and len(d) == 32 for d in digests) or not 0 < spec.threshold <= len(members)):
        return "invalid_commission"
    if type(spec.currency) is not str or not re.fullmatch(r"[A-Z]{3}", spec.currency) \
            or type(spec.decimals) is not int or not 0 <= spec.decimals <= 6:
        return "invalid_currency"
    if (type(spec.parts) is not tuple or FINANCIAL not in spec.parts or not set(spec.parts) <= set(PARTS)
            or len(set(spec.parts)) != len(spec.parts)):
        return "invalid_parts"
    if type(spec.validity_days) is not int or not 0 < spec.validity_days <= MAX_VALIDITY_DAYS:
        return "invalid_validity"
    if type(spec.ask_days) is not int or type(spec.answer_days) is not int \
            or not 0 <= spec.answer_days <= spec.ask_days <= MAX_VALIDITY_DAYS \
            or type(spec.amendment_days) is not int or not 0 <= spec.amendment_days <= MAX_VALIDITY_DAYS:
        return "invalid_delays"
    try:
        if _percent(spec.preference) is None or _percent(spec.exemption) is None:
            return "invalid_percent"
        _percent(spec.abnormally_low)
        _percent(spec.excessive)
    except MoneyError:
        return "invalid_percent"
    return None


class Tender:
    """The state of one tender (see the module docstring)."""

    __slots__ = ("spec", "status", "deposits", "orders", "shares", "private_key", "opened", "rates",
                 "decisions", "lots", "reason", "downloads", "questions", "validity_until", "extension", "lapsed",
                 "justifications", "answer_by", "opening_at", "deposited_at", "withdrawals", "opened_at",
                 "amendments", "unconfirmed", "set_aside")

    def __init__(self, spec: TenderSpec) -> None:
        self.spec = spec
        self.status = PUBLISHED
        self.deposits: dict[str, list[tuple[str, bytes, bytes]]] = {}  # bidder -> envelopes (part, ct, digest)
        self.orders: dict[str, int] = {}  # bidder -> deposit order (a re-deposit gets a new one)
        self.shares: dict[str, bytes] = {}  # member -> share, as submitted at the opening
        self.private_key = b""
        self.opened: dict[str, dict[str, list[Any]]] = {}  # bidder -> part -> [code, digest, content]
        self.rates: dict[str, str] = {}  # currency -> rate as recorded
        self.decisions: dict[str, list[Any]] = {}  # bidder -> [admitted, reason, member, established, share]
        self.lots: dict[str, list[Any]] = {lot: ["pending", "", 0, 0, ""] for lot, _ in spec.lots}
        # lot -> [status, bidder, amount, reference, reason]
        self.reason = ""  # why it was cancelled
        self.downloads: dict[str, None] = {}  # bidders who downloaded the file, in order
        self.questions: dict[str, list[str]] = {}  # question id -> [asker, question, answer ("" until then)]
        self.validity_until = spec.opening_at + spec.validity_days * DAY
        self.extension: list[Any] = []  # while requested: [days, answer_by, {bidder: accepted}]
        self.lapsed: list[str] = []  # bidders whose offers' validity was not extended
        self.justifications: dict[str, dict[str, list[Any]]] = {}  # lot -> flagged bidder ->
        # [justification digest (b"" until answered), "" / "accepted" / "rejected", member, reason]
        self.answer_by: dict[str, int] = {}  # lot -> its flagged bidders' deadline
        self.opening_at = spec.opening_at  # the deposit deadline; a late amendment moves it
        self.deposited_at: dict[str, int] = {}  # bidder -> instant of its standing deposit
        self.withdrawals: list[list[Any]] = []  # [bidder, instant], in order (for the minutes)
        self.opened_at = 0  # when the k-th share opened the envelopes
        self.amendments: list[list[Any]] = []  # [amendment id, instant, text, file digest, opening after it]
        self.unconfirmed: dict[str, None] = {}  # bidders whose deposit predates an amendment, in order
        self.set_aside: dict[str, list[Any]] = {}  # bidder -> [instant, code, [[part, digest]]]: never opened

    def deadline(self) -> int | None:
        """The next instant at which time alone changes this tender."""
        if self.status == PUBLISHED:
            return self.opening_at
        if self.status in LIVE:
            return min([self.extension[1] if self.extension else self.validity_until, *self.answer_by.values()])
        return None

    def canonical(self) -> list[Any]:
        deposits = [[b, self.orders[b], [[p, d] for p, _, d in envs]] for b, envs in sorted(self.deposits.items())]
        return [list(self.spec), self.status, deposits, sorted(self.shares.items()), self.private_key,
                sorted([b, sorted([p, *v] for p, v in parts.items())] for b, parts in self.opened.items()),
                sorted(self.rates.items()), sorted([b, *d] for b, d in self.decisions.items()),
                sorted([lot, *v] for lot, v in self.lots.items()), self.reason, *self._dialogue()]

    def _dialogue(self) -> list[Any]:
        extension = [*self.extension[:2], sorted(self.extension[2].items())] if self.extension else []
        return [list(self.downloads), [[q, *v] for q, v in self.questions.items()], self.validity_until, extension,
                list(self.lapsed), [[lot, [[b, *v] for b, v in flagged.items()]]
                                    for lot, flagged in self.justifications.items()],
                list(self.answer_by.items()), self.opening_at, sorted(self.deposited_at.items()),
                [list(w) for w in self.withdrawals], self.opened_at, [list(a) for a in self.amendments],
                list(self.unconfirmed), [[b, *v] for b, v in self.set_aside.items()]]

    def dump(self) -> list[Any]:
        return [list(self.spec), self.status, [[b, self.orders[b], [list(e) for e in envs]]
                                               for b, envs in self.deposits.items()],
                list(self.shares.items()), self.private_key,
                [[b, [[p, *v] for p, v in parts.items()]] for b, parts in self.opened.items()],
                list(self.rates.items()), [[b, *d] for b, d in self.decisions.items()],
                [[lot, *v] for lot, v in self.lots.items()], self.reason, *self._dialogue()]

    @classmethod
    def load(cls, data: Any) -> Tender:
        (spec, status, deposits, shares, key, opened, rates, decisions, lots, reason, downloads, questions,
         validity_until, extension, lapsed, justifications, answer_by, opening_at, deposited_at, withdrawals,
         opened_at, amendments, unconfirmed, set_aside) = data
        tender = cls(TenderSpec(*tuples(spec)))
        tender.opening_at, tender.opened_at = opening_at, opened_at
        tender.deposited_at = {b: at for b, at in deposited_at}
        tender.withdrawals = [list(w) for w in withdrawals]
        tender.amendments = [list(a) for a in amendments]
        tender.unconfirmed = dict.fromkeys(unconfirmed)
        tender.set_aside = {b: list(v) for b, *v in set_aside}
        tender.status, tender.private_key, tender.reason = status, key, reason
        for bidder, order, envs in deposits:
            tender.deposits[bidder] = [(p, c, d) for p, c, d in envs]
            tender.orders[bidder] = order
        tender.shares = {m: s for m, s in shares}
        tender.opened = {b: {p: list(v) for p, *v in parts} for b, parts in opened}
        tender.rates = {c: r for c, r in rates}
        tender.decisions = {b: list(d) for b, *d in decisions}
        tender.lots = {lot: list(v) for lot, *v in lots}
        tender.downloads = dict.fromkeys(downloads)
        tender.questions = {q: list(v) for q, *v in questions}
        tender.validity_until = validity_until
        if extension:
            tender.extension = [extension[0], extension[1], {b: a for b, a in extension[2]}]
        tender.lapsed = list(lapsed)
        tender.justifications = {lot: {b: list(v) for b, *v in flagged} for lot, flagged in justifications}
        tender.answer_by = {lot: at for lot, at in answer_by}
        return tender


def lot_outcome(tender: Tender, lot_id: str) -> tuple[Offer | None, str, int, list[dict[str, Any]]]:
    """A lot's winner (None and the reason if unsuccessful), P rounded (0 if none), and the
    explain of every step."""
    spec = tender.spec
    estimate = dict(spec.lots)[lot_id]
    explain: list[dict[str, Any]] = []
    offers: list[Offer] = []
    bid_on = admitted = 0
    lot_ids = frozenset(lot for lot, _ in spec.lots)
    for bidder in sorted(tender.opened, key=lambda b: tender.orders[b]):
        code, _, content = tender.opened[bidder].get(FINANCIAL, ["missing", b"", b""])
        if code != "ok":
            explain.append({"step": "excluded", "bidder_id": bidder, "code": code})
            continue
        try:
            offer = parse_financial(content, lot_ids)
        except OfferError:  # checked at the opening: cannot happen
            continue
        if lot_id not in offer.lots:
            continue
        bid_on += 1
        admitted_, reason, _, established, share = tender.decisions.get(bidder, [False, "undecided", "", True, ""])
        if not admitted_:
            explain.append({"step": "excluded", "bidder_id": bidder, "code": "not_admitted", "reason": reason})
            continue
        admitted += 1
        if bidder in tender.lapsed:
            explain.append({"step": "excluded", "bidder_id": bidder, "code": "validity_not_extended"})
            continue
        if tender.justifications.get(lot_id, {}).get(bidder, [b"", ""])[1] == "rejected":
            explain.append({"step": "excluded", "bidder_id": bidder, "code": "justification_rejected"})
            continue
        bid = offer.lots[lot_id]
        exact, corrected = corrected_amount(bid.form_total, bid.lines)
        step: dict[str, Any] = {"step": "arithmetic", "bidder_id": bidder, "form_total_micro": bid.form_total,
                                "bpde_total_exact": exact, "corrected": corrected}
        explain.append(step)
        if offer.currency == spec.currency:
            rate = 10**6
        elif offer.currency in tender.rates:
            rate = parse_amount(tender.rates[offer.currency], 6)
        else:
            explain.append({"step": "excluded", "bidder_id": bidder, "code": "no_reference_rate"})
            continue
        amount = convert(exact, rate, spec.decimals)
        explain.append({"step": "conversion", "bidder_id": bidder, "currency": offer.currency,
                        "rate": tender.rates.get(offer.currency, "1"), "amount": amount})
        if not 0 < amount <= MAX_AMOUNT:
            explain.append({"step": "excluded", "bidder_id": bidder, "code": "invalid_amount"})
            continue
        exempt = share != "" and is_exempt(parse_percent(share), parse_percent(spec.exemption))
        offers.append(Offer(bidder, amount, not established and not exempt, tender.orders[bidder]))
    if not bid_on:
        return None, "no_offers", 0, explain
    if not admitted:
        return None, "none_admitted", 0, explain
    if not offers:
        return None, "all_rejected", 0, explain
    result = evaluate_lot(estimate, offers, parse_percent(spec.preference), _percent(spec.abnormally_low),
                          _percent(spec.excessive))
    explain += result.explain
    assert result.reference is not None
    return next(o for o in offers if o.bidder_id == result.best), "", result.reference.rounded(), explain
