"""The tender SDK, on `RpcClient`: the buyer, a bidder and a commission member.

The cryptography happens here, on the client's side: the buyer's software makes the
tender's key pair and its k-of-n shares (tenders/sealing.py) and publishes only the public
key and the shares' digests; a bidder seals each envelope to that public key before it
leaves; a member submits only its own share. Documented in docs/tenders.md.

    async with TenderBuyer(base, portal_key) as buyer:  # a buyer key publishes too; only the portal issues tokens
        view, shares = await buyer.publish("AO-1", "ministry", opening, {"L1": "1000000.00"}, ["m1", "m2", "m3"], 2)
        tokens = await buyer.tokens("AO-1", bidders=["acme"], members=["m1", "m2"])
    async with TenderBidder(base, tokens["acme"], "AO-1", "acme") as acme:
        receipt = await acme.deposit(offer_json("MAD", {"L1": ("900000.00", [["1", "1", "900000.00"]])}), "d-1")
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from tenders import receipts
from tenders.offer import offer_json
from tenders.sealing import digest, new_key_pair, seal, share_digest, split_key

from .client import RpcClient

__all__ = ["CommissionMember", "TenderBidder", "TenderBuyer", "offer_json", "verify_receipt"]


def verify_receipt(receipt: dict[str, Any], public_key: bytes) -> dict[str, Any]:
    """The receipt's fields if the service's key (raw, 32 bytes) signed them; else
    `tenders.receipts.ReceiptError` with its code."""
    return receipts.verify(receipt, public_key)


class _Tenders:
    def __init__(self, base_url: str, credential: str, *, timeout: float = 30.0) -> None:
        self.rpc = RpcClient(base_url, credential, timeout=timeout)

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rpc.__aexit__(*exc)

    async def _post(self, tender_id: str, path: str, body: Any = None) -> Any:
        return await self.rpc.request("POST", f"/tenders/{tender_id}{path}", body)

    async def view(self, tender_id: str) -> Any:
        return await self.rpc.request("GET", f"/tenders/{tender_id}")

    async def results(self, tender_id: str) -> Any:
        return await self.rpc.request("GET", f"/tenders/{tender_id}/results")

    async def minutes(self, tender_id: str, which: str, fmt: str = "html", lang: str = "fr") -> bytes:
        """The opening's or the evaluation's minutes (`which`), as HTML or PDF bytes (buyer,
        commission, auditor); `RpcError` 409 `not_opened` / `not_evaluated` before."""
        data: bytes = await self.rpc.request("GET", f"/tenders/{tender_id}/minutes", which=which, format=fmt,
                                             lang=lang)
        return data

    async def receipt_key(self) -> bytes:
        """The service's receipt key, raw (fetch it once and keep it, to verify offline)."""
        return bytes.fromhex((await self.rpc.request("GET", "/receipts/key"))["public_key"])


class TenderBuyer(_Tenders):
    """The buyer's side, with a `portal` or `buyer` API key."""

    async def publish(self, tender_id: str, buyer_id: str, opening_at: str, lots: dict[str, str],
                      members: Sequence[str], threshold: int, **options: Any) -> tuple[Any, dict[str, bytes]]:
        """Make the key pair and the shares here, publish the public key and the shares'
        digests; return the tender and each member's share (hand each to its member only;
        the private key is forgotten when this returns). `options`: other body fields."""
        private, public = new_key_pair()
        shares = split_key(private, threshold, len(members))
        del private
        body = {"tender_id": tender_id, "buyer_id": buyer_id, "opening_at": opening_at,
                "lots": [{"lot_id": lot, "estimate": estimate} for lot, estimate in lots.items()],
                "public_key": public.hex(), "members": list(members),
                "share_digests": [share_digest(s).hex() for s in shares], "threshold": threshold, **options}
        view = await self.rpc.request("POST", "/tenders", body)
        return view, dict(zip(members, shares, strict=True))

    async def save_draft(self, tender_id: str, buyer_id: str, opening_at: str, lots: dict[str, str],
                         members: Sequence[str], threshold: int, **options: Any) -> Any:
        """Save (or replace) the tender's private draft: no key pair yet (`publish` makes it);
        `options`: other body fields, as for `publish`."""
        body = {"buyer_id": buyer_id, "opening_at": opening_at,
                "lots": [{"lot_id": lot, "estimate": estimate} for lot, estimate in lots.items()],
                "members": list(members), "threshold": threshold, **options}
        return await self.rpc.request("PUT", f"/tenders/{tender_id}/draft", body)

    async def draft(self, tender_id: str) -> Any:
        return await self.rpc.request("GET", f"/tenders/{tender_id}/draft")

    async def discard_draft(self, tender_id: str) -> Any:
        return await self.rpc.request("DELETE", f"/tenders/{tender_id}/draft")

    async def tokens(self, tender_id: str, bidders: Sequence[str] = (), members: Sequence[str] = (),
                     ttl_s: int | None = None) -> dict[str, str]:
        """Case tokens by subject (bidders and members)."""
        body: dict[str, Any] = {"bidders": list(bidders), "members": list(members)}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        answer = await self._post(tender_id, "/tokens", body)
        return {t["subject"]: t["token"] for t in answer["tokens"]}

    async def answer(self, tender_id: str, question_id: str, text: str) -> Any:
        return await self._post(tender_id, f"/questions/{question_id}/answer", {"text": text})

    async def record_rate(self, tender_id: str, currency: str, rate: str) -> Any:
        return await self._post(tender_id, "/rates", {"currency": currency, "rate": rate})

    async def request_extension(self, tender_id: str, days: int, answer_by: str) -> Any:
        return await self._post(tender_id, "/extension", {"days": days, "answer_by": answer_by})

    async def amend(self, tender_id: str, amendment_id: str, text: str = "", amended_file: bytes | None = None) -> Any:
        """Publish an amendment: a text and/or the amended file, sent as its SHA-256 only
        (the file is published by the buyer's own means). Answers the tender after it."""
        body: dict[str, Any] = {"amendment_id": amendment_id, "text": text}
        if amended_file is not None:
            body["sha256"] = digest(amended_file).hex()
        return await self._post(tender_id, "/amendments", body)

    async def cancel(self, tender_id: str, reason: str) -> Any:
        return await self._post(tender_id, "/cancel", {"reason": reason})

    async def bridge(self, tender_id: str, auction: dict[str, Any]) -> Any:
        """A reverse auction of the tender's admitted bidders (`auction`: its configuration
        without `bidders`)."""
        return await self._post(tender_id, "/auction", auction)


class TenderBidder(_Tenders):
    """One bidder of one tender, with its `bidder` case token."""

    def __init__(self, base_url: str, token: str, tender_id: str, bidder_id: str, **kw: Any) -> None:
        super().__init__(base_url, token, **kw)
        self.tender_id, self.bidder_id = tender_id, bidder_id

    async def download(self) -> Any:
        return await self._post(self.tender_id, "/downloads")

    async def deposit(self, financial: bytes, client_id: str, files: dict[str, bytes] | None = None) -> Any:
        """Seal the financial offer (and `files`: the other parts the tender asks for) to the
        tender's public key here, deposit the ciphertexts; return the signed receipt."""
        tender = await self.view(self.tender_id)
        public = bytes.fromhex(tender["public_key"])
        contents = {**(files or {}), "financial": financial}
        missing = [part for part in tender["parts"] if part not in contents]
        if missing:
            raise ValueError(f"the tender asks for these parts too: {', '.join(missing)}")
        envelopes = []
        for part in tender["parts"]:
            ciphertext = seal(public, contents[part], self.tender_id, self.bidder_id, part)
            envelopes.append({"part": part, "ciphertext": base64.b64encode(ciphertext).decode(),
                              "sha256": digest(ciphertext).hex()})
        return await self._post(self.tender_id, "/deposits", {"client_id": client_id, "envelopes": envelopes})

    async def withdraw(self, client_id: str) -> Any:
        return await self._post(self.tender_id, "/withdrawals", {"client_id": client_id})

    async def confirm(self) -> Any:
        """Keep a deposit made before an amendment (the view's `must_confirm`)."""
        return await self._post(self.tender_id, "/confirmations")

    async def ask(self, question_id: str, text: str) -> Any:
        return await self._post(self.tender_id, "/questions", {"question_id": question_id, "text": text})

    async def justify(self, lot_id: str, justification: bytes) -> Any:
        """Answer a flag with the SHA-256 of the justification file (the file stays here)."""
        return await self._post(self.tender_id, "/justifications", {"lot_id": lot_id,
                                                                     "sha256": digest(justification).hex()})

    async def answer_extension(self, accepted: bool) -> Any:
        return await self._post(self.tender_id, "/extension/answer", {"accepted": accepted})

    async def verify(self, receipt: dict[str, Any], public_key: bytes | None = None) -> dict[str, Any]:
        """Check a receipt against the service's key (fetched if not given) and this
        bidder's tender and id; `ReceiptError` if it does not hold."""
        fields = verify_receipt(receipt, public_key or await self.receipt_key())
        if (fields["tender_id"], fields["bidder_id"]) != (self.tender_id, self.bidder_id):
            raise receipts.ReceiptError("not_mine", "the receipt is for another tender or bidder")
        return fields


class CommissionMember(_Tenders):
    """One commission member of one tender, with its `commission` case token and its share."""

    def __init__(self, base_url: str, token: str, tender_id: str, member_id: str, share: bytes, **kw: Any) -> None:
        super().__init__(base_url, token, **kw)
        self.tender_id, self.member_id, self.share = tender_id, member_id, share

    async def submit_share(self) -> Any:
        return await self._post(self.tender_id, "/shares", {"share": self.share.hex()})

    async def admit(self, bidder_id: str, admitted: bool = True, reason: str = "", *, established: bool = True,
                    moroccan_share: str | None = None) -> Any:
        return await self._post(self.tender_id, "/admissions", {
            "bidder_id": bidder_id, "admitted": admitted, "reason": reason, "established": established,
            "moroccan_share": moroccan_share})

    async def close_admission(self) -> Any:
        return await self._post(self.tender_id, "/admissions/close")

    async def decide_justification(self, lot_id: str, bidder_id: str, accepted: bool, reason: str = "") -> Any:
        return await self._post(self.tender_id, "/justifications/decisions", {
            "lot_id": lot_id, "bidder_id": bidder_id, "accepted": accepted, "reason": reason})
