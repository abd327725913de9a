"""What every RPC handler stands on: authentication, bodies, queries and commands.

`Api.route(operation_id)` serves a handler as one operation of gateway/openapi.py: the
caller (API key or, where the operation takes one, a case token for the path's case) and
its role are checked first; every failure is answered in the coded error format and
counted. `run(command)` goes through the runtime, so it returns once the records are
durable; a refusal becomes an `ApiError` and changed nothing. The auction RPC
(gateway/rpc.py) and each kind's API (gateway/kind_apis.py) use it alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from quart import Quart, request
from werkzeug.exceptions import HTTPException

from auction_engine.events import CommandRejected, Event
from auction_engine.host import CaseConflict
from auction_engine.runtime import FormatError, JournalUnavailable

from . import models as m
from .auth import AuthError, Caller
from .openapi import BY_ID, status_of
from .operations import ApiError, Limits, Operation, error_body
from .service import Service

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Refusal = Callable[[Any], "tuple[str, str] | None"]  # an event -> (code, message) if it is a refusal


def invalid(code: str, message: str, details: list[dict[str, str]]) -> ApiError:
    return ApiError(status_of(code), code, message, details)


def auction_refusal(event: Any) -> tuple[str, str] | None:
    return (event.code, event.message) if type(event) is CommandRejected else None


class Api:
    """The RPC's shared machinery for one service (see the module docstring)."""

    def __init__(self, app: Quart, service: Service, limits: Limits) -> None:
        self.app, self.service, self.limits = app, service, limits
        self.runtime = service.runtime

    def authenticate(self, op: Operation, path: dict[str, Any]) -> Caller | None:
        if not op.roles:
            return None
        header = request.headers.get("Authorization")
        scheme, _, credential = (header or "").partition(" ")
        credential = credential.strip()
        try:
            if op.token_roles and scheme.lower() == "bearer" and credential.count(".") == 2:  # a JWT, not a key
                who = self.service.tokens.verify_case(credential, str(path[op.path_params[0]]))
            else:
                who = self.service.keys.authenticate(header)
        except AuthError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        if who.role not in op.roles:
            raise ApiError(403, "forbidden", f"the {who.role} role may not do this (allowed: {', '.join(op.roles)})")
        return who

    def route(self, operation_id: str) -> Callable[[F], F]:
        """Serve `handler(who, **path)` as the operation: its caller and role are checked first."""
        op = BY_ID[operation_id]
        metrics = self.service.metrics

        def decorate(handler: F) -> F:
            @wraps(handler)
            async def wrapper(**kwargs: Any) -> Any:
                status = 500
                try:
                    response = await handler(self.authenticate(op, kwargs), **kwargs)
                    status = response[1] if isinstance(response, tuple) else 200
                    return response
                except ApiError as exc:
                    status = exc.status
                    return error_body(exc.code, exc.message, exc.details), exc.status
                except JournalUnavailable as exc:
                    status = 503
                    return error_body(exc.code, str(exc)), 503
                except CaseConflict as exc:  # an id of another kind's case: nothing changed
                    status = 409
                    return error_body(exc.code, str(exc)), 409
                except FormatError as exc:  # a value the journal cannot hold (e.g. a lone surrogate)
                    status = 422
                    return error_body("invalid_request", f"the request holds a value that cannot be journaled: "
                                      f"{exc}"), 422
                except HTTPException as exc:  # e.g. 413 from reading an oversized body
                    status = exc.code or 500
                    raise
                finally:
                    metrics.rpc.labels(op.id, str(status)).inc()

            rule = re.sub(r"{(\w+)}", r"<\1>", op.path)
            self.app.add_url_rule(rule, op.id, wrapper, methods=[op.method.upper()])
            return handler
        return decorate

    async def body(self, required: bool = True) -> dict[str, Any]:
        """The body as a JSON object ({} if absent and not `required`); 400 invalid_json."""
        raw = await request.get_data(as_text=False)
        if not raw:
            if required:
                raise ApiError(400, "invalid_json", "the request needs a JSON object body")
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        return data

    async def parsed(self, model: type[M], required: bool = False) -> M:
        """The body as `model`; 422 invalid_request listing every problem."""
        data = await self.body(required)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise invalid("invalid_request", "the request is invalid", m.problems(exc)) from None

    def query(self, model: type[M]) -> M:
        """The query string as `model`; 422 invalid_query listing every problem."""
        try:
            return model.model_validate(request.args.to_dict())
        except ValidationError as exc:
            details = m.problems(exc)
            message = "; ".join(f"{d['path']}: {d['message']}" for d in details)
            raise invalid("invalid_query", message, details) from None

    def check_ttl(self, ttl: int | None) -> None:
        """422 for a token lifetime above the service's limit."""
        if ttl is not None and ttl > self.limits.token_ttl_s:
            raise invalid("invalid_request", "the request is invalid", [{
                "path": "ttl_s", "message": f"must be an integer of {m.MIN_TTL_S} to {self.limits.token_ttl_s}"}])

    async def run(self, command: Any, refusal: Refusal = auction_refusal) -> list[Event]:
        """Execute `command` once durable; a refusal among its events raises its `ApiError`."""
        events = (await self.runtime.execute(command)).events
        for event in events:
            refused = refusal(event)
            if refused is not None:
                raise ApiError(status_of(refused[0]), *refused)
        return events
