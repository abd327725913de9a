"""The RPC's operations, declared once, and the OpenAPI 3.1 document generated from them.

`OPERATIONS` names each operation's method, path, roles, body, query and answers (as
models of gateway/models.py and gateway/views.py); gateway/rpc.py binds one handler to
each, and `openapi_document(limits)` generates the document served at
/api/v1/openapi.json with pydantic's JSON Schema. Nothing here is written twice.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from auction_engine.events import COMMAND_REJECTION_CODES

from . import models as m
from . import views as v
from .kind_apis import KIND_APIS
from .operations import (
    API,
    KEY_ROLES,
    MAX_BODY,
    ROLES,
    RPC_ERROR_CODES,
    SSE_KEEPALIVE,
    TOKEN_ERRORS,
    TOKEN_ROLES,
    Limits,
    Operation,
)
from .tender_amendments import MINUTES_FILENAME

__all__ = ["API", "BY_ID", "ERROR_CODES", "KEY_ROLES", "MAX_BODY", "OPERATIONS", "ROLES", "RPC_ERROR_CODES",
           "SSE_KEEPALIVE", "TOKEN_ROLES", "Limits", "Operation", "openapi_document", "status_of"]

# The status of each refusal code of an auction command; every other refusal is a conflict (409).
REFUSAL_STATUS = {"unknown_auction": 404, "unknown_lot": 404, "unknown_bidder": 404, "malformed": 422,
                  "ends_in_past": 422}
ERROR_CODES: dict[str, tuple[int, str]] = {
    **{code: (REFUSAL_STATUS.get(code, 409), why) for code, why in COMMAND_REJECTION_CODES.items()},
    **{code: entry for api in KIND_APIS for code, entry in api.ERROR_CODES.items()},
    **RPC_ERROR_CODES,
}


def status_of(code: str) -> int:
    """The HTTP status of an error code: the RPC's own, an auction refusal's or a kind's."""
    return ERROR_CODES[code][0]


_BODY_ERRORS = ("invalid_json", "body_too_large", "invalid_request")
_COMMAND = ("journal_unavailable", "case_conflict")
_AID = ("auction_id",)
_FROM_AUCTION = "$response.body#/auction_id"
# Links let a client (and schemathesis) follow one answer with the next call on the same auction.
_AUCTION_LINKS = {name: {"operationId": name, "auction_id": _FROM_AUCTION} for name in (
    "get_auction", "admit_bidders", "observer_token", "suspend", "resume", "cancel", "results", "journal_export")}

_LISTED_LINKS = {name: {**link, "auction_id": "$response.body#/auctions/0/auction_id"}
                 for name, link in _AUCTION_LINKS.items()}

def _lot_command(name: str, summary: str, roles: tuple[str, ...], body: type[m.Model], conflicts: tuple[str, ...],
                 description: str) -> Operation:
    return Operation(name, "post", API + "/auctions/{auction_id}/" + name, summary,
                     description + " Answers once the command's record is durable, with the auction as the buyer "
                     "sees it (without `bidders`). Without a body (or `lot_id`) the command applies to every lot "
                     "it can.", "lifecycle", roles, {200: (v.AuctionView, "The auction after the command.")},
                     ("unknown_auction", "unknown_lot", *conflicts, "auction_finished", *_BODY_ERRORS, *_COMMAND),
                     body, path_params=_AID, links=_AUCTION_LINKS)


AUCTION_OPERATIONS: tuple[Operation, ...] = (
    Operation("openapi", "get", API + "/openapi.json", "This document", "The OpenAPI 3.1 document of the RPC, "
              "generated from its models. No API key needed.", "documents", (), {200: (None, "The document.")}),
    Operation("create_auction", "post", API + "/auctions", "Create an auction",
              "Idempotent on `auction_id`: the same configuration again answers 200 with the existing auction; "
              "another configuration under an existing id answers 409 `auction_conflict` (also when that body is "
              "invalid; an absent `pseudonym_secret` compares equal to the stored one). Rules across fields are in "
              "the AuctionConfig schema's descriptions; they and `ends_in_past` answer 422. Answers once the "
              "record is durable.", "auctions", ("portal",),
              {201: (v.AuctionView, "Created."),
               200: (v.AuctionView, "The auction already existed with this configuration.")},
              ("invalid_json", "body_too_large", "auction_conflict", "invalid_config", "ends_in_past",
               "invalid_request", *_COMMAND),
              m.AuctionConfig, True, links=_AUCTION_LINKS),
    Operation("list_auctions", "get", API + "/auctions", "List auctions", "In creation order, a page at a time: "
              "pass the answer's `next` as `after`.", "auctions", ROLES, {200: (v.AuctionPage, "A page of summaries.")},
              ("invalid_query",), query=m.ListQuery, links=_LISTED_LINKS),
    Operation("get_auction", "get", API + "/auctions/{auction_id}", "Get an auction", "The configuration (without "
              "`pseudonym_secret`) and live state. The portal also gets `bidders`.", "auctions", ROLES,
              {200: (v.AuctionView, "The auction.")}, ("unknown_auction",), path_params=_AID),
    Operation("admit_bidders", "post", API + "/auctions/{auction_id}/bidders", "Admit bidders and issue room tokens",
              "Admits each bidder not admitted yet (a revoked bidder is admitted again) and issues one room token "
              "per bidder, including those already admitted. Tokens are JWTs scoped to this auction and bidder, "
              "valid until `expires_at`; the room refuses a token issued before the bidder's latest revocation.",
              "bidders", ("portal",), {200: (v.AdmitResult, "One token per bidder, in request order.")},
              ("unknown_auction", "auction_finished", "too_many_bidders", *_BODY_ERRORS, *_COMMAND),
              m.AdmitRequest, True, path_params=_AID,
              links={"revoke_bidder": {"operationId": "revoke_bidder", "auction_id": _FROM_AUCTION,
                                       "bidder_id": "$response.body#/tokens/0/bidder_id"}}),
    Operation("revoke_bidder", "post", API + "/auctions/{auction_id}/bidders/{bidder_id}/revoke", "Revoke a bidder",
              "The bidder may no longer bid; its open room connections are closed and its tokens refused. Its "
              "standing bids stay.", "bidders", ("portal",), {200: (v.RevokeResult, "Revoked.")},
              ("unknown_auction", "unknown_bidder", "not_admitted", "auction_finished", *_BODY_ERRORS, *_COMMAND),
              m.RevokeRequest, path_params=("auction_id", "bidder_id")),
    Operation("observer_token", "post", API + "/auctions/{auction_id}/observers", "Issue an observer room token",
              "A room token for watching the auction's anonymised views (buyer, commission). Changes no state.",
              "bidders", ("portal", "buyer"), {200: (v.ObserverToken, "The token.")},
              ("unknown_auction", *_BODY_ERRORS), m.ObserverRequest, path_params=_AID),
    _lot_command("suspend", "Suspend lots", ("portal", "buyer"), m.SuspendRequest, ("not_suspendable",),
                 "Suspends one scheduled or open lot, or every such lot; the remaining time is kept."),
    _lot_command("resume", "Resume lots", ("portal", "buyer"), m.ResumeRequest, ("not_suspended",),
                 "Resumes one suspended lot, or every suspended lot; the close moves by the suspension's length."),
    _lot_command("cancel", "Cancel lots", ("portal",), m.CancelRequest, ("not_cancellable",),
                 "Cancels one lot, or every lot not ended yet; a cancelled lot is unsuccessful (reason "
                 "`cancelled`)."),
    Operation("results", "get", API + "/auctions/{auction_id}/results", "Results", "Results so far (lots not ended "
              "are `pending`). Bidder identities (`bidder_id`, `winner_id`) are shown only to the portal and the "
              "buyer, and only once every lot has ended (`identities`: true); otherwise they are null and only "
              "pseudonyms appear.", "results", ROLES, {200: (v.Results, "The results.")}, ("unknown_auction",),
              path_params=_AID),
    Operation("journal_export", "get", API + "/auctions/{auction_id}/journal", "Export the auction's journal",
              "The auction's journal records up to the last durable one, verified before it is sent, as an export "
              "file (docs/journal-format.md); check it independently with `auction-replay verify FILE`.",
              "results", ("auditor",), {200: (None, "The export file.")}, ("unknown_auction", "journal_unverified"),
              path_params=_AID),
    Operation("events", "get", API + "/events", "The lifecycle feed",
              "Every auction's lifecycle events (created, opened, extended, suspended, resumed, closed, cancelled, "
              "awarded, unsuccessful, auction closed), numbered from 1 in journal order; a number means the same "
              "event across restarts. Long poll (JSON): entries after `after`, waiting up to `wait` seconds (0 by "
              "default: answer at once) for one. Server-sent events: send `Accept: text/event-stream`; the stream "
              "starts with `retry: 2000`, sends each entry as `id: SEQ`, `event: TYPE`, `data: JSON`, and a "
              f"`: keep-alive` comment every {SSE_KEEPALIVE:g} s when idle; reconnect with `Last-Event-ID` "
              "(`limit` applies, `wait` is ignored).", "feed", ("portal", "buyer"),
              {200: (v.FeedPage, "A page of the feed (JSON) or the never-ending stream (SSE).")},
              ("invalid_query", "invalid_header"), query=m.EventsQuery),
)
OPERATIONS = AUCTION_OPERATIONS + tuple(op for api in KIND_APIS for op in api.OPERATIONS)
BY_ID = {op.id: op for op in OPERATIONS}
assert len(BY_ID) == len(OPERATIONS), "two operations share an id"
ROOT_OPERATIONS = (  # outside /api/v1, no key
    ("metrics", "/metrics", "Prometheus metrics", "The Prometheus text format (0.0.4)."),
    ("healthz", "/healthz", "Liveness", "The process answers."),
    ("readyz", "/readyz", "Readiness", "The service takes commands: its journal works and it is not stopping."),
)


DESCRIPTION = f"""\
The portal RPC of the reverse-auction engine: HTTP with JSON bodies under `/api/v1`. Reference:
docs/api.md. This document is generated from the RPC's models (gateway/openapi.py).

**Authentication.** `Authorization: Bearer <API key>`. Each key has one role: `portal` (the
procurement portal's backend), `buyer` (the contracting authority) or `auditor`. Each
operation lists the roles it accepts in its description and in `x-roles`; another role gets
403 `forbidden`, no key or an unknown key 401. Operations on one tender or collective may also
take a case token (`bidder`, `commission` or `member`), a JWT the case's buyer or coordinator
issued through the RPC for that case and one subject; a token of another case gets 403
`token_wrong_case`, an expired or invalid one 401.

**Conventions.** Money is a decimal string (`"1234.50"`), never a number; times are ISO-8601
(answers: UTC with microseconds and `Z`); durations are seconds or strings like `"2m"`.
Rules that span fields are stated in the schemas' descriptions.

**Errors.** Every error is `{{"error": {{"code", "message", "details"?}}}}`; `details` lists
`{{"path", "message"}}` for every problem of an invalid body or query. Bad input changes
nothing. Any path answers 404 `not_found` if unknown and 405 `method_not_allowed` (with an
`Allow` header) for another method; bodies are limited to {MAX_BODY} bytes (413 `body_too_large`).
"""

TAGS = (("auctions", "Create, list and read auctions."), ("bidders", "Admission, revocation and room tokens."),
        ("lifecycle", "Suspend, resume and cancel lots."), ("results", "Results and the auditors' journal export."),
        ("feed", "The lifecycle event feed."), ("documents", "This document."),
        ("operations", "Metrics and health, outside /api/v1."), *(t for api in KIND_APIS for t in api.TAGS))


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(codes: list[str]) -> dict[str, Any]:
    text = "; ".join(f"`{c}`: {ERROR_CODES[c][1]}" for c in codes)
    schema = {"allOf": [_ref("Error"), {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}
    return {"description": text + ".", "content": _json(schema)}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its `null` (a URL has no null)."""
    others = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    if len(others) == 1:
        rest = {k: val for k, val in schema.items() if k != "anyOf" and (k, val) != ("default", None)}
        return {**others[0], **rest}
    return schema


def _capped(schema: dict[str, Any], maximum: float) -> dict[str, Any]:
    """`schema` with `maximum` set on its number (a limit that comes from the settings)."""
    if "anyOf" in schema:
        return {**schema, "anyOf": [_capped(s, maximum) for s in schema["anyOf"]]}
    return {**schema, "maximum": maximum} if schema.get("type") in ("integer", "number") else schema


def _parameters(op: Operation, schemas: dict[str, Any], limits: Limits) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in op.path_params:
        case = name == op.path_params[0] and name.endswith("_id")  # an auction's, a tender's... id
        schema = _ref("Identifier") if case else {"type": "string", "minLength": 1}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    if op.query is not None:
        required = set(schemas[op.query.__name__].get("required", ()))
        for name, schema in schemas[op.query.__name__]["properties"].items():
            schema = _not_null(schema)
            if name == "wait":
                schema = _capped(schema, limits.feed_wait_max_s)
            description = schema.pop("description", "")
            schema.pop("title", None)
            out.append({"name": name, "in": "query", "required": name in required, "schema": schema,
                        "description": description})
    if op.id == "events":
        out += [{"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": m.LAST_EVENT_ID},
                 "description": "The last seq seen (as EventSource resends it): 1-18 digits, else 400 "
                                "`invalid_header`. The larger of it and `after` wins."}]
        # `Accept: text/event-stream` (in the description) is not a parameter: a fuzzer that sent it
        # would open a stream that never ends.
    return out


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, (model, why) in op.ok.items():
        answer: dict[str, Any] = {"description": why}
        if model is not None:
            answer["content"] = _json(_ref(model.__name__))
        if op.links:
            answer["links"] = {name: {"operationId": link["operationId"],
                                      "parameters": {k: e for k, e in link.items() if k != "operationId"}}
                               for name, link in op.links.items()}
        out[str(status)] = answer
    if op.id == "openapi":
        out["200"]["content"] = _json({"type": "object", "required": ["openapi", "paths"]})
    elif op.id == "journal_export":
        out["200"]["headers"] = {"Content-Disposition": {"required": True, "schema": {
            "type": "string", "pattern": '^attachment; filename="[^"]+\\.journal"$'}}}
        out["200"]["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    elif op.id == "tender_minutes":
        out["200"]["headers"] = {"Content-Disposition": {"required": True, "schema": {
            "type": "string", "pattern": MINUTES_FILENAME}}}
        out["200"]["content"] = {"text/html": {"schema": {"type": "string"}},
                                 "application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    elif op.id == "events":
        out["200"]["content"]["text/event-stream"] = {"schema": {
            "type": "string", "description": "Server-sent events; each `data` is a FeedEntry."}, "x-sse-event": {
            "type": "object", "additionalProperties": False, "required": ["id", "event", "data"], "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The entry's seq."},
                "event": {"type": "string", "description": "The entry's type."},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": _ref("FeedEntry")}}}}
    if op.downloads:
        out["200"]["content"] = {media: {"schema": {"type": "string", "format": "binary"}} for media in op.downloads}
        out["200"]["headers"] = {"Content-Disposition": {"required": True, "schema": {
            "type": "string", "pattern": '^attachment; filename="[^"]+"$'}}}
    codes = list(op.errors)
    if op.roles:
        codes += ["key_missing", "key_invalid"] + (["forbidden"] if set(op.roles) != set(KEY_ROLES) else [])
        codes += list(TOKEN_ERRORS) if op.token_roles else []
    if op.path_params:
        codes.append("not_found")  # an id with a '/' in it names another path
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(status_of(code), []).append(code)
    for status, group in by_status.items():
        out[str(status)] = _error(group)
    return dict(sorted(out.items()))


def _operation(op: Operation, schemas: dict[str, Any], limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.id, "summary": op.summary, "tags": [op.tag]}
    if op.roles:
        out["description"] = f"**Roles:** {', '.join(op.roles)}.\n\n{op.description}"
        out["x-roles"] = list(op.roles)
        if op.token_roles:
            out["security"] = [{"apiKey": []}, {"caseToken": []}]
    else:
        out["description"] = op.description
        out["security"] = []
    parameters = _parameters(op, schemas, limits)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": _json(_ref(op.body.__name__))}
    out["responses"] = _responses(op)
    return out


def _schemas(limits: Limits) -> dict[str, Any]:
    wanted: list[type[BaseModel]] = [v.Error, v.Health, v.Ready]
    wanted += [op.body for op in OPERATIONS if op.body is not None]
    wanted += [model for op in OPERATIONS for model, _ in op.ok.values() if model is not None]
    wanted += [op.query for op in OPERATIONS if op.query is not None]
    kind_entries = [entry for api in KIND_APIS for entry in api.FEED_ENTRIES]
    wanted += kind_entries
    unique = list(dict.fromkeys(wanted))
    _, top = models_json_schema([(model, "validation") for model in unique],
                                ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():  # every token lifetime: the admission's, an observer's, a case token's
        if "ttl_s" in schema.get("properties", {}):
            schema["properties"]["ttl_s"] = _capped(schema["properties"]["ttl_s"], limits.token_ttl_s)
    events = schemas["FeedPage"]["properties"]["events"]
    schemas["FeedEntry"] = {**events["items"], "description": "A lifecycle event of some case (an auction, a "
                                                              "tender, a collective), with its feed sequence number."}
    for entry in kind_entries:  # each kind's public events join the union, told apart by `type`
        name = entry.__name__
        schemas["FeedEntry"]["oneOf"].append(_ref(name))
        schemas["FeedEntry"]["discriminator"]["mapping"][schemas[name]["properties"]["type"]["const"]] = \
            f"#/components/schemas/{name}"
    events["items"] = _ref("FeedEntry")
    schemas["Identifier"] = dict(m.Identifier.__metadata__[1].json_schema)  # type: ignore[attr-defined]
    return schemas


def _root_paths() -> dict[str, Any]:
    answers: dict[str, dict[str, Any]] = {
        "metrics": {"200": {"description": "The metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        "healthz": {"200": {"description": "Alive.", "content": _json(_ref("Health"))}},
        "readyz": {"200": {"description": "Ready.", "content": _json(_ref("Ready"))}, "503": _error(["not_ready"])},
    }
    return {path: {"get": {"operationId": name, "summary": summary, "tags": ["operations"], "security": [],
                           "description": description + " No API key needed.", "responses": answers[name]}}
            for name, path, summary, description in ROOT_OPERATIONS}


_DEFAULT_LIMITS = Limits()


@lru_cache(maxsize=4)
def openapi_document(limits: Limits = _DEFAULT_LIMITS) -> dict[str, Any]:
    """The OpenAPI 3.1.0 document of the RPC with these limits (built once; do not modify it)."""
    schemas = _schemas(limits)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas, limits)
    for op_schema in (op.query for op in OPERATIONS if op.query is not None):
        schemas.pop(op_schema.__name__)  # stated as parameters, not as a schema
    paths.update(_root_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "auction-engine RPC", "version": "1", "description": DESCRIPTION},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/", "description": "The service root."}],
        "security": [{"apiKey": []}],
        "tags": [{"name": name, "description": description} for name, description in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {
                "type": "http", "scheme": "bearer", "bearerFormat": "API key",
                "description": "An API key with one role (portal, buyer or auditor): `Authorization: Bearer <key>`. "
                               "Keys are configured as SHA-256 digests (docs/operations.md)."}, "caseToken": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A case token (bidder, commission or member of one tender or collective), issued "
                               "through the RPC by the case's buyer or coordinator: `Authorization: Bearer <token>`. "
                               "Operations that take one list its role in `x-roles`."}},
            "schemas": schemas,
        },
    }
