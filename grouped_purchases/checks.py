"""Checks of command fields, each refusing with a stable code, and the journal codecs of
the two commands with structured fields (a member list, a price list)."""

from __future__ import annotations

import re
from typing import Any

from auction_engine.money import MAX_AMOUNT

from .messages import CreateCollective, RecordLotPrices

MAX_QUANTITY = 10**9  # units of one need or one delivery: far above any public purchase
MAX_MEMBERS = 1000
MAX_TEXT = 200  # characters of a description, unit, place or reason
_HASH = re.compile(r"[0-9a-f]{64}")


class Refused(Exception):
    """Raised inside a handler, turned into a CollectiveRefused event by `handle`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ident(value: object, what: str) -> str:
    if type(value) is not str or not value or len(value) > MAX_TEXT:
        raise Refused("invalid_command", f"{what} must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def text(value: object, what: str) -> str:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise Refused("invalid_command", f"{what} must be a string of at most {MAX_TEXT} characters")
    return value


def count(value: object, what: str, least: int = 1) -> int:
    if type(value) is not int or not least <= value <= MAX_QUANTITY:
        raise Refused("invalid_quantity", f"{what} must be an integer from {least} to {MAX_QUANTITY}")
    return value


def money(value: object, what: str) -> int:
    if type(value) is not int or not 1 <= value <= MAX_AMOUNT:
        raise Refused("invalid_amount", f"{what} must be an integer of minor units from 1 to {MAX_AMOUNT}")
    return value


def member_list(value: object) -> tuple[str, ...]:
    if type(value) is not tuple or not 1 <= len(value) <= MAX_MEMBERS or len(set(value)) != len(value):
        raise Refused("invalid_command", f"members must be 1 to {MAX_MEMBERS} distinct ids")
    return tuple(ident(member, "a member id") for member in value)


def sha256_hex(value: object, what: str) -> str:
    if type(value) is not str or not _HASH.fullmatch(value):
        raise Refused("invalid_command", f"{what} must be a SHA-256 in lowercase hex")
    return value


def encode_create(c: CreateCollective) -> list[Any]:
    return ["CreateCollective", c.now, c.collective_id, c.coordinator, list(c.members), c.convention_hash,
            c.needs_deadline]


def decode_create(fields: tuple[Any, ...]) -> CreateCollective:
    now, cid, coordinator, members, convention, deadline = fields
    if type(members) not in (list, tuple):
        raise ValueError("members must be a list")
    return CreateCollective(now, cid, coordinator, tuple(members), convention, deadline)


def encode_prices(c: RecordLotPrices) -> list[Any]:
    return ["RecordLotPrices", *c[:6], [list(p) for p in c.prices]]


def decode_prices(fields: tuple[Any, ...]) -> RecordLotPrices:
    now, cid, actor, pid, lot, supplier, prices = fields
    if type(prices) not in (list, tuple) or not all(type(p) in (list, tuple) and len(p) == 2 for p in prices):
        raise ValueError("prices must be a list of [article, unit price]")
    return RecordLotPrices(now, cid, actor, pid, lot, supplier, tuple((a, p) for a, p in prices))


