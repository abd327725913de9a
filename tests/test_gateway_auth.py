"""Who may do what, end to end on a real service: room tokens (missing, invalid, forged,
expired, for another auction, not admitted, revoked), the handshake rules (subprotocol,
hello in time, hello first), observers, and the RPC's API keys and roles. Every refusal
carries its documented code and changes nothing; API keys never reach the logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import msgpack
import pytest
import trio
from served import KEYS, TOKEN_SECRET, Served, auction_body, served
from trio_websocket import ConnectionRejected, open_websocket_url
from wire import JSON, MSGPACK, converse, encode, open_auction, state

from gateway.auth import ALGORITHM, AUDIENCE, ISSUER
from gateway.client import Room, RoomClosed
from gateway.logs import LOGGERS, configure_logging

# -- helpers -------------------------------------------------------------------------------


def claims(auction_id: str, subject: str, role: str = "bidder", *, issued: float | None = None,
           ttl_s: int = 3600, **overrides: Any) -> dict[str, Any]:
    """Room-token claims shaped exactly like gateway.auth.TokenIssuer.issue's."""
    now_us = int((time.time() if issued is None else issued) * 1_000_000)
    out: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "auc": auction_id, "role": role,
        "iat": now_us // 1_000_000, "iat_us": now_us, "exp": now_us // 1_000_000 + ttl_s, "jti": "t-1",
    }
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()  # a claim override that removes the claim


def mint(payload: dict[str, Any], secret: str = TOKEN_SECRET, algorithm: str = ALGORITHM) -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any]) -> str:
    """An `alg: none` token (no signature)."""
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}."


def hand_signed(header: dict[str, Any], payload: dict[str, Any], secret: str = TOKEN_SECRET,
                digest: str = "sha256") -> str:
    """A token signed with HMAC by hand, whatever its header claims."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


async def hello(srv: Served, auction_id: str, token: object, *, subprotocol: str = JSON,
                omit_token: bool = False) -> tuple[list[dict[str, Any]], tuple[int, str | None] | None]:
    message: dict[str, Any] = {"type": "hello"} if omit_token else {"type": "hello", "token": token}
    return await converse(srv.room_url(auction_id), [encode(subprotocol, message)], subprotocol=subprotocol,
                          stop=lambda m: m["type"] == "welcome")


# -- room: tokens ----------------------------------------------------------------------------


@pytest.mark.trio
async def test_room_refuses_bad_tokens_with_documented_codes(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        (good,) = await open_auction(srv, "A-1", ["acme"])
        await open_auction(srv, "A-2", ["acme"])
        before = state(srv)
        past = time.time() - 7200
        cases: list[tuple[str, object, int, str]] = [
            ("empty", "", 4401, "token_missing"),
            ("null", None, 4401, "token_missing"),
            ("number", 42, 4401, "token_missing"),
            ("list", [good], 4401, "token_missing"),
            ("map", {"token": good}, 4401, "token_missing"),
            ("garbage", "not-a-token", 4401, "token_invalid"),
            ("three dots", "a.b.c", 4401, "token_invalid"),
            ("truncated", good[:-5], 4401, "token_invalid"),
            ("tampered payload", good.split(".")[0] + "." + b64(json.dumps(claims("A-1", "acme", role="observer"))
                                                               .encode()) + "." + good.split(".")[2],
             4401, "token_invalid"),
            ("forged", mint(claims("A-1", "acme"), secret="another-secret-0123456789abcdefghijkl"),
             4401, "token_invalid"),
            ("alg none", unsigned(claims("A-1", "acme")), 4401, "token_invalid"),
            ("alg None header, HS256 signature", hand_signed({"alg": "None", "typ": "JWT"}, claims("A-1", "acme")),
             4401, "token_invalid"),
            ("HS512", hand_signed({"alg": "HS512", "typ": "JWT"}, claims("A-1", "acme"), digest="sha512"),
             4401, "token_invalid"),
            ("wrong audience", mint(claims("A-1", "acme", aud="somebody-else")), 4401, "token_invalid"),
            ("wrong issuer", mint(claims("A-1", "acme", iss="evil")), 4401, "token_invalid"),
            ("no exp", mint(claims("A-1", "acme", exp=DROP)), 4401, "token_invalid"),
            ("no sub", mint(claims("A-1", "acme", sub=DROP)), 4401, "token_invalid"),
            ("no role", mint(claims("A-1", "acme", role=DROP)), 4401, "token_invalid"),
            ("unknown role", mint(claims("A-1", "acme", role="admin")), 4401, "token_invalid"),
            ("no iat_us", mint(claims("A-1", "acme", iat_us=DROP)), 4401, "token_invalid"),
            ("auc not a string", mint(claims("A-1", "acme", auc=["A-1"])), 4401, "token_invalid"),
            ("issued in the future", mint(claims("A-1", "acme", issued=time.time() + 3600)), 4401, "token_invalid"),
            ("exp not a number", mint(claims("A-1", "acme", exp="soon")), 4401, "token_invalid"),
            ("expired", mint(claims("A-1", "acme", issued=past, ttl_s=60)), 4401, "token_expired"),
            ("expired observer", mint(claims("A-1", "obs", "observer", issued=past, ttl_s=60)), 4401,
             "token_expired"),
            ("another auction", mint(claims("A-2", "acme")), 4403, "token_wrong_auction"),
            ("another auction, observer", mint(claims("A-2", "obs", "observer")), 4403, "token_wrong_auction"),
            ("never admitted", mint(claims("A-1", "ghost")), 4403, "not_admitted"),
        ]
        for subprotocol in (JSON, MSGPACK):
            messages, close = await hello(srv, "A-1", None, subprotocol=subprotocol, omit_token=True)
            assert close == (4401, "token_missing") and messages == [], (subprotocol, messages, close)
            for name, token, code, reason in cases:
                messages, close = await hello(srv, "A-1", token, subprotocol=subprotocol)
                assert close == (code, reason), (subprotocol, name, close)
                assert messages == [], (name, messages)  # nothing before the close, no welcome
        assert state(srv) == before
        # The service is fine: the real token is welcome.
        messages, close = await hello(srv, "A-1", good)
        assert close is None and messages[-1]["type"] == "welcome" and messages[-1]["role"] == "bidder"


@pytest.mark.trio
async def test_room_unknown_auction_is_4404(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        await open_auction(srv, "A-1", ["acme"])
        for role in ("bidder", "observer"):
            messages, close = await hello(srv, "NOPE", mint(claims("NOPE", "acme", role)))
            assert close == (4404, "unknown_auction") and messages == []
        # A token for A-1 at an unknown auction's URL is a token for another auction.
        messages, close = await hello(srv, "NOPE", mint(claims("A-1", "acme")))
        assert close == (4403, "token_wrong_auction")


@pytest.mark.trio
async def test_room_refuses_a_handshake_without_a_known_subprotocol(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        await open_auction(srv, "A-1", [])
        for offered in ([], ["chat"], ["auction.v2.json"], ["AUCTION.V1.JSON"]):
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(srv.room_url("A-1"), subprotocols=offered):
                    pass
            assert refused.value.status_code == 400, offered
            assert refused.value.body is not None
            assert json.loads(refused.value.body)["error"]["code"] == "subprotocol_required"
        # One known subprotocol among unknown ones is chosen.
        async with open_websocket_url(srv.room_url("A-1"), subprotocols=["chat", MSGPACK]) as ws:
            assert ws.subprotocol == MSGPACK


@pytest.mark.trio
async def test_room_first_message_must_be_a_valid_hello(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        (token,) = await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        bid = {"type": "bid", "lot": "L1", "amount": "9000.00", "client_bid_id": "b1"}
        for subprotocol, frame in [
            (JSON, json.dumps({"type": "ping", "id": 1})),
            (JSON, json.dumps(bid)),
            (JSON, json.dumps({"type": "welcome", "token": token})),
            (JSON, json.dumps({"token": token})),
            (JSON, json.dumps([{"type": "hello", "token": token}])),
            (JSON, "hello"),
            (JSON, json.dumps({"type": "hello", "token": token}).encode()),  # binary frame on json
            (MSGPACK, msgpack.packb(bid)),
            (MSGPACK, json.dumps({"type": "hello", "token": token})),  # text frame on msgpack
            (MSGPACK, b"\xc1"),
        ]:
            messages, close = await converse(srv.room_url("A-1"), [frame], subprotocol=subprotocol)
            assert close is not None and close[0] == 4400, (frame, close)
            assert messages == []
        assert state(srv) == before  # the bid sent first was not placed


# -- room: revocation and observers -------------------------------------------------------------


@pytest.mark.trio
async def test_revocation_closes_the_connection_and_refuses_old_tokens(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        old, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        url = srv.room_url("A-1")
        async with Room.connect(url, old, record=True) as acme, Room.connect(url, beta, record=True) as other:
            assert (await acme.bid("L1", "9000.00", "a1"))["type"] == "ack"
            await rpc.revoke("A-1", "acme", "fraud")
            with trio.fail_after(5):
                closed = await acme.wait_closed()
            assert (closed.code, closed.reason) == (4403, "revoked")
            assert other.closed is None  # only the revoked bidder's connection closes
            assert (await other.ping())["type"] == "pong"
        # Revoked, not admitted: the old token is refused.
        _, close = await hello(srv, "A-1", old)
        assert close == (4403, "not_admitted"), close
        # Re-admitted: the old token is still refused, a newly issued one works.
        (fresh,) = [t["token"] for t in (await rpc.admit("A-1", ["acme"]))["tokens"]]
        before = state(srv)
        _, close = await hello(srv, "A-1", old)
        assert close == (4403, "token_revoked")
        assert state(srv) == before
        async with Room.connect(url, fresh, record=True) as acme:
            assert acme.welcome["role"] == "bidder"
            answer = await acme.bid("L1", "8990.00", "a2")
            assert answer["type"] == "ack", answer
    # After a restart, from the checkpoint the clean exit wrote or from the first record:
    # the revocation is remembered either way.
    for checkpoint_every in (1_000_000, 0):
        async with served(tmp_path, checkpoint_every=checkpoint_every) as srv:
            assert (srv.service.runtime.recovery.checkpoint is not None) == bool(checkpoint_every)
            _, close = await hello(srv, "A-1", old)
            assert close == (4403, "token_revoked")
            messages, close = await hello(srv, "A-1", fresh)
            assert close is None and messages[-1]["type"] == "welcome", (messages, close)


@pytest.mark.trio
async def test_client_reports_a_refused_hello_as_room_closed(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        await open_auction(srv, "A-1", ["acme"])
        with pytest.raises(RoomClosed) as refused:
            async with Room.connect(srv.room_url("A-1"), "not-a-token"):
                pass
        assert (refused.value.code, refused.value.reason) == (4401, "token_invalid")


@pytest.mark.trio
async def test_token_with_a_lone_surrogate_is_invalid(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        (token,) = await open_auction(srv, "A-1", ["acme"])
        for bad in ('"\\ud800"', '"' + token + '\\udfff"'):
            messages, close = await converse(srv.room_url("A-1"), ['{"type": "hello", "token": ' + bad + "}"])
            assert close == (4401, "token_invalid"), close
        messages, close = await hello(srv, "A-1", token)
        assert close is None and messages[-1]["type"] == "welcome"


# -- RPC: keys and roles ------------------------------------------------------------------------

# Every authenticated operation: (method, path, body, roles allowed). Bodies are valid
# (so that only the role decides) and aimed at auctions that exist.
OPERATIONS: list[tuple[str, str, Any, tuple[str, ...]]] = [
    ("POST", "/auctions", "NEW", ("portal",)),
    ("GET", "/auctions", None, ("portal", "buyer", "auditor")),
    ("GET", "/auctions/A-1", None, ("portal", "buyer", "auditor")),
    ("POST", "/auctions/A-1/bidders", {"bidders": ["newbie"]}, ("portal",)),
    ("POST", "/auctions/A-1/bidders/acme/revoke", {"reason": "x"}, ("portal",)),
    ("POST", "/auctions/A-1/observers", {"name": "jury"}, ("portal", "buyer")),
    ("POST", "/auctions/A-1/suspend", {"lot_id": "L1", "reason": "x"}, ("portal", "buyer")),
    ("POST", "/auctions/A-1/resume", {"lot_id": "L1"}, ("portal", "buyer")),
    ("POST", "/auctions/A-1/cancel", {"lot_id": "L2", "reason": "x"}, ("portal",)),
    ("GET", "/auctions/A-1/results", None, ("portal", "buyer", "auditor")),
    ("GET", "/auctions/A-1/journal", None, ("auditor",)),
    ("GET", "/events", None, ("portal", "buyer")),
]


def request_body(body: Any) -> Any:
    return auction_body("A-NEW", seconds=600) if body == "NEW" else body


def http(srv: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=10)


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any = None,
               headers: dict[str, str | bytes] | None = None) -> httpx.Response:
    content = None if body is None else json.dumps(request_body(body)).encode()
    return await client.request(method, path, content=content, headers=headers or {})


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]


@pytest.mark.trio
async def test_rpc_without_a_valid_key_is_401(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, http(srv) as client:
        await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        for method, path, body, _roles in OPERATIONS:
            assert_error(await call(client, method, path, body), 401, "key_missing")
            assert_error(await call(client, method, path, body, {"Authorization": ""}), 401, "key_missing")
            for header in ("Bearer wrong-key-0123456789abcdefghijkl", "Bearer " + KEYS["portal"][:-1],
                           "Bearer " + KEYS["portal"] + "x", "Basic " + KEYS["portal"], KEYS["portal"],
                           "Bearer", b"Bearer \xc3\xa9", b"Bearer \xff", "Token " + KEYS["auditor"]):
                assert_error(await call(client, method, path, body, {"Authorization": header}), 401, "key_invalid")
        assert state(srv) == before
        # The OpenAPI document is public.
        response = await call(client, "GET", "/openapi.json")
        assert response.status_code == 200 and "paths" in response.json()


@pytest.mark.trio
async def test_rpc_refuses_the_wrong_role_with_403(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, http(srv) as client:
        await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        for method, path, body, roles in OPERATIONS:
            for role in ("portal", "buyer", "auditor"):
                if role in roles:
                    continue
                response = await call(client, method, path, body, {"Authorization": f"Bearer {KEYS[role]}"})
                assert_error(response, 403, "forbidden")
                assert role in response.json()["error"]["message"]
        assert state(srv) == before
        # The allowed role gets through (checked once each, in an order where every call works).
        for method, path, body, roles in OPERATIONS:
            response = await call(client, method, path, body, {"Authorization": f"Bearer {KEYS[roles[-1]]}"})
            assert response.status_code in (200, 201), (path, roles[-1], response.text[:300])


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the gateway and hypercorn log (and anything reaching the root logger)."""
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in LOGGERS}
    out = io.StringIO()
    configure_logging("debug", out)
    root, everything = logging.getLogger(), logging.StreamHandler(out)
    root_level = root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(everything)
        root.setLevel(root_level)
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


@pytest.mark.trio
async def test_api_keys_and_secrets_never_appear_in_logs(tmp_path: Path) -> None:
    wrong = "wrong-key-should-not-be-logged-0123456789"
    with captured_logs() as out:
        async with served(tmp_path) as srv, http(srv) as client:
            tokens = await open_auction(srv, "A-1", ["acme", "beta"])  # acme is revoked below
            for method, path, body, roles in OPERATIONS:
                for role in ("portal", "buyer", "auditor"):
                    await call(client, method, path, body, {"Authorization": f"Bearer {KEYS[role]}"})
                await call(client, method, path, body, {"Authorization": f"Bearer {wrong}"})
                await call(client, method, path, body, {"Authorization": wrong})
                await call(client, method, path, {"junk": True}, {"Authorization": f"Bearer {KEYS[roles[0]]}"})
            async with Room.connect(srv.room_url("A-1"), tokens[1]) as room:
                await room.bid("L1", "9000.00", "b1")
            await hello(srv, "A-1", tokens[0] + "x")
            await hello(srv, "A-2", tokens[0])
    text = out.getvalue()
    assert "auction created" in text and "room connection opened" in text  # the capture works
    for secret in [*KEYS.values(), wrong, TOKEN_SECRET, *tokens]:
        assert secret not in text, f"a secret is logged: {secret[:12]}..."
    for key in KEYS.values():  # nor their SHA-256 digests
        assert hashlib.sha256(key.encode()).hexdigest() not in text
