"""The financial offer inside its envelope: UTF-8 JSON, parsed strictly or refused with a code.

``{"currency": "EUR", "lots": {"L1": {"total": "1234.50",
"lines": [["1", "10", "12.50"], ...]}}}``: per lot the total written on the bid form and
the BPDE lines ``[ref, quantity (<= 3 decimals), unit price (<= 6 decimals)]``, every
number a decimal string in the offer's currency. A lot the bidder does not bid on is absent.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from auction_engine.money import MoneyError, parse_amount

from .evaluation import PRICE_DECIMALS, QUANTITY_DECIMALS, Line

MAX_LINES = 10_000  # BPDE lines per lot
MAX_SIZE = 256 << 10  # bytes of a financial offer: the opening record holds every one of them
MAX_VALUE = 10**15  # bound on a quantity or price, in its own units: exact products stay bounded
CURRENCY = re.compile(r"[A-Z]{3}")


class OfferError(ValueError):
    """A financial envelope whose content is malformed; `code` is recorded."""

    code = "malformed_offer"


class LotBid(NamedTuple):
    form_total: int  # 1e-6 currency units, as written on the bid form
    lines: tuple[Line, ...]


class FinancialOffer(NamedTuple):
    currency: str
    lots: dict[str, LotBid]


def _number(text: object, decimals: int, what: str) -> int:
    try:
        value = parse_amount(text, decimals)
    except MoneyError as exc:
        raise OfferError(f"{what}: {exc}") from None
    if value > MAX_VALUE * 10**decimals:
        raise OfferError(f"{what} is too large")
    return value


def _lot(lot_id: str, body: Any) -> LotBid:
    if type(body) is not dict or set(body) != {"total", "lines"} or type(body["lines"]) is not list:
        raise OfferError(f"lot {lot_id}: needs exactly 'total' and a list of 'lines'")
    if not 0 < len(body["lines"]) <= MAX_LINES:
        raise OfferError(f"lot {lot_id}: 1 to {MAX_LINES} lines")
    lines = []
    for i, line in enumerate(body["lines"]):
        if type(line) is not list or len(line) != 3 or type(line[0]) is not str:
            raise OfferError(f"lot {lot_id} line {i}: [ref, quantity, unit price]")
        lines.append(Line(line[0][:64], _number(line[1], QUANTITY_DECIMALS, f"lot {lot_id} line {i} quantity"),
                          _number(line[2], PRICE_DECIMALS, f"lot {lot_id} line {i} unit price")))
    return LotBid(_number(body["total"], PRICE_DECIMALS, f"lot {lot_id} total"), tuple(lines))


def parse_financial(plaintext: bytes, lot_ids: frozenset[str]) -> FinancialOffer:
    """The offer in a financial envelope, or `OfferError`."""
    if len(plaintext) > MAX_SIZE:
        raise OfferError(f"a financial offer is at most {MAX_SIZE} bytes")
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise OfferError("not UTF-8 JSON") from None
    if type(data) is not dict or set(data) != {"currency", "lots"}:
        raise OfferError("needs exactly 'currency' and 'lots'")
    currency, lots = data["currency"], data["lots"]
    if type(currency) is not str or not CURRENCY.fullmatch(currency):
        raise OfferError("currency must be an ISO 4217 code such as 'MAD'")
    if type(lots) is not dict or not lots or not set(lots) <= lot_ids:
        raise OfferError("lots must name at least one of the tender's lots, and only those")
    return FinancialOffer(currency, {lot_id: _lot(lot_id, lots[lot_id]) for lot_id in sorted(lots)})


def offer_json(currency: str, lots: dict[str, tuple[str, list[tuple[str, str, str]]]]) -> bytes:
    """A financial offer's plaintext (the SDK's and the tests' writer)."""
    body = {"currency": currency, "lots": {lot: {"total": total, "lines": [list(line) for line in lines]}
                                           for lot, (total, lines) in lots.items()}}
    return json.dumps(body, sort_keys=True).encode()
