"""What every RPC operation is made of, shared by the auction RPC and each kind's API.

An `Operation` states one route: method, path, roles, body, query, answers and error
codes; gateway/openapi.py generates the document from all of them and gateway/api.py
binds one handler to each. A kind's API (gateway/kind_apis.py) is a module with
`OPERATIONS`, `ERROR_CODES`, `TAGS` and `register(api)`. Errors are `ApiError`s,
answered as ``{"error": {"code", "message", "details"?}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

API = "/api/v1"
MAX_BODY = 1 << 20  # bytes of a request body
KEY_ROLES = ("portal", "buyer", "auditor")  # the roles of API keys (service-wide)
TOKEN_ROLES = ("bidder", "commission", "member")  # the roles of case tokens (one case, one subject)
ROLES = KEY_ROLES
SSE_KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream

# The error codes the RPC itself gives (besides the core's COMMAND_REJECTION_CODES): status, when.
RPC_ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "the body is missing (where required), not JSON, or not a JSON object"),
    "invalid_header": (400, "a header is present but not in its documented form (e.g. Last-Event-ID)"),
    "key_missing": (401, "no Authorization header"),
    "key_invalid": (401, "the header is not 'Bearer <key>', or the key is unknown"),
    "token_invalid": (401, "the case token is not valid (signature, form or claims)"),
    "token_expired": (401, "the case token has expired"),
    "forbidden": (403, "the key's role may not call this operation"),
    "token_wrong_case": (403, "the case token is for another case"),
    "not_found": (404, "no such path"),
    "method_not_allowed": (405, "the path does not take this method; `Allow` lists those it takes"),
    "auction_conflict": (409, "an auction with this id exists with another configuration"),
    "case_conflict": (409, "the id names a case of another procedure kind (e.g. a tender); nothing was applied"),
    "body_too_large": (413, f"the body is over {MAX_BODY} bytes"),
    "invalid_config": (422, "the auction configuration is invalid; `details` lists every problem"),
    "invalid_request": (422, "the request body is invalid; `details` lists every problem"),
    "invalid_query": (422, "a query parameter is out of its range or not one of its values; `details` says which"),
    "journal_unverified": (500, "the case's journal did not verify; nothing was exported"),
    "http_error": (500, "an unexpected server error"),
    "journal_unavailable": (503, "the journal cannot take records; nothing was applied"),
    "not_ready": (503, "(/readyz) the service is not taking commands"),
}
TOKEN_ERRORS = ("token_invalid", "token_expired", "token_wrong_case")


class ApiError(Exception):
    """An answer other than success: HTTP `status`, stable `code`, `message`, `details`."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


@dataclass(frozen=True)
class Operation:
    """One RPC operation. `errors`: the codes it may answer besides those of every secured
    operation (401, 403 when not every role may call it); `ok`: status -> (answer model, why).
    Roles of `TOKEN_ROLES` are callers holding a case token for the path's first parameter."""

    id: str
    method: str
    path: str
    summary: str
    description: str
    tag: str
    roles: tuple[str, ...]
    ok: dict[int, tuple[type[BaseModel] | None, str]]
    errors: tuple[str, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    path_params: tuple[str, ...] = ()
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # name -> operationId, parameter -> expression
    downloads: tuple[str, ...] = ()  # media types of a document answered instead of JSON (200)

    @property
    def token_roles(self) -> tuple[str, ...]:
        return tuple(r for r in self.roles if r in TOKEN_ROLES)


@dataclass(frozen=True)
class Limits:
    """The settings the document states (gateway/settings.py)."""

    token_ttl_s: int = 12 * 3600
    feed_wait_max_s: float = 30.0


class KindApi(Protocol):
    """A procedure kind's routes (a module): its operations, its refusal codes with their
    status and meaning, its document tags, the models of its feed entries (each with a
    `type: Literal[...]` field and an `seq`), and `register(api)` binding its handlers."""

    OPERATIONS: tuple[Operation, ...]
    ERROR_CODES: dict[str, tuple[int, str]]
    TAGS: tuple[tuple[str, str], ...]
    FEED_ENTRIES: tuple[type[BaseModel], ...]

    def register(self, api: Any) -> None: ...
