"""The collectives RPC on the real service: roles and member tokens, every operation's
answer validated against the OpenAPI document (tests/test_openapi.py's `check`), the
worked example of docs/grouped-purchases.md through the wire, and bad input answered
with its code while the state hash stays the same."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from served import KEYS, Served, served
from test_openapi import check

from auction_engine.timeutil import format_instant
from grouped_purchases import Collectives
from grouped_purchases.export import to_csv

CID = "G-1"
CONVENTION = hashlib.sha256(b"convention constitutive du collectif G-1").hexdigest()
MEMBERS = ("m1", "m2", "m3")
NEEDS_WINDOW_S = 4.0  # the needs deadline after creation: room for ~30 calls on a busy machine


class Wire:
    """Calls as a role (an API key) or a member (its token), each answer checked."""

    def __init__(self, srv: Served) -> None:
        self.srv = srv
        self.http = httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=30)
        self.tokens: dict[str, str] = {}

    async def call(self, who: str, method: str, template: str, status: int, body: Any = None,
                   code: str | None = None, params: dict[str, Any] | None = None, **path: str) -> Any:
        credential = self.tokens.get(who) or KEYS[who]
        response = await self.http.request(method.upper(), template.format(**path), json=body, params=params,
                                           headers={"Authorization": f"Bearer {credential}"})
        return check(response, method, template, status, code)

    def state(self) -> str:
        return self.srv.service.runtime.host.state_hash()

    async def refused(self, who: str, method: str, template: str, status: int, code: str, body: Any = None,
                      **path: str) -> None:
        """The call answers `code` and changes nothing."""
        before = self.state()
        await self.call(who, method, template, status, body, code, **path)
        assert self.state() == before, (template, code)


async def constitute(w: Wire) -> dict[str, Any]:
    deadline = format_instant(int((time.time() + NEEDS_WINDOW_S) * 1e6))
    created = await w.call("portal", "post", "/collectives", 201, {
        "collective_id": CID, "coordinator": "coord", "members": list(MEMBERS), "convention_hash": CONVENTION,
        "needs_deadline": deadline})
    assert created["constituted"] is False and created["members"] == list(MEMBERS)
    for member in MEMBERS:
        issued = await w.call("portal", "post", "/collectives/{collective_id}/tokens", 200, {"member_id": member},
                              collective_id=CID)
        assert issued["member_id"] == member
        w.tokens[member] = issued["token"]
    for member in MEMBERS:
        view = await w.call(member, "post", "/collectives/{collective_id}/acceptances", 200,
                            {"convention_hash": CONVENTION}, collective_id=CID)
    assert view["constituted"] is True and view["accepted"] == list(MEMBERS)
    for code, description, unit, price, lot in (("A4", "paper A4 80 g", "ream", "30.00", "L1"),
                                                ("TN", "toner", "unit", "450.00", "L1"),
                                                ("CH", "office chair", "unit", "1200.00", "L2")):
        added = await w.call("portal", "post", "/collectives/{collective_id}/articles", 201, {
            "code": code, "description": description, "unit": unit, "unit_price": price, "lot": lot},
            collective_id=CID)
        assert added == {"code": code, "description": description, "unit": unit, "unit_price": price, "lot": lot}
    return created


NEED = "/collectives/{collective_id}/needs/{article}"


async def declare(w: Wire, member: str, article: str, quantity: int, place: str) -> Any:
    return await w.call(member, "put", NEED, 200, {"quantity": quantity, "place": place}, collective_id=CID,
                        article=article)


async def collect_needs(w: Wire) -> None:
    """The worked example's needs: m3 revises, m2 revises after confirming (excluded)."""
    for member, article, quantity, place in (("m1", "A4", 100, "Rabat"), ("m1", "TN", 4, "Rabat"),
                                             ("m1", "CH", 10, "Rabat"), ("m2", "A4", 50, "Fès"),
                                             ("m2", "CH", 5, "Fès"), ("m3", "A4", 40, "Tanger")):
        await declare(w, member, article, quantity, place)
    revised = await declare(w, "m3", "A4", 60, "Tanger")
    assert (revised["version"], revised["quantity"], revised["confirmed"]) == (2, 60, False)
    await declare(w, "m3", "TN", 2, "Tanger")
    for member in MEMBERS:
        confirmed = await w.call(member, "post", "/collectives/{collective_id}/confirmation", 200, collective_id=CID)
        assert confirmed["member_id"] == member
    await declare(w, "m2", "CH", 6, "Fès")  # never confirmed again: m2 is excluded


async def needs_closed(w: Wire) -> None:
    """Wait (feed long poll) for the deadline's NeedsClosed entry."""
    after = 0
    while True:
        page = await w.call("portal", "get", "/events", 200, params={"case_id": CID, "after": after, "wait": 10})
        if any(e["type"] == "NeedsClosed" for e in page["events"]):
            return
        after = page["last_seq"]


@pytest.mark.trio
async def test_the_worked_example_through_the_rpc(tmp_path: Any) -> None:
    async with served(tmp_path) as srv:
        w = Wire(srv)
        await constitute(w)
        await collect_needs(w)
        m3_a4 = "/collectives/{collective_id}/members/{member_id}/needs/{article}"
        versions = await w.call("m3", "get", m3_a4, 200, collective_id=CID, member_id="m3", article="A4")
        assert [(v["version"], v["quantity"]) for v in versions["versions"]] == [(1, 40), (2, 60)]
        assert (await w.call("auditor", "get", m3_a4, 200, collective_id=CID, member_id="m3", article="A4")) == versions
        await w.refused("m1", "get", m3_a4, 403, "not_member", collective_id=CID, member_id="m3", article="A4")
        own = await w.call("m1", "get", "/collectives/{collective_id}/needs", 200, collective_id=CID)
        assert [(n["article"], n["quantity"], n["confirmed"]) for n in own["needs"]] == [
            ("A4", 100, True), ("CH", 10, True), ("TN", 4, True)]
        every = await w.call("portal", "get", "/collectives/{collective_id}/needs", 200, collective_id=CID)
        assert len(every["needs"]) == 7

        await needs_closed(w)
        view = await w.call("m2", "get", "/collectives/{collective_id}", 200, collective_id=CID)
        assert view["needs_closed"] is True and view["excluded"] == ["m2"]
        schedule = await w.call("portal", "post", "/collectives/{collective_id}/schedules", 201, collective_id=CID)
        assert (schedule["version"], schedule["final"], schedule["total"]) == (1, True, "19500.00")
        assert schedule["lots"] == [{"lot": "L1", "total": "7500.00"}, {"lot": "L2", "total": "12000.00"}]
        assert [(ln["article"], ln["quantity"], ln["amount"]) for ln in schedule["lines"]] == [
            ("A4", 160, "4800.00"), ("TN", 6, "2700.00"), ("CH", 10, "12000.00")]
        assert schedule["lines"][0]["members"] == [{"member_id": "m1", "quantity": 100, "amount": "3000.00"},
                                                   {"member_id": "m3", "quantity": 60, "amount": "1800.00"}]
        got = "/collectives/{collective_id}/schedules/{version}"
        assert await w.call("m1", "get", got, 200, collective_id=CID, version="1") == schedule
        await w.refused("portal", "get", got, 404, "unknown_schedule", collective_id=CID, version="2")
        c = srv.service.runtime.host.kind(Collectives).collectives[CID]
        export = got + "/export"
        for fmt, start in (("csv", to_csv(c.schedules[0], c.articles).encode()), ("xlsx", b"PK"),
                           ("html", b"<!doctype html>")):
            response = await w.http.get(export.format(collective_id=CID, version=1), params={"format": fmt},
                                        headers={"Authorization": f"Bearer {KEYS['auditor']}"})
            check(response, "get", export, 200)
            assert response.content.startswith(start) and (fmt != "csv" or response.content == start)
            assert response.headers["content-disposition"] == f'attachment; filename="bpde-{CID}-v1.{fmt}"'

        launch = {"procurement_id": "A-G1", "start": format_instant(int((time.time() + 3600) * 1e6)),
                  "end": format_instant(int((time.time() + 7200) * 1e6)), "bidders": ["acme"]}
        await w.refused("portal", "post", "/collectives/{collective_id}/launch", 422, "invalid_request",
                        {**launch, "starting_prices": {"L9": "1.00"}}, collective_id=CID)
        await w.refused("portal", "post", "/collectives/{collective_id}/launch", 422, "invalid_config",
                        {**launch, "end": launch["start"]}, collective_id=CID)
        launched = await w.call("buyer", "post", "/collectives/{collective_id}/launch", 201,
                                {**launch, "starting_prices": {"L2": "11000.00"}}, collective_id=CID)
        assert launched["buyer_ref"] == f"collective:{CID}:schedule:1" and launched["lots"] == [
            {"lot": "L1", "estimate": "7500.00", "starting_price": "7500.00"},
            {"lot": "L2", "estimate": "12000.00", "starting_price": "11000.00"}]
        auction = await w.call("portal", "get", "/auctions/{auction_id}", 200, auction_id="A-G1")
        assert auction["buyer_ref"] == launched["buyer_ref"] and [lot["lot_id"] for lot in auction["lots"]] == [
            "L1", "L2"]
        await w.refused("portal", "post", "/collectives/{collective_id}/launch", 409, "procurement_exists", launch,
                        collective_id=CID)
        await w.refused("portal", "post", "/collectives/{collective_id}/launch", 409, "nothing_to_procure",
                        {**launch, "procurement_id": "A-G2"}, collective_id=CID)  # every lot is pending

        award = "/collectives/{collective_id}/lots/{lot}/award"
        l1 = await w.call("portal", "post", award, 200, {"procurement_id": "A-G1", "supplier": "acme",
                                                         "total": "6000.01"}, collective_id=CID, lot="L1")
        assert [(k["contract_id"], k["total"]) for k in l1["contracts"]] == [("A-G1/L1/m1", "3840.01"),
                                                                              ("A-G1/L1/m3", "2160.00")]
        await w.refused("portal", "post", award, 409, "lot_not_pending", {
            "procurement_id": "A-G1", "supplier": "acme", "total": "6000.01"}, collective_id=CID, lot="L1")
        await w.refused("portal", "post", award, 409, "prices_mismatch", {
            "procurement_id": "A-G1", "supplier": "beta", "prices": {"A4": "1.00"}}, collective_id=CID, lot="L2")
        l2 = await w.call("portal", "post", award, 200, {"procurement_id": "A-G1", "supplier": "beta",
                                                         "prices": {"CH": "1100.00"}}, collective_id=CID, lot="L2")
        assert l2["total"] == "11000.00" and l2["contracts"][0]["lines"][0]["unit_price"] == "1100.00"
        await execute(w)


DELIVER, RECEIVE, PAY = ("/collectives/{collective_id}/deliveries", "/collectives/{collective_id}/receipts",
                         "/collectives/{collective_id}/payments")
CONTRACTS = "/collectives/{collective_id}/contracts"


async def execute(w: Wire) -> None:
    """Deliveries with a discrepancy, payments, what each reader sees, bad acts refused."""
    mine = await w.call("m1", "get", CONTRACTS, 200, collective_id=CID)
    assert [k["contract_id"] for k in mine["contracts"]] == ["A-G1/L1/m1", "A-G1/L2/m1"]
    every = await w.call("auditor", "get", CONTRACTS, 200, collective_id=CID)
    assert len(every["contracts"]) == 3
    before = w.state()
    for params in ({"contract_id": "A-G1/L1/m1"}, {"member_id": "m1"}):  # another member's contract
        response = await w.http.get(CONTRACTS.format(collective_id=CID), params=params,
                                    headers={"Authorization": f"Bearer {w.tokens['m3']}"})
        check(response, "get", CONTRACTS, 403, "not_member")
    assert w.state() == before

    delivered = await w.call("m1", "post", DELIVER, 200, {"contract_id": "A-G1/L1/m1", "article": "A4",
                                                          "quantity": 60}, collective_id=CID)
    assert delivered["lines"][0]["delivered"] == 60
    received = await w.call("m1", "post", RECEIVE, 200, {"contract_id": "A-G1/L1/m1", "article": "A4",
                                                         "quantity": 55, "rejected": 5, "reason": "torn reams"},
                            collective_id=CID)
    assert received["discrepancies"][0]["reason"] == "torn reams" and received["lines"][0]["received"] == 55
    paid = await w.call("portal", "post", PAY, 200, {"contract_id": "A-G1/L1/m3", "amount": "1000.00"},
                        collective_id=CID)
    assert (paid["paid"], paid["outstanding"]) == ("1000.00", "1160.00")
    live = await w.call("buyer", "get", "/collectives/{collective_id}/consolidation", 200, collective_id=CID)
    assert live["articles"][0] == {"article": "A4", "ordered": 160, "delivered": 60, "received": 55, "rejected": 5,
                                   "outstanding": 105}
    assert live["members"][2] == {"member_id": "m3", "ordered": 62, "delivered": 0, "received": 0,
                                  "amount": "2160.00", "paid": "1000.00", "outstanding": "1160.00"}

    # bad acts: coded, and nothing changes
    k1 = {"contract_id": "A-G1/L1/m1", "article": "A4"}
    await w.refused("m1", "post", DELIVER, 409, "beyond_contract", {**k1, "quantity": 46}, collective_id=CID)
    await w.refused("m1", "post", DELIVER, 403, "not_coordinator", {**k1, "quantity": 46, "allow_over": True},
                    collective_id=CID)
    await w.refused("m3", "post", DELIVER, 403, "not_member", {**k1, "quantity": 1}, collective_id=CID)
    await w.refused("m1", "post", DELIVER, 422, "invalid_request", {**k1, "quantity": 0}, collective_id=CID)
    await w.refused("m1", "post", DELIVER, 404, "unknown_contract", {**k1, "contract_id": "A-G1/L9/m1",
                                                                     "quantity": 1}, collective_id=CID)
    await w.refused("m1", "post", RECEIVE, 409, "beyond_delivered", {**k1, "quantity": 1}, collective_id=CID)
    await w.refused("m3", "post", PAY, 409, "beyond_due", {"contract_id": "A-G1/L1/m3", "amount": "1160.01"},
                    collective_id=CID)
    await w.refused("m3", "post", PAY, 422, "invalid_request", {"contract_id": "A-G1/L1/m3", "amount": "-1.00"},
                    collective_id=CID)
    await w.refused("m1", "put", NEED, 409, "needs_closed", {"quantity": 1, "place": "Rabat"}, collective_id=CID,
                    article="A4")


@pytest.mark.trio
async def test_roles_tokens_and_bad_needs_change_nothing(tmp_path: Any) -> None:
    async with served(tmp_path) as srv:
        w = Wire(srv)
        await constitute(w)
        await w.refused("portal", "post", "/collectives/{collective_id}/tokens", 404, "unknown_member",
                        {"member_id": "stranger"}, collective_id=CID)
        await w.refused("portal", "post", "/collectives", 409, "collective_exists", {
            "collective_id": CID, "coordinator": "c", "members": ["x"], "convention_hash": CONVENTION,
            "needs_deadline": "2990-01-01T00:00:00Z"})
        await w.refused("auditor", "post", "/collectives/{collective_id}/schedules", 403, "forbidden",
                        collective_id=CID)
        await w.refused("portal", "put", NEED, 403, "forbidden", {"quantity": 1, "place": "x"}, collective_id=CID,
                        article="A4")  # needs are the members' own acts
        # an operation that takes no case token reads a member's token as an (unknown) API key
        await w.refused("m1", "post", "/collectives/{collective_id}/articles", 401, "key_invalid", {
            "code": "X", "description": "x", "unit": "u", "unit_price": "1.00"}, collective_id=CID)
        await w.refused("m1", "post", "/collectives/{collective_id}/acceptances", 409, "already_accepted",
                        {"convention_hash": CONVENTION}, collective_id=CID)
        # the commission: the coordinator names every member's representative
        panel = [{"member_id": m, "representative": f"representative of {m}"} for m in MEMBERS]
        commission = "/collectives/{collective_id}/commission"
        await w.refused("portal", "put", commission, 409, "commission_incomplete", {"representatives": panel[:2]},
                        collective_id=CID)
        await w.refused("portal", "put", commission, 403, "not_member",
                        {"representatives": [*panel, {"member_id": "stranger", "representative": "x"}]},
                        collective_id=CID)
        await w.refused("buyer", "put", commission, 422, "invalid_request",
                        {"representatives": [{"member_id": "m1", "representative": ""}]}, collective_id=CID)
        await w.refused("auditor", "put", commission, 403, "forbidden", {"representatives": panel},
                        collective_id=CID)
        await w.refused("m1", "put", commission, 401, "key_invalid", {"representatives": panel}, collective_id=CID)
        designated = await w.call("buyer", "put", commission, 200, {"representatives": panel[::-1]},
                                  collective_id=CID)
        assert designated["commission"] == panel  # in member order
        seen = await w.call("m2", "get", "/collectives/{collective_id}", 200, collective_id=CID)
        assert seen["commission"] == panel
        await w.refused("m1", "get", "/collectives/{collective_id}/consolidation", 401, "key_invalid",
                        collective_id=CID)
        # a member's token is for its collective only
        await w.call("portal", "post", "/collectives", 201, {
            "collective_id": "G-2", "coordinator": "c", "members": ["m1"], "convention_hash": CONVENTION,
            "needs_deadline": "2990-01-01T00:00:00Z"})
        await w.refused("m1", "post", "/collectives/{collective_id}/acceptances", 403, "token_wrong_case",
                        {"convention_hash": CONVENTION}, collective_id="G-2")
        for quantity in (0, -3):
            await w.refused("m1", "put", NEED, 422, "invalid_request", {"quantity": quantity, "place": "Rabat"},
                            collective_id=CID, article="A4")
        await w.refused("m1", "put", NEED, 404, "unknown_article", {"quantity": 1, "place": "Rabat"},
                        collective_id=CID, article="ZZ")
        await w.refused("m1", "delete", NEED, 404, "unknown_need", collective_id=CID, article="A4")
        await w.refused("m1", "post", "/collectives/{collective_id}/confirmation", 409, "nothing_to_confirm",
                        collective_id=CID)
        await w.refused("portal", "post", "/collectives/{collective_id}/articles", 409, "article_exists", {
            "code": "A4", "description": "x", "unit": "u", "unit_price": "1.00"}, collective_id=CID)
        await w.refused("portal", "post", "/collectives/{collective_id}/articles", 422, "invalid_request", {
            "code": "B", "description": "x", "unit": "u", "unit_price": "0.00"}, collective_id=CID)
        declared = await declare(w, "m1", "A4", 3, "Rabat")
        withdrawn = await w.call("m1", "delete", NEED, 200, collective_id=CID, article="A4")
        assert (declared["version"], withdrawn["version"], withdrawn["quantity"]) == (1, 2, 0)
        await w.refused("portal", "post", "/collectives/{collective_id}/schedules", 409, "nothing_to_procure",
                        collective_id=CID)
        await w.refused("portal", "get", "/collectives/{collective_id}", 404, "unknown_collective",
                        collective_id="G-9")
