"""Tender drafts through the real service: saved, replaced, read, discarded and published
by the buyer's keys; every answer checked against the OpenAPI document; refusals coded
with the state unchanged; a draft survives a restart; never listed nor shown to others."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from served import KEYS, served
from test_tenders_api import SHARES, Http, opening_in, publish_body
from wire import state

from replay import verify
from tenders import Tenders

PUBLISH, TENDER, DRAFT = "/tenders", "/tenders/{tender_id}", "/tenders/{tender_id}/draft"


def draft_body(**changes: Any) -> dict[str, Any]:
    """A publication's body before the key pair exists: no key, no digests, no tender id."""
    body = publish_body("T1", opening_in(3600), SHARES, **changes)
    for name in ("tender_id", "public_key", "share_digests"):
        if name not in changes:
            del body[name]
    return body


def view_of(body: dict[str, Any], tender_id: str, status: str, saved_at: str) -> dict[str, Any]:
    return {"tender_id": tender_id, "status": status, "saved_at": saved_at, "buyer_id": "ministry",
            "opening_at": body["opening_at"], "lots": body["lots"], "public_key": body.get("public_key"),
            "members": body["members"], "share_digests": body.get("share_digests", []),
            "threshold": body["threshold"], "currency": "MAD", "decimals": 2, "parts": ["admin", "financial"],
            "validity_days": 75, "preference": "15", "exemption": "30", "abnormally_low": "10", "excessive": None,
            "ask_days": 0, "answer_days": 0, "justification_days": 7,
            "amendment_days": 7}


@pytest.mark.trio
async def test_a_draft_saved_replaced_published_and_discarded(tmp_path: Path) -> None:
    buyer, portal, auditor = KEYS["buyer"], KEYS["portal"], KEYS["auditor"]
    body = draft_body()
    async with served(tmp_path / "data") as srv:
        api = Http(srv)
        kind = srv.service.runtime.host.kind(Tenders)
        saved = await api.call(buyer, "put", DRAFT, 201, body=body, tender_id="T1")
        assert saved == view_of(body, "T1", "draft", saved["saved_at"])
        before = state(srv)
        assert await api.call(portal, "put", DRAFT, 200, body=body, tender_id="T1") == saved  # unchanged
        assert state(srv) == before  # nothing journaled
        replaced = await api.call(buyer, "put", DRAFT, 200, body={**body, "threshold": 1}, tender_id="T1")
        assert replaced == view_of({**body, "threshold": 1}, "T1", "draft", replaced["saved_at"])
        assert await api.call(portal, "get", DRAFT, 200, tender_id="T1") == replaced

        # private: not a tender to anyone, not listed, no tokens
        await api.refused(auditor, "get", TENDER, 404, "unknown_tender", tender_id="T1")
        await api.refused(buyer, "get", TENDER, 404, "unknown_tender", tender_id="T1")
        await api.refused(KEYS["portal"], "post", TENDER + "/tokens", 404, "unknown_tender", {"bidders": ["acme"]},
                          tender_id="T1")
        assert await api.call(auditor, "get", PUBLISH, 200) == {"tenders": [], "next": None}

        # refusals change nothing
        await api.refused(buyer, "put", DRAFT, 403, "not_the_buyer", {**body, "buyer_id": "other"}, tender_id="T1")
        await api.refused(buyer, "put", DRAFT, 422, "invalid_request", {**body, "tender_id": "T2"}, tender_id="T1")
        await api.refused(buyer, "put", DRAFT, 422, "invalid_commission", {**body, "threshold": 4}, tender_id="T1")
        await api.refused(buyer, "put", DRAFT, 422, "invalid_commission",
                          {**body, "share_digests": ["00" * 32]}, tender_id="T1")
        await api.refused(buyer, "put", DRAFT, 422, "malformed", body, tender_id="-bad")
        await api.refused(buyer, "put", DRAFT, 400, "invalid_json", None, tender_id="T1")
        await api.refused(buyer, "get", DRAFT, 404, "unknown_tender", tender_id="T9")
        await api.refused(buyer, "delete", DRAFT, 404, "unknown_tender", tender_id="T9")
        full = publish_body("T1", body["opening_at"], SHARES)
        await api.refused(buyer, "post", PUBLISH, 403, "not_the_buyer", {**full, "buyer_id": "other"})

        # a draft whose opening passed saves; it publishes only with an opening ahead
        past = await api.call(buyer, "put", DRAFT, 201, body={**body, "opening_at": "2001-01-01T00:00:00Z"},
                              tender_id="T2")
        assert past["opening_at"] == "2001-01-01T00:00:00.000000Z"
        await api.refused(buyer, "post", PUBLISH, 422, "opening_in_past",
                          {**full, "tender_id": "T2", "opening_at": "2001-01-01T00:00:00Z"})

        # published: the publication's body is the tender (threshold 2, not the draft's 1)
        published = await api.call(buyer, "post", PUBLISH, 201, body=full)
        assert (published["status"], published["threshold"]) == ("published", 2)
        assert "T1" not in kind.drafts
        await api.refused(buyer, "get", DRAFT, 409, "already_published", tender_id="T1")
        await api.refused(buyer, "put", DRAFT, 409, "already_published", body, tender_id="T1")
        await api.refused(buyer, "delete", DRAFT, 409, "already_published", tender_id="T1")

        # discarded: gone, the id free again
        discarded = await api.call(portal, "delete", DRAFT, 200, tender_id="T2")
        assert discarded == {**past, "status": "discarded"}
        await api.refused(buyer, "get", DRAFT, 404, "unknown_tender", tender_id="T2")
        await api.call(buyer, "put", DRAFT, 201, body=body, tender_id="T3")
        feed = await api.call(portal, "get", "/events", 200)
        assert [(e["type"], e["tender_id"]) for e in feed["events"]] == [("TenderPublished", "T1")]  # no draft's
        hashed = state(srv)[0]
        await api.http.aclose()

    async with served(tmp_path / "data") as srv:  # the buyer's work survives a restart
        api = Http(srv)
        assert state(srv)[0] == hashed
        kept = await api.call(buyer, "get", DRAFT, 200, tender_id="T3")
        assert kept == view_of(body, "T3", "draft", kept["saved_at"])
        assert [t["tender_id"] for t in (await api.call(auditor, "get", PUBLISH, 200))["tenders"]] == ["T1"]
        await api.http.aclose()
    checked = verify(tmp_path / "data" / "journal")
    assert checked.ok and checked.state_hash == hashed, checked.problem


@pytest.mark.trio
async def test_the_sdk_saves_reads_discards_and_publishes_a_draft(tmp_path: Path) -> None:
    from gateway.tender_client import TenderBuyer

    async with served(tmp_path) as srv, TenderBuyer(srv.base, KEYS["buyer"]) as buyer:
        opening = opening_in(3600)
        saved = await buyer.save_draft("D-1", "ministry", opening, {"L1": "1000.00"}, ["m1", "m2"], 2,
                                       validity_days=90)
        assert (saved["tender_id"], saved["status"], saved["buyer_id"]) == ("D-1", "draft", "ministry")
        assert (await buyer.draft("D-1")) == saved
        assert (await buyer.discard_draft("D-1"))["status"] == "discarded"
        await buyer.save_draft("D-1", "ministry", opening, {"L1": "1200.00"}, ["m1", "m2"], 2)
        view, shares = await buyer.publish("D-1", "ministry", opening, {"L1": "1200.00"}, ["m1", "m2"], 2)
        assert view["status"] == "published" and sorted(shares) == ["m1", "m2"]
        assert "D-1" in srv.service.runtime.host.kind(Tenders).tenders
