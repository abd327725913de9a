"""The portal RPC: HTTP JSON under /api/v1, API keys with roles (docs/api.md).

Every error is ``{"error": {"code", "message", "details"?}}`` with a fitting status; bad
input never changes state. Commands go through the same runtime as bids, so a response
comes once its records are durable. Creating an auction is idempotent on its id.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import trio
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException

from auction_engine.clock import FINAL, OPEN, SUSPENDED
from auction_engine.commands import AdmitBidder, Cancel, CreateAuction, Resume, RevokeBidder, Suspend
from auction_engine.config import ID_PATTERN, MAX_TEXT, AuctionConfig, ConfigError
from auction_engine.edge import results_to_dict
from auction_engine.engine import QueryError
from auction_engine.events import CommandRejected, Event
from auction_engine.money import format_amount
from auction_engine.runtime import FormatError, JournalUnavailable
from auction_engine.timeutil import format_instant
from replay.verify import export

from .auth import AuthError, Caller
from .logs import log
from .openapi import openapi_document
from .service import Service

logger = logging.getLogger("gateway.rpc")

MAX_BODY = 1 << 20  # bytes of a request body
PAGE_LIMIT = 200  # auctions or feed entries per page, at most
SSE_KEEPALIVE = 15.0  # seconds between comment lines on an idle event stream

# HTTP status of each refusal code of a command (the core's COMMAND_REJECTION_CODES).
REFUSAL_STATUS = {"unknown_auction": 404, "unknown_lot": 404, "unknown_bidder": 404, "malformed": 422,
                  "ends_in_past": 422}  # every other refusal is a conflict with the auction's state: 409

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def register_rpc(app: Quart, service: Service) -> None:
    """Add the /api/v1 routes for `service` to `app`."""
    runtime, engine = service.runtime, service.runtime.engine

    def caller(*roles: str) -> Caller:
        try:
            who = service.keys.authenticate(request.headers.get("Authorization"))
        except AuthError as exc:
            raise ApiError(401, exc.code, exc.message) from None
        if who.role not in roles:
            raise ApiError(403, "forbidden", f"the {who.role} role may not do this (allowed: {', '.join(roles)})")
        return who

    def route(rule: str, methods: tuple[str, ...] = ("GET",), name: str | None = None) -> Callable[[F], F]:
        def decorate(handler: F) -> F:
            label = name or handler.__name__

            @wraps(handler)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                status = 500
                try:
                    response = await handler(*args, **kwargs)
                    status = response[1] if isinstance(response, tuple) else 200
                    return response
                except ApiError as exc:
                    status = exc.status
                    return error_body(exc.code, exc.message, exc.details), exc.status
                except JournalUnavailable as exc:
                    status = 503
                    return error_body(exc.code, str(exc)), 503
                except FormatError as exc:  # a value the journal cannot hold (e.g. a lone surrogate)
                    status = 422
                    return error_body("invalid_request", f"the request holds a value that cannot be journaled: "
                                      f"{exc}"), 422
                except HTTPException as exc:  # e.g. 413 from reading an oversized body
                    status = exc.code or 500
                    raise
                finally:
                    service.metrics.rpc.labels(label, str(status)).inc()

            app.add_url_rule("/api/v1" + rule, label, wrapper, methods=list(methods))
            return handler
        return decorate

    async def body(required: bool = True) -> dict[str, Any]:
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

    def auction_or_404(auction_id: str) -> Any:
        try:
            return engine.auction(auction_id)
        except QueryError as exc:
            raise ApiError(404, exc.code, str(exc)) from None

    async def run(command: Any) -> list[Event]:
        events = (await runtime.execute(command)).events
        for event in events:
            if type(event) is CommandRejected:
                raise ApiError(REFUSAL_STATUS.get(event.code, 409), event.code, event.message)
        return events

    def optional_text(data: dict[str, Any], key: str, details: list[dict[str, str]]) -> str | None:
        value = data.get(key)
        if value is not None and (type(value) is not str or len(value) > MAX_TEXT):
            details.append({"path": key, "message": f"must be a string of at most {MAX_TEXT} characters"})
        return value

    def known_fields(data: dict[str, Any], allowed: set[str], details: list[dict[str, str]]) -> None:
        details += [{"path": k, "message": "unknown field"} for k in sorted(data) if k not in allowed]

    # -- documents -----------------------------------------------------------------------

    @route("/openapi.json", name="openapi")
    async def openapi() -> Any:
        return openapi_document()

    # -- auctions ------------------------------------------------------------------------

    @route("/auctions", ("POST",), name="create_auction")
    async def create_auction() -> Any:
        caller("portal")
        data = await body()
        aid = data.get("auction_id")
        if type(aid) is str and aid in engine.auction_ids():
            return same_or_conflict(data, aid)
        try:
            config = AuctionConfig.from_dict(data, default_secret=secrets.token_urlsafe(32))
        except ConfigError as exc:
            raise ApiError(422, exc.code, "the auction configuration is invalid",
                           [{"path": path, "message": message} for path, message in exc.problems]) from None
        try:
            await run(CreateAuction(runtime.now(), config))
        except ApiError as exc:
            if exc.code == "auction_exists":  # created concurrently by the same client
                return same_or_conflict(data, config.auction_id)
            raise
        log(logger, logging.INFO, "auction created", auction_id=config.auction_id)
        return auction_body(config.auction_id, "portal"), 201

    def same_or_conflict(data: dict[str, Any], aid: str) -> Any:
        existing = engine.auction(aid).config
        try:
            again = AuctionConfig.from_dict(data, default_secret=existing.pseudonym_secret)
        except ConfigError:
            again = None
        if again != existing:
            raise ApiError(409, "auction_conflict", f"auction {aid!r} exists with another configuration")
        return auction_body(aid, "portal"), 200

    @route("/auctions", name="list_auctions")
    async def list_auctions() -> Any:
        caller("portal", "buyer", "auditor")
        args = request.args
        status, buyer_ref, after = args.get("status"), args.get("buyer_ref"), args.get("after")
        limit = int_arg("limit", 50, 1, PAGE_LIMIT)
        if status is not None and status not in AUCTION_STATUSES:
            raise ApiError(422, "invalid_query", f"status must be one of {', '.join(AUCTION_STATUSES)}")
        ids = engine.auction_ids()
        if after is not None:
            ids = ids[ids.index(after) + 1:] if after in ids else []
        out: list[dict[str, Any]] = []
        last: str | None = None
        for aid in ids:
            auction = engine.auction(aid)
            if buyer_ref is not None and auction.config.buyer_ref != buyer_ref:
                continue
            if status is not None and auction_status(auction) != status:
                continue
            if len(out) == limit:
                break
            out.append(summary(auction))
            last = aid
        more = last is not None and len(out) == limit and ids.index(last) + 1 < len(ids)
        return {"auctions": out, "next": last if more else None}

    @route("/auctions/<auction_id>", name="get_auction")
    async def get_auction(auction_id: str) -> Any:
        who = caller("portal", "buyer", "auditor")
        auction_or_404(auction_id)
        return auction_body(auction_id, who.role)

    def auction_body(aid: str, role: str) -> dict[str, Any]:
        auction = engine.auction(aid)
        config = auction.config.to_dict()
        del config["pseudonym_secret"]
        del config["bidders"]
        d = auction.config.decimals
        for lot_config, lot in zip(config["lots"], auction.lots.values(), strict=True):
            view = engine.observer_view(aid, lot.config.lot_id)
            lot_config.update(status=view.status, close_at=format_instant(view.close_at), extensions=view.extensions,
                              bids=view.bids, rejected_bids=view.rejected_bids, active_bidders=view.active_bidders,
                              best_price=format_amount(view.ladder[0].price, d) if view.ladder else None)
        config["status"] = auction_status(auction)
        config["admitted_bidders"] = len(auction.admitted)
        if role == "portal":
            config["bidders"] = [{"bidder_id": b, "admitted": b in auction.admitted} for b in auction.pseudonyms]
        return config

    # -- bidders and observers -----------------------------------------------------------

    @route("/auctions/<auction_id>/bidders", ("POST",), name="admit_bidders")
    async def admit_bidders(auction_id: str) -> Any:
        caller("portal")
        auction = auction_or_404(auction_id)
        data = await body()
        details: list[dict[str, str]] = []
        known_fields(data, {"bidders", "ttl_s"}, details)
        bidders, ttl = data.get("bidders"), data.get("ttl_s")
        if type(bidders) is not list or not 1 <= len(bidders) <= 1000:
            details.append({"path": "bidders", "message": "must be a list of 1 to 1000 bidder ids"})
            bidders = []
        for i, bidder in enumerate(bidders):
            if type(bidder) is not str or not ID_PATTERN.fullmatch(bidder):
                details.append({"path": f"bidders[{i}]", "message": "must be 1-64 letters, digits or . _ : @ -, "
                                "starting with a letter or digit"})
        if len(set(map(str, bidders))) != len(bidders):
            details.append({"path": "bidders", "message": "lists a bidder twice"})
        if ttl is not None and (type(ttl) is not int or not 60 <= ttl <= service.settings.token_ttl_s):
            details.append({"path": "ttl_s", "message": f"must be an integer of 60 to {service.settings.token_ttl_s}"})
        if details:
            raise ApiError(422, "invalid_request", "the request is invalid", details)
        if auction.finished:
            raise ApiError(409, "auction_finished", f"every lot of {auction_id!r} has ended")
        tokens = []
        for bidder in bidders:
            if bidder not in auction.admitted:
                await run(AdmitBidder(runtime.now(), auction_id, bidder))
            token, expires = service.tokens.issue(auction_id, bidder, "bidder", ttl)
            tokens.append({"bidder_id": bidder, "token": token, "expires_at": format_instant(expires)})
        log(logger, logging.INFO, "bidders admitted", auction_id=auction_id, count=len(tokens))
        return {"auction_id": auction_id, "tokens": tokens}

    @route("/auctions/<auction_id>/bidders/<bidder_id>/revoke", ("POST",), name="revoke_bidder")
    async def revoke_bidder(auction_id: str, bidder_id: str) -> Any:
        caller("portal")
        auction_or_404(auction_id)
        data = await body(required=False)
        details: list[dict[str, str]] = []
        known_fields(data, {"reason"}, details)
        reason = optional_text(data, "reason", details) or ""
        if details:
            raise ApiError(422, "invalid_request", "the request is invalid", details)
        await run(RevokeBidder(runtime.now(), auction_id, bidder_id, reason))
        log(logger, logging.INFO, "bidder revoked", auction_id=auction_id)
        return {"auction_id": auction_id, "bidder_id": bidder_id, "admitted": False}

    @route("/auctions/<auction_id>/observers", ("POST",), name="observer_token")
    async def observer_token(auction_id: str) -> Any:
        caller("portal", "buyer")
        auction_or_404(auction_id)
        data = await body(required=False)
        details: list[dict[str, str]] = []
        known_fields(data, {"name", "ttl_s"}, details)
        name, ttl = data.get("name", "observer"), data.get("ttl_s")
        if type(name) is not str or not ID_PATTERN.fullmatch(name):
            details.append({"path": "name", "message": "must be 1-64 letters, digits or . _ : @ -"})
        if ttl is not None and (type(ttl) is not int or not 60 <= ttl <= service.settings.token_ttl_s):
            details.append({"path": "ttl_s", "message": f"must be an integer of 60 to {service.settings.token_ttl_s}"})
        if details:
            raise ApiError(422, "invalid_request", "the request is invalid", details)
        token, expires = service.tokens.issue(auction_id, name, "observer", ttl)
        return {"auction_id": auction_id, "name": name, "token": token, "expires_at": format_instant(expires)}

    # -- lifecycle -----------------------------------------------------------------------

    async def lot_command(auction_id: str, command_type: Any, roles: tuple[str, ...], with_reason: bool) -> Any:
        caller(*roles)
        auction_or_404(auction_id)
        data = await body(required=False)
        details: list[dict[str, str]] = []
        known_fields(data, {"lot_id", "reason"} if with_reason else {"lot_id"}, details)
        lot_id = data.get("lot_id")
        if lot_id is not None and type(lot_id) is not str:
            details.append({"path": "lot_id", "message": "must be a lot id (a string) or absent for every lot"})
        reason = optional_text(data, "reason", details) if with_reason else None
        if details:
            raise ApiError(422, "invalid_request", "the request is invalid", details)
        fields = (auction_id, lot_id, reason or "") if with_reason else (auction_id, lot_id)
        await run(command_type(runtime.now(), *fields))
        return auction_body(auction_id, "buyer")

    @route("/auctions/<auction_id>/suspend", ("POST",), name="suspend")
    async def suspend(auction_id: str) -> Any:
        return await lot_command(auction_id, Suspend, ("portal", "buyer"), True)

    @route("/auctions/<auction_id>/resume", ("POST",), name="resume")
    async def resume(auction_id: str) -> Any:
        return await lot_command(auction_id, Resume, ("portal", "buyer"), False)

    @route("/auctions/<auction_id>/cancel", ("POST",), name="cancel")
    async def cancel(auction_id: str) -> Any:
        return await lot_command(auction_id, Cancel, ("portal",), True)

    # -- results and the journal ---------------------------------------------------------

    @route("/auctions/<auction_id>/results", name="results")
    async def results(auction_id: str) -> Any:
        who = caller("portal", "buyer", "auditor")
        auction = auction_or_404(auction_id)
        reveal = who.role in ("portal", "buyer") and auction.finished
        out = results_to_dict(engine.results(auction_id, reveal=reveal))
        out["identities"] = reveal
        return out

    @route("/auctions/<auction_id>/journal", name="journal_export")
    async def journal_export(auction_id: str) -> Any:
        caller("auditor")
        auction_or_404(auction_id)
        with tempfile.TemporaryDirectory(dir=service.settings.data_dir) as tmp:
            path = os.path.join(tmp, f"{auction_id}.journal")
            checked = await trio.to_thread.run_sync(lambda: export(service.journal_dir, auction_id, path, live=True))
            if not checked.ok:
                problem = checked.problem
                raise ApiError(500, "journal_unverified", f"the journal did not verify: {problem}")
            data = await trio.to_thread.run_sync(lambda: open(path, "rb").read())  # noqa: SIM115
        return Response(data, 200, {"Content-Type": "application/octet-stream",
                                    "Content-Disposition": f'attachment; filename="{auction_id}.journal"'})

    # -- the lifecycle feed --------------------------------------------------------------

    @route("/events", name="events")
    async def events() -> Any:
        caller("portal", "buyer")
        after = int_arg("after", 0, 0, 1 << 62)
        last_id = request.headers.get("Last-Event-ID")
        if last_id is not None and re.fullmatch(r"[0-9]{1,18}", last_id):
            after = max(after, int(last_id))
        limit = int_arg("limit", 100, 1, PAGE_LIMIT)
        auction_id = request.args.get("auction_id")
        if "text/event-stream" in request.headers.get("Accept", ""):
            return Response(sse(after, auction_id), 200, {"Content-Type": "text/event-stream",
                                                          "Cache-Control": "no-cache"})
        wait = float_arg("wait", 0.0, 0.0, service.settings.feed_wait_max_s)
        entries = await service.feed.wait_after(after, limit, wait, auction_id)
        return {"events": entries, "last_seq": entries[-1]["seq"] if entries else after}

    async def sse(after: int, auction_id: str | None) -> AsyncIterator[bytes]:
        seq = after
        yield b"retry: 2000\n\n"
        while True:
            entries = await service.feed.wait_after(seq, PAGE_LIMIT, SSE_KEEPALIVE, auction_id)
            if not entries:
                yield b": keep-alive\n\n"
                seq = max(seq, service.feed.last_seq) if auction_id is not None else seq
                continue
            for entry in entries:
                yield f"id: {entry['seq']}\nevent: {entry['type']}\ndata: {json.dumps(entry)}\n\n".encode()
            seq = entries[-1]["seq"]

    def int_arg(name: str, default: int, low: int, high: int) -> int:
        text = request.args.get(name)
        if text is None:
            return default
        if not re.fullmatch(r"[0-9]{1,19}", text) or not low <= int(text) <= high:
            raise ApiError(422, "invalid_query", f"{name} must be an integer from {low} to {high}")
        return int(text)

    def float_arg(name: str, default: float, low: float, high: float) -> float:
        text = request.args.get(name)
        if text is None:
            return default
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:
            raise ApiError(422, "invalid_query", f"{name} must be a number of seconds from {low:g} to {high:g}")
        return value

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.code or 500, "http_error")
        headers = {"Connection": "close"} if exc.code == 413 else {}  # the unread body stays on the connection
        return error_body(code, exc.description or exc.name), exc.code or 500, headers


AUCTION_STATUSES = ("scheduled", "open", "suspended", "closed")


def auction_status(auction: Any) -> str:
    """scheduled / open / suspended (none open, some suspended) / closed (every lot final)."""
    statuses = [lot.clock.status for lot in auction.lots.values()]
    if all(s in FINAL for s in statuses):
        return "closed"
    if OPEN in statuses:
        return "open"
    if SUSPENDED in statuses:
        return "suspended"
    return "scheduled"


def summary(auction: Any) -> dict[str, Any]:
    config = auction.config
    return {"auction_id": config.auction_id, "title": config.title, "buyer_ref": config.buyer_ref,
            "status": auction_status(auction), "start": format_instant(config.start),
            "end": format_instant(config.end), "lots": len(config.lots)}
