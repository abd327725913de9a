"""The grouped purchases' RPC under /api/v1/collectives (a `operations.KindApi`).

Roles: the coordinator is any `portal` or `buyer` key (it acts as the collective's
coordinator id); a member holds a case token of role `member` for the collective (subject:
its buyer id) that the coordinator issues (POST .../tokens); `auditor` keys read. A member
reads only its own needs, contracts, deliveries and payments (403 `not_member`). Every
refusal of the kind answers its code with the status of `ERROR_CODES` and changes
nothing. The handlers are in gateway/collective_routes.py; docs/grouped-purchases.md.
"""

from __future__ import annotations

from typing import Any

from . import collective_answers as ca
from . import collective_models as cm
from .operations import API, Operation

TAGS = (("collectives", "Grouped purchases: members, needs, the consolidated schedule (BPDE), the procurement, "
                        "member contracts, deliveries and payments."),)
FEED_ENTRIES = ca.FEED_ENTRIES

ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_command": (422, "a field of the command is out of its form (the collective's own checks)"),
    "unknown_collective": (404, "no such collective"),
    "collective_exists": (409, "a collective with this id exists"),
    "not_member": (403, "the caller is not a party to this act or reading (a member reads only its own)"),
    "not_coordinator": (403, "only the coordinator may do this"),
    "unknown_member": (404, "the id is not a member of the collective"),
    "wrong_convention": (409, "the convention hash is not the collective's"),
    "already_accepted": (409, "the member already accepted the convention"),
    "not_constituted": (409, "every member must accept the convention first"),
    "article_exists": (409, "an article with this code exists"),
    "unknown_article": (404, "no such article in the catalogue (or in the contract)"),
    "unknown_need": (404, "no such standing need"),
    "invalid_quantity": (422, "a quantity out of its range"),
    "invalid_amount": (409, "an amount out of its range (a lot total below one minor unit per unit of the lot)"),
    "needs_closed": (409, "the needs deadline has passed"),
    "needs_open": (409, "the needs deadline has not passed yet"),
    "nothing_to_confirm": (409, "the member has declared no standing need"),
    "unknown_schedule": (404, "no such schedule version"),
    "schedule_not_final": (409, "the schedule was generated before the needs deadline"),
    "schedule_stale": (409, "a later schedule exists"),
    "nothing_to_procure": (409, "no confirmed need, or every lot is awarded or pending"),
    "procurement_exists": (409, "a procurement with this id is recorded and its auction exists"),
    "unknown_procurement": (404, "no such procurement in the collective"),
    "lot_not_pending": (409, "the lot is not awaiting this procurement's result"),
    "prices_mismatch": (409, "the prices do not name each article of the lot once"),
    "amount_too_large": (409, "a total would exceed the largest amount"),
    "unknown_contract": (404, "no such contract"),
    "beyond_contract": (409, "the delivery exceeds the contract's quantity"),
    "beyond_delivered": (409, "more units inspected than delivered and awaiting inspection"),
    "reason_required": (422, "a rejection needs a reason"),
    "beyond_due": (409, "the payment exceeds the contract's amount due"),
    "commission_incomplete": (409, "the commission must name every member's representative"),
}

COORDINATOR = ("portal", "buyer")
READERS = ("portal", "buyer", "auditor")
MEMBER = ("member",)
_CID = ("collective_id",)
_BODY = ("invalid_json", "body_too_large", "invalid_request")
_CMD = ("journal_unavailable", "case_conflict", "invalid_command", "unknown_collective")
_FROM = "$response.body#/collective_id"
# Not linked: the operations whose 404 names a sub-resource a new collective cannot have yet
# (a contract in the body, a schedule to launch): a fuzzer reads that 404 after the creation as
# "the created collective is missing" (schemathesis ST302).
_LINKED = ("get_collective", "issue_member_token", "add_article", "list_needs", "generate_schedule",
           "list_contracts", "consolidation", "designate_commission")
LINKS = {name: {"operationId": name, "collective_id": _FROM} for name in _LINKED}
PREFIX = API + "/collectives"
DOWNLOADS = ("text/csv", "text/html", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def _links(ok: dict[int, tuple[Any, str]]) -> dict[str, dict[str, str]]:
    """The links, where the answer names its collective (so a client can follow it)."""
    return LINKS if all(m is not None and "collective_id" in m.model_fields for m, _ in ok.values()) else {}


def _op(op_id: str, method: str, path: str, summary: str, description: str, roles: tuple[str, ...],
        ok: dict[int, tuple[Any, str]], errors: tuple[str, ...] = (), *, query: Any = None,
        params: tuple[str, ...] = _CID, downloads: tuple[str, ...] = ()) -> Operation:
    return Operation(op_id, method, PREFIX + path, summary, description, "collectives", roles, ok,
                     (*errors, *(("invalid_query",) if query else ())), None, False, query, params, _links(ok),
                     downloads)


def _body_op(op_id: str, path: str, summary: str, description: str, roles: tuple[str, ...], ok: Any, why: str,
             errors: tuple[str, ...], body: Any, status: int = 200, method: str = "post",
             params: tuple[str, ...] = _CID) -> Operation:
    answers = {status: (ok, why)}
    return Operation(op_id, method, PREFIX + path, summary, description + " Answers once durable.", "collectives",
                     roles, answers, (*errors, *_CMD, *(_BODY if body is not None else ())), body,
                     body is not None, path_params=params if path else (), links=_links(answers))


_EXEC = ("unknown_contract", "not_member", "not_coordinator", "unknown_article")
OPERATIONS: tuple[Operation, ...] = (
    _body_op("create_collective", "", "Create a collective", "The coordinator creates the collective with its "
             "members, the convention's SHA-256 and the needs deadline (later than now).", COORDINATOR,
             ca.CollectiveView, "Created.", ("collective_exists",), cm.CollectiveRequest, 201),
    _op("get_collective", "get", "/{collective_id}", "Get a collective", "Members, acceptances, catalogue, "
        "schedules, procurements and lot statuses.", (*READERS, *MEMBER), {200: (ca.CollectiveView, "The collective.")},
        ("unknown_collective",)),
    _body_op("issue_member_token", "/{collective_id}/tokens", "Issue a member token", "A case token (role "
             "`member`) for one member of this collective, to act and read as that member. Changes no state "
             "(not journaled). Only the portal (the members' identity provider) issues them: a coordinator key "
             "that could would act as any member.", ("portal",), ca.CollectiveMemberToken, "The token.",
             ("unknown_member",), cm.CollectiveTokenRequest),
    _body_op("accept_convention", "/{collective_id}/acceptances", "Accept the convention", "The member accepts "
             "the convention it read (its hash); once every member has, the collective is constituted.", MEMBER,
             ca.CollectiveView, "The collective after the acceptance.",
             ("not_member", "wrong_convention", "already_accepted"), cm.CollectiveAcceptRequest),
    _body_op("designate_commission", "/{collective_id}/commission", "Designate the commission", "Each member's "
             "representative, every member once; the collective must be constituted. A new designation replaces "
             "the last (the journal keeps each).", COORDINATOR, ca.CollectiveView, "The collective with its "
             "commission.", ("not_constituted", "not_member", "commission_incomplete", "invalid_command"),
             cm.CollectiveCommissionRequest, method="put"),
    _body_op("add_article", "/{collective_id}/articles", "Add a catalogue article", "Until the needs close.",
             COORDINATOR, ca.CollectiveArticle, "Added.", ("article_exists", "needs_closed", "invalid_amount"),
             cm.CollectiveArticleRequest, 201),
    _body_op("declare_need", "/{collective_id}/needs/{article}", "Declare or revise a need", "The member's need of "
             "one article; a second declaration is a revision (a new version) and withdraws the member's "
             "confirmation.", MEMBER, ca.CollectiveNeed, "The need's latest version.",
             ("not_member", "not_constituted", "needs_closed", "unknown_article", "invalid_quantity"),
             cm.CollectiveNeedRequest, method="put", params=("collective_id", "article")),
    _body_op("withdraw_need", "/{collective_id}/needs/{article}", "Withdraw a need", "A new version of quantity 0; "
             "the member confirms again.", MEMBER, ca.CollectiveNeed, "The need's latest version.",
             ("not_member", "not_constituted", "needs_closed", "unknown_need"), None, method="delete",
             params=("collective_id", "article")),
    _body_op("confirm_needs", "/{collective_id}/confirmation", "Confirm the member's needs", "Confirms the latest "
             "version of each of the member's needs; unconfirmed needs are excluded at the deadline.", MEMBER,
             ca.CollectiveConfirmation, "Confirmed.",
             ("not_member", "not_constituted", "needs_closed", "nothing_to_confirm"), None),
    _op("list_needs", "get", "/{collective_id}/needs", "List needs", "The latest version of each need: a member "
        "sees its own, the coordinator and auditors every member's.", (*READERS, *MEMBER),
        {200: (ca.CollectiveNeeds, "The needs.")}, ("unknown_collective",)),
    _op("need_versions", "get", "/{collective_id}/members/{member_id}/needs/{article}", "A need's versions",
        "Every version of one member's need; a member reads only its own (403 `not_member`).", (*READERS, *MEMBER),
        {200: (ca.CollectiveNeedVersions, "The versions, oldest first.")},
        ("unknown_collective", "not_member", "unknown_need"), params=("collective_id", "member_id", "article")),
    _body_op("generate_schedule", "/{collective_id}/schedules", "Generate the consolidated schedule (BPDE)",
             "A new version from the confirmed needs; final once the needs deadline has passed.", COORDINATOR,
             ca.CollectiveSchedule, "The new version.", ("not_constituted", "nothing_to_procure", "amount_too_large"),
             None, 201),
    _op("get_schedule", "get", "/{collective_id}/schedules/{version}", "Get a schedule version", "Per article the "
        "total quantity, each member's part and the estimated amount; totals per lot and overall; the SHA-256 the "
        "journal holds.", (*READERS, *MEMBER), {200: (ca.CollectiveSchedule, "The schedule.")},
        ("unknown_collective", "unknown_schedule"), params=("collective_id", "version")),
    _op("export_schedule", "get", "/{collective_id}/schedules/{version}/export", "Download a schedule",
        "The schedule as CSV, XLSX or HTML (`format`), amounts as exact decimal text.", (*READERS, *MEMBER),
        {200: (None, "The document.")}, ("unknown_collective", "unknown_schedule"),
        query=cm.CollectiveExportQuery, params=("collective_id", "version"), downloads=DOWNLOADS),
    _body_op("launch", "/{collective_id}/launch", "Launch the reverse auction", "Creates the reverse auction "
             "(`procurement_id`) for the open lots of the latest final schedule, one auction lot per lot, and "
             "journals the launch; the auction's `buyer_ref` names the collective and schedule version. When an "
             "auction lot ends, its outcome is recorded in the collective automatically (award: member contracts "
             "issued). Retrying with the same `procurement_id` after a failure between the two steps creates the "
             "missing auction.", COORDINATOR, ca.CollectiveLaunch, "Launched.",
             ("unknown_schedule", "schedule_not_final", "nothing_to_procure", "procurement_exists", "not_coordinator",
              "invalid_config", "ends_in_past", "auction_conflict"), cm.CollectiveLaunchRequest, 201),
    _body_op("record_award", "/{collective_id}/lots/{lot}/award", "Record a lot's award", "By hand (an auction's "
             "award is recorded automatically): on the lot total or on unit prices; issues one contract per "
             "member with needs in the lot.", COORDINATOR, ca.CollectiveLotResult, "Awarded.",
             ("unknown_procurement", "lot_not_pending", "prices_mismatch", "invalid_amount", "amount_too_large"),
             cm.CollectiveAwardRequest, params=("collective_id", "lot")),
    _body_op("record_unsuccessful", "/{collective_id}/lots/{lot}/unsuccessful", "Record a lot left open",
             "The lot's needs stay open for the next launch.", COORDINATOR, ca.CollectiveLotResult, "Left open.",
             ("unknown_procurement", "lot_not_pending"), cm.CollectiveUnsuccessfulRequest,
             params=("collective_id", "lot")),
    _body_op("record_delivery", "/{collective_id}/deliveries", "Record a delivery", "Partial deliveries add up; "
             "beyond the contract only with the coordinator's `allow_over`.", (*COORDINATOR, *MEMBER),
             ca.CollectiveContract, "The contract after it.", (*_EXEC, "beyond_contract", "invalid_quantity"),
             cm.CollectiveDeliveryRequest),
    _body_op("record_receipt", "/{collective_id}/receipts", "Record a receipt", "Inspects delivered units; "
             "rejected units are a discrepancy with a reason.", (*COORDINATOR, *MEMBER), ca.CollectiveContract,
             "The contract after it.", (*_EXEC, "beyond_delivered", "reason_required", "invalid_quantity"),
             cm.CollectiveReceiptRequest),
    _body_op("record_payment", "/{collective_id}/payments", "Record a payment", "Beyond the amount due only with "
             "the coordinator's `allow_over`.", (*COORDINATOR, *MEMBER), ca.CollectiveContract,
             "The contract after it.", (*_EXEC[:3], "beyond_due", "invalid_amount", "amount_too_large"),
             cm.CollectivePaymentRequest),
    _op("list_contracts", "get", "/{collective_id}/contracts", "List member contracts", "With their deliveries, "
        "receipts, discrepancies and payments. A member sees only its own: naming another member or another's "
        "contract answers 403 `not_member`.", (*READERS, *MEMBER), {200: (ca.CollectiveContracts, "The contracts.")},
        ("unknown_collective", "not_member", "unknown_contract"), query=cm.CollectiveContractsQuery),
    _op("consolidation", "get", "/{collective_id}/consolidation", "The live consolidation", "Per article and per "
        "member: ordered, delivered, received, paid and outstanding. Long poll: with `since` (a `revision` seen) "
        "and `wait`, answers once the revision is above `since` or after `wait` seconds (at most the "
        "feed_wait_max_s setting).", READERS, {200: (ca.CollectiveConsolidation, "The consolidation.")},
        ("unknown_collective",), query=cm.CollectiveLiveQuery),
)


def register(api: Any) -> None:
    from .collective_routes import register_routes  # the handlers need the service's modules

    register_routes(api)
