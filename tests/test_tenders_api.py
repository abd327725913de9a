"""The tender RPC against the real service: every answer checked against the generated
OpenAPI document (tests/test_openapi.py's `check`), each role refused with its code,
bad input coded with the state hash unchanged, and the signed receipts verified
offline (`auction-replay verify-receipt`), also after a restart from a checkpoint."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from served import KEYS, TOKEN_SECRET, Served, auction_body, served
from test_openapi import check
from wire import state, until

from auction_engine.timeutil import format_instant
from gateway.auth import TokenIssuer
from gateway.receipts import RECEIPT_KEY_FILE, load_or_create_key, public_pem
from gateway.tender_client import TenderBuyer
from gateway.tenders_api import OPERATIONS
from replay.cli import main as replay_main
from tenders import Tenders
from tenders import receipts as signed
from tenders.offer import offer_json
from tenders.sealing import digest, public_key_of, seal, split_key

ESTIMATE = "1000000.00"


class Http:
    """Raw calls with one credential (an API key or a case token), each answer checked."""

    def __init__(self, srv: Served) -> None:
        self.srv = srv
        self.http = httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=10)

    async def call(self, credential: str | None, method: str, template: str, status: int, code: str | None = None,
                   body: Any = None, **path: str) -> Any:
        headers = {} if credential is None else {"Authorization": f"Bearer {credential}"}
        response = await self.http.request(method.upper(), template.format(**path), json=body, headers=headers)
        return check(response, method, template, status, code)

    async def refused(self, credential: str | None, method: str, template: str, status: int, code: str,
                      body: Any = None, **path: str) -> Any:
        """A refusal: coded, and the state (hash and journal position) unchanged."""
        before = state(self.srv)
        answer = await self.call(credential, method, template, status, code, body, **path)
        assert state(self.srv) == before, (template, code)
        return answer


def opening_in(seconds: float) -> str:
    return format_instant(int((time.time() + seconds) * 1_000_000))


def sealed(tender: dict[str, Any], bidder: str, amount: str, client_id: str) -> dict[str, Any]:
    public = bytes.fromhex(tender["public_key"])
    parts = {"admin": b"%PDF admin", "financial": offer_json("MAD", {"L1": (amount, [("1", "1", amount)])})}
    envelopes = []
    for part in tender["parts"]:
        ciphertext = seal(public, parts[part], tender["tender_id"], bidder, part)
        envelopes.append({"part": part, "ciphertext": base64.b64encode(ciphertext).decode(),
                          "sha256": digest(ciphertext).hex()})
    return {"client_id": client_id, "envelopes": envelopes}


# -- receipts, offline --------------------------------------------------------------------

def test_a_receipt_verifies_and_a_changed_one_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = load_or_create_key(tmp_path / RECEIPT_KEY_FILE)
    assert stat.S_IMODE(os.stat(tmp_path / RECEIPT_KEY_FILE).st_mode) == 0o600
    assert load_or_create_key(tmp_path / RECEIPT_KEY_FILE).public_key().public_bytes_raw() == \
        key.public_key().public_bytes_raw()  # kept, not made again
    public = key.public_key().public_bytes_raw()
    receipt = signed.make(key, "deposit", "T1", "acme", [("financial", b"\x02" * 32), ("admin", b"\x01" * 32)],
                          1_700_000_000_123_456, 42)
    assert receipt["envelopes"] == [{"part": "admin", "sha256": "01" * 32}, {"part": "financial", "sha256": "02" * 32}]
    assert receipt["time"] == "2023-11-14T22:13:20.123456Z"
    assert signed.verify(receipt, public) == {k: v for k, v in receipt.items() if k != "signature"}
    assert signed.make(key, "deposit", "T1", "acme", [("admin", b"\x01" * 32), ("financial", b"\x02" * 32)],
                       1_700_000_000_123_456, 42) == receipt  # deterministic
    changes = {"tender_id": "T2", "bidder_id": "beta", "time_us": 1_700_000_000_123_457, "gseq": 43,
               "kind": "withdrawal", "time": "2023-11-14T22:13:20.123457Z",
               "envelopes": [{"part": "admin", "sha256": "03" * 32}, {"part": "financial", "sha256": "02" * 32}]}
    for name, value in changes.items():
        with pytest.raises(signed.ReceiptError) as exc:
            signed.verify({**receipt, name: value}, public)
        assert exc.value.code == "bad_signature", name
    for bad in ({**receipt, "extra": 1}, {**receipt, "gseq": "42"}, {**receipt, "signature": "00"}, [receipt]):
        with pytest.raises(signed.ReceiptError) as exc:
            signed.verify(bad, public)
        assert exc.value.code == "malformed_receipt"
    other = load_or_create_key(tmp_path / "other.pem")
    forged = signed.make(other, "deposit", "T1", "acme", [], 1, 1)
    with pytest.raises(signed.ReceiptError) as exc:
        signed.verify(forged, public)
    assert exc.value.code == "wrong_key"
    with pytest.raises(signed.ReceiptError) as exc:  # another key claiming to be ours
        signed.verify({**forged, "key_id": receipt["key_id"]}, public)
    assert exc.value.code == "bad_signature"

    # the auditors' tool, offline
    (tmp_path / "key.pem").write_text(public_pem(key))
    (tmp_path / "key.hex").write_text(public.hex() + "\n")
    (tmp_path / "r.json").write_text(json.dumps(receipt))
    (tmp_path / "forged.json").write_text(json.dumps({**receipt, "bidder_id": "beta"}))
    for key_file in ("key.pem", "key.hex"):
        assert replay_main(["verify-receipt", str(tmp_path / "r.json"), "--public-key", str(tmp_path / key_file)]) == 0
        assert capsys.readouterr().out == ("OK: receipt verified: deposit of acme in tender T1 at "
                                           "2023-11-14T22:13:20.123456Z, gseq 42\n")
    assert replay_main(["verify-receipt", str(tmp_path / "forged.json"), "--public-key",
                        str(tmp_path / "key.pem")]) == 1
    assert capsys.readouterr().err == ("auction-replay: FAILED bad_signature: the signature does not match the "
                                       "receipt's fields\n")
    assert replay_main(["verify-receipt", str(tmp_path / "r.json"), "--public-key", str(tmp_path / "r.json")]) == 1
    assert "FAILED bad_public_key" in capsys.readouterr().err


# -- roles and tokens ---------------------------------------------------------------------

BODIES: dict[str, Any] = {
    "issue_tender_tokens": {"bidders": ["x"]}, "deposit_offer": {"client_id": "c1", "envelopes": []},
    "withdraw_offer": {"client_id": "c1"}, "ask_question": {"question_id": "q9", "text": "?"},
    "answer_question": {"text": "!"}, "record_rate": {"currency": "EUR", "rate": "10.85"},
    "submit_share": {"share": "00" * 33}, "decide_admission": {"bidder_id": "x", "admitted": True},
    "justify_offer": {"lot_id": "L1", "sha256": "00" * 32},
    "decide_justification": {"lot_id": "L1", "bidder_id": "x", "accepted": True},
    "request_extension": {"days": 1, "answer_by": "2990-01-01T00:00:00Z"}, "answer_extension": {"accepted": True},
    "cancel_tender": {"reason": "test"}, "publish_tender": {}, "publish_amendment": {"amendment_id": "a1", "text": "x"},
    "save_draft": {}}


@pytest.mark.trio
async def test_each_role_is_refused_with_its_code(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        api = Http(srv)
        async with TenderBuyer(srv.base, KEYS["portal"]) as buyer:
            await buyer.publish("T1", "ministry", opening_in(3600), {"L1": ESTIMATE}, ["m1", "m2"], 2)
            await buyer.publish("T2", "ministry", opening_in(3600), {"L1": ESTIMATE}, ["m1", "m2"], 2)
            tokens = await buyer.tokens("T1", bidders=["acme"], members=["m1"])
            other = await buyer.tokens("T2", bidders=["acme"])
        expired = TokenIssuer(TOKEN_SECRET, 60, clock=lambda: time.time() - 3600).issue_case("T1", "acme", "bidder")[0]
        forged = TokenIssuer("another-secret-0123456789abcdefghijklmnop", 60).issue_case("T1", "acme", "bidder")[0]
        credentials = {**KEYS, "bidder": tokens["acme"], "commission": tokens["m1"]}
        checked = 0
        for op in OPERATIONS:
            if not op.roles:
                continue
            path = op.path.removeprefix("/api/v1")
            ids = {"tender_id": "T1", "question_id": "q1"}
            body = BODIES.get(op.id)
            for role, credential in credentials.items():
                if role in op.roles:
                    continue
                if role in KEYS or op.token_roles:
                    await api.refused(credential, op.method, path, 403, "forbidden", body, **ids)
                else:  # a key-only operation reads a case token as an (unknown) API key
                    await api.refused(credential, op.method, path, 401, "key_invalid", body, **ids)
                checked += 1
            if op.token_roles:
                await api.refused(other["acme"], op.method, path, 403, "token_wrong_case", body, **ids)
                await api.refused(expired, op.method, path, 401, "token_expired", body, **ids)
                await api.refused(forged, op.method, path, 401, "token_invalid", body, **ids)
            await api.refused(None, op.method, path, 401, "key_missing", body, **ids)
        assert checked == 81  # every (operation, role) pair not allowed
        # a member of another commission gets no token; a bidder token is for its own subject only
        await api.refused(KEYS["portal"], "post", "/tenders/{tender_id}/tokens", 403, "not_a_member",
                          {"members": ["m9"]}, tender_id="T1")
        await api.refused(KEYS["auditor"], "get", "/tenders/{tender_id}", 404, "unknown_tender", tender_id="T9")
        await api.http.aclose()


# -- a tender through the raw RPC, every answer checked ------------------------------------

PUBLISH = "/tenders"
TENDER = "/tenders/{tender_id}"


def publish_body(tender_id: str, opening_at: str, shares: list[bytes], **changes: Any) -> dict[str, Any]:
    body = {"tender_id": tender_id, "buyer_id": "ministry", "opening_at": opening_at,
            "lots": [{"lot_id": "L1", "estimate": ESTIMATE}], "public_key": PUBLIC.hex(),
            "members": ["m1", "m2", "m3"], "share_digests": [digest(s).hex() for s in shares], "threshold": 2,
            "ask_days": 0, "answer_days": 0, "abnormally_low": "10"}
    return {**body, **changes}


PRIVATE = bytes(range(1, 33))
PUBLIC = public_key_of(PRIVATE)
SHARES = split_key(PRIVATE, 2, 3)


@pytest.mark.trio
async def test_a_tender_through_the_rpc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    buyer, portal, auditor = KEYS["buyer"], KEYS["portal"], KEYS["auditor"]
    async with served(data, checkpoint_every=1) as srv:
        api = Http(srv)
        kind = srv.service.runtime.host.kind(Tenders)
        body = publish_body("T1", opening_in(10), SHARES)  # time enough for every act before it, under load
        view = await api.call(portal, "post", PUBLISH, 201, body=body)
        assert (view["status"], view["estimates"], view["bidders"], view["questions"]) == (
            "published", [{"lot_id": "L1", "estimate": ESTIMATE}], [], [])
        assert await api.call(buyer, "post", PUBLISH, 200, body=body) == view  # idempotent
        await api.refused(buyer, "post", PUBLISH, 409, "tender_exists", {**body, "threshold": 3})
        for changes, code in (({"opening_at": "2001-01-01T00:00:00Z"}, "opening_in_past"),
                              ({"share_digests": [digest(SHARES[0]).hex()]}, "invalid_commission"),
                              ({"threshold": 4}, "invalid_commission"),
                              ({"answer_days": 8}, "invalid_delays"),
                              ({"lots": [{"lot_id": "L1", "estimate": "1.001"}]}, "invalid_lots"),
                              ({"colour": "red"}, "invalid_request"), ({"public_key": "AB" * 32}, "invalid_request")):
            await api.refused(portal, "post", PUBLISH, 422, code, {**body, "tender_id": "T9", **changes})
        await api.refused(portal, "post", PUBLISH, 400, "invalid_json", None)
        page = await api.call(auditor, "get", PUBLISH, 200)
        assert page == {"tenders": [{"tender_id": "T1", "buyer_id": "ministry", "status": "published",
                                     "opening_at": body["opening_at"], "lots": 1, "deposits": 0}], "next": None}
        tokens = await api.call(portal, "post", TENDER + "/tokens", 200, body={
            "bidders": ["acme", "beta", "gamma"], "members": ["m1", "m2", "m3"], "ttl_s": 600}, tender_id="T1")
        tok = {t["subject"]: t["token"] for t in tokens["tokens"]}
        # T2: one offer, rejected at admission (nothing to bridge); T3: cancelled
        await api.call(portal, "post", PUBLISH, 201, body={**body, "tender_id": "T2"})
        await api.call(portal, "post", PUBLISH, 201, body={**body, "tender_id": "T3"})
        t2 = {t["subject"]: t["token"] for t in (await api.call(portal, "post", TENDER + "/tokens", 200, body={
            "bidders": ["acme"], "members": ["m1", "m2"]}, tender_id="T2"))["tokens"]}
        t3 = (await api.call(portal, "post", TENDER + "/tokens", 200, body={"bidders": ["acme"]},
                             tender_id="T3"))["tokens"][0]["token"]
        await api.call(t2["acme"], "post", TENDER + "/deposits", 200,
                       body=sealed({**view, "tender_id": "T2"}, "acme", "700000.00", "a-1"), tender_id="T2")
        await api.refused(buyer, "post", TENDER + "/cancel", 422, "invalid_request", {"reason": ""}, tender_id="T3")
        cancelled = await api.call(buyer, "post", TENDER + "/cancel", 200, body={"reason": "budget withdrawn"},
                                   tender_id="T3")
        assert cancelled["status"] == "cancelled"
        await api.refused(t3, "post", TENDER + "/deposits", 409, "tender_cancelled",
                          sealed({**view, "tender_id": "T3"}, "acme", "1.00", "a-1"), tender_id="T3")
        assert [t["role"] for t in tokens["tokens"]] == ["bidder"] * 3 + ["commission"] * 3

        # bidders: download, deposit (receipts), withdraw and deposit again, a question
        receipts = {}
        for bidder, amount in (("acme", "600000.00"), ("beta", "950000.00"), ("gamma", "1000000.00")):
            await api.call(tok[bidder], "post", TENDER + "/downloads", 200, tender_id="T1")
            receipts[bidder] = await api.call(tok[bidder], "post", TENDER + "/deposits", 200,
                                              body=sealed(view, bidder, amount, f"{bidder}-1"), tender_id="T1")
        await api.refused(tok["acme"], "post", TENDER + "/downloads", 409, "already_downloaded", tender_id="T1")
        retry = await api.call(tok["acme"], "post", TENDER + "/deposits", 200,
                               body=sealed(view, "acme", "1.00", "acme-1"), tender_id="T1")
        assert retry == receipts["acme"]
        withdrawal = await api.call(tok["gamma"], "post", TENDER + "/withdrawals", 200, body={"client_id": "g-w"},
                                    tender_id="T1")
        assert (withdrawal["kind"], withdrawal["envelopes"]) == ("withdrawal", [])
        await api.refused(tok["acme"], "post", TENDER + "/withdrawals", 409, "client_id_reused",
                          {"client_id": "acme-1"}, tender_id="T1")
        await api.refused(tok["gamma"], "post", TENDER + "/withdrawals", 409, "nothing_to_withdraw",
                          {"client_id": "g-w2"}, tender_id="T1")
        receipts["gamma"] = await api.call(tok["gamma"], "post", TENDER + "/deposits", 200,
                                           body=sealed(view, "gamma", "1000000.00", "gamma-2"), tender_id="T1")
        mine = await api.call(tok["gamma"], "get", TENDER, 200, tender_id="T1")
        assert mine["deposit"] == receipts["gamma"]["envelopes"] and "bidders" not in mine
        assert await api.call(tok["beta"], "post", TENDER + "/questions", 200,
                              body={"question_id": "q1", "text": "Delivery site?"}, tender_id="T1") == {
            "tender_id": "T1", "question_id": "q1", "question": "Delivery site?"}
        await api.refused(tok["beta"], "post", TENDER + "/questions", 409, "question_exists",
                          {"question_id": "q1", "text": "Again?"}, tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/questions/{question_id}/answer", 404, "unknown_question",
                          {"text": "?"}, tender_id="T1", question_id="q2")
        await api.call(buyer, "post", TENDER + "/questions/{question_id}/answer", 200, body={"text": "Rabat."},
                       tender_id="T1", question_id="q1")
        await api.call(buyer, "post", TENDER + "/rates", 200, body={"currency": "EUR", "rate": "10.85"},
                       tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/rates", 422, "invalid_currency",
                          {"currency": "MAD", "rate": "1"}, tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/extension", 409, "no_offers_to_extend",
                          {"days": 10, "answer_by": opening_in(3600)}, tender_id="T1")

        await until(lambda: kind.tenders["T2"].status == "opening", timeout=40)
        for member, share in (("m1", SHARES[0]), ("m2", SHARES[1])):
            await api.call(t2[member], "post", TENDER + "/shares", 200, body={"share": share.hex()}, tender_id="T2")
        await api.call(t2["m1"], "post", TENDER + "/admissions", 200,
                       body={"bidder_id": "acme", "admitted": False, "reason": "no tax certificate"}, tender_id="T2")
        none = await api.call(t2["m2"], "post", TENDER + "/admissions/close", 200, tender_id="T2")
        assert [(lot["status"], lot["reason"]) for lot in none["lots"]] == [("unsuccessful", "none_admitted")]
        bridge = {k: v for k, v in auction_body("T1-E", seconds=600).items() if k != "bidders"}
        await api.refused(buyer, "post", TENDER + "/auction", 409, "no_admitted_bidders", bridge, tender_id="T2")
        await api.refused(buyer, "post", TENDER + "/auction", 409, "admission_open", bridge, tender_id="T1")

        # the opening: k = 2 of 3 shares
        await until(lambda: kind.tenders["T1"].status == "opening", timeout=40)
        await api.call(tok["m1"], "post", TENDER + "/shares", 200, body={"share": SHARES[0].hex()}, tender_id="T1")
        await api.refused(tok["m2"], "post", TENDER + "/shares", 422, "bad_share", {"share": SHARES[2].hex()},
                          tender_id="T1")
        opened = await api.call(tok["m2"], "post", TENDER + "/shares", 200, body={"share": SHARES[1].hex()},
                                tender_id="T1")
        assert (opened["status"], opened["private_key"]) == ("admission", PRIVATE.hex())
        await api.call(buyer, "post", TENDER + "/extension", 200, body={"days": 10, "answer_by": opening_in(3600)},
                       tender_id="T1")
        await api.call(tok["beta"], "post", TENDER + "/extension/answer", 200, body={"accepted": True},
                       tender_id="T1")
        await api.refused(tok["m3"], "post", TENDER + "/admissions/close", 409, "undecided_bidders", tender_id="T1")
        await api.refused(tok["m3"], "post", TENDER + "/admissions", 422, "reason_required",
                          {"bidder_id": "acme", "admitted": False}, tender_id="T1")
        await api.refused(tok["m3"], "post", TENDER + "/admissions", 404, "unknown_bidder",
                          {"bidder_id": "delta", "admitted": True}, tender_id="T1")
        for bidder in ("acme", "beta", "gamma"):
            await api.call(tok["m3"], "post", TENDER + "/admissions", 200, body={"bidder_id": bidder, "admitted": True},
                           tender_id="T1")
        # P = (1,000,000 + 850,000) / 2 = 925,000; acme (600,000) is below 832,500: flagged
        waiting = await api.call(tok["m1"], "post", TENDER + "/admissions/close", 200, tender_id="T1")
        assert (waiting["status"], waiting["lots"][0]["status"]) == ("evaluation", "justification")
        await api.refused(tok["beta"], "post", TENDER + "/justifications", 409, "not_flagged",
                          {"lot_id": "L1", "sha256": "11" * 32}, tender_id="T1")
        await api.call(tok["acme"], "post", TENDER + "/justifications", 200, body={"lot_id": "L1",
                                                                                   "sha256": "11" * 32},
                       tender_id="T1")
        decided = await api.call(tok["m2"], "post", TENDER + "/justifications/decisions", 200, body={
            "lot_id": "L1", "bidder_id": "acme", "accepted": False, "reason": "prices not justified"},
            tender_id="T1")
        # without acme: P = (1,000,000 + 975,000) / 2 = 987,500; beta is the closest below
        assert (decided["status"], decided["lots"][0]["winner"], decided["lots"][0]["amount"],
                decided["lots"][0]["reference"]) == ("decided", "beta", "950000.00", "987500.00")
        for credential in (buyer, auditor, tok["m1"], tok["beta"], tok["acme"]):
            await api.call(credential, "get", TENDER + "/results", 200, tender_id="T1")
            await api.call(credential, "get", TENDER, 200, tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/cancel", 409, "already_decided", {"reason": "late"},
                          tender_id="T1")
        await api.refused(buyer, "post", TENDER + "/auction", 422, "invalid_request", {**bridge, "tender_ref": "T2"},
                          tender_id="T1")
        assert await api.call(portal, "post", TENDER + "/auction", 201, body=bridge, tender_id="T1") == {
            "tender_id": "T1", "auction_id": "T1-E", "bidders": ["acme", "beta", "gamma"]}
        assert await api.call(buyer, "post", TENDER + "/auction", 200, body=bridge, tender_id="T1") == {
            "tender_id": "T1", "auction_id": "T1-E", "bidders": ["acme", "beta", "gamma"]}
        await api.refused(buyer, "post", TENDER + "/auction", 409, "auction_conflict", {**bridge, "title": "Other"},
                          tender_id="T1")
        auction = await api.call(portal, "get", "/auctions/{auction_id}", 200, auction_id="T1-E")
        assert auction["tender_ref"] == "T1" and auction["admitted_bidders"] == 3
        feed = await api.call(portal, "get", "/events", 200)
        assert [e["type"] for e in feed["events"] if e.get("tender_id") == "T1"] == [
            "TenderPublished", "QuestionAnswered", "DepositsClosed", "TenderOpened", "ExtensionRequested",
            "TenderLotAwarded"]
        assert next(e["type"] for e in feed["events"] if e.get("auction_id") == "T1-E") == "AuctionCreated"
        assert [(e["type"], e.get("reason")) for e in feed["events"] if e.get("tender_id") in ("T2", "T3")] == [
            ("TenderPublished", None), ("TenderPublished", None), ("TenderCancelled", "budget withdrawn"),
            ("DepositsClosed", None), ("TenderOpened", None), ("TenderLotUnsuccessful", "none_admitted")]
        key = await api.call(None, "get", "/receipts/key", 200)
        assert key["public_key"] == srv.service.receipt_key.public_key().public_bytes_raw().hex()
        (tmp_path / "key.pem").write_text(key["public_key_pem"])
        await api.http.aclose()

    # offline: each receipt against the journal; a receipt re-signed at another position fails
    for name, receipt in {**receipts, "withdrawal": withdrawal}.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(receipt))
        assert replay_main(["verify-receipt", str(tmp_path / f"{name}.json"), "--public-key",
                            str(tmp_path / "key.pem"), "--journal", str(data)]) == 0
        assert "OK: receipt and journal record verified" in capsys.readouterr().out
    service_key = load_or_create_key(data / RECEIPT_KEY_FILE)
    moved = signed.make(service_key, "deposit", "T1", "acme", [(e["part"], bytes.fromhex(e["sha256"]))
                                                               for e in receipts["acme"]["envelopes"]],
                        receipts["acme"]["time_us"], receipts["beta"]["gseq"])
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    assert replay_main(["verify-receipt", str(tmp_path / "moved.json"), "--public-key", str(tmp_path / "key.pem"),
                        "--journal", str(data)]) == 1
    assert "FAILED record_mismatch: journal record gseq" in capsys.readouterr().err
    (tmp_path / "far.json").write_text(json.dumps(signed.make(service_key, "deposit", "T1", "acme", [], 1, 10_000)))
    assert replay_main(["verify-receipt", str(tmp_path / "far.json"), "--public-key",
                                str(tmp_path / "key.pem"), "--journal", str(data)]) == 1
    assert "FAILED no_such_record" in capsys.readouterr().err

    # a restart (from a checkpoint) keeps the key and answers a retry with the same receipt
    async with served(data, checkpoint_every=1) as srv:
        assert srv.service.runtime.recovery.checkpoint
        api = Http(srv)
        token = srv.service.tokens.issue_case("T1", "beta", "bidder")[0]
        again = await api.call(token, "post", TENDER + "/deposits", 200,
                               body=sealed(view, "beta", "1.00", "beta-1"), tender_id="T1")
        assert again == receipts["beta"]
        await api.http.aclose()


def test_tender_ref_is_optional_in_an_auction_configuration() -> None:
    """Old journals hold configurations without `tender_ref`: they load, and their edge
    form (hence the state hash) is unchanged; a bridged one keeps it."""
    from auction_engine.config import AuctionConfig

    old = auction_body("A-1", seconds=60)
    config = AuctionConfig.from_dict(old, default_secret="s" * 16)
    assert config.tender_ref == "" and "tender_ref" not in config.to_dict()
    bridged = AuctionConfig.from_dict({**old, "tender_ref": "AO-1"}, default_secret="s" * 16)
    assert bridged.tender_ref == "AO-1" and AuctionConfig.from_dict(bridged.to_dict()) == bridged


def test_every_refusal_code_of_the_kind_has_a_status() -> None:
    """Every code the tender kind can refuse with (its `refuse(cmd, CODE)` calls and
    `spec_problem`'s returns, read from the source) is an error code of the RPC."""
    import ast

    import tenders
    from gateway.tender_errors import ERROR_CODES

    codes: set[str] = set()
    for module in Path(tenders.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "refuse" and len(node.args) == 2:
                codes |= {c.value for c in ast.walk(node.args[1]) if isinstance(c, ast.Constant)}
            if isinstance(node, ast.FunctionDef) and node.name == "spec_problem":
                codes |= {r.value.value for r in ast.walk(node) if isinstance(r, ast.Return)
                          and isinstance(r.value, ast.Constant) and r.value.value is not None}
    assert len(codes) >= 45 and codes <= set(ERROR_CODES), codes - set(ERROR_CODES)
