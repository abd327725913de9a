"""Sealed envelopes: the tender's key pair, its k-of-n shares, sealing and opening.

Envelopes are HPKE (RFC 9180, base mode) from `cryptography`: DHKEM(X25519, HKDF-SHA256),
HKDF-SHA256, AES-256-GCM. The `info` binds an envelope to its tender, bidder and part, so
one cannot be moved to another bidder or part. The 32-byte X25519 private key is split
k-of-n with pycryptodome's Shamir (which splits 16-byte secrets): each half is split on
its own and a member's share is ``index (1 byte) || share of half 1 || share of half 2``.
`new_key_pair`, `split_key` and `seal` use randomness: the shell and the SDK call them,
never the kind. `open_envelope`, `combine_shares` and `share_digest` are deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

KEY_SIZE = 32  # raw X25519 keys, public and private
SHARE_SIZE = 1 + 16 + 16  # index, then the shares of the key's two 16-byte halves
MAX_MEMBERS = 255  # Shamir indices are one byte here
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"auction-engine/tenders/v1"


class SealingError(ValueError):
    """An envelope that does not open with this key, or a share that is not one."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh tender key pair, ``(private, public)``, 32 raw bytes each (shell side)."""
    private = X25519PrivateKey.generate()
    return _raw_private(private), public_key_of(_raw_private(private))


def public_key_of(private_key: bytes) -> bytes:
    """The raw public key of a raw private key."""
    key = X25519PrivateKey.from_private_bytes(private_key)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def info(tender_id: str, bidder_id: str, part: str) -> bytes:
    """What an envelope is bound to: its tender, bidder and part."""
    return b"\x00".join((_INFO, tender_id.encode(), bidder_id.encode(), part.encode()))


def seal(public_key: bytes, plaintext: bytes, tender_id: str, bidder_id: str, part: str) -> bytes:
    """Encrypt one envelope to the tender's public key (bidder side: random per call)."""
    recipient = X25519PublicKey.from_public_bytes(public_key)
    return _SUITE.encrypt(plaintext, recipient, info=info(tender_id, bidder_id, part))


def open_envelope(private_key: bytes, ciphertext: bytes, tender_id: str, bidder_id: str, part: str) -> bytes:
    """The plaintext of an envelope; `SealingError("undecryptable")` if it does not open."""
    try:
        key = X25519PrivateKey.from_private_bytes(private_key)
        return _SUITE.decrypt(ciphertext, key, info=info(tender_id, bidder_id, part))
    except (InvalidTag, ValueError) as exc:
        raise SealingError("undecryptable", f"the envelope does not open: {type(exc).__name__}") from None


def split_key(private_key: bytes, k: int, n: int) -> list[bytes]:
    """n shares of a 32-byte key, any k of which rebuild it; share i (1-based) is `[i-1]`."""
    if len(private_key) != KEY_SIZE or not 1 <= k <= n <= MAX_MEMBERS:
        raise ValueError(f"need a {KEY_SIZE}-byte key and 1 <= k <= n <= {MAX_MEMBERS}")
    if k == 1:  # pycryptodome needs k >= 2: with k = 1 each share is the key itself
        return [bytes([i]) + private_key for i in range(1, n + 1)]
    low = Shamir.split(k, n, private_key[:16], ssss=False)
    high = Shamir.split(k, n, private_key[16:], ssss=False)
    return [bytes([i]) + a + b for (i, a), (j, b) in zip(low, high, strict=True) if i == j]


def combine_shares(shares: Sequence[bytes]) -> bytes:
    """The key that these shares (distinct indices, at least k of them) rebuild."""
    if not shares or any(len(s) != SHARE_SIZE for s in shares) or len({s[0] for s in shares}) != len(shares):
        raise SealingError("bad_share", f"shares are {SHARE_SIZE} bytes with distinct indices")
    if len(shares) == 1:
        return shares[0][1:]
    low = Shamir.combine([(s[0], s[1:17]) for s in shares], ssss=False)
    high = Shamir.combine([(s[0], s[17:]) for s in shares], ssss=False)
    return bytes(low) + bytes(high)


def share_digest(share: bytes) -> bytes:
    """The SHA-256 of a share: published with the tender, so a wrong share is refused."""
    return hashlib.sha256(share).digest()


def digest(data: bytes) -> bytes:
    """SHA-256, the hash an envelope is deposited with."""
    return hashlib.sha256(data).digest()
