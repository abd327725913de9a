"""The OpenAPI 3.1 document of the RPC, served at /api/v1/openapi.json (docs/api.md).

Built once, from the same constants the code validates with where they live outside the
gateway (identifier pattern, text and lot limits, enums, rejection codes). The RPC paths
are relative to the server URL ``/api/v1``; /metrics, /healthz and /readyz override it
with the service root. tests/test_openapi.py checks every operation of a real service
against this document, and the document against the app's routes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from auction_engine.config import (
    EXTENSION_MODES,
    ID_PATTERN,
    IMPROVE_ON,
    MAX_BIDDERS,
    MAX_LOTS,
    MAX_TEXT,
    TRIGGERS,
    VISIBILITIES,
)
from auction_engine.events import COMMAND_REJECTION_CODES, UNSUCCESSFUL_REASONS
from auction_engine.money import MAX_AMOUNT_DIGITS, MAX_DECIMALS

Schema = dict[str, Any]

# Limits that live in gateway/rpc.py and gateway/settings.py (which import this module);
# tests/test_openapi.py checks that they still agree.
PAGE_LIMIT = 200
MAX_BODY = 1 << 20
MAX_AFTER = 1 << 62
TOKEN_TTL_MAX_S = 12 * 3600  # settings.token_ttl_s by default
FEED_WAIT_MAX_S = 30.0  # settings.feed_wait_max_s by default
ROLES = ("portal", "buyer", "auditor")
AUCTION_STATUSES = ("scheduled", "open", "suspended", "closed")
LOT_STATUSES = ("scheduled", "open", "suspended", "closed", "cancelled")

# The error codes the RPC itself gives, besides the core's COMMAND_REJECTION_CODES.
RPC_ERROR_CODES: dict[str, tuple[int, str]] = {
    "key_missing": (401, "no Authorization header"),
    "key_invalid": (401, "the header is not 'Bearer <key>', or the key is unknown"),
    "forbidden": (403, "the key's role may not call this operation"),
    "invalid_json": (400, "the body is missing (where required), not JSON, or not a JSON object"),
    "invalid_config": (422, "the auction configuration is invalid; `details` lists every problem"),
    "invalid_request": (422, "the request body is invalid; `details` lists every problem"),
    "invalid_query": (422, "a query parameter is out of its range or not one of its values"),
    "auction_conflict": (409, "an auction with this id exists with another configuration"),
    "body_too_large": (413, f"the body is over {MAX_BODY} bytes"),
    "journal_unavailable": (503, "the journal cannot take records; nothing was applied"),
    "journal_unverified": (500, "the auction's journal did not verify; nothing was exported"),
    "not_found": (404, "no such path"),
    "method_not_allowed": (405, "the path does not take this method"),
    "not_ready": (503, "(/readyz) the service is not taking commands"),
    "http_error": (500, "an unexpected server error"),
}

_ID = "^" + ID_PATTERN.pattern + "$"
_MONEY = rf"^[0-9]{{1,{MAX_AMOUNT_DIGITS}}}(\.[0-9]{{1,{MAX_DECIMALS}}})?$"
_POSITIVE_MONEY = r"^(?![0.]*$)" + _MONEY[1:]
_MONEY_OUT = r"^-?[0-9]+(\.[0-9]+)?$"
_PERCENT = rf"^0*(100(\.0{{1,{MAX_DECIMALS}}})?|[0-9]{{1,2}}(\.[0-9]{{1,{MAX_DECIMALS}}})?)$"
_INSTANT = (r"^[0-9]{4}-?[0-9]{2}-?[0-9]{2}[T ][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}([.,][0-9]+)?)?)?"
            r"(Z|[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}(\.[0-9]{1,6})?)?)?)$")
_INSTANT_OUT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
_DURATION = r"^([0-9]+(h|ms|m|s|us))+$"
_POSITIVE_DURATION = r"^(?=.*[1-9])([0-9]+(h|ms|m|s|us))+$"
_JWT = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: tuple[str, ...] | str = "all", **extra: Any) -> Schema:
    """A closed object; `required` "all" means every property is always present."""
    need = list(properties) if required == "all" else list(required)
    out: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if need:
        out["required"] = need
    out.update(extra)
    return out


def text(description: str = "") -> Schema:
    out: Schema = {"type": "string", "maxLength": MAX_TEXT}
    if description:
        out["description"] = description
    return out


def count(description: str) -> Schema:
    return {"type": "integer", "minimum": 0, "description": description}


def describe(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


# -- schemas -------------------------------------------------------------------------------

def _schemas() -> dict[str, Schema]:
    s: dict[str, Schema] = {}
    s["Error"] = obj({"error": obj({
        "code": {"type": "string", "description": "Stable machine code (docs/api.md, error codes)."},
        "message": {"type": "string", "description": "For humans; may change."},
        "details": {"type": "array", "items": ref("ErrorDetail"),
                    "description": "Every problem found, for invalid_config and invalid_request."},
    }, ("code", "message"))}, description="Every error answer of the RPC.")
    s["ErrorDetail"] = obj({
        "path": {"type": "string", "description": "The field's path, e.g. `lots[0].starting_price` or `ttl_s`."},
        "message": {"type": "string"},
    })

    # scalars
    s["Identifier"] = {"type": "string", "pattern": _ID, "minLength": 1, "maxLength": 64,
                       "description": "1-64 letters, digits or `. _ : @ -`, starting with a letter or digit."}
    s["Money"] = {"type": "string", "pattern": _MONEY, "examples": ["1234.50"],
                  "description": "A non-negative decimal string with at most the auction's `decimals` "
                                 "decimals (never a JSON number)."}
    s["PositiveMoney"] = {**s["Money"], "pattern": _POSITIVE_MONEY, "description": "A Money above zero."}
    s["MoneyOut"] = {"type": "string", "pattern": _MONEY_OUT, "examples": ["1234.50"],
                     "description": "A decimal string with exactly the auction's `decimals` decimals "
                                    "(negative only for savings)."}
    s["Percent"] = {"type": "string", "pattern": _PERCENT, "examples": ["0.5"],
                    "description": "A percentage as a decimal string, 0 to 100, at most 6 decimals."}
    s["PercentOut"] = {"type": "string", "pattern": _MONEY_OUT, "examples": ["12.50"]}
    s["Instant"] = {"type": "string", "pattern": _INSTANT, "format": "date-time",
                    "examples": ["2026-03-02T10:00:00Z", "2026-03-02T11:00:00+01:00"],
                    "description": "ISO-8601 with an explicit UTC offset (`Z` or `+01:00`)."}
    s["InstantOut"] = {"type": "string", "pattern": _INSTANT_OUT, "format": "date-time",
                       "examples": ["2026-03-02T10:00:00.000000Z"],
                       "description": "ISO-8601 UTC with microseconds and `Z`."}
    s["Duration"] = {"oneOf": [{"type": "integer", "minimum": 0, "description": "whole seconds"},
                               {"type": "string", "pattern": _DURATION}],
                     "examples": ["2m", "90s", "1h30m", "250ms", 120],
                     "description": "Whole seconds, or a string of units h, m, s, ms, us (largest first)."}
    s["PositiveDuration"] = {"oneOf": [{"type": "integer", "minimum": 1},
                                       {"type": "string", "pattern": _POSITIVE_DURATION}],
                             "description": "A Duration above zero."}
    s["DurationOut"] = {"type": "string", "pattern": _DURATION, "examples": ["2m", "0s"],
                        "description": "The shortest duration string, e.g. `2m` or `1h30m`."}
    s["RoomToken"] = {"type": "string", "pattern": _JWT,
                      "description": "A JWT (HS256) for the auction room, scoped to one auction and one "
                                     "bidder or observer, with an expiry."}

    # the configuration (request)
    s["BidRules"] = obj({
        "min_step": nullable(describe(ref("Money"), "Smallest improvement (0 by default).")),
        "min_step_percent": nullable(describe(ref("Percent"), "Smallest improvement as a percentage of the "
                                                              "price it is measured from (rounded up).")),
        "max_step": nullable(describe(ref("PositiveMoney"), "Largest improvement; at least min_step.")),
        "max_step_percent": nullable(describe(ref("Percent"), "Largest improvement as a percentage (above "
                                                              "zero, at least min_step_percent).")),
        "improve_on": nullable({"enum": list(IMPROVE_ON), "description": "Measure the step from the "
                                "bidder's own last bid (`own`, default) or from the best price (`best`)."}),
    }, (), description="How far a bid must (and may) improve. When both minimums are set the larger "
                       "applies; when both maximums are set the smaller. null means the default.")
    s["ExtensionPolicy"] = obj({
        "window": nullable(describe(ref("Duration"), "A qualifying bid in the last `window` before the "
                                                     "close extends it (0: never).")),
        "extend_by": nullable(describe(ref("Duration"), "How far the close moves; above zero when window is.")),
        "trigger": nullable({"enum": list(TRIGGERS), "description": "Which accepted bids extend: any, a new "
                             "best, or one ranking within the first top_n (default any_bid)."}),
        "top_n": nullable({"type": "integer", "minimum": 1, "maximum": MAX_BIDDERS}),
        "mode": nullable({"enum": list(EXTENSION_MODES), "description": "from_bid: close = max(close, bid "
                          "time + extend_by); from_close: close + extend_by (default from_bid)."}),
        "max_extensions": nullable({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
        "hard_close": nullable(describe(ref("Instant"), "Never extend past this; not before the lot's "
                                                        "scheduled close.")),
        "inactivity_close": nullable(describe(ref("PositiveDuration"), "Close once no valid bid has come for "
                                                                       "this long.")),
    }, (), description="When the close moves. null means the default.")
    s["LotConfig"] = obj({
        "lot_id": describe(ref("Identifier"), "Unique within the auction."),
        "title": nullable(text()),
        "estimate": describe(ref("PositiveMoney"), "The buyer's estimate; savings are measured from it."),
        "starting_price": describe(ref("PositiveMoney"), "The ceiling: bids must be at or under it."),
        "reserve_price": nullable(describe(ref("PositiveMoney"), "Above it the lot is unsuccessful; at most the "
                                                                 "starting price.")),
        "rules": describe(ref("BidRules"), "Overrides the auction's rules, key by key."),
        "extension": describe(ref("ExtensionPolicy"), "Overrides the auction's extension, key by key."),
    }, ("lot_id", "estimate", "starting_price"))
    s["AuctionConfig"] = obj({
        "auction_id": describe(ref("Identifier"), "Chosen by the portal; creating is idempotent on it."),
        "title": text(),
        "buyer_ref": nullable(text("The buyer's reference, e.g. the tender number (default empty).")),
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["MAD"],
                     "description": "ISO 4217 code."},
        "decimals": nullable({"type": "integer", "minimum": 0, "maximum": MAX_DECIMALS,
                              "description": "Decimals of the currency's minor unit (default 2)."}),
        "start": ref("Instant"),
        "end": describe(ref("Instant"), "After start; lot i closes at end + i * stagger."),
        "bidders": nullable({"type": "array", "items": ref("Identifier"), "uniqueItems": True,
                             "maxItems": MAX_BIDDERS, "description": "Bidders admitted at creation."}),
        "min_bidders": nullable({"type": "integer", "minimum": 1, "maximum": MAX_BIDDERS,
                                 "description": "Fewer bidders with a bid on a lot: it is unsuccessful "
                                                "(default 1)."}),
        "visibility": nullable({"enum": list(VISIBILITIES), "description": "What bidders see: own rank, "
                                "also the best price, or the anonymised ladder (default rank)."}),
        "stagger": nullable(describe(ref("Duration"), "Gap between the lots' scheduled closes (default 0).")),
        "pseudonym_secret": nullable({"type": "string", "minLength": 16, "maxLength": 256, "writeOnly": True,
                                      "description": "Seeds the bidders' pseudonyms. Generated when absent; "
                                                     "never returned."}),
        "rules": describe(ref("BidRules"), "Defaults for every lot."),
        "extension": describe(ref("ExtensionPolicy"), "Defaults for every lot."),
        "lots": {"type": "array", "items": ref("LotConfig"), "minItems": 1, "maxItems": MAX_LOTS},
    }, ("auction_id", "title", "currency", "start", "end", "lots"),
        description="The auction configuration (auction_engine/config.py). Unknown fields are refused. "
                    "Checks JSON Schema cannot state are listed in the field descriptions; the answer's "
                    "`details` names every problem with its path.")

    # the configuration as answered (resolved, every key present)
    s["BidRulesView"] = obj({
        "min_step": ref("MoneyOut"), "min_step_percent": nullable(ref("PercentOut")),
        "max_step": nullable(ref("MoneyOut")), "max_step_percent": nullable(ref("PercentOut")),
        "improve_on": {"enum": list(IMPROVE_ON)},
    })
    s["ExtensionPolicyView"] = obj({
        "window": ref("DurationOut"), "extend_by": ref("DurationOut"), "trigger": {"enum": list(TRIGGERS)},
        "top_n": {"type": "integer", "minimum": 1}, "mode": {"enum": list(EXTENSION_MODES)},
        "max_extensions": nullable({"type": "integer", "minimum": 0}),
        "hard_close": nullable(ref("InstantOut")), "inactivity_close": nullable(ref("DurationOut")),
    })
    s["LotView"] = obj({
        "lot_id": ref("Identifier"), "title": {"type": "string"}, "estimate": ref("MoneyOut"),
        "starting_price": ref("MoneyOut"), "reserve_price": nullable(ref("MoneyOut")),
        "rules": ref("BidRulesView"), "extension": ref("ExtensionPolicyView"),
        "status": {"enum": list(LOT_STATUSES)},
        "close_at": describe(ref("InstantOut"), "The current scheduled close, or the actual one once ended."),
        "extensions": count("Extensions so far."),
        "bids": count("Accepted bids."), "rejected_bids": count("Rejected bids."),
        "active_bidders": count("Bidders with a standing bid."),
        "best_price": nullable(ref("MoneyOut")),
    }, description="A lot's resolved configuration and its live state (anonymised).")
    s["BidderEntry"] = obj({"bidder_id": ref("Identifier"),
                            "admitted": {"type": "boolean", "description": "false once revoked"}})
    s["AuctionView"] = obj({
        "auction_id": ref("Identifier"), "title": {"type": "string"}, "buyer_ref": {"type": "string"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "decimals": {"type": "integer", "minimum": 0, "maximum": MAX_DECIMALS},
        "start": ref("InstantOut"), "end": ref("InstantOut"),
        "min_bidders": {"type": "integer", "minimum": 1}, "visibility": {"enum": list(VISIBILITIES)},
        "stagger": ref("DurationOut"),
        "lots": {"type": "array", "items": ref("LotView"), "minItems": 1},
        "status": describe({"enum": list(AUCTION_STATUSES)}, "closed: every lot ended; open: some lot open; "
                           "suspended: none open, some suspended; else scheduled."),
        "admitted_bidders": count("Bidders admitted now."),
        "bidders": {"type": "array", "items": ref("BidderEntry"),
                    "description": "Every bidder ever admitted; only in the portal's answers of POST /auctions "
                                   "and GET /auctions/{auction_id}."},
    }, ("auction_id", "title", "buyer_ref", "currency", "decimals", "start", "end", "min_bidders", "visibility",
        "stagger", "lots", "status", "admitted_bidders"),
        description="An auction: its configuration (without pseudonym_secret) and live state.")
    s["AuctionSummary"] = obj({
        "auction_id": ref("Identifier"), "title": {"type": "string"}, "buyer_ref": {"type": "string"},
        "status": {"enum": list(AUCTION_STATUSES)}, "start": ref("InstantOut"), "end": ref("InstantOut"),
        "lots": {"type": "integer", "minimum": 1, "description": "Number of lots."},
    })
    s["AuctionPage"] = obj({
        "auctions": {"type": "array", "items": ref("AuctionSummary"), "maxItems": PAGE_LIMIT},
        "next": nullable(describe(ref("Identifier"), "Pass as `after` for the next page; null on the last.")),
    })

    # bidders and observers
    s["AdmitRequest"] = obj({
        "bidders": {"type": "array", "items": ref("Identifier"), "minItems": 1, "maxItems": 1000,
                    "uniqueItems": True},
        "ttl_s": {"type": "integer", "minimum": 60, "maximum": TOKEN_TTL_MAX_S,
                  "description": f"Token lifetime in seconds; at most the token_ttl_s setting ({TOKEN_TTL_MAX_S} "
                                 "by default), which is also the default."},
    }, ("bidders",))
    s["BidderToken"] = obj({"bidder_id": ref("Identifier"), "token": ref("RoomToken"),
                            "expires_at": ref("InstantOut")})
    s["AdmitResult"] = obj({"auction_id": ref("Identifier"),
                            "tokens": {"type": "array", "items": ref("BidderToken"), "minItems": 1}})
    s["RevokeRequest"] = obj({"reason": nullable(text("Journaled with the revocation."))}, ())
    s["RevokeResult"] = obj({"auction_id": ref("Identifier"), "bidder_id": ref("Identifier"),
                             "admitted": {"const": False}})
    s["ObserverRequest"] = obj({
        "name": describe(ref("Identifier"), "Who watches (default `observer`), for the logs."),
        "ttl_s": s["AdmitRequest"]["properties"]["ttl_s"],
    }, ())
    s["ObserverToken"] = obj({"auction_id": ref("Identifier"), "name": ref("Identifier"),
                              "token": ref("RoomToken"), "expires_at": ref("InstantOut")})

    # lifecycle commands
    lot_id = nullable(describe(ref("Identifier"), "One lot; absent or null: every lot it applies to."))
    reason = nullable(text("Journaled with the command and shown in the feed."))
    s["SuspendRequest"] = obj({"lot_id": lot_id, "reason": reason}, ())
    s["ResumeRequest"] = obj({"lot_id": lot_id}, ())
    s["CancelRequest"] = obj({"lot_id": lot_id, "reason": reason}, ())

    # results
    s["RankedBid"] = obj({
        "rank": {"type": "integer", "minimum": 1}, "pseudonym": {"type": "string"},
        "bidder_id": nullable(describe(ref("Identifier"), "Only when `identities` is true.")),
        "price": ref("MoneyOut"), "time": ref("InstantOut"),
    })
    s["LotResult"] = obj({
        "lot_id": ref("Identifier"), "title": {"type": "string"},
        "status": {"enum": ["pending", "awarded", "unsuccessful"]},
        "reason": nullable({"enum": list(UNSUCCESSFUL_REASONS), "description": "Why unsuccessful."}),
        "winner_pseudonym": nullable({"type": "string"}),
        "winner_id": nullable(describe(ref("Identifier"), "Only when `identities` is true.")),
        "awarded_price": nullable(ref("MoneyOut")), "estimate": ref("MoneyOut"),
        "starting_price": ref("MoneyOut"),
        "savings": nullable(describe(ref("MoneyOut"), "estimate - awarded price.")),
        "savings_percent": nullable(ref("PercentOut")),
        "ranking": {"type": "array", "items": ref("RankedBid")},
        "bids": count("Accepted bids."), "rejected_bids": count("Rejected bids."),
        "extensions": count("Extensions."),
        "closed_at": nullable(ref("InstantOut")),
        "close_reason": nullable({"enum": ["scheduled", "inactivity", "cancelled"]}),
    })
    s["Results"] = obj({
        "auction_id": ref("Identifier"), "title": {"type": "string"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "decimals": {"type": "integer", "minimum": 0, "maximum": MAX_DECIMALS},
        "final": {"type": "boolean", "description": "Every lot has ended."},
        "lots": {"type": "array", "items": ref("LotResult")},
        "awarded_estimate": describe(ref("MoneyOut"), "Sum of the awarded lots' estimates."),
        "awarded_total": describe(ref("MoneyOut"), "Sum of the awarded prices."),
        "savings": ref("MoneyOut"), "savings_percent": ref("PercentOut"),
        "identities": {"type": "boolean", "description": "Bidder ids are shown: the caller is the portal or the "
                       "buyer and every lot has ended."},
    })

    # the lifecycle feed
    base = {"seq": {"type": "integer", "minimum": 1, "description": "Position in the feed, stable across "
                                                                    "restarts."},
            "time": ref("InstantOut"), "auction_id": ref("Identifier")}
    lot = {"lot_id": ref("Identifier")}
    events: dict[str, dict[str, Schema]] = {
        "AuctionCreated": {},
        "LotOpened": {**lot, "close_at": ref("InstantOut")},
        "LotExtended": {**lot, "close_at": ref("InstantOut"), "extensions": {"type": "integer", "minimum": 1}},
        "LotSuspended": {**lot, "reason": {"type": "string"}},
        "LotResumed": {**lot, "close_at": ref("InstantOut")},
        "LotClosed": {**lot, "reason": {"enum": ["scheduled", "inactivity"]}},
        "LotCancelled": {**lot, "reason": {"type": "string"}},
        "LotAwarded": {**lot, "amount": describe(ref("MoneyOut"), "The awarded price. The feed never names "
                                                 "the winner: identities come with the results, once every lot "
                                                 "of the auction has ended.")},
        "LotUnsuccessful": {**lot, "reason": {"enum": list(UNSUCCESSFUL_REASONS)}},
        "AuctionClosed": {},
    }
    for name, fields in events.items():
        s[name] = obj({"type": {"const": name}, **base, **fields})
    s["FeedEntry"] = {"oneOf": [ref(name) for name in events],
                      "discriminator": {"propertyName": "type",
                                        "mapping": {name: f"#/components/schemas/{name}" for name in events}},
                      "description": "A lifecycle event of some auction, with its feed sequence number."}
    s["FeedPage"] = obj({
        "events": {"type": "array", "items": ref("FeedEntry"), "maxItems": PAGE_LIMIT},
        "last_seq": {"type": "integer", "minimum": 0,
                     "description": "The seq of the last entry, else the `after` used: pass it as the next "
                                    "`after`."},
    })

    # operations endpoints
    s["Health"] = obj({"status": {"const": "ok"}, "server_time": ref("InstantOut")})
    s["Ready"] = obj({"status": {"const": "ready"}})
    return s


# -- responses -----------------------------------------------------------------------------

def json_content(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error(description: str, codes: list[str]) -> dict[str, Any]:
    """An error response whose `error.code` is one of `codes`."""
    schema = {"allOf": [ref("Error"), {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}
    return {"description": description + " Codes: " + ", ".join(f"`{c}`" for c in codes) + ".",
            "content": json_content(schema)}


def refusals(*codes: str) -> list[str]:
    """`codes`, each checked to be one of the core's command refusal codes."""
    for code in codes:
        assert code in COMMAND_REJECTION_CODES, code
    return list(codes)


def _responses() -> dict[str, Any]:
    return {
        "Unauthorized": error("No API key, a malformed Authorization header, or an unknown key.",
                              ["key_missing", "key_invalid"]),
        "Forbidden": error("The key's role may not call this operation.", ["forbidden"]),
        "InvalidJson": error("The body is missing (where required), not JSON, or not a JSON object.",
                             ["invalid_json"]),
        "InvalidQuery": error("A query parameter is out of range or not one of its values.", ["invalid_query"]),
        "InvalidRequest": error("The body has unknown fields or invalid values; `details` lists every problem "
                                "with its path.", ["invalid_request"]),
        "UnknownAuction": error("No auction has this id.", refusals("unknown_auction")),
        "BodyTooLarge": error(f"The body is over {MAX_BODY} bytes.", ["body_too_large"]),
        "JournalUnavailable": error("The journal cannot take records (IO error, shutting down); nothing was "
                                    "applied. Retry against a healthy service.", ["journal_unavailable"]),
    }


def r(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


# -- operations ----------------------------------------------------------------------------

def op(operation_id: str, summary: str, roles: tuple[str, ...], description: str, responses: dict[str, Any],
       *, tag: str, parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
       secured: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if roles:
        out["description"] = f"**Roles:** {', '.join(roles)}.\n\n{description}"
        out["x-roles"] = list(roles)
    else:
        out["description"] = description
    if parameters:
        out["parameters"] = parameters
    if body is not None:
        out["requestBody"] = body
    out["responses"] = responses
    if secured:
        if roles:
            out["responses"].setdefault("401", r("Unauthorized"))
            if set(roles) != set(ROLES):
                out["responses"].setdefault("403", r("Forbidden"))
        out["responses"] = dict(sorted(out["responses"].items()))
    else:
        out["security"] = []
    return out


def body_of(schema: str, required: bool, description: str) -> dict[str, Any]:
    return {"required": required, "description": description, "content": json_content(ref(schema))}


AUCTION_ID = {"name": "auction_id", "in": "path", "required": True, "schema": ref("Identifier")}


def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": json_content(ref(schema))}


def _lot_command(name: str, summary: str, roles: tuple[str, ...], request: str, conflicts: list[str],
                 description: str) -> dict[str, Any]:
    return {"post": op(name, summary, roles, description + " Answers once the command's record is durable, "
                       "with the auction as the buyer sees it (without `bidders`).", {
        "200": ok("The auction after the command.", "AuctionView"),
        "400": r("InvalidJson"),
        "404": error("No such auction or lot.", refusals("unknown_auction", "unknown_lot")),
        "409": error("The lot (or no lot, when lot_id is absent) is in a state the command does not apply to, "
                     "or every lot has ended.", conflicts),
        "413": r("BodyTooLarge"), "422": r("InvalidRequest"), "503": r("JournalUnavailable"),
    }, tag="lifecycle", parameters=[AUCTION_ID], body=body_of(request, False, "Optional: without a body "
                                                                             "(or lot_id) the command applies "
                                                                             "to every lot it can.")),
            }


def _paths() -> dict[str, Any]:
    all_roles = ROLES
    paths: dict[str, Any] = {}
    paths["/openapi.json"] = {"get": op(
        "openapi", "This document", (), "The OpenAPI 3.1 document of the RPC. No API key needed.",
        {"200": {"description": "The document.", "content": json_content({"type": "object",
                                                                          "required": ["openapi", "paths"]})}},
        tag="documents", secured=False)}
    paths["/auctions"] = {
        "post": op("create_auction", "Create an auction", ("portal",),
                   "Idempotent on `auction_id`: the same configuration again answers 200 with the existing "
                   "auction; another configuration under an existing id answers 409 `auction_conflict` (an "
                   "absent `pseudonym_secret` compares equal to the stored one). `pseudonym_secret` is "
                   "generated when absent and never returned. Answers once the record is durable.", {
                       "201": ok("Created.", "AuctionView"),
                       "200": ok("The auction already existed with this configuration.", "AuctionView"),
                       "400": r("InvalidJson"),
                       "409": error("The id exists with another configuration (also when the body is invalid "
                                    "and names an existing id).", ["auction_conflict"]),
                       "413": r("BodyTooLarge"),
                       "422": error("`invalid_config`: `details` lists every problem with its field path; "
                                    "`ends_in_past`: every lot would close before the auction exists.",
                                    ["invalid_config", *refusals("ends_in_past")]),
                       "503": r("JournalUnavailable"),
                   }, tag="auctions", body=body_of("AuctionConfig", True, "The auction configuration.")),
        "get": op("list_auctions", "List auctions", all_roles,
                  "In creation order, a page at a time: pass the answer's `next` as `after`.", {
                      "200": ok("A page of summaries.", "AuctionPage"),
                      "422": r("InvalidQuery"),
                  }, tag="auctions", parameters=[
                      query("status", {"enum": list(AUCTION_STATUSES)}, "Only auctions in this status."),
                      query("buyer_ref", {"type": "string"}, "Only auctions with this buyer reference."),
                      query("after", {"type": "string"}, "The auction id after which the page starts (the "
                                                         "previous page's `next`); an unknown id gives an "
                                                         "empty page."),
                      query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT, "default": 50},
                            "Page size."),
                  ]),
    }
    paths["/auctions/{auction_id}"] = {"get": op(
        "get_auction", "Get an auction", all_roles,
        "The configuration (without `pseudonym_secret`) and live state. The portal also gets `bidders`.", {
            "200": ok("The auction.", "AuctionView"),
            "404": r("UnknownAuction"),
        }, tag="auctions", parameters=[AUCTION_ID])}
    paths["/auctions/{auction_id}/bidders"] = {"post": op(
        "admit_bidders", "Admit bidders and issue room tokens", ("portal",),
        "Admits each bidder not admitted yet (a revoked bidder is admitted again) and issues one room token "
        "per bidder, including those already admitted. Tokens are JWTs scoped to this auction and bidder, "
        "valid until `expires_at`; the room refuses a token issued before the bidder's latest revocation.", {
            "200": ok("One token per bidder, in request order.", "AdmitResult"),
            "400": r("InvalidJson"),
            "404": r("UnknownAuction"),
            "409": error("Every lot has ended, or the auction has no pseudonym left.",
                         refusals("auction_finished", "too_many_bidders")),
            "413": r("BodyTooLarge"), "422": r("InvalidRequest"), "503": r("JournalUnavailable"),
        }, tag="bidders", parameters=[AUCTION_ID], body=body_of("AdmitRequest", True, "The bidders."))}
    paths["/auctions/{auction_id}/bidders/{bidder_id}/revoke"] = {"post": op(
        "revoke_bidder", "Revoke a bidder", ("portal",),
        "The bidder may no longer bid; its open room connections are closed and its tokens refused. Its "
        "standing bids stay.", {
            "200": ok("Revoked.", "RevokeResult"),
            "400": r("InvalidJson"),
            "404": error("No such auction, or the bidder was never admitted.",
                         refusals("unknown_auction", "unknown_bidder")),
            "409": error("Already revoked, or every lot has ended.", refusals("not_admitted", "auction_finished")),
            "413": r("BodyTooLarge"), "422": r("InvalidRequest"), "503": r("JournalUnavailable"),
        }, tag="bidders", parameters=[AUCTION_ID, {"name": "bidder_id", "in": "path", "required": True,
                                                   "schema": {"type": "string"}}],
        body=body_of("RevokeRequest", False, "Optional reason."))}
    paths["/auctions/{auction_id}/observers"] = {"post": op(
        "observer_token", "Issue an observer room token", ("portal", "buyer"),
        "A room token for watching the auction's anonymised views (buyer, commission). Changes no state.", {
            "200": ok("The token.", "ObserverToken"),
            "400": r("InvalidJson"), "404": r("UnknownAuction"), "413": r("BodyTooLarge"),
            "422": r("InvalidRequest"),
        }, tag="bidders", parameters=[AUCTION_ID], body=body_of("ObserverRequest", False, "Optional name "
                                                                                          "and lifetime."))}
    paths["/auctions/{auction_id}/suspend"] = _lot_command(
        "suspend", "Suspend lots", ("portal", "buyer"), "SuspendRequest", refusals("not_suspendable",
                                                                                  "auction_finished"),
        "Suspends one scheduled or open lot, or every such lot; the remaining time is kept.")
    paths["/auctions/{auction_id}/resume"] = _lot_command(
        "resume", "Resume lots", ("portal", "buyer"), "ResumeRequest", refusals("not_suspended", "auction_finished"),
        "Resumes one suspended lot, or every suspended lot; the close moves by the suspension's length.")
    paths["/auctions/{auction_id}/cancel"] = _lot_command(
        "cancel", "Cancel lots", ("portal",), "CancelRequest", refusals("not_cancellable", "auction_finished"),
        "Cancels one lot, or every lot not ended yet; a cancelled lot is unsuccessful (reason `cancelled`).")
    paths["/auctions/{auction_id}/results"] = {"get": op(
        "results", "Results", all_roles,
        "Results so far (lots not ended are `pending`). Bidder identities (`bidder_id`, `winner_id`) are shown "
        "only to the portal and the buyer, and only once every lot has ended (`identities`: true); otherwise "
        "they are null and only pseudonyms appear.", {
            "200": ok("The results.", "Results"),
            "404": r("UnknownAuction"),
        }, tag="results", parameters=[AUCTION_ID])}
    paths["/auctions/{auction_id}/journal"] = {"get": op(
        "journal_export", "Export the auction's journal", ("auditor",),
        "The auction's journal records up to the last durable one, verified before it is sent, as an export "
        "file; check it independently with `auction-replay verify FILE`.", {
            "200": {"description": "The export file (docs/journal-format.md).",
                    "headers": {"Content-Disposition": {"required": True, "schema": {
                        "type": "string", "pattern": '^attachment; filename="[^"]+\\.journal"$'}}},
                    "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                        "contentMediaType": "application/octet-stream",
                                                                        "format": "binary"}}}},
            "404": r("UnknownAuction"),
            "500": error("The journal did not verify; nothing is sent.", ["journal_unverified"]),
        }, tag="results", parameters=[AUCTION_ID])}
    sse_event = obj({
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The entry's seq."},
        "event": {"type": "string", "description": "The entry's type."},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": ref("FeedEntry")},
    })
    paths["/events"] = {"get": op(
        "events", "The lifecycle feed", ("portal", "buyer"),
        "Every auction's lifecycle events (created, opened, extended, suspended, resumed, closed, cancelled, "
        "awarded, unsuccessful, auction closed), numbered from 1 in journal order; a number means the same "
        "event across restarts. Long poll (JSON): entries after `after`, waiting up to `wait` seconds for one. "
        "Server-sent events: send `Accept: text/event-stream`; the stream starts with `retry: 2000`, sends "
        "each entry as `id: SEQ`, `event: TYPE`, `data: JSON`, and a `: keep-alive` comment every 15 s when "
        "idle; reconnect with `Last-Event-ID` (`limit` applies, `wait` is ignored).", {
            "200": {"description": "A page of the feed (JSON) or the never-ending stream (SSE).", "content": {
                "application/json": {"schema": ref("FeedPage")},
                "text/event-stream": {"schema": {"type": "string", "description": "Server-sent events; each "
                                                 "`data` is a FeedEntry."},
                                      "x-sse-event": sse_event},
            }},
            "422": r("InvalidQuery"),
        }, tag="feed", parameters=[
            query("after", {"type": "integer", "minimum": 0, "maximum": MAX_AFTER, "default": 0},
                  "Entries with seq above this (the last seq seen)."),
            query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_LIMIT, "default": 100},
                  "Most entries in a page."),
            query("wait", {"type": "number", "minimum": 0, "maximum": FEED_WAIT_MAX_S, "default": 0},
                  f"Seconds to wait for an entry when none is there yet; at most the feed_wait_max_s setting "
                  f"({FEED_WAIT_MAX_S:g} by default). Not used by the event stream."),
            query("auction_id", {"type": "string"}, "Only this auction's entries."),
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
             "description": "The last seq seen (as EventSource resends it); the larger of it and `after` wins. "
                            "Ignored unless it is 1-18 digits."},
            {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"},
             "description": "`text/event-stream` for server-sent events; JSON otherwise."},
        ])}
    root = [{"url": "/", "description": "The service root, outside /api/v1."}]
    paths["/metrics"] = {"servers": root, "get": op(
        "metrics", "Prometheus metrics", (), "The Prometheus text format (0.0.4). No API key needed.",
        {"200": {"description": "The metrics.",
                 "content": {"text/plain": {"schema": {"type": "string"}}}}}, tag="operations", secured=False)}
    paths["/healthz"] = {"servers": root, "get": op(
        "healthz", "Liveness", (), "The process answers. No API key needed.",
        {"200": ok("Alive.", "Health")}, tag="operations", secured=False)}
    paths["/readyz"] = {"servers": root, "get": op(
        "readyz", "Readiness", (), "The service takes commands: its journal works and it is not stopping. "
                                   "No API key needed.",
        {"200": ok("Ready.", "Ready"),
         "503": error("Not taking commands (journal failure, shutting down).", ["not_ready"])},
        tag="operations", secured=False)}
    return paths


DESCRIPTION = f"""\
The portal RPC of the reverse-auction engine: HTTP with JSON bodies. Reference: docs/api.md.

**Paths.** Every RPC path below is relative to the server URL `/api/v1` (so `/auctions` is
`/api/v1/auctions`). `/metrics`, `/healthz` and `/readyz` are at the service root: their path
items override `servers` with `/`. Bidders use the WebSocket room `/ws/v1/auctions/{{auction_id}}`
(docs/protocol.md), which is not described here.

**Authentication.** `Authorization: Bearer <API key>`. Each key has one role: `portal` (the
procurement portal's backend), `buyer` (the contracting authority) or `auditor`. Each
operation lists the roles it accepts in its description and in `x-roles`; another role gets
403 `forbidden`, no key or an unknown key 401.

**Conventions.** Money is a decimal string (`"1234.50"`), never a number; times are ISO-8601
(answers: UTC with microseconds and `Z`); durations are seconds or strings like `"2m"`.

**Errors.** Every error is `{{"error": {{"code", "message", "details"?}}}}`; `details` lists
`{{"path", "message"}}` for every problem of an invalid body. Bad input changes nothing. Any
path answers 404 `not_found` if unknown and 405 `method_not_allowed` for another method;
bodies are limited to {MAX_BODY} bytes (413 `body_too_large`).
"""


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1.0 document (built once; do not modify it)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "auction-engine RPC", "version": "1", "description": DESCRIPTION},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/api/v1", "description": "The RPC, relative to the service root."}],
        "security": [{"apiKey": []}],
        "tags": [{"name": name, "description": description} for name, description in (
            ("auctions", "Create, list and read auctions."),
            ("bidders", "Admission, revocation and room tokens."),
            ("lifecycle", "Suspend, resume and cancel lots."),
            ("results", "Results and the auditors' journal export."),
            ("feed", "The lifecycle event feed."),
            ("documents", "This document."),
            ("operations", "Metrics and health, outside /api/v1."),
        )],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"apiKey": {
                "type": "http", "scheme": "bearer", "bearerFormat": "API key",
                "description": "An API key with one role (portal, buyer or auditor): `Authorization: Bearer "
                               "<key>`. Keys are configured as SHA-256 digests (docs/operations.md).",
            }},
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
