"""`auction-replay verify-receipt`: check a deposit or withdrawal receipt offline.

The signature is checked against the service's published public key (PEM, or the raw key
in hex); with a journal, also that the record at the receipt's position is that act: the
same tender, bidder, instant and envelope hashes, each hash that of the journaled
ciphertext. The chain itself is `auction-replay verify`'s job.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from auction_engine.journal import JournalReader
from tenders.receipts import ReceiptError, verify

_COMMANDS = {"deposit": "DepositOffer", "withdrawal": "WithdrawOffer"}


def read_public_key(path: str | os.PathLike[str]) -> bytes:
    """The raw Ed25519 key in a PEM file or a file holding its 64 hex digits; ReceiptError
    (`bad_public_key`) otherwise."""
    data = Path(path).read_bytes().strip()
    try:
        if data.startswith(b"-----BEGIN"):
            key = load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key.public_bytes_raw()
        raw = bytes.fromhex(data.decode("ascii"))
        if len(raw) != 32:
            raise ValueError("not 32 bytes")
        return raw
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReceiptError("bad_public_key", f"{path}: not an Ed25519 public key (PEM or hex): {exc}") from None


def read_receipt(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_bytes())
    except (ValueError, UnicodeDecodeError):
        raise ReceiptError("malformed_receipt", f"{path}: not JSON") from None


def check_journal(fields: dict[str, Any], journal: str | os.PathLike[str]) -> None:
    """ReceiptError unless the journal's record at `fields["gseq"]` is the receipted act."""
    gseq = fields["gseq"]
    for record, _ in JournalReader(journal).records():
        if record.gseq != gseq:
            continue
        command = record.command
        problems = []
        if record.auction_id != fields["tender_id"] or not command or command[0] != _COMMANDS[fields["kind"]]:
            problems.append(f"the record is {command[0] if command else '?'} of case {record.auction_id!r}")
        elif command[3] != fields["bidder_id"]:
            problems.append("another bidder's")
        if record.time != fields["time_us"]:
            problems.append(f"its instant is {record.time} µs, the receipt's {fields['time_us']} µs")
        if not problems and fields["kind"] == "deposit":
            envelopes = sorted((part, digest.hex()) for part, ciphertext, digest in command[4]
                               if hashlib.sha256(ciphertext).digest() == digest)
            if envelopes != [(e["part"], e["sha256"]) for e in fields["envelopes"]]:
                problems.append("its envelopes' hashes differ from the receipt's")
        if problems:
            raise ReceiptError("record_mismatch", f"journal record gseq {gseq}: " + "; ".join(problems))
        return
    raise ReceiptError("no_such_record", f"the journal has no record at gseq {gseq}")


def verify_receipt(receipt_path: str, public_key_path: str, journal: str | None = None) -> dict[str, Any]:
    """The verified receipt's fields, or ReceiptError with its code."""
    fields = verify(read_receipt(receipt_path), read_public_key(public_key_path))
    if journal is not None:
        check_journal(fields, journal)
    return fields
