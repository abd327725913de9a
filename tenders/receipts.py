"""Deposit and withdrawal receipts: the fields a receipt carries, their canonical bytes,
the service's Ed25519 signature over them, and offline verification.

A receipt is a JSON object: `FIELDS` (all signed) plus `signature` (hex). The signed
bytes are ``DOMAIN || JSON(fields)``: keys sorted, no spaces, ASCII only (`canonical`).
Signing is deterministic (Ed25519), so a retried deposit gets the very same receipt.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auction_engine.timeutil import format_instant

VERSION = 1
DOMAIN = b"auction-engine/receipt/v1\n"  # the signature covers a receipt of this service, nothing else
KINDS = ("deposit", "withdrawal")
FIELDS = ("version", "kind", "tender_id", "bidder_id", "envelopes", "time_us", "time", "gseq", "key_id")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ReceiptError(ValueError):
    """A receipt that does not verify; `code` says why (stable)."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def key_id(public_key: bytes) -> str:
    """A short name of the signing key (the first 16 hex digits of its raw bytes)."""
    return public_key.hex()[:16]


def canonical(fields: dict[str, Any]) -> bytes:
    """The signed bytes of a receipt's fields."""
    return DOMAIN + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def make(key: Ed25519PrivateKey, kind: str, tender_id: str, bidder_id: str, envelopes: list[tuple[str, bytes]],
         time_us: int, gseq: int) -> dict[str, Any]:
    """A signed receipt: `envelopes` as (part, SHA-256 of the ciphertext), `gseq` the record's position."""
    public = key.public_key().public_bytes_raw()
    fields: dict[str, Any] = {
        "version": VERSION, "kind": kind, "tender_id": tender_id, "bidder_id": bidder_id,
        "envelopes": [{"part": p, "sha256": d.hex()} for p, d in sorted(envelopes)], "time_us": time_us,
        "time": format_instant(time_us), "gseq": gseq, "key_id": key_id(public)}
    return {**fields, "signature": key.sign(canonical(fields)).hex()}


def verify(receipt: object, public_key: bytes) -> dict[str, Any]:
    """The receipt's fields if `public_key` signed exactly them; else `ReceiptError`
    (`malformed_receipt`, `wrong_key`, `bad_signature`)."""
    if type(receipt) is not dict or set(receipt) != {*FIELDS, "signature"}:
        raise ReceiptError("malformed_receipt", f"a receipt has exactly the fields {', '.join(FIELDS)}, signature")
    fields = {name: receipt[name] for name in FIELDS}
    envelopes = fields["envelopes"]
    if (fields["version"] != VERSION or fields["kind"] not in KINDS or type(fields["time_us"]) is not int
            or type(fields["gseq"]) is not int or type(envelopes) is not list
            or not all(type(e) is dict and set(e) == {"part", "sha256"} and type(e["sha256"]) is str
                       and _HEX64.fullmatch(e["sha256"]) for e in envelopes)
            or type(receipt["signature"]) is not str or not re.fullmatch(r"[0-9a-f]{128}", receipt["signature"])):
        raise ReceiptError("malformed_receipt", "a field of the receipt is not of its documented form")
    if fields["key_id"] != key_id(public_key):
        raise ReceiptError("wrong_key", f"signed by key {fields['key_id']!r}, not by {key_id(public_key)!r}")
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(bytes.fromhex(receipt["signature"]), canonical(fields))
    except (InvalidSignature, ValueError):
        raise ReceiptError("bad_signature", "the signature does not match the receipt's fields") from None
    return fields
