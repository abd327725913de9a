"""The service's receipt signing key, and where each deposit or withdrawal was journaled.

`load_or_create_key(path)` keeps the Ed25519 key in a PEM file (PKCS#8, mode 0600,
written durably on first start, like the token secret). `ReceiptIndex` maps each
deposit's or withdrawal's retry key (tender, bidder, client id) to its journal position,
so a retry is answered with the very receipt of the first call; it is rebuilt from the
journal at start and kept in checkpoints (a part), as the feed is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from .auth import write_private

RECEIPT_KEY_FILE = "receipt-key.pem"


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 key in `path`, created (random, mode 0600, fsynced) on first use.
    ValueError if the file holds something else."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        write_private(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode())
        return key
    loaded = load_pem_private_key(data, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return loaded


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public key as PEM (SubjectPublicKeyInfo), as published at /api/v1/receipts/key."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


class ReceiptIndex:
    """(tender, bidder, client id) -> gseq of the deposit or withdrawal that carried it."""

    name = "tender-receipts"

    def __init__(self) -> None:
        self.gseq: dict[tuple[str, str, str], int] = {}

    def note(self, command: tuple[Any, ...], gseq: int) -> None:
        """Index a journaled command (encoded, as a record holds it) if it takes a receipt."""
        if command and (command[0], len(command)) in (("DepositOffer", 6), ("WithdrawOffer", 5)):
            tender, bidder, client = command[2], command[3], command[-1]
            if type(tender) is str and type(bidder) is str and type(client) is str and client:
                self.gseq[tender, bidder, client] = gseq

    def dump(self) -> object:
        return [[t, b, c, g] for (t, b, c), g in self.gseq.items()]

    def load(self, data: object | None) -> None:
        if data is not None and type(data) is not list:
            raise ValueError("checkpointed receipts are a list")
        self.gseq.clear()
        for entry in data or ():
            if type(entry) not in (list, tuple) or len(entry) != 4:
                raise ValueError("a checkpointed receipt is [tender, bidder, client id, gseq]")
            tender, bidder, client, gseq = entry
            self.gseq[tender, bidder, client] = gseq
