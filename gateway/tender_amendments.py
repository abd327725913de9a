"""The tender RPC's amendments, confirmations and minutes (docs/tenders.md).

`POST /tenders/{id}/amendments` (buyer): `PublishAmendment`, which may move the opening;
`POST /tenders/{id}/confirmations` (bidder): `ConfirmOffer`, without which a deposit made
before an amendment is set aside at the deadline; `GET /tenders/{id}/minutes` (buyer,
commission, auditor): the opening's or the evaluation's minutes, drawn up by
replay/minutes.py's pure renderer from a copy of the live state, as HTML or PDF bytes.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from quart import Response

from replay.minutes import MinutesError, render_minutes
from tenders import Tenders
from tenders.messages import ConfirmOffer, PublishAmendment

from . import tender_answers as a
from . import tender_models as t
from .auth import Caller
from .operations import API, ApiError, Operation
from .tender_errors import ERROR_CODES

if TYPE_CHECKING:
    from .api import Api

BUYER = ("portal", "buyer")
_COMMAND = ("unknown_tender", "malformed", "journal_unavailable", "case_conflict")
_BODY = ("invalid_json", "body_too_large", "invalid_request")
_LINKS = {name: {"operationId": name, "tender_id": "$response.body#/tender_id"}
          for name in ("get_tender", "tender_minutes", "publish_amendment")}
CONTENT_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}
MINUTES_FILENAME = '^attachment; filename="[^"]+-(opening|evaluation)-(fr|en)\\.(html|pdf)"$'

OPERATIONS: tuple[Operation, ...] = (
    Operation("publish_amendment", "post", API + "/tenders/{tender_id}/amendments", "Publish an amendment",
              "An amendment to the tender's file (art. 10 §3): a text, the amended file's SHA-256, or both; "
              "published to all (the feed's AmendmentPublished). With fewer than the tender's `amendment_days` "
              "left before the opening, the opening (and the offers' validity) moves to leave exactly that many. "
              "Every deposit standing now must then be confirmed by its bidder (POST .../confirmations) before "
              "the deposit deadline, or it is set aside there, never opened. Answers once its record is durable.",
              "tenders", BUYER, {200: (a.TenderView, "Published: the tender after it.")},
              (*_COMMAND, "not_the_buyer", "deposit_closed", "tender_cancelled", "amendment_exists", *_BODY),
              t.AmendmentRequest, True, path_params=("tender_id",), links=_LINKS),
    Operation("confirm_offer", "post", API + "/tenders/{tender_id}/confirmations", "Confirm a deposit",
              "The bidder keeps its deposit made before an amendment (its view's `must_confirm`); before "
              "`opening_at`. A deposit made after every amendment needs none (`already_confirmed`). Answers "
              "once its record is durable.", "tenders", ("bidder",), {200: (a.TenderView, "Confirmed.")},
              (*_COMMAND, "deposit_closed", "tender_cancelled", "nothing_to_confirm", "already_confirmed"),
              path_params=("tender_id",), links=_LINKS),
    Operation("tender_minutes", "get", API + "/tenders/{tender_id}/minutes", "A tender's minutes",
              "The opening session's minutes (after the opening) or the evaluation's (once the admission is "
              "closed), as a standalone HTML document or an A4 PDF, in French or English, drawn up from the "
              "tender's state alone (the same bytes as `auction-replay minutes` from the journal). Never names "
              "who asked a question.", "tenders", (*BUYER, "auditor", "commission"),
              {200: (None, "The minutes' file.")},
              ("unknown_tender", "not_opened", "not_evaluated", "invalid_query"), query=t.MinutesQuery,
              path_params=("tender_id",)),
)


def register(api: Api, kind: Tenders, act: Callable[[Caller, str, Any], Awaitable[Any]],
             known: Callable[[str], Any]) -> None:
    """Bind the handlers; `act` runs a command and answers the caller's view, `known`
    gives a tender or raises 404 (gateway/tenders_api.py's)."""
    runtime = api.runtime

    @api.route("publish_amendment")
    async def publish_amendment(who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        req = await api.parsed(t.AmendmentRequest, required=True)
        digest = bytes.fromhex(req.sha256) if req.sha256 is not None else b""
        return await act(who, tender_id, PublishAmendment(runtime.now(), tender_id, tender.spec.buyer_id,
                                                          req.amendment_id, req.text, digest))

    @api.route("confirm_offer")
    async def confirm_offer(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        assert who.subject is not None, who
        return await act(who, tender_id, ConfirmOffer(runtime.now(), tender_id, who.subject))

    @api.route("tender_minutes")
    async def tender_minutes(_who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        q = api.query(t.MinutesQuery)
        snapshot = copy.deepcopy(tender)  # the live state moves on while the thread draws the copy up
        try:
            data = await trio.to_thread.run_sync(render_minutes, tender_id, snapshot, q.which, q.format, q.lang)
        except MinutesError as exc:
            raise ApiError(ERROR_CODES[exc.code][0], exc.code, str(exc)) from None
        name = f"{tender_id}-{q.which}-{q.lang}.{q.format}"
        return Response(data, 200, {"Content-Type": CONTENT_TYPES[q.format],
                                    "Content-Disposition": f'attachment; filename="{name}"'})
