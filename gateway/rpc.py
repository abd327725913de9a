"""The portal RPC: HTTP JSON under /api/v1, API keys with roles (docs/api.md).

Each handler is bound to one operation of gateway/openapi.py, which states its roles,
body, query and answers; bodies and queries are validated by those models. Every error is
``{"error": {"code", "message", "details"?}}`` with a fitting status; bad input never
changes state. Commands go through the runtime, so an answer comes once its records are
durable. Creating an auction is idempotent on its id.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import trio
from quart import Quart, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from auction_engine.clock import FINAL, OPEN, SUSPENDED
from auction_engine.commands import AdmitBidder, Cancel, CreateAuction, Resume, RevokeBidder, Suspend
from auction_engine.config import AuctionConfig, ConfigError
from auction_engine.edge import results_to_dict
from auction_engine.engine import QueryError
from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from replay.verify import export

from . import models as m
from .api import Api, invalid
from .auth import Caller
from .kind_apis import KIND_APIS
from .logs import log
from .openapi import openapi_document
from .operations import MAX_BODY, SSE_KEEPALIVE, ApiError, Limits, error_body
from .service import Service

logger = logging.getLogger("gateway.rpc")

__all__ = ["MAX_BODY", "ApiError", "error_body", "register_rpc"]


def register_rpc(app: Quart, service: Service) -> None:
    """Add the /api/v1 routes for `service` to `app`: the auctions' here, each kind's from
    gateway/kind_apis.py; one handler per operation of gateway/openapi.py."""
    runtime, engine = service.runtime, service.runtime.engine
    limits = Limits(token_ttl_s=service.settings.token_ttl_s, feed_wait_max_s=service.settings.feed_wait_max_s)
    api = Api(app, service, limits)
    route, body, parsed, query, check_ttl, run = api.route, api.body, api.parsed, api.query, api.check_ttl, api.run
    for kind_api in KIND_APIS:
        kind_api.register(api)

    def auction_or_404(auction_id: str) -> Any:
        try:
            return engine.auction(auction_id)
        except QueryError as exc:
            raise ApiError(404, exc.code, str(exc)) from None

    # -- documents -----------------------------------------------------------------------

    @route("openapi")
    async def openapi(_who: None) -> Any:
        return openapi_document(limits)

    # -- auctions ------------------------------------------------------------------------

    @route("create_auction")
    async def create_auction(_who: Caller) -> Any:
        # The core's own validation (config.py) reports every problem with the lot's resolved
        # path; m.AuctionConfig states the same rules in the document.
        data = await body()
        aid = data.get("auction_id")
        if type(aid) is str and aid in engine.auction_ids():
            return same_or_conflict(data, aid)
        try:
            config = AuctionConfig.from_dict(data, default_secret=secrets.token_urlsafe(32))
        except ConfigError as exc:
            raise invalid(exc.code, "the auction configuration is invalid",
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

    @route("list_auctions")
    async def list_auctions(_who: Caller) -> Any:
        q: m.ListQuery = query(m.ListQuery)
        ids = engine.auction_ids()
        if q.after is not None:
            ids = ids[ids.index(q.after) + 1:] if q.after in ids else []
        out: list[dict[str, Any]] = []
        last: str | None = None
        for aid in ids:
            auction = engine.auction(aid)
            if q.buyer_ref is not None and auction.config.buyer_ref != q.buyer_ref:
                continue
            if q.status is not None and auction_status(auction) != q.status:
                continue
            if len(out) == q.limit:
                break
            out.append(summary(auction))
            last = aid
        more = last is not None and len(out) == q.limit and ids.index(last) + 1 < len(ids)
        return {"auctions": out, "next": last if more else None}

    @route("get_auction")
    async def get_auction(who: Caller, auction_id: str) -> Any:
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

    @route("admit_bidders")
    async def admit_bidders(_who: Caller, auction_id: str) -> Any:
        auction = auction_or_404(auction_id)
        req = await parsed(m.AdmitRequest, required=True)
        check_ttl(req.ttl_s)
        if auction.finished:
            raise ApiError(409, "auction_finished", f"every lot of {auction_id!r} has ended")
        tokens = []
        for bidder in req.bidders:
            if bidder not in auction.admitted:
                await run(AdmitBidder(runtime.now(), auction_id, bidder))
            token, expires = service.tokens.issue(auction_id, bidder, "bidder", req.ttl_s)
            tokens.append({"bidder_id": bidder, "token": token, "expires_at": format_instant(expires)})
        log(logger, logging.INFO, "bidders admitted", auction_id=auction_id, count=len(tokens))
        return {"auction_id": auction_id, "tokens": tokens}

    @route("revoke_bidder")
    async def revoke_bidder(_who: Caller, auction_id: str, bidder_id: str) -> Any:
        auction_or_404(auction_id)
        req = await parsed(m.RevokeRequest)
        await run(RevokeBidder(runtime.now(), auction_id, bidder_id, req.reason or ""))
        log(logger, logging.INFO, "bidder revoked", auction_id=auction_id)
        return {"auction_id": auction_id, "bidder_id": bidder_id, "admitted": False}

    @route("observer_token")
    async def observer_token(_who: Caller, auction_id: str) -> Any:
        auction_or_404(auction_id)
        req = await parsed(m.ObserverRequest)
        check_ttl(req.ttl_s)
        token, expires = service.tokens.issue(auction_id, req.name, "observer", req.ttl_s)
        return {"auction_id": auction_id, "name": req.name, "token": token, "expires_at": format_instant(expires)}

    # -- lifecycle -----------------------------------------------------------------------

    @route("suspend")
    async def suspend(_who: Caller, auction_id: str) -> Any:
        auction_or_404(auction_id)
        req = await parsed(m.SuspendRequest)
        await run(Suspend(runtime.now(), auction_id, req.lot_id, req.reason or ""))
        return auction_body(auction_id, "buyer")

    @route("resume")
    async def resume(_who: Caller, auction_id: str) -> Any:
        auction_or_404(auction_id)
        req = await parsed(m.ResumeRequest)
        await run(Resume(runtime.now(), auction_id, req.lot_id))
        return auction_body(auction_id, "buyer")

    @route("cancel")
    async def cancel(_who: Caller, auction_id: str) -> Any:
        auction_or_404(auction_id)
        req = await parsed(m.CancelRequest)
        await run(Cancel(runtime.now(), auction_id, req.lot_id, req.reason or ""))
        return auction_body(auction_id, "buyer")

    # -- results and the journal ---------------------------------------------------------

    @route("results")
    async def results(who: Caller, auction_id: str) -> Any:
        auction = auction_or_404(auction_id)
        reveal = who.role in ("portal", "buyer") and auction.finished
        out = results_to_dict(engine.results(auction_id, reveal=reveal))
        out["identities"] = reveal
        return out

    @route("journal_export")
    async def journal_export(_who: Caller, auction_id: str) -> Any:
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

    @route("events")
    async def events(_who: Caller) -> Any:
        q: m.EventsQuery = query(m.EventsQuery)
        after = q.after
        last_id = request.headers.get("Last-Event-ID")
        if last_id is not None:
            if not re.fullmatch(m.LAST_EVENT_ID[1:-1], last_id):
                raise ApiError(400, "invalid_header", "Last-Event-ID must be a feed seq: 1 to 18 digits")
            after = max(after, int(last_id))
        if q.wait > limits.feed_wait_max_s:
            raise invalid("invalid_query", f"wait: must be at most {limits.feed_wait_max_s:g} seconds",
                          [{"path": "wait", "message": f"must be at most {limits.feed_wait_max_s:g} seconds"}])
        case = q.case_id if q.case_id is not None else q.auction_id
        if q.case_id is not None and q.auction_id is not None and q.case_id != q.auction_id:
            case = ""  # both filters apply: no case has two ids (and none the empty one)
        if "text/event-stream" in request.headers.get("Accept", ""):
            return Response(sse(after, q.limit, case), 200, {"Content-Type": "text/event-stream",
                                                             "Cache-Control": "no-cache"})
        entries = await service.feed.wait_after(after, q.limit, q.wait, case)
        return {"events": entries, "last_seq": entries[-1]["seq"] if entries else after}

    async def sse(after: int, limit: int, auction_id: str | None) -> AsyncIterator[bytes]:
        seq = after
        yield b"retry: 2000\n\n"
        while True:
            entries = await service.feed.wait_after(seq, limit, SSE_KEEPALIVE, auction_id)
            if not entries:
                yield b": keep-alive\n\n"
                seq = max(seq, service.feed.last_seq) if auction_id is not None else seq
                continue
            for entry in entries:
                yield f"id: {entry['seq']}\nevent: {entry['type']}\ndata: {json.dumps(entry)}\n\n".encode()
            seq = entries[-1]["seq"]

    @app.after_request
    async def drain_body(response: Response) -> Response:
        # quart-trio stops reading the request once the answer is sent; a body left unread (an
        # answer that needs none: OPTIONS, 401, 404, 405) then wedges the kept-alive connection,
        # so the client's next request never gets an answer (found by schemathesis).
        length = request.content_length
        if length and length <= MAX_BODY:
            await request.get_data(as_text=False)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.code or 500, "http_error")
        headers = {"Connection": "close"} if exc.code == 413 else {}  # the unread body stays on the connection
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:  # RFC 9110 15.5.6: say which methods it takes
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return error_body(code, exc.description or exc.name), exc.code or 500, headers




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
