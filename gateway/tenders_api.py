"""The sealed tenders' RPC under /api/v1/tenders (a `KindApi`, docs/tenders.md).

Roles: the buyer (API keys `portal` and `buyer`: they act for the tender's `buyer_id`),
commission members (`commission` case tokens, subject = member id), bidders (`bidder`
case tokens, subject = bidder id) and auditors (API key). Each act is one tender command
through the runtime, answered once durable; a refusal answers its code (`ERROR_CODES`)
and changes nothing. A deposit or a withdrawal answers a signed receipt (tenders/receipts.py).
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from auction_engine.timeutil import format_instant, parse_instant
from tenders import (
    AnswerExtension,
    AnswerQuestion,
    AskQuestion,
    CancelTender,
    CloseAdmission,
    DecideAdmission,
    DecideJustification,
    DepositOffer,
    JustifyOffer,
    RecordRate,
    RegisterDownload,
    RequestExtension,
    SubmitShare,
    Tenders,
    WithdrawOffer,
)
from tenders import receipts as signed
from tenders.messages import OfferDeposited, OfferWithdrawn, TenderRefused

from . import tender_amendments as amendments
from . import tender_answers as a
from . import tender_models as t
from . import tender_publish as publish_routes
from .auth import Caller
from .logs import log
from .operations import API, ApiError, Operation
from .receipts import public_pem
from .tender_errors import ERROR_CODES
from .tender_views import results, tender_view

if TYPE_CHECKING:  # gateway/api.py imports the document, which imports this module
    from .api import Api

logger = logging.getLogger("gateway.tenders")

TAGS = (("tenders", "Sealed electronic tenders: publication, deposit, clarifications, opening, evaluation, award "
                    "(docs/tenders.md)."),)
FEED_ENTRIES: tuple[type[BaseModel], ...] = a.FEED_ENTRIES
BUYER, ALL_KEYS = ("portal", "buyer"), ("portal", "buyer", "auditor")
_TID = ("tender_id",)
_BODY = ("invalid_json", "body_too_large", "invalid_request")
_COMMAND = ("unknown_tender", "malformed", "journal_unavailable", "case_conflict")
_FROM_TENDER = "$response.body#/tender_id"
LINKS = {name: {"operationId": name, "tender_id": _FROM_TENDER} for name in (
    "get_tender", "issue_tender_tokens", "tender_results", "record_rate", "request_extension", "cancel_tender")}


def _act(op_id: str, path: str, summary: str, roles: tuple[str, ...], body: type[BaseModel] | None,
         codes: tuple[str, ...], description: str, answer: type[BaseModel] = a.TenderView) -> Operation:
    return Operation(op_id, "post", API + "/tenders/{tender_id}" + path, summary,
                     description + " Answers once its record is durable.", "tenders", roles,
                     {200: (answer, "Done.")}, (*_COMMAND, *codes, *(_BODY if body else ())), body,
                     body is not None, path_params=_TID, links=LINKS)


OPERATIONS: tuple[Operation, ...] = (
    *publish_routes.OPERATIONS,
    Operation("get_tender", "get", API + "/tenders/{tender_id}", "Get a tender", "The tender as the caller's role "
              "sees it: a bidder its own file and evaluation; the buyer, the commission and auditors every bidder's "
              "deposit (digests only before the opening), decisions and each lot's explain; the buyer also the "
              "questions (never their askers).", "tenders", (*ALL_KEYS, "commission", "bidder"),
              {200: (a.TenderView, "The tender.")}, ("unknown_tender",), path_params=_TID),
    Operation("tender_results", "get", API + "/tenders/{tender_id}/results", "A tender's results and explain",
              "Each lot's outcome and every evaluation step with its inputs and result (empty before the opening); "
              "a bidder gets its own steps, P, its flag, its preference adjustment and its rank.", "tenders",
              (*ALL_KEYS, "commission", "bidder"), {200: (a.TenderResults, "The results.")}, ("unknown_tender",),
              path_params=_TID),
    Operation("issue_tender_tokens", "post", API + "/tenders/{tender_id}/tokens", "Issue case tokens",
              "A `bidder` token per bidder and a `commission` token per member of the tender's commission, each "
              "for this tender only, valid until `expires_at`. Changes no state. Only the portal (the parties' "
              "identity provider) issues them: a buyer key that could would act as any bidder or member.",
              "tenders", ("portal",),
              {200: (a.TokensView, "The tokens.")}, ("unknown_tender", "not_a_member", *_BODY), t.TokensRequest,
              True, path_params=_TID),
    _act("register_download", "/downloads", "Register a download", ("bidder",), None,
         ("deposit_closed", "tender_cancelled", "already_downloaded"),
         "The bidder downloaded the tender's file: it may ask questions (art. 10)."),
    _act("deposit_offer", "/deposits", "Deposit a sealed offer", ("bidder",), t.DepositRequest,
         ("deposit_closed", "tender_cancelled", "already_deposited", "malformed_envelopes", "hash_mismatch",
          "client_id_reused"),
         "One envelope per part, each sealed on the bidder's side to the tender's public key (HPKE). Before "
         "`opening_at` (exclusive). Idempotent on `client_id`. The answer is the signed deposit receipt.",
         a.Receipt),
    _act("withdraw_offer", "/withdrawals", "Withdraw an offer", ("bidder",), t.WithdrawRequest,
         ("deposit_closed", "tender_cancelled", "nothing_to_withdraw", "client_id_reused"),
         "Before `opening_at`; the bidder may deposit again. Idempotent on `client_id`. The answer is the signed "
         "withdrawal receipt.", a.Receipt),
    _act("ask_question", "/questions", "Ask a clarification question", ("bidder",), t.QuestionRequest,
         ("not_downloaded", "too_late_to_ask", "question_exists", "tender_cancelled"),
         "By a bidder that registered a download, until `ask_until`. The asker is never shown to anyone else.",
         a.QuestionView),
    Operation("answer_question", "post", API + "/tenders/{tender_id}/questions/{question_id}/answer",
              "Answer a question", "Until `answer_until`; the answer is published to all (the feed's "
              "QuestionAnswered, every view), without the asker. Answers once its record is durable.", "tenders",
              BUYER, {200: (a.TenderView, "Done.")}, (*_COMMAND, "not_the_buyer", "too_late_to_answer",
                                                      "unknown_question", "already_answered", "tender_cancelled",
                                                      *_BODY), t.AnswerRequest, True,
              path_params=("tender_id", "question_id")),
    _act("record_rate", "/rates", "Record a reference rate", BUYER, t.RateRequest,
         ("not_the_buyer", "already_decided", "invalid_currency", "invalid_rate"),
         "Tender units per one foreign unit (art. 19), used to convert offers in that currency."),
    _act("submit_share", "/shares", "Submit a commission member's share", ("commission",), t.ShareRequest,
         ("opening_not_started", "not_opening", "not_a_member", "share_already_submitted", "bad_share"),
         "After `opening_at`. At the k-th valid share the key is rebuilt and every envelope opened."),
    _act("decide_admission", "/admissions", "Admit or reject a bidder", ("commission",), t.AdmissionRequest,
         ("not_in_admission", "not_a_member", "unknown_bidder", "reason_required", "invalid_percent"),
         "The administrative and technical decision, journaled with the member; a later one replaces it."),
    _act("close_admission", "/admissions/close", "Close the admission", ("commission",), None,
         ("not_in_admission", "not_a_member", "undecided_bidders"),
         "Every opened bidder decided: each lot is evaluated and awarded, declared unsuccessful, or waits for "
         "flagged offers' justifications."),
    _act("justify_offer", "/justifications", "Justify a flagged offer", ("bidder",), t.JustifyRequest,
         ("no_justification_asked", "not_flagged", "already_justified"),
         "A flagged bidder's answer: the SHA-256 of its justification file."),
    _act("decide_justification", "/justifications/decisions", "Decide a justification", ("commission",),
         t.JustificationDecision, ("not_a_member", "no_justification_asked", "not_flagged", "reason_required"),
         "Accept or reject a flagged offer (a reason for a rejection)."),
    _act("request_extension", "/extension", "Ask to extend the offers' validity", BUYER, t.ExtensionRequest,
         ("not_the_buyer", "no_offers_to_extend", "extension_pending", "invalid_extension"),
         "Bidders with a standing offer answer by `answer_by`; who does not accept lapses then."),
    _act("answer_extension", "/extension/answer", "Answer a validity extension", ("bidder",), t.ExtensionAnswer,
         ("no_extension_requested", "no_standing_offer", "already_answered"), "Accept or refuse the extension."),
    _act("cancel_tender", "/cancel", "Cancel a tender", BUYER, t.CancelTenderRequest,
         ("not_the_buyer", "already_decided", "reason_required"), "Any time before the award, with a reason."),
    *amendments.OPERATIONS,
    Operation("receipt_key", "get", API + "/receipts/key", "The receipts' public key", "The Ed25519 public key "
              "that signs deposit and withdrawal receipts; verify a receipt offline with `auction-replay "
              "verify-receipt RECEIPT.json --public-key FILE`. No key needed.", "tenders", (),
              {200: (a.ReceiptKey, "The key.")}),
)
__all__ = ["ERROR_CODES", "FEED_ENTRIES", "OPERATIONS", "TAGS", "register"]


def me(who: Caller) -> str:
    """The subject of a case token (a bidder's or a member's id)."""
    assert who.subject is not None, who
    return who.subject


def _refusal(event: Any) -> tuple[str, str] | None:
    return (event.code, ERROR_CODES[event.code][1]) if type(event) is TenderRefused else None


def register(api: Api) -> None:
    """Bind the tender operations' handlers to `api` (gateway/api.py's `Api`)."""
    service, runtime = api.service, api.runtime
    route, parsed = api.route, api.parsed
    kind: Tenders = runtime.host.kind(Tenders)
    publish_routes.register(api, kind)

    def known(tender_id: str) -> Any:
        tender = kind.tenders.get(tender_id)
        if tender is None:
            raise ApiError(404, "unknown_tender", f"no tender {tender_id!r}")
        return tender

    async def act(who: Caller, tender_id: str, command: Any) -> Any:
        await api.run(command, _refusal)
        log(logger, logging.INFO, "tender act", tender_id=tender_id, act=type(command).__name__, role=who.role)
        return tender_view(kind, tender_id, who.role, who.subject)

    amendments.register(api, kind, act, known)

    @route("get_tender")
    async def get_tender(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        return tender_view(kind, tender_id, who.role, who.subject)

    @route("tender_results")
    async def tender_results(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        return results(kind, tender_id, who.role, who.subject)

    @route("issue_tender_tokens")
    async def issue_tokens(_who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        req = await parsed(t.TokensRequest, required=True)
        api.check_ttl(req.ttl_s)
        strangers = [m for m in req.members if m not in tender.spec.members]
        if strangers:
            raise ApiError(403, "not_a_member", f"not members of the tender's commission: {', '.join(strangers)}")
        tokens = []
        for role, subjects in (("bidder", req.bidders), ("commission", req.members)):
            for subject in subjects:
                token, expires = service.tokens.issue_case(tender_id, subject, role, req.ttl_s)
                tokens.append({"subject": subject, "role": role, "token": token,
                               "expires_at": format_instant(expires)})
        return {"tender_id": tender_id, "tokens": tokens}

    @route("register_download")
    async def register_download(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        return await act(who, tender_id, RegisterDownload(runtime.now(), tender_id, me(who)))

    async def receipted(command: Any, done: type[Any], envelopes: list[tuple[str, bytes]]) -> Any:
        """Run a deposit or a withdrawal and sign its receipt (a retry: the first one's)."""
        key = (command.tender_id, command.bidder_id, command.client_id)

        def index(submission: Any) -> None:  # at durability, before any checkpoint can be cut past it
            if not submission.duplicate and any(type(e) is done for e in submission.events):
                service.receipts.gseq[key] = submission.last_gseq

        submission = await runtime.execute(command, index)
        for outcome in submission.events:
            refused = _refusal(outcome)
            if refused is not None:
                raise ApiError(ERROR_CODES[refused[0]][0], *refused)
        event: Any = next((e for e in reversed(submission.events) if type(e) is done), None)
        if event is None:  # a retry key names the bidder's other act (a deposit's id sent to withdraw)
            raise ApiError(409, "client_id_reused", ERROR_CODES["client_id_reused"][1])
        if type(event) is OfferDeposited:
            envelopes = list(event.digests)
        kind_name = "deposit" if done is OfferDeposited else "withdrawal"
        log(logger, logging.INFO, f"tender {kind_name} receipted", tender_id=command.tender_id,
            gseq=service.receipts.gseq[key], retry=submission.duplicate)  # no bidder, no content: digests only
        return signed.make(service.receipt_key, kind_name, command.tender_id, command.bidder_id, envelopes,
                           event.time, service.receipts.gseq[key])

    @route("deposit_offer")
    async def deposit_offer(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.DepositRequest, required=True)
        envelopes = tuple((e.part, base64.b64decode(e.ciphertext), bytes.fromhex(e.sha256)) for e in req.envelopes)
        return await receipted(DepositOffer(runtime.now(), tender_id, me(who), envelopes, req.client_id),
                               OfferDeposited, [])

    @route("withdraw_offer")
    async def withdraw_offer(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.WithdrawRequest, required=True)
        return await receipted(WithdrawOffer(runtime.now(), tender_id, me(who), req.client_id), OfferWithdrawn,
                               [])

    @route("ask_question")
    async def ask_question(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.QuestionRequest, required=True)
        await api.run(AskQuestion(runtime.now(), tender_id, me(who), req.question_id, req.text), _refusal)
        return {"tender_id": tender_id, "question_id": req.question_id, "question": req.text}

    @route("answer_question")
    async def answer_question(who: Caller, tender_id: str, question_id: str) -> Any:
        tender = known(tender_id)
        req = await parsed(t.AnswerRequest, required=True)
        return await act(who, tender_id, AnswerQuestion(runtime.now(), tender_id, tender.spec.buyer_id, question_id,
                                                        req.text))

    @route("record_rate")
    async def record_rate(who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        req = await parsed(t.RateRequest, required=True)
        return await act(who, tender_id, RecordRate(runtime.now(), tender_id, tender.spec.buyer_id, req.currency,
                                                    req.rate))

    @route("submit_share")
    async def submit_share(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.ShareRequest, required=True)
        return await act(who, tender_id, SubmitShare(runtime.now(), tender_id, me(who), bytes.fromhex(req.share)))

    @route("decide_admission")
    async def decide_admission(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        r = await parsed(t.AdmissionRequest, required=True)
        return await act(who, tender_id, DecideAdmission(runtime.now(), tender_id, me(who), r.bidder_id,
                                                         r.admitted, r.reason, r.established, r.moroccan_share or ""))

    @route("close_admission")
    async def close_admission(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        return await act(who, tender_id, CloseAdmission(runtime.now(), tender_id, me(who)))

    @route("justify_offer")
    async def justify_offer(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.JustifyRequest, required=True)
        return await act(who, tender_id, JustifyOffer(runtime.now(), tender_id, me(who), req.lot_id,
                                                      bytes.fromhex(req.sha256)))

    @route("decide_justification")
    async def decide_justification(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        r = await parsed(t.JustificationDecision, required=True)
        return await act(who, tender_id, DecideJustification(runtime.now(), tender_id, me(who), r.lot_id,
                                                             r.bidder_id, r.accepted, r.reason))

    @route("request_extension")
    async def request_extension(who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        req = await parsed(t.ExtensionRequest, required=True)
        return await act(who, tender_id, RequestExtension(runtime.now(), tender_id, tender.spec.buyer_id, req.days,
                                                          parse_instant(req.answer_by)))

    @route("answer_extension")
    async def answer_extension(who: Caller, tender_id: str) -> Any:
        known(tender_id)
        req = await parsed(t.ExtensionAnswer, required=True)
        return await act(who, tender_id, AnswerExtension(runtime.now(), tender_id, me(who), req.accepted))

    @route("cancel_tender")
    async def cancel_tender(who: Caller, tender_id: str) -> Any:
        tender = known(tender_id)
        req = await parsed(t.CancelTenderRequest, required=True)
        return await act(who, tender_id, CancelTender(runtime.now(), tender_id, tender.spec.buyer_id, req.reason))

    @route("receipt_key")
    async def receipt_key(_who: None) -> Any:
        public = service.receipt_key.public_key().public_bytes_raw()
        return {"algorithm": "Ed25519", "key_id": signed.key_id(public), "public_key": public.hex(),
                "public_key_pem": public_pem(service.receipt_key), "domain": signed.DOMAIN.decode()}
