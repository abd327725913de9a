"""The RPC's request models and edge scalars, declared once (pydantic v2).

Request bodies and queries are validated by these models (strict types, unknown fields
refused); the auction configuration is validated by the core (config.py) and stated here.
The OpenAPI document is generated from them (gateway/openapi.py). Money, instants and
durations are checked by the engine's own parsers, so a bound changed there reaches the
RPC. `problems(exc)` turns a ValidationError into the coded error's details.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from auction_engine.config import (
    CURRENCY_PATTERN,
    EXTENSION_MODES,
    ID_PATTERN,
    IMPROVE_ON,
    MAX_BIDDERS,
    MAX_LOTS,
    MAX_TEXT,
    TRIGGERS,
    VISIBILITIES,
)
from auction_engine.money import MAX_AMOUNT, MAX_AMOUNT_DIGITS, MAX_DECIMALS, parse_amount, parse_percent
from auction_engine.timeutil import parse_duration, parse_instant

PAGE_LIMIT = 200  # auctions or feed entries per page, at most
MAX_AFTER = 1 << 62  # the largest feed position a client may name
MAX_ADMIT = 1000  # bidders per admission request
MIN_TTL_S = 60  # shortest room-token lifetime; the longest is the token_ttl_s setting
AUCTION_STATUSES = ("scheduled", "open", "suspended", "closed")
LOT_STATUSES = ("scheduled", "open", "suspended", "closed", "cancelled")

# The messages people read in `details`; the patterns are what the document states.
ID_MESSAGE = "must be 1-64 letters, digits or . _ : @ -, starting with a letter or digit"
ID_SCHEMA = "^" + ID_PATTERN.pattern + "$"
MONEY_SCHEMA = rf"^[0-9]{{1,{MAX_AMOUNT_DIGITS}}}(\.[0-9]{{1,{MAX_DECIMALS}}})?$"
POSITIVE_MONEY_SCHEMA = r"^(?![0.]*$)" + MONEY_SCHEMA[1:]
PERCENT_SCHEMA = rf"^0*(100(\.0{{1,{MAX_DECIMALS}}})?|[0-9]{{1,2}}(\.[0-9]{{1,{MAX_DECIMALS}}})?)$"
INSTANT_SCHEMA = (r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}[T ][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}([.,][0-9]+)?)?)?"
                  r"(Z|[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}(\.[0-9]{1,6})?)?)?)$")
DURATION_SCHEMA = r"^([0-9]+(h|ms|m|s|us))+$"
POSITIVE_DURATION_SCHEMA = r"^(?=.*[1-9])([0-9]+(h|ms|m|s|us))+$"


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _matches(pattern: re.Pattern[str], message: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise _fail("pattern", message)
        return value
    return check


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise _fail("unique", "lists an id twice")
    return values


def _parsed_by(parse: Any, kind: str, positive: bool = False) -> Any:
    """A validator that runs the engine's own parser (and keeps the edge text)."""
    def check(value: Any) -> Any:
        try:
            parsed = parse(value)
        except ValueError as exc:
            raise _fail(kind, str(exc)) from None
        if positive and not parsed:
            raise _fail(kind, "must be above zero")
        return value
    return check


# -- scalars of requests (checked) and answers (documented) -------------------------------

Identifier = Annotated[str, AfterValidator(_matches(ID_PATTERN, ID_MESSAGE)), WithJsonSchema({
    "type": "string", "pattern": ID_SCHEMA, "minLength": 1, "maxLength": 64,
    "description": "1-64 letters, digits or `. _ : @ -`, starting with a letter or digit."})]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


def _amount(text: str) -> int:
    # Valid for some auction: read at the string's own decimals, the scale that makes its
    # value smallest; config.py checks it again at the auction's `decimals`.
    return parse_amount(text, min(len(text.partition(".")[2]), MAX_DECIMALS))


MONEY_DESCRIPTION = (f"A non-negative decimal string (never a JSON number) with at most the auction's `decimals` "
                     f"decimals and at most {MAX_AMOUNT} minor units.")
Money = Annotated[str, AfterValidator(_parsed_by(_amount, "money")), WithJsonSchema({
    "type": "string", "pattern": MONEY_SCHEMA, "examples": ["1234.50"], "description": MONEY_DESCRIPTION})]
PositiveMoney = Annotated[str, AfterValidator(_parsed_by(_amount, "money", True)),
                          WithJsonSchema({"type": "string", "pattern": POSITIVE_MONEY_SCHEMA,
                                          "examples": ["1234.50"], "description": "A Money above zero."})]
Percent = Annotated[str, AfterValidator(_parsed_by(parse_percent, "percent")), WithJsonSchema({
    "type": "string", "pattern": PERCENT_SCHEMA, "examples": ["0.5"],
    "description": "A percentage as a decimal string, 0 to 100, at most 6 decimals."})]
Instant = Annotated[str, AfterValidator(_parsed_by(parse_instant, "instant")), WithJsonSchema({
    "type": "string", "pattern": INSTANT_SCHEMA, "format": "date-time",
    "examples": ["2026-03-02T10:00:00Z", "2026-03-02T11:00:00+01:00"],
    "description": "ISO-8601 with an explicit UTC offset (`Z` or `+01:00`), from 1970 to 2999 (UTC)."})]
Duration = Annotated[int | str, AfterValidator(_parsed_by(parse_duration, "duration")), WithJsonSchema({
    "oneOf": [{"type": "integer", "minimum": 0, "description": "whole seconds"},
              {"type": "string", "pattern": DURATION_SCHEMA}],
    "examples": ["2m", "90s", "1h30m", "250ms", 120],
    "description": "Whole seconds, or a string of units h, m, s, ms, us (largest first)."})]
PositiveDuration = Annotated[int | str, AfterValidator(_parsed_by(parse_duration, "duration", True)), WithJsonSchema({
    "oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": POSITIVE_DURATION_SCHEMA}],
    "description": "A Duration above zero."})]
Currency = Annotated[str, AfterValidator(_matches(CURRENCY_PATTERN, "must be an ISO 4217 code such as 'MAD'")),
                     WithJsonSchema({"type": "string", "pattern": f"^{CURRENCY_PATTERN.pattern}$",
                                          "examples": ["MAD"], "description": "ISO 4217 code."})]


def _digits(value: Any) -> Any:
    # A query integer is plain ASCII digits: no sign, spaces, underscores or exponent.
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise _fail("int_parsing", "must be an integer")
    return value


QueryInt = Annotated[int, BeforeValidator(_digits)]


def _integral(value: Any) -> Any:
    # JSON Schema counts 830.0 as an integer, so a client (or a fuzzer) may send it; bools stay refused.
    return int(value) if type(value) is float and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_integral)]


class Model(BaseModel):
    """A request part: strict JSON types, unknown fields refused, `null` where optional."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# -- the auction configuration (POST /auctions) -------------------------------------------
# config.py validates it (the core keeps its own dependency-light checks and reports every
# problem with the lot's resolved path); these models state it for the document, and
# tests/test_openapi.py and schemathesis check that both agree.

class BidRules(Model):
    """How far a bid must (and may) improve. When both minimums are set the larger applies;
    when both maximums are set the smaller. null means the default."""

    min_step: Money | None = Field(None, description="Smallest improvement (0 by default).")
    min_step_percent: Percent | None = Field(None, description="Smallest improvement as a percentage of the "
                                             "price it is measured from (rounded up).")
    max_step: PositiveMoney | None = Field(None, description="Largest improvement; at least min_step (a rule "
                                           "checked across fields).")
    max_step_percent: Percent | None = Field(None, description="Largest improvement as a percentage: above zero "
                                             "and at least min_step_percent (checked across fields).")
    improve_on: Literal[IMPROVE_ON] | None = Field(  # type: ignore[valid-type]
        None, description="Measure the step from the bidder's own last bid (`own`, default) or from the best "
                          "price (`best`).")


class ExtensionPolicy(Model):
    """When the close moves. null means the default."""

    window: Duration | None = Field(None, description="A qualifying bid in the last `window` before the close "
                                    "extends it (0: never); at most one day.")
    extend_by: Duration | None = Field(None, description="How far the close moves: above zero when `window` is "
                                       "(checked across fields); at most one day.")
    trigger: Literal[TRIGGERS] | None = Field(  # type: ignore[valid-type]
        None, description="Which accepted bids extend: any, a new best, or one ranking within the first top_n "
                          "(default any_bid).")
    top_n: int | None = Field(None, ge=1, le=MAX_BIDDERS)
    mode: Literal[EXTENSION_MODES] | None = Field(  # type: ignore[valid-type]
        None, description="from_bid: close = max(close, bid time + extend_by); from_close: close + extend_by "
                          "(default from_bid).")
    max_extensions: int | None = Field(None, ge=0, le=1_000_000)
    hard_close: Instant | None = Field(None, description="Never extend past this; not before the lot's scheduled "
                                       "close (checked across fields).")
    inactivity_close: PositiveDuration | None = Field(None, description="Close once no valid bid has come for "
                                                      "this long; at most one day.")


class LotConfig(Model):
    lot_id: Identifier = Field(description="Unique within the auction (checked across lots).")
    title: Text | None = None
    estimate: PositiveMoney = Field(description="The buyer's estimate; savings are measured from it. At most "
                                    "the auction's `decimals` decimals.")
    starting_price: PositiveMoney = Field(description="The ceiling: bids must be at or under it. At most the "
                                          "auction's `decimals` decimals.")
    reserve_price: PositiveMoney | None = Field(None, description="Above it the lot is unsuccessful; at most the "
                                                "starting price (checked across fields).")
    rules: BidRules = Field(default_factory=BidRules, description="Overrides the auction's rules, key by key.")
    extension: ExtensionPolicy = Field(default_factory=ExtensionPolicy,
                                       description="Overrides the auction's extension, key by key.")


# Far enough ahead to stay valid (a past close is refused), so tools can create it as is.
EXAMPLE_AUCTION: dict[str, Any] = {
    "auction_id": "AO-2990-014", "title": "Fournitures de bureau", "buyer_ref": "AO-14/2990", "currency": "MAD",
    "decimals": 2, "start": "2990-03-02T10:00:00Z", "end": "2990-03-02T11:00:00Z", "stagger": "5m",
    "bidders": ["acme"], "visibility": "ladder", "rules": {"min_step": "100.00", "improve_on": "own"},
    "extension": {"window": "2m", "extend_by": "2m", "trigger": "any_bid", "mode": "from_bid", "max_extensions": 30},
    "lots": [{"lot_id": "L1", "title": "Papier", "estimate": "120000.00", "starting_price": "130000.00"},
             {"lot_id": "L2", "title": "Toner", "estimate": "80000.00", "starting_price": "85000.00",
              "reserve_price": "82000.00", "rules": {"min_step_percent": "0.5"}}]}


class AuctionConfig(Model):
    """The auction configuration (auction_engine/config.py). Unknown fields are refused.
    Rules across fields, which JSON Schema does not state, are in the field descriptions:
    `end` after `start`; every amount with at most `decimals` decimals; `max_step` at least
    `min_step`; `reserve_price` at most `starting_price`; `extend_by` above zero when
    `window` is; `hard_close` not before the lot's close; lot ids unique; and some lot must
    close after the auction is created (else 422 `ends_in_past`). The answer's `details`
    names every problem with its path."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_AUCTION]})

    auction_id: Identifier = Field(description="Chosen by the portal; creating is idempotent on it.")
    title: Text
    buyer_ref: Text | None = Field(None, description="The buyer's reference, e.g. the tender number (default "
                                   "empty).")
    currency: Currency
    decimals: int | None = Field(None, ge=0, le=MAX_DECIMALS,
                                 description="Decimals of the currency's minor unit (default 2); every amount "
                                             "of the auction has at most this many.")
    start: Instant
    end: Instant = Field(description="After `start` (checked across fields); lot i closes at end + i * stagger.")
    bidders: Annotated[list[Identifier], AfterValidator(_distinct)] | None = Field(
        None, max_length=MAX_BIDDERS, json_schema_extra={"uniqueItems": True},
        description="Bidders admitted at creation, each once.")
    min_bidders: int | None = Field(None, ge=1, le=MAX_BIDDERS, description="Fewer bidders with a bid on a lot: "
                                    "it is unsuccessful (default 1).")
    visibility: Literal[VISIBILITIES] | None = Field(  # type: ignore[valid-type]
        None, description="What bidders see: own rank, also the best price, or the anonymised ladder (default "
                          "rank).")
    stagger: Duration | None = Field(None, description="Gap between the lots' scheduled closes (default 0, at "
                                     "most 30 days).")
    pseudonym_secret: str | None = Field(None, min_length=16, max_length=256, json_schema_extra={"writeOnly": True},
                                         description="Seeds the bidders' pseudonyms. Generated when absent; never "
                                                     "returned.")
    rules: BidRules = Field(default_factory=BidRules, description="Defaults for every lot.")
    extension: ExtensionPolicy = Field(default_factory=ExtensionPolicy, description="Defaults for every lot.")
    lots: list[LotConfig] = Field(min_length=1, max_length=MAX_LOTS)
    tender_ref: Identifier | None = Field(None, description="The tender this auction follows (set by POST "
                                          "/tenders/{tender_id}/auction, which also admits its admitted bidders).")


# -- other request bodies -------------------------------------------------------------------

Ttl = Annotated[int, Field(ge=MIN_TTL_S), BeforeValidator(_integral)]  # constraint first: the schema states it
TTL_DESCRIPTION = "Token lifetime in seconds, from 60 to the token_ttl_s setting, which is also the default."


class AdmitRequest(Model):
    model_config = ConfigDict(json_schema_extra={"examples": [{"bidders": ["acme", "beta"], "ttl_s": 3600}]})

    bidders: Annotated[list[Identifier], AfterValidator(_distinct)] = Field(
        min_length=1, max_length=MAX_ADMIT, json_schema_extra={"uniqueItems": True},
        description="The bidders to admit (each once); every one gets a fresh room token.")
    ttl_s: Ttl | None = Field(None, description=TTL_DESCRIPTION)


class RevokeRequest(Model):
    reason: Text | None = Field(None, description="Journaled with the revocation.")


class ObserverRequest(Model):
    name: Identifier = Field("observer", description="Who watches (default `observer`), for the logs.")
    ttl_s: Ttl | None = Field(None, description=TTL_DESCRIPTION)


LOT_ID = "One lot; absent or null: every lot the command applies to."
REASON = "Journaled with the command and shown in the feed."


class SuspendRequest(Model):
    lot_id: Identifier | None = Field(None, description=LOT_ID)
    reason: Text | None = Field(None, description=REASON)


class ResumeRequest(Model):
    lot_id: Identifier | None = Field(None, description=LOT_ID)


class CancelRequest(Model):
    lot_id: Identifier | None = Field(None, description=LOT_ID)
    reason: Text | None = Field(None, description=REASON)


# -- queries (text in the URL, so not strict) -------------------------------------------------

class Query(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # unknown parameters are ignored, as HTTP does


class ListQuery(Query):
    status: Literal[AUCTION_STATUSES] | None = Field(  # type: ignore[valid-type]
        None, description="Only auctions in this status.")
    buyer_ref: str | None = Field(None, description="Only auctions with this buyer reference.")
    after: str | None = Field(None, description="The auction id after which the page starts (the previous page's "
                              "`next`); an unknown id gives an empty page.")
    limit: QueryInt = Field(50, ge=1, le=PAGE_LIMIT, description="Page size.")


class EventsQuery(Query):
    after: QueryInt = Field(0, ge=0, le=MAX_AFTER, description="Entries with seq above this (the last seq seen).")
    limit: QueryInt = Field(100, ge=1, le=PAGE_LIMIT, description="Most entries in a page.")
    wait: float = Field(0.0, ge=0, allow_inf_nan=False,
                        description="Seconds to wait for an entry when none is there yet: 0 (the default) answers "
                                    "at once; at most the feed_wait_max_s setting. Not used by the event stream.")
    auction_id: str | None = Field(None, description="Only this auction's entries (the same filter as `case_id`).")
    case_id: str | None = Field(None, description="Only this case's entries: an auction, a tender or a "
                                                  "collective. With `auction_id` too, both filters apply "
                                                  "(different ids: no entries).")


LAST_EVENT_ID = r"^[0-9]{1,18}$"


# -- validation errors as the coded error's details ---------------------------------------------

def path_of(loc: tuple[int | str, ...]) -> str:
    """('lots', 0, 'rules') -> 'lots[0].rules'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """Every problem of `exc` as {"path", "message"}, in the RPC's words where it has them."""
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        out.append({"path": path_of(loc) or "(body)", "message": message})
    return out
