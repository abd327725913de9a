"""A sealed tender end to end on the real service, through the SDK (gateway/tender_client.py):
five bidders, a withdrawal and re-deposit, a late deposit, Q&A without the asker, fewer
than k shares then k of n, admission, evaluation and the award; secrecy before the
opening searched in every answer, log line, metric, checkpoint and journal byte; bad
input coded with the state unchanged."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from served import KEYS, Served, auction_body, served
from wire import state, until

from auction_engine.timeutil import format_instant
from gateway.client import Room, RpcClient, RpcError
from gateway.logs import LOGGERS, configure_logging
from gateway.tender_client import CommissionMember, TenderBidder, TenderBuyer, offer_json
from tenders import Tenders
from tenders.receipts import ReceiptError
from tenders.sealing import digest

TID = "AO-E2E-1"
MEMBERS = ("m1", "m2", "m3", "m4", "m5")
BIDDERS = ("acme", "bravo", "coop", "delta", "echo")
ASKER = "zed-asker"  # downloads, asks, and comes too late to deposit
AMOUNTS = {"acme": "912345.67", "bravo": "923456.78", "coop": "934567.89", "delta": "1023456.78", "echo": "956789.01"}
WITHDRAWN = "987654.32"  # bravo's first offer, withdrawn before the deadline
OPENING_IN_S = 12.0  # the deposit deadline, from publication: everything before it must fit


def offer(amount: str) -> bytes:
    return offer_json("MAD", {"L1": (amount, [("1", "1", amount)])})


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line of the service, as JSON lines (the real formatter), at debug level."""
    saved = {name: (list(lg.handlers), lg.level, lg.propagate) for name in LOGGERS
             for lg in [logging.getLogger(name)]}
    stream = io.StringIO()
    configure_logging("debug", stream)
    try:
        yield stream
    finally:
        for name, (handlers, level, propagate) in saved.items():
            lg = logging.getLogger(name)
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


def files_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def refused(call: Any, status: int, code: str, srv: Served) -> None:
    before = state(srv)
    with pytest.raises(RpcError) as exc:
        await call
    assert (exc.value.status, exc.value.code) == (status, code), exc.value
    assert state(srv) == before


@pytest.mark.trio
async def test_a_tender_from_publication_to_award(tmp_path: Path) -> None:
    with captured_logs() as logs:
        async with served(tmp_path / "data", checkpoint_every=5) as srv:
            await run_tender(srv, tmp_path / "data", logs)


async def run_tender(srv: Served, data: Path, logs: io.StringIO) -> None:
    kind = srv.service.runtime.host.kind(Tenders)
    seen: list[Any] = []  # every answer anyone but the asker received, and the asker's own
    base = srv.base
    opening = format_instant(int((time.time() + OPENING_IN_S) * 1_000_000))
    async with TenderBuyer(base, KEYS["portal"]) as buyer:
        view, shares = await buyer.publish(TID, "ministry", opening, {"L1": "1000000.00"}, MEMBERS, 3,
                                           ask_days=0, answer_days=0)
        assert (view["status"], view["threshold"], view["deposits"]) == ("published", 3, 0)
        tokens = await buyer.tokens(TID, bidders=[*BIDDERS, ASKER], members=MEMBERS)
        seen.append(view)
        bidders = {b: TenderBidder(base, tokens[b], TID, b) for b in (*BIDDERS, ASKER)}
        members = {m: CommissionMember(base, tokens[m], TID, m, shares[m]) for m in MEMBERS}
        key = await buyer.receipt_key()

        # deposits, one withdrawal and re-deposit, a retry answered with the same receipt
        receipts = {}
        for b in BIDDERS:
            seen.append(await bidders[b].download())
            first = WITHDRAWN if b == "bravo" else AMOUNTS[b]
            receipts[b] = await bidders[b].deposit(offer(first), f"{b}-d1", {"admin": b"%PDF admin " + b.encode()})
            fields = await bidders[b].verify(receipts[b], key)
            assert fields["kind"] == "deposit" and [e["part"] for e in fields["envelopes"]] == ["admin", "financial"]
        again = await bidders["acme"].deposit(offer(AMOUNTS["acme"]), "acme-d1", {"admin": b"%PDF admin acme"})
        assert again == receipts["acme"]  # the first outcome, the same receipt (Ed25519 is deterministic)
        withdrawal = await bidders["bravo"].withdraw("bravo-w1")
        assert (await bidders["bravo"].verify(withdrawal, key))["envelopes"] == []
        assert withdrawal["gseq"] > receipts["bravo"]["gseq"]
        receipts["bravo"] = await bidders["bravo"].deposit(offer(AMOUNTS["bravo"]), "bravo-d2",
                                                           {"admin": b"%PDF admin bravo"})
        forged = {**receipts["coop"], "bidder_id": "delta"}
        with pytest.raises(ReceiptError) as bad:
            await bidders["delta"].verify(forged, key)
        assert bad.value.code == "bad_signature"
        seen += [receipts, withdrawal]

        # clarifications: the asker's identity reaches no one else
        seen.append(await bidders[ASKER].download())
        asked = await bidders[ASKER].ask("q1", "Which voltage for the lamps?")
        assert asked == {"tender_id": TID, "question_id": "q1", "question": "Which voltage for the lamps?"}
        pending = await buyer.view(TID)
        assert pending["questions"] == [{"question_id": "q1", "question": "Which voltage for the lamps?",
                                         "answered": False}]
        answered = await buyer.answer(TID, "q1", "220 V")
        clarification = [{"question_id": "q1", "question": "Which voltage for the lamps?", "answer": "220 V"}]
        others = [pending, answered] + [await bidders[b].view(TID) for b in BIDDERS]
        assert all(v["clarifications"] == clarification for v in others[1:])
        async with RpcClient(base, KEYS["portal"]) as portal:
            feed = (await portal.events(case_id=TID))["events"]
            auditor_view = await RpcClient(base, KEYS["auditor"]).request("GET", f"/tenders/{TID}")
        assert [e["type"] for e in feed] == ["TenderPublished", "QuestionAnswered"]
        others += [feed, auditor_view]
        assert ASKER not in json.dumps(others), "the asker's identity reached someone else"
        seen += others

        # bad input before the deadline: coded, nothing changed
        bare = bidders[ASKER].rpc  # no standing offer: the envelopes themselves are judged
        await refused(bare.request("POST", f"/tenders/{TID}/deposits", {"client_id": "x1", "envelopes": [
            {"part": "financial", "ciphertext": "AAAA", "sha256": "00" * 32}]}), 422, "malformed_envelopes", srv)
        await refused(bare.request("POST", f"/tenders/{TID}/deposits", {"client_id": "x2", "envelopes": [
            {"part": "admin", "ciphertext": "AAAA", "sha256": "00" * 32},
            {"part": "financial", "ciphertext": "AAAA", "sha256": "00" * 32}]}), 422, "hash_mismatch", srv)
        await refused(bare.request("POST", f"/tenders/{TID}/deposits", {"client_id": "x3", "envelopes": [
            {"part": "admin", "ciphertext": "not base64!", "sha256": "00" * 32}]}), 422, "invalid_request", srv)
        await refused(bidders["coop"].deposit(offer("1.00"), "coop-d2", {"admin": b"x"}), 409, "already_deposited", srv)
        await refused(members["m1"].submit_share(), 409, "opening_not_started", srv)

        # the deadline passes (the service's timer closes the deposits); a late deposit is refused
        tender = kind.tenders[TID]
        await until(lambda: tender.status == "opening", timeout=OPENING_IN_S + 30)
        await refused(bidders[ASKER].deposit(offer("1.00"), "z-d1", {"admin": b"x"}), 409, "deposit_closed", srv)

        # secrecy: before the opening no answer, log line, metric, checkpoint or journal byte holds an amount
        async with RpcClient(base, None) as anonymous:
            metrics = (await anonymous._http.get(base + "/metrics")).text
        checkpoints = [p for p in (data / "journal").iterdir() if "checkpoint" in p.name]
        assert checkpoints, "a checkpoint was written before the opening"
        assert logs.getvalue().count('"msg": "tender deposit receipted"') == 7  # 6 deposits and a retry
        haystacks = {"answers": json.dumps(seen).encode(), "logs": logs.getvalue().encode(),
                     "metrics": metrics.encode(), "data": files_bytes(data)}
        for amount in [*AMOUNTS.values(), WITHDRAWN]:
            for needle in (amount.encode(), amount.replace(".", "").encode()):
                for where, haystack in haystacks.items():
                    assert needle not in haystack, f"{amount} found in {where} before the opening"

        # fewer than k shares: no opening; bad shares coded
        await members["m1"].submit_share()
        await members["m2"].submit_share()
        assert tender.status == "opening" and (await buyer.view(TID))["private_key"] is None
        await refused(members["m1"].submit_share(), 409, "share_already_submitted", srv)
        intruder, _ = srv.service.tokens.issue_case(TID, "intruder", "commission")
        stranger = CommissionMember(base, intruder, TID, "intruder", shares["m4"])
        await refused(stranger.submit_share(), 403, "not_a_member", srv)
        await refused(bare.request("POST", f"/tenders/{TID}/shares", {"share": shares["m4"].hex()}), 403, "forbidden",
                      srv)
        wrong = CommissionMember(base, tokens["m4"], TID, "m4", shares["m5"])
        await refused(wrong.submit_share(), 422, "bad_share", srv)
        opened = await members["m3"].submit_share()  # the k-th: the key is rebuilt, every envelope opened
        assert opened["status"] == "admission" and opened["private_key"] is not None
        assert {b["bidder_id"]: b["opened"] for b in opened["bidders"]} == {
            b: {"admin": "ok", "financial": "ok"} for b in BIDDERS}

        # admission, evaluation, award
        for b in BIDDERS:
            await members["m4"].admit(b)
        decided = await members["m5"].close_admission()
        assert decided["status"] == "decided"
        # P = (1,000,000.00 + mean of the five) / 2 = 975,061.61; the closest below: echo
        assert [(lot["status"], lot["winner"], lot["amount"], lot["reference"]) for lot in decided["lots"]] == [
            ("awarded", "echo", "956789.01", "975061.61")]
        mine = await bidders["echo"].results(TID)
        assert mine["lots"] == [{"lot_id": "L1", "status": "awarded", "reason": "", "won": True}]
        assert mine["evaluation"][0]["rank"] == 1 and mine["evaluation"][0]["reference"] == "975061.61"
        loser = await bidders["acme"].results(TID)
        assert loser["lots"][0]["won"] is False and "echo" not in json.dumps(loser)
        async with RpcClient(base, KEYS["portal"]) as portal:
            feed = (await portal.events(case_id=TID))["events"]
        assert [e["type"] for e in feed] == ["TenderPublished", "QuestionAnswered", "DepositsClosed", "TenderOpened",
                                             "TenderLotAwarded"]
        assert feed[-1]["amount"] == "956789.01" and "echo" not in json.dumps(feed)
        await refused(buyer.bridge(TID, {**auction_body("X-1", seconds=4), "bidders": ["acme"]}), 422,
                      "invalid_request", srv)
        for client in [*bidders.values(), *members.values(), stranger, wrong]:
            await client.__aexit__()

        # the bridge: a reverse auction of the tender's admitted bidders, run in the room, awarded
        config = {k: v for k, v in auction_body(f"{TID}-E", seconds=4).items() if k != "bidders"}
        bridged = await buyer.bridge(TID, config)
        in_order = ["acme", "coop", "delta", "echo", "bravo"]  # the tender's deposit order: bravo deposited again last
        assert bridged == {"tender_id": TID, "auction_id": f"{TID}-E", "bidders": in_order}
        assert await buyer.bridge(TID, config) == bridged  # idempotent
    async with RpcClient(base, KEYS["portal"]) as portal:
        auction = await portal.get_auction(f"{TID}-E")
        assert (auction["tender_ref"], [b["bidder_id"] for b in auction["bidders"]]) == (TID, in_order)
        tokens = {t["bidder_id"]: t["token"] for t in (await portal.admit(f"{TID}-E", ["acme", "coop"]))["tokens"]}
        engine = srv.service.runtime.engine
        await until(lambda: engine.observer_view(f"{TID}-E", "L1").status == "open")
        async with Room.connect(srv.room_url(f"{TID}-E"), tokens["acme"]) as acme, \
                Room.connect(srv.room_url(f"{TID}-E"), tokens["coop"]) as coop:
            assert (await acme.bid("L1", "9000.00", "acme-1"))["type"] == "ack"
            assert (await coop.bid("L1", "8500.00", "coop-1"))["type"] == "ack"
            await until(lambda: engine.observer_view(f"{TID}-E", "L1").status == "closed", timeout=30)
        results = await portal.results(f"{TID}-E")
        assert [(lot["status"], lot["winner_id"], lot["awarded_price"]) for lot in results["lots"]] == [
            ("awarded", "coop", "8500.00")]
        await buyer.__aexit__()


@pytest.mark.trio
async def test_an_amendment_moves_the_opening_and_an_unconfirmed_deposit_is_set_aside(tmp_path: Path) -> None:
    """Through the SDK: an amendment with fewer than `amendment_days` left moves the opening
    (and the validity) by exactly that much; in a tender where it moves nothing, a deposit
    made before it and not confirmed is set aside at the deadline and never opened; the
    minutes say so."""
    from auction_engine.timeutil import parse_instant
    from tenders.tender import DAY

    async with served(tmp_path / "data") as srv:
        base, kind = srv.base, srv.service.runtime.host.kind(Tenders)
        now = time.time()
        near, far = (format_instant(int((now + s) * 1_000_000)) for s in (OPENING_IN_S, 3 * 86_400))
        async with TenderBuyer(base, KEYS["portal"]) as buyer:
            late, _ = await buyer.publish("AO-AM-1", "ministry", far, {"L1": "1000000.00"}, ["m1"], 1,
                                          amendment_days=5)
            moved = await buyer.amend("AO-AM-1", "R1", "Delivery in Rabat.", b"%PDF amended file")
            (r1,) = moved["amendments"]
            opening = parse_instant(r1["time"]) + 5 * DAY  # 3 days were left: 5 are kept
            assert (moved["opening_at"], r1["opening_at"], r1["sha256"]) == (
                format_instant(opening), format_instant(opening), digest(b"%PDF amended file").hex())
            assert parse_instant(moved["validity_until"]) - parse_instant(late["validity_until"]) == \
                opening - parse_instant(far)
            assert kind.tenders["AO-AM-1"].opening_at == opening

            view, shares = await buyer.publish("AO-AM-2", "ministry", near, {"L1": "1000000.00"}, ["m1"], 1,
                                               amendment_days=0, ask_days=0, answer_days=0)
            tokens = await buyer.tokens("AO-AM-2", bidders=["acme", "bravo"], members=["m1"])
            acme = TenderBidder(base, tokens["acme"], "AO-AM-2", "acme")
            bravo = TenderBidder(base, tokens["bravo"], "AO-AM-2", "bravo")
            for bidder, amount in ((acme, "900000.00"), (bravo, "800000.00")):
                await bidder.deposit(offer(amount), f"{bidder.bidder_id}-1", {"admin": b"%PDF admin"})
            amended = await buyer.amend("AO-AM-2", "R1", "Lot 1: 40 units.")
            assert (amended["opening_at"], amended["to_confirm"]) == (view["opening_at"], ["acme", "bravo"])
            assert (await bravo.view("AO-AM-2"))["must_confirm"] is True
            assert (await acme.confirm())["must_confirm"] is False
            await refused(acme.confirm(), 409, "already_confirmed", srv)
            await refused(buyer.minutes("AO-AM-2", "opening"), 409, "not_opened", srv)

            await until(lambda: kind.tenders["AO-AM-2"].status == "opening", timeout=OPENING_IN_S + 30)
            member = CommissionMember(base, tokens["m1"], "AO-AM-2", "m1", shares["m1"])
            opened = await member.submit_share()
            assert [(b["bidder_id"], b["opened"]) for b in opened["bidders"]] == [
                ("acme", {"admin": "ok", "financial": "ok"})]
            assert [(s["bidder_id"], s["code"]) for s in opened["set_aside_offers"]] == [("bravo", "not_confirmed")]
            assert (await bravo.view("AO-AM-2"))["set_aside"] is True and "bravo" not in kind.tenders[
                "AO-AM-2"].opened
            html = (await buyer.minutes("AO-AM-2", "opening", "html", "en")).decode()
            assert "offer set aside unopened" in html and "bravo" in html
            assert (await buyer.minutes("AO-AM-2", "opening", "pdf"))[:5] == b"%PDF-"
            async with RpcClient(base, KEYS["portal"]) as portal:
                feed = (await portal.events(case_id="AO-AM-2"))["events"]
            assert [(e["type"], e.get("to_confirm"), e.get("offers")) for e in feed] == [
                ("TenderPublished", None, None), ("AmendmentPublished", 2, None), ("DepositsClosed", None, 1),
                ("TenderOpened", None, None)]
            assert "bravo" not in json.dumps(feed)
            for client in (acme, bravo, member):
                await client.__aexit__()
