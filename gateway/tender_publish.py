"""Publishing and listing tenders, the buyer's drafts, and the bridge from a tender to a
reverse auction (part of gateway/tenders_api.py's operations).

Publishing is idempotent on the tender id: the same specification again answers 200,
another 409 `tender_exists`. The body carries the public key and the share digests made
by the buyer's software; the private key never reaches the service. A draft (PUT
.../draft) is the buyer's alone until POST /tenders publishes that id. The bridge creates
an auction whose admitted bidders are the tender's admitted bidders, with `tender_ref`.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from auction_engine.commands import CreateAuction
from auction_engine.config import AuctionConfig, ConfigError
from auction_engine.money import MoneyError, format_amount, parse_amount
from auction_engine.timeutil import format_instant, parse_instant
from tenders import DiscardDraft, DraftTender, PublishTender, Tenders, TenderSpec
from tenders.messages import TenderRefused
from tenders.tender import DECIDED, EVALUATION

from . import tender_answers as a
from . import tender_models as t
from .auth import Caller
from .operations import API, ApiError, Operation
from .tender_errors import ERROR_CODES
from .tender_views import summary, tender_view
from .views import InstantOut, MoneyOut, View

if TYPE_CHECKING:  # gateway/api.py imports the document, which imports this module
    from .api import Api

_LINKS = {name: {"operationId": name, "tender_id": "$response.body#/tender_id"} for name in (
    "get_tender", "issue_tender_tokens", "tender_results", "record_rate", "request_extension", "cancel_tender")}
DRAFT_LINKS = {name: {"operationId": name, "tender_id": "$response.body#/tender_id"}
               for name in ("get_draft", "discard_draft")}
SPEC_CODES = ("malformed", "opening_in_past", "invalid_lots", "invalid_public_key", "invalid_commission",
              "invalid_currency", "invalid_parts", "invalid_validity", "invalid_percent", "invalid_delays")



class DraftTenderRequest(t.PublishTenderRequest):
    """A draft: a publication's body whose key and share digests may wait for publication
    (the key pair is made then), and whose opening is checked only then."""

    tender_id: t.TenderId | None = Field(  # type: ignore[assignment]
        None, description="If given, the path's id: the same body, with the key and digests, publishes it.")
    public_key: t.Key | None = None  # type: ignore[assignment]
    share_digests: list[t.Digest] = Field(
        [], max_length=255, description="Empty, or one per member in order.")


class DraftLot(View):
    lot_id: t.TenderId
    estimate: MoneyOut


class DraftView(View):
    """A draft as saved: its spec in the publication's form, `status` draft (or discarded,
    answering its discard); publish it with POST /tenders (this body, key and digests added)."""

    tender_id: t.TenderId
    status: Literal["draft", "discarded"]
    saved_at: InstantOut
    buyer_id: t.TenderId
    opening_at: InstantOut
    lots: list[DraftLot]
    public_key: str | None
    members: list[t.TenderId]
    share_digests: list[str]
    threshold: int
    currency: str
    decimals: int
    parts: list[t.Part]
    validity_days: int
    preference: str
    exemption: str
    abnormally_low: str | None
    excessive: str | None
    ask_days: int
    answer_days: int
    justification_days: int
    amendment_days: int


def draft_view(tender_id: str, spec: TenderSpec, saved_at: int, status: str = "draft") -> dict[str, Any]:
    return {"tender_id": tender_id, "status": status, "saved_at": format_instant(saved_at),
            "buyer_id": spec.buyer_id, "opening_at": format_instant(spec.opening_at),
            "lots": [{"lot_id": lot, "estimate": format_amount(v, spec.decimals)} for lot, v in spec.lots],
            "public_key": spec.public_key.hex() or None, "members": list(spec.members),
            "share_digests": [d.hex() for d in spec.share_digests], "threshold": spec.threshold,
            "currency": spec.currency, "decimals": spec.decimals, "parts": list(spec.parts),
            "validity_days": spec.validity_days, "preference": spec.preference, "exemption": spec.exemption,
            "abnormally_low": spec.abnormally_low or None, "excessive": spec.excessive or None,
            "ask_days": spec.ask_days, "answer_days": spec.answer_days,
            "justification_days": spec.justification_days, "amendment_days": spec.amendment_days}


_DRAFT = API + "/tenders/{tender_id}/draft"
OPERATIONS: tuple[Operation, ...] = (
    Operation("publish_tender", "post", API + "/tenders", "Publish a tender",
              "Idempotent on `tender_id`: the same body again answers 200 with the tender; another specification "
              "under an existing id answers 409 `tender_exists`. The key pair and the k-of-n shares are made on the "
              "buyer's side (gateway/tender_client.py): the body carries the public key and each member's share "
              "digest. Rules across fields (opening in the future, one digest per member, threshold at most the "
              "members, answer_days at most ask_days, estimates at the tender's decimals) answer the kind's codes. "
              "Answers once the record is durable.", "tenders", ("portal", "buyer"),
              {201: (a.TenderView, "Published."), 200: (a.TenderView, "Already published with this body.")},
              ("tender_exists", "not_the_buyer", *SPEC_CODES, "invalid_json", "body_too_large", "invalid_request",
               "journal_unavailable", "case_conflict"), t.PublishTenderRequest, True, links=_LINKS),
    Operation("save_draft", "put", _DRAFT, "Save a tender's draft", "The buyer's private work before publication: "
              "no feed event, not listed, no deadline, no deposit. Saving again replaces the draft (the same body "
              "again changes nothing); it must name the draft's buyer. The spec is checked as at publication except "
              "the opening (checked when published) and the public key and share digests (absent until the key "
              "pair is made). Publish it with POST /tenders under the same id: the publication's body is the "
              "tender (it replaces the draft) and must name the draft's buyer. Answers once the record is durable.",
              "tenders", ("portal", "buyer"), {201: (DraftView, "Saved."), 200: (DraftView, "Replaced.")},
              ("already_published", "not_the_buyer", *(c for c in SPEC_CODES if c != "opening_in_past"),
               "invalid_json", "body_too_large", "invalid_request", "journal_unavailable", "case_conflict"),
              DraftTenderRequest, True, path_params=("tender_id",), links=DRAFT_LINKS),
    Operation("get_draft", "get", _DRAFT, "Get a tender's draft", "The draft as last saved (the buyer's only).",
              "tenders", ("portal", "buyer"), {200: (DraftView, "The draft.")},
              ("unknown_tender", "already_published"), path_params=("tender_id",)),
    Operation("discard_draft", "delete", _DRAFT, "Discard a tender's draft", "The draft is gone (journaled); its id "
              "is free for a new draft or a publication. Answers the discarded draft once the record is durable.",
              "tenders", ("portal", "buyer"), {200: (DraftView, "Discarded.")},
              ("unknown_tender", "already_published", "journal_unavailable", "case_conflict"),
              path_params=("tender_id",)),
    Operation("list_tenders", "get", API + "/tenders", "List tenders", "In publication order, a page at a time: pass "
              "the answer's `next` as `after`.", "tenders", ("portal", "buyer", "auditor"),
              {200: (a.TenderPage, "A page of summaries.")}, ("invalid_query",), query=t.TenderListQuery,
              links={name: {**link, "tender_id": "$response.body#/tenders/0/tender_id"}
                     for name, link in _LINKS.items()}),
    Operation("tender_auction", "post", API + "/tenders/{tender_id}/auction", "Follow a tender with a reverse "
              "auction", "Creates a reverse auction (the body: its configuration without `bidders`) whose admitted "
              "bidders are the tender's admitted bidders, once the tender's admission is closed; the auction keeps "
              "the tender's id in `tender_ref`. Idempotent on `auction_id` as POST /auctions. Room tokens: POST "
              "/auctions/{auction_id}/bidders. Answers once the record is durable.", "tenders", ("portal", "buyer"),
              {201: (a.BridgeView, "Created."), 200: (a.BridgeView, "The auction already existed with this body.")},
              ("unknown_tender", "admission_open", "no_admitted_bidders", "auction_conflict", "invalid_config",
               "ends_in_past", "invalid_json", "body_too_large", "invalid_request", "journal_unavailable",
               "case_conflict"), t.AuctionAfterTender, True, path_params=("tender_id",),
              links={"get_auction": {"operationId": "get_auction", "auction_id": "$response.body#/auction_id"},
                     "admit_bidders": {"operationId": "admit_bidders", "auction_id": "$response.body#/auction_id"}}),
)



def spec_of(req: t.PublishTenderRequest) -> TenderSpec:
    """The kind's spec of a publication body; 422 `invalid_lots` for an estimate with more
    decimals than the tender's."""
    lots = []
    for i, lot in enumerate(req.lots):
        try:
            lots.append((lot.lot_id, parse_amount(lot.estimate, req.decimals)))
        except MoneyError as exc:
            raise ApiError(422, "invalid_lots", f"lots[{i}].estimate: {exc}") from None
    return TenderSpec(req.buyer_id, parse_instant(req.opening_at), tuple(lots), bytes.fromhex(req.public_key or ""),
                      tuple(req.members), tuple(bytes.fromhex(d) for d in req.share_digests), req.threshold,
                      req.currency, req.decimals, tuple(req.parts), req.validity_days, req.preference, req.exemption,
                      req.abnormally_low or "", req.excessive or "", req.ask_days, req.answer_days,
                      req.justification_days, req.amendment_days)


def register(api: Api, kind: Tenders) -> None:
    runtime = api.runtime

    def same_or_conflict(tender_id: str, spec: TenderSpec) -> Any:
        if kind.tenders[tender_id].spec != spec:
            raise ApiError(409, "tender_exists", f"tender {tender_id!r} exists with another specification")
        return tender_view(kind, tender_id, "portal", None), 200

    @api.route("publish_tender")
    async def publish_tender(_who: Caller) -> Any:
        req = await api.parsed(t.PublishTenderRequest, required=True)
        spec = spec_of(req)
        if req.tender_id in kind.tenders:
            return same_or_conflict(req.tender_id, spec)
        command: Any = PublishTender(runtime.now(), req.tender_id, spec)  # the runtime's type names auctions'
        events: list[Any] = (await runtime.execute(command)).events
        refused = next((e for e in events if type(e) is TenderRefused), None)
        if refused is not None:
            if refused.code == "tender_exists":  # published concurrently
                return same_or_conflict(req.tender_id, spec)
            raise ApiError(ERROR_CODES[refused.code][0], refused.code, ERROR_CODES[refused.code][1])
        return tender_view(kind, req.tender_id, "portal", None), 201

    def refusal(event: Any) -> tuple[str, str] | None:
        return (event.code, ERROR_CODES[event.code][1]) if type(event) is TenderRefused else None

    def the_draft(tender_id: str) -> list[Any]:
        draft = kind.drafts.get(tender_id)
        if draft is None:
            code = "already_published" if tender_id in kind.tenders else "unknown_tender"
            raise ApiError(ERROR_CODES[code][0], code, ERROR_CODES[code][1])
        return draft

    @api.route("save_draft")
    async def save_draft(_who: Caller, tender_id: str) -> Any:
        req = await api.parsed(DraftTenderRequest, required=True)
        if req.tender_id not in (None, tender_id):
            raise ApiError(422, "invalid_request", "the request body is invalid",
                           [{"path": "tender_id", "message": "not the path's tender id"}])
        spec = spec_of(req)
        old = kind.drafts.get(tender_id)
        if old is not None and old[0] == spec:
            return draft_view(tender_id, *old), 200
        await api.run(DraftTender(runtime.now(), tender_id, spec), refusal=refusal)
        return draft_view(tender_id, *kind.drafts[tender_id]), 200 if old is not None else 201

    @api.route("get_draft")
    async def get_draft(_who: Caller, tender_id: str) -> Any:
        return draft_view(tender_id, *the_draft(tender_id))

    @api.route("discard_draft")
    async def discard_draft(_who: Caller, tender_id: str) -> Any:
        spec, saved_at = the_draft(tender_id)
        await api.run(DiscardDraft(runtime.now(), tender_id, spec.buyer_id), refusal=refusal)
        return draft_view(tender_id, spec, saved_at, "discarded")

    @api.route("list_tenders")
    async def list_tenders(_who: Caller) -> Any:
        q: t.TenderListQuery = api.query(t.TenderListQuery)
        ids = list(kind.tenders)
        if q.after is not None:
            ids = ids[ids.index(q.after) + 1:] if q.after in ids else []
        out: list[dict[str, Any]] = []
        last: str | None = None
        for tid in ids:
            if q.status is not None and kind.tenders[tid].status != q.status:
                continue
            if len(out) == q.limit:
                break
            out.append(summary(tid, kind.tenders[tid]))
            last = tid
        more = last is not None and len(out) == q.limit and ids.index(last) + 1 < len(ids)
        return {"tenders": out, "next": last if more else None}

    @api.route("tender_auction")
    async def tender_auction(_who: Caller, tender_id: str) -> Any:
        tender = kind.tenders.get(tender_id)
        if tender is None:
            raise ApiError(404, "unknown_tender", f"no tender {tender_id!r}")
        if tender.status not in (EVALUATION, DECIDED):
            raise ApiError(409, "admission_open", ERROR_CODES["admission_open"][1])
        admitted = [b for b in sorted(tender.decisions, key=lambda b: tender.orders[b]) if tender.decisions[b][0]]
        if not admitted:
            raise ApiError(409, "no_admitted_bidders", ERROR_CODES["no_admitted_bidders"][1])
        body = await api.parsed(t.AuctionAfterTender, required=True)
        data = {**(await api.body()), "bidders": admitted, "tender_ref": tender_id}
        engine = runtime.engine
        existing = engine.auction(body.auction_id).config if body.auction_id in engine.auction_ids() else None
        try:
            config = AuctionConfig.from_dict(data, default_secret=existing.pseudonym_secret if existing else
                                             secrets.token_urlsafe(32))
        except ConfigError as exc:
            raise ApiError(422, exc.code, "the auction configuration is invalid",
                           [{"path": path, "message": message} for path, message in exc.problems]) from None
        answer = {"tender_id": tender_id, "auction_id": config.auction_id, "bidders": admitted}
        if existing is not None:
            if existing != config:
                raise ApiError(409, "auction_conflict", f"auction {config.auction_id!r} exists with another "
                                                        "configuration")
            return answer, 200
        await api.run(CreateAuction(runtime.now(), config))
        return answer, 201
