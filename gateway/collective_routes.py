"""The handlers of gateway/collectives_api.py's operations, bound by `register_routes(api)`.

The coordinator (a portal or buyer key) acts as the collective's coordinator id; a member
token acts as its subject. Commands go through the runtime (`api.run`): a refusal answers
its code and changed nothing. Reads check the reader with grouped_purchases/views.py.
"""

from __future__ import annotations

import secrets
from typing import Any

import trio
from quart import Response

from auction_engine.commands import CreateAuction
from auction_engine.config import AuctionConfig, ConfigError
from auction_engine.money import parse_amount
from auction_engine.timeutil import format_instant, parse_instant
from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    CollectiveRefused,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    DesignateCommission,
    GenerateSchedule,
    LaunchProcurement,
    LotAwardRecorded,
    QueryError,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordLotUnsuccessful,
    RecordPayment,
    RecordReceipt,
    WithdrawNeed,
    consolidation,
    contracts_of,
    need_versions,
)
from grouped_purchases import export as bpde
from grouped_purchases.procurement import EDGE_DECIMALS, auction_for, buyer_ref, open_lots
from grouped_purchases.rules import Schedule
from grouped_purchases.state import Collective

from . import collective_models as cm
from . import collective_views as cv
from .api import Api, invalid
from .auth import Caller
from .collectives_api import DOWNLOADS as DOCUMENTS
from .operations import ApiError

DOWNLOADS = dict(zip(("csv", "html", "xlsx"), DOCUMENTS, strict=True))


def refusal(event: Any) -> tuple[str, str] | None:
    return (event.code, event.message) if type(event) is CollectiveRefused else None


def minor(text: str) -> int:
    return parse_amount(text, EDGE_DECIMALS)  # checked by the request model already


def register_routes(api: Api) -> None:  # one closure per operation
    runtime, service = api.runtime, api.service
    kind = runtime.host.kind(Collectives)
    route, parsed = api.route, api.parsed

    def collective(cid: str) -> Collective:
        c = kind.collectives.get(cid)
        if c is None:
            raise ApiError(404, "unknown_collective", f"no collective {cid!r:.70}")
        return c

    def actor(who: Caller, c: Collective) -> str:
        return who.subject if who.role == "member" and who.subject is not None else c.coordinator

    def reader(who: Caller, c: Collective) -> str:
        return actor(who, c)

    async def run(command: Any) -> list[Any]:
        return await api.run(command, refusal)

    def schedule(c: Collective, version: str) -> Schedule:
        if not version.isascii() or not version.isdigit() or not 1 <= int(version) <= len(c.schedules):
            raise ApiError(404, "unknown_schedule", f"no schedule version {version!r:.20}")
        return c.schedules[int(version) - 1]

    def contract(c: Collective, contract_id: str) -> dict[str, Any]:
        return cv.contract_body(contract_id, c.contracts[contract_id])

    # -- preparation ---------------------------------------------------------------------

    @route("create_collective")
    async def create_collective(_who: Caller) -> Any:
        req = await parsed(cm.CollectiveRequest, required=True)
        await run(CreateCollective(runtime.now(), req.collective_id, req.coordinator, tuple(req.members),
                                   req.convention_hash, parse_instant(req.needs_deadline)))
        return cv.collective_body(req.collective_id, collective(req.collective_id)), 201

    @route("get_collective")
    async def get_collective(_who: Caller, collective_id: str) -> Any:
        return cv.collective_body(collective_id, collective(collective_id))

    @route("issue_member_token")
    async def issue_member_token(_who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveTokenRequest, required=True)
        api.check_ttl(req.ttl_s)
        if req.member_id not in c.members:
            raise ApiError(404, "unknown_member", f"{req.member_id!r} is not a member of {collective_id!r}")
        token, expires = service.tokens.issue_case(collective_id, req.member_id, "member", req.ttl_s)
        return {"collective_id": collective_id, "member_id": req.member_id, "token": token,
                "expires_at": format_instant(expires)}

    @route("accept_convention")
    async def accept_convention(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveAcceptRequest, required=True)
        await run(AcceptConvention(runtime.now(), collective_id, actor(who, c), req.convention_hash))
        return cv.collective_body(collective_id, c)

    @route("designate_commission")
    async def designate_commission(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveCommissionRequest, required=True)
        await run(DesignateCommission(runtime.now(), collective_id, actor(who, c),
                                      tuple((r.member_id, r.representative) for r in req.representatives)))
        return cv.collective_body(collective_id, c)

    @route("add_article")
    async def add_article(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveArticleRequest, required=True)
        await run(AddArticle(runtime.now(), collective_id, actor(who, c), req.code, req.description, req.unit,
                             minor(req.unit_price), req.lot))
        return next(a for a in cv.collective_body(collective_id, c)["articles"] if a["code"] == req.code), 201

    def need(c: Collective, member: str, article: str) -> dict[str, Any]:
        return next(n for n in cv.need_rows(c, member) if n["article"] == article)

    @route("declare_need")
    async def declare_need(who: Caller, collective_id: str, article: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveNeedRequest, required=True)
        member = actor(who, c)
        await run(DeclareNeed(runtime.now(), collective_id, member, article, req.quantity, req.place))
        return need(c, member, article)

    @route("withdraw_need")
    async def withdraw_need(who: Caller, collective_id: str, article: str) -> Any:
        c = collective(collective_id)
        member = actor(who, c)
        await run(WithdrawNeed(runtime.now(), collective_id, member, article))
        return need(c, member, article)

    @route("confirm_needs")
    async def confirm_needs(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        member = actor(who, c)
        events = await run(ConfirmNeeds(runtime.now(), collective_id, member))
        return {"member_id": member, "articles": events[-1].articles}

    @route("list_needs")
    async def list_needs(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        return {"needs": cv.need_rows(c, who.subject if who.role == "member" else None)}

    @route("need_versions")
    async def versions(who: Caller, collective_id: str, member_id: str, article: str) -> Any:
        c = collective(collective_id)
        try:
            rows = need_versions(c, reader(who, c), member_id, article)
        except QueryError as exc:
            raise ApiError(403 if exc.code == "not_member" else 404, exc.code, str(exc)) from None
        return {"member_id": member_id, "article": article, "versions": [
            {"version": i, "time": format_instant(t), "quantity": q, "place": p}
            for i, (t, q, p) in enumerate(rows, 1)]}

    # -- the schedule (BPDE) ---------------------------------------------------------------

    @route("generate_schedule")
    async def generate_schedule(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        await run(GenerateSchedule(runtime.now(), collective_id, actor(who, c)))
        return cv.schedule_body(collective_id, c.schedules[-1]), 201

    @route("get_schedule")
    async def get_schedule(_who: Caller, collective_id: str, version: str) -> Any:
        c = collective(collective_id)
        return cv.schedule_body(collective_id, schedule(c, version))

    @route("export_schedule")
    async def export_schedule(_who: Caller, collective_id: str, version: str) -> Any:
        c = collective(collective_id)
        s = schedule(c, version)
        q: cm.CollectiveExportQuery = api.query(cm.CollectiveExportQuery)
        if q.format == "csv":
            data: str | bytes = bpde.to_csv(s, c.articles, EDGE_DECIMALS)
        elif q.format == "html":
            data = bpde.to_html(collective_id, s, c.articles, EDGE_DECIMALS)
        else:
            data = await trio.to_thread.run_sync(lambda: bpde.to_xlsx(s, c.articles, EDGE_DECIMALS))
        ctype = DOWNLOADS[q.format]
        name = f"bpde-{collective_id}-v{s.version}.{q.format}"
        return Response(data, 200, {"Content-Type": ctype, "Content-Disposition": f'attachment; filename="{name}"'})

    # -- the procurement -------------------------------------------------------------------

    @route("launch")
    async def launch(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveLaunchRequest, required=True)
        pid = req.procurement_id
        if pid in c.procurements:  # a retry: the launch is journaled; its auction may be missing
            version, lots = c.procurements[pid]
            if pid in runtime.engine.auction_ids():
                raise ApiError(409, "procurement_exists", f"procurement {pid!r} is launched and its auction exists")
        else:
            if not c.schedules:
                raise ApiError(404, "unknown_schedule", "no schedule generated yet")
            version = len(c.schedules)
            if not c.schedules[-1].final:
                raise ApiError(409, "schedule_not_final", "the latest schedule was generated before the needs deadline")
            lots = tuple(open_lots(c, c.schedules[-1]))
            if not lots:
                raise ApiError(409, "nothing_to_procure", "every lot of the latest schedule is awarded or pending")
            owner = runtime.host.case_kind.get(pid)
            if owner is not None:
                raise ApiError(409, "auction_conflict" if owner.name == "auction" else "case_conflict",
                               f"{pid!r} is already a case of kind {owner.name!r}")
        s = c.schedules[version - 1]
        unknown = sorted(set(req.starting_prices or {}) - set(lots))
        if unknown:
            raise invalid("invalid_request", "the request is invalid",
                          [{"path": f"starting_prices.{lot}", "message": "not a lot of this launch"}
                           for lot in unknown])
        body = auction_for(collective_id, s, list(lots), req.model_dump(mode="json", exclude_none=True))
        try:  # checked before anything is journaled: a launch never leaves lots without their auction
            config = AuctionConfig.from_dict(body, default_secret=secrets.token_urlsafe(32))
        except ConfigError as exc:
            raise invalid(exc.code, "the auction configuration is invalid",
                          [{"path": path, "message": message} for path, message in exc.problems]) from None
        if not any(config.initial_close(i) > runtime.now() for i in range(len(config.lots))):
            raise ApiError(422, "ends_in_past", "every lot of the auction would close in the past")
        if pid not in c.procurements:
            await run(LaunchProcurement(runtime.now(), collective_id, actor(who, c), pid, version))
        await api.run(CreateAuction(runtime.now(), config))
        return {"collective_id": collective_id, "procurement_id": pid, "auction_id": pid, "schedule_version": version,
                "buyer_ref": buyer_ref(collective_id, version),
                "lots": [{"lot": lot["lot_id"], "estimate": lot["estimate"], "starting_price": lot["starting_price"]}
                         for lot in body["lots"]]}, 201

    def lot_result(cid: str, c: Collective, pid: str, lot: str, total: int | None) -> dict[str, Any]:
        prefix = f"{pid}/{lot}/"
        return {"collective_id": cid, "procurement_id": pid, "lot": lot,
                "status": "open" if total is None else "awarded", "total": None if total is None else cv.money(total),
                "contracts": [contract(c, k) for k in sorted(c.contracts) if k.startswith(prefix)]}

    @route("record_award")
    async def record_award(who: Caller, collective_id: str, lot: str) -> Any:
        c = collective(collective_id)
        req = (await parsed(cm.CollectiveAwardRequest, required=True)).root
        now, by = runtime.now(), actor(who, c)
        if isinstance(req, cm.CollectiveAwardOnTotal):
            command: Any = RecordLotAward(now, collective_id, by, req.procurement_id, lot, req.supplier,
                                          minor(req.total))
        else:
            prices = tuple(sorted((a, minor(p)) for a, p in req.prices.items()))
            command = RecordLotPrices(now, collective_id, by, req.procurement_id, lot, req.supplier, prices)
        events = await run(command)
        awarded = next(e for e in events if type(e) is LotAwardRecorded)
        return lot_result(collective_id, c, req.procurement_id, lot, awarded.total)

    @route("record_unsuccessful")
    async def record_unsuccessful(who: Caller, collective_id: str, lot: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveUnsuccessfulRequest, required=True)
        await run(RecordLotUnsuccessful(runtime.now(), collective_id, actor(who, c), req.procurement_id, lot))
        return lot_result(collective_id, c, req.procurement_id, lot, None)

    # -- execution -------------------------------------------------------------------------

    @route("record_delivery")
    async def record_delivery(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveDeliveryRequest, required=True)
        await run(RecordDelivery(runtime.now(), collective_id, actor(who, c), req.contract_id, req.article,
                                 req.quantity, req.allow_over))
        return contract(c, req.contract_id)

    @route("record_receipt")
    async def record_receipt(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectiveReceiptRequest, required=True)
        await run(RecordReceipt(runtime.now(), collective_id, actor(who, c), req.contract_id, req.article,
                                req.quantity, req.rejected, req.reason))
        return contract(c, req.contract_id)

    @route("record_payment")
    async def record_payment(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        req = await parsed(cm.CollectivePaymentRequest, required=True)
        await run(RecordPayment(runtime.now(), collective_id, actor(who, c), req.contract_id, minor(req.amount),
                                req.allow_over))
        return contract(c, req.contract_id)

    @route("list_contracts")
    async def list_contracts(who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        q: cm.CollectiveContractsQuery = api.query(cm.CollectiveContractsQuery)
        me = reader(who, c)
        if q.contract_id is not None and q.contract_id not in c.contracts:
            raise ApiError(404, "unknown_contract", f"no contract {q.contract_id!r:.80}")
        if who.role == "member" and (q.member_id not in (None, me) or (
                q.contract_id is not None and c.contracts[q.contract_id].member != me)):
            raise ApiError(403, "not_member", "a member reads only its own contracts")
        try:
            visible = contracts_of(c, me)
        except QueryError as exc:
            raise ApiError(403, exc.code, str(exc)) from None
        return {"contracts": [cv.contract_body(k, v) for k, v in visible.items()
                              if q.member_id in (None, v.member) and q.contract_id in (None, k)]}

    @route("consolidation")
    async def live(_who: Caller, collective_id: str) -> Any:
        c = collective(collective_id)
        q: cm.CollectiveLiveQuery = api.query(cm.CollectiveLiveQuery)
        if q.wait > api.limits.feed_wait_max_s:
            raise invalid("invalid_query", f"wait: must be at most {api.limits.feed_wait_max_s:g} seconds",
                          [{"path": "wait", "message": f"must be at most {api.limits.feed_wait_max_s:g} seconds"}])
        with trio.move_on_after(q.wait):
            while cv.revision(c) <= q.since:
                await service.awards.wait_changed(collective_id)
        return cv.consolidation_body(collective_id, c, consolidation(c, c.coordinator))
