"""Who may do what: API keys with roles for the RPC, signed access tokens for the room.

API keys are configured as SHA-256 digests and compared in constant time; a key is never
logged or kept in plain text. Room tokens are JWTs (PyJWT, HS256) scoped to one auction
and one bidder (or an observer) with an expiry; the room also refuses the token of a
bidder revoked after it was issued.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt

from .settings import ApiKey

ISSUER = "auction-engine"
AUDIENCE = "auction-room"
CASE_AUDIENCE = "auction-rpc"  # a case token is for the RPC: a room token never passes for one
ALGORITHM = "HS256"
ROOM_ROLES = ("bidder", "observer")
CASE_ROLES = ("bidder", "commission", "member")


class AuthError(Exception):
    """A refused credential: `code` is stable (see docs/api.md and docs/protocol.md),
    `status` the HTTP status the RPC answers with."""

    def __init__(self, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated RPC caller: the key's name (for logs) and its role; for a case
    token, also its `subject` (a bidder, commission member or member id) and `case_id`."""

    name: str
    role: str
    subject: str | None = None
    case_id: str | None = None


class ApiKeys:
    """The configured keys; `authenticate(header)` maps an Authorization header to a caller."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = [(bytes.fromhex(k.key_sha256), Caller(k.name, k.role)) for k in keys]

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, header: str | None) -> Caller:
        """The caller whose key is in ``Authorization: Bearer <key>``; raise `AuthError`."""
        if not header:
            raise AuthError("key_missing", "an API key is required: Authorization: Bearer <key>")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise AuthError("key_invalid", "the Authorization header must be 'Bearer <key>'")
        digest = hashlib.sha256(key.strip().encode()).digest()
        found: Caller | None = None
        for known, caller in self._keys:  # every key is compared: no early exit to time
            if hmac.compare_digest(digest, known):
                found = caller
        if found is None:
            raise AuthError("key_invalid", "unknown API key")
        return found


@dataclass(frozen=True, slots=True)
class RoomClaims:
    """A verified room token: the auction, the bidder (or observer name), the role, and
    when it was issued and expires (µs since the epoch)."""

    auction_id: str
    subject: str
    role: str
    issued_us: int
    expires_us: int


class TokenIssuer:
    """Issues and verifies room tokens with one secret."""

    def __init__(self, secret: str, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    def issue(self, auction_id: str, subject: str, role: str, ttl_s: int | None = None) -> tuple[str, int]:
        """A token for `subject` in `auction_id` as `role`; returns (token, expiry in µs)."""
        if role not in ROOM_ROLES:
            raise ValueError(f"unknown room role {role!r}")
        now_us = int(self._clock() * 1_000_000)
        expires_us = now_us + (ttl_s or self.ttl_s) * 1_000_000
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "auc": auction_id, "role": role,
            "iat": now_us // 1_000_000, "iat_us": now_us, "exp": expires_us // 1_000_000,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires_us

    def issue_case(self, case_id: str, subject: str, role: str, ttl_s: int | None = None) -> tuple[str, int]:
        """An RPC case token for `subject` in `case_id` (a tender, a collective) as `role`."""
        if role not in CASE_ROLES:
            raise ValueError(f"unknown case role {role!r}")
        now_us = int(self._clock() * 1_000_000)
        expires_us = now_us + (ttl_s or self.ttl_s) * 1_000_000
        claims = {"iss": ISSUER, "aud": CASE_AUDIENCE, "sub": subject, "case": case_id, "role": role,
                  "iat": now_us // 1_000_000, "exp": expires_us // 1_000_000, "jti": secrets.token_urlsafe(12)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), expires_us

    def verify_case(self, token: str, case_id: str) -> Caller:
        """The caller a valid, unexpired case token for `case_id` names; raise `AuthError`."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], audience=CASE_AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "aud", "iss"]}, leeway=0)
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the case token has expired") from None
        except jwt.InvalidTokenError:
            raise AuthError("token_invalid", "the case token is not valid") from None
        role, case, sub = claims.get("role"), claims.get("case"), claims.get("sub")
        if role not in CASE_ROLES or type(case) is not str or type(sub) is not str:
            raise AuthError("token_invalid", "the case token is not valid")
        if case != case_id:
            raise AuthError("token_wrong_case", "the case token is for another case", 403)
        return Caller(f"{role}:{sub}", role, sub, case)

    def verify(self, token: object, auction_id: str) -> RoomClaims:
        """The claims of a valid, unexpired token for `auction_id`; raise `AuthError`."""
        if not isinstance(token, str) or not token:
            raise AuthError("token_missing", "the hello message must carry the access token")
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                                leeway=0)
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "the access token has expired") from None
        except jwt.InvalidTokenError:
            raise AuthError("token_invalid", "the access token is not valid") from None
        role, auc, sub, iat_us = claims.get("role"), claims.get("auc"), claims.get("sub"), claims.get("iat_us")
        if role not in ROOM_ROLES or type(auc) is not str or type(sub) is not str or type(iat_us) is not int:
            raise AuthError("token_invalid", "the access token is not valid")
        if auc != auction_id:
            raise AuthError("token_wrong_auction", "the access token is for another auction", 403)
        return RoomClaims(auc, sub, role, iat_us, int(claims["exp"]) * 1_000_000)


def load_or_create_secret(path: Path) -> str:
    """The token secret kept in `path`, created (random, mode 0600) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(48)
    write_private(path, secret + "\n")
    return secret


def write_private(path: Path, text: str) -> None:
    """Write `text` to a new file readable only by its owner, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)  # a leftover keeps its old mode: O_EXCL makes a new one, 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself survives a crash only once the directory is synced
        os.fsync(directory)
    finally:
        os.close(directory)
