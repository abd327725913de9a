"""Amendments, confirmations and minutes through the tender RPC, against the real service:
every answer checked against the OpenAPI document, refusals coded with the state hash
unchanged, an amendment moving the opening by exactly `amendment_days`, an unconfirmed
deposit set aside at the deadline and never opened, the minutes' bytes the renderer's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from served import KEYS, served
from test_openapi import check
from test_tenders_api import PUBLISH, SHARES, TENDER, Http, opening_in, publish_body, sealed
from wire import state, until

from auction_engine.timeutil import format_instant, parse_instant
from replay.minutes import render_minutes
from tenders import Tenders
from tenders.tender import DAY

MINUTES = TENDER + "/minutes"


async def minutes(api: Http, credential: str, status: int, code: str | None = None, **query: str) -> Any:
    """The minutes as raw bytes (checked against the document), or the coded error."""
    response = await api.http.get("/tenders/T1/minutes", params=query,
                                  headers={"Authorization": f"Bearer {credential}"})
    body = check(response, "get", MINUTES, status, code)
    return response if code is None else body


@pytest.mark.trio
async def test_amendments_confirmations_and_minutes_through_the_rpc(tmp_path: Path) -> None:
    buyer, auditor = KEYS["buyer"], KEYS["auditor"]
    async with served(tmp_path) as srv:
        api = Http(srv)
        kind = srv.service.runtime.host.kind(Tenders)
        # T1: amendments move nothing (amendment_days 0); T2: one day is kept before the opening
        t1 = await api.call(buyer, "post", PUBLISH, 201, body=publish_body("T1", opening_in(10), SHARES,
                                                                          amendment_days=0))
        assert (t1["amendment_days"], t1["amendments"], t1["to_confirm"], t1["set_aside_offers"]) == (0, [], [], [])
        far = opening_in(3600)
        t2 = await api.call(buyer, "post", PUBLISH, 201, body=publish_body("T2", far, SHARES, amendment_days=1))
        assert t2["amendment_days"] == 1
        tok = {t["subject"]: t["token"] for t in (await api.call(KEYS["portal"], "post", TENDER + "/tokens", 200, body={
            "bidders": ["acme", "beta", "gamma"], "members": ["m1", "m2"]}, tender_id="T1"))["tokens"]}
        receipts = {b: await api.call(tok[b], "post", TENDER + "/deposits", 200, body=sealed(t1, b, amount, b + "-1"),
                                      tender_id="T1")
                    for b, amount in (("acme", "900000.00"), ("beta", "800000.00"))}
        await api.refused(tok["acme"], "post", TENDER + "/confirmations", 409, "already_confirmed", tender_id="T1")
        await api.refused(tok["gamma"], "post", TENDER + "/confirmations", 409, "nothing_to_confirm", tender_id="T1")
        await minutes(api, buyer, 409, "not_opened", which="opening")
        await minutes(api, auditor, 409, "not_evaluated", which="evaluation", format="pdf")
        before = state(srv)
        await minutes(api, buyer, 422, "invalid_query", which="closing")
        await minutes(api, buyer, 422, "invalid_query", which="opening", lang="de")
        await minutes(api, buyer, 422, "invalid_query", format="pdf")  # `which` is required
        assert state(srv) == before
        for bad, status, code in (({"amendment_id": "A1"}, 422, "invalid_request"),  # neither text nor file
                                  ({"amendment_id": "A1", "text": "  ", "sha256": None}, 422, "invalid_request"),
                                  ({"amendment_id": "A1", "sha256": "AB" * 32}, 422, "invalid_request"),
                                  ({"amendment_id": "A 1", "text": "x"}, 422, "invalid_request"),
                                  ({"amendment_id": "A1", "text": "x" * 5001}, 422, "invalid_request"),
                                  ({"text": "x"}, 422, "invalid_request")):
            await api.refused(buyer, "post", TENDER + "/amendments", status, code, bad, tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/amendments", 404, "unknown_tender", {"amendment_id": "A1",
                                                                                          "text": "x"},
                          tender_id="T9")

        amended = await api.call(buyer, "post", TENDER + "/amendments", 200, body={
            "amendment_id": "A1", "text": "Lot 1: 40 units.", "sha256": "ab" * 32}, tender_id="T1")
        (a1,) = amended["amendments"]
        assert (a1["amendment_id"], a1["text"], a1["sha256"], a1["opening_at"]) == (
            "A1", "Lot 1: 40 units.", "ab" * 32, t1["opening_at"])  # more than 0 days left: nothing moves
        assert (amended["opening_at"], amended["to_confirm"]) == (t1["opening_at"], ["acme", "beta"])
        await api.refused(buyer, "post", TENDER + "/amendments", 409, "amendment_exists",
                          {"amendment_id": "A1", "text": "again"}, tender_id="T1")
        mine = await api.call(tok["beta"], "get", TENDER, 200, tender_id="T1")
        assert (mine["must_confirm"], mine["set_aside"], mine["amendments"]) == (True, False, [a1])
        assert "to_confirm" not in mine
        kept = await api.call(tok["acme"], "post", TENDER + "/confirmations", 200, tender_id="T1")
        assert (kept["must_confirm"], kept["set_aside"]) == (False, False)
        await api.refused(tok["acme"], "post", TENDER + "/confirmations", 409, "already_confirmed", tender_id="T1")
        gamma = await api.call(tok["gamma"], "post", TENDER + "/deposits", 200,
                               body=sealed(t1, "gamma", "950000.00", "gamma-1"), tender_id="T1")
        await api.refused(tok["gamma"], "post", TENDER + "/confirmations", 409, "already_confirmed", tender_id="T1")
        assert (await api.call(auditor, "get", TENDER, 200, tender_id="T1"))["to_confirm"] == ["beta"]

        # T2: with one day left at most, the opening (and the validity) move to the amendment + 1 day
        moved = await api.call(buyer, "post", TENDER + "/amendments", 200, body={"amendment_id": "B1",
                                                                                  "sha256": "cd" * 32},
                               tender_id="T2")
        (b1,) = moved["amendments"]
        opening = parse_instant(b1["time"]) + DAY
        assert (b1["text"], b1["opening_at"], moved["opening_at"]) == ("", format_instant(opening),
                                                                        format_instant(opening))
        assert parse_instant(moved["validity_until"]) - parse_instant(t2["validity_until"]) == \
            opening - parse_instant(far)

        # the deadline: beta's unconfirmed deposit is set aside, never opened
        await until(lambda: kind.tenders["T1"].status == "opening", timeout=40)
        closed = await api.call(buyer, "get", TENDER, 200, tender_id="T1")
        assert closed["set_aside_offers"] == [{"bidder_id": "beta", "time": t1["opening_at"], "code": "not_confirmed",
                                               "envelopes": receipts["beta"]["envelopes"]}]
        assert ([b["bidder_id"] for b in closed["bidders"]], closed["deposits"], closed["to_confirm"]) == (
            ["acme", "gamma"], 2, [])
        assert (await api.call(tok["beta"], "get", TENDER, 200, tender_id="T1"))["set_aside"] is True
        await api.refused(tok["beta"], "post", TENDER + "/confirmations", 409, "deposit_closed", tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/amendments", 409, "deposit_closed",
                          {"amendment_id": "A2", "text": "late"}, tender_id="T1")
        for member, share in (("m1", SHARES[0]), ("m2", SHARES[1])):
            opened = await api.call(tok[member], "post", TENDER + "/shares", 200, body={"share": share.hex()},
                                    tender_id="T1")
        assert {b["bidder_id"]: b["opened"] for b in opened["bidders"]} == {
            "acme": {"admin": "ok", "financial": "ok"}, "gamma": {"admin": "ok", "financial": "ok"}}
        assert "beta" not in kind.tenders["T1"].opened

        # minutes: the renderer's very bytes, with their type and file name
        tender = kind.tenders["T1"]
        for credential, fmt, lang, ctype in ((buyer, "html", "fr", "text/html; charset=utf-8"),
                                             (auditor, "pdf", "en", "application/pdf"),
                                             (tok["m1"], "html", "en", "text/html; charset=utf-8")):
            response = await minutes(api, credential, 200, which="opening", format=fmt, lang=lang)
            assert response.headers["content-type"] == ctype
            assert response.headers["content-disposition"] == f'attachment; filename="T1-opening-{lang}.{fmt}"'
            assert response.content == render_minutes("T1", tender, "opening", fmt, lang)
        html = (await minutes(api, buyer, 200, which="opening", lang="en")).text
        assert "offer set aside unopened" in html and "beta" in html and "A1" in html
        await minutes(api, buyer, 409, "not_evaluated", which="evaluation")
        for bidder in ("acme", "gamma"):
            await api.call(tok["m1"], "post", TENDER + "/admissions", 200, body={"bidder_id": bidder,
                                                                                 "admitted": True}, tender_id="T1")
        decided = await api.call(tok["m2"], "post", TENDER + "/admissions/close", 200, tender_id="T1")
        # beta's 800,000 counts for nothing: P = (1,000,000 + 925,000) / 2 = 962,500; closest below: gamma
        assert [(lot["winner"], lot["amount"], lot["reference"]) for lot in decided["lots"]] == [
            ("gamma", "950000.00", "962500.00")]
        response = await minutes(api, auditor, 200, which="evaluation", format="pdf", lang="fr")
        assert response.content[:5] == b"%PDF-"
        assert response.content == render_minutes("T1", tender, "evaluation", "pdf", "fr")

        feed = await api.call(buyer, "get", "/events", 200)
        entries = [e for e in feed["events"] if e.get("type") == "AmendmentPublished"]
        assert [{k: v for k, v in e.items() if k not in ("seq", "time")} for e in entries] == [
            {"type": "AmendmentPublished", "tender_id": "T1", "amendment_id": "A1", "text": "Lot 1: 40 units.",
             "digest": "ab" * 32, "opening_at": t1["opening_at"], "to_confirm": 2},
            {"type": "AmendmentPublished", "tender_id": "T2", "amendment_id": "B1", "text": "",
             "digest": "cd" * 32, "opening_at": format_instant(opening), "to_confirm": 0}]
        assert [e["offers"] for e in feed["events"] if e.get("type") == "DepositsClosed"] == [2]
        assert gamma["kind"] == "deposit"
        await api.http.aclose()
