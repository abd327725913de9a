"""Bad input at the gateway's edges (DESIGN.md §4 "Bad input anywhere"), end to end on a
real service: junk frames of both subprotocols, junk hellos and tokens, deeply nested
and oversized messages, bid floods, and junk on every RPC route. Each gets a coded
answer (an `error` or `reject` with a documented code, a documented close code, or a
JSON error with a 4xx status: never a 500), the service survives (a fresh valid
connection or call still works), and junk changes no state (state hash and journal
sequence unchanged).

How Hypothesis meets the live service: starting a service per example would cost a
startup each time, and a service per test cannot live across `trio.run` calls. So each
test is one pytest-trio test that starts ONE service, then runs the Hypothesis test (a
plain @given function) in a worker thread (`trio.to_thread.run_sync`); each example calls
back into the test's trio loop with `trio.from_thread.run(...)` to talk to the service.
Examples are full Hypothesis examples (shrinking, the example database) at a few
milliseconds each.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from served import KEYS, TOKEN_SECRET, Served, auction_body, served
from wire import JSON, MSGPACK, converse, decode, encode, open_auction, quiet, state

from auction_engine.events import REJECTION_CODES
from gateway.auth import AUDIENCE, ISSUER
from gateway.protocol import ERROR_CODES

ROOM_CODES = set(ERROR_CODES) | set(REJECTION_CODES)
CLIENT_BID_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")  # docs/protocol.md: 1-64 letters, digits or . _ : @ -
# Close reasons of a refused token, by close code.
HELLO_CLOSES = {4401: {"token_invalid", "token_expired"},
                4403: {"token_wrong_auction", "not_admitted", "token_revoked"}}

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

# -- running Hypothesis against the live service ---------------------------------------------


async def hypothesis(test: Callable[[], None]) -> None:
    """Run a @given test in a worker thread; its examples use `in_loop` to reach the service."""
    await trio.to_thread.run_sync(test)


def in_loop(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """From a Hypothesis example (worker thread): run `fn(*args)` in the test's trio loop."""
    async def bounded() -> Any:
        with trio.fail_after(20):
            return await fn(*args)
    return trio.from_thread.run(bounded)


# -- helpers ------------------------------------------------------------------------------------


def hello(subprotocol: str, token: object) -> str | bytes:
    return encode(subprotocol, {"type": "hello", "token": token})


def ping(subprotocol: str, ping_id: str) -> str | bytes:
    return encode(subprotocol, {"type": "ping", "id": ping_id})


def is_pong(ping_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["type"] == "pong" and m.get("id") == ping_id


def answers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers among the messages (what the room pushes on its own left out)."""
    return [m for m in messages if m["type"] in ("error", "reject", "ack", "pong")]


async def still_serves(srv: Served, auction_id: str, token: str, lot: str, amount: str, cbid: str) -> None:
    """A fresh connection gets its welcome, and a valid bid its ack."""
    bid = json.dumps({"type": "bid", "lot": lot, "amount": amount, "client_bid_id": cbid})
    messages, close = await converse(srv.room_url(auction_id), [hello(JSON, token), bid],
                                     stop=lambda m: m["type"] in ("ack", "reject", "error"))
    assert close is None and messages[0]["type"] == "welcome", (messages, close)
    assert messages[-1]["type"] == "ack" and messages[-1]["client_bid_id"] == cbid, messages[-1]


# -- strategies -------------------------------------------------------------------------------

ints = st.integers(-(2**63), 2**64 - 1)  # what msgpack can carry
scalars = (st.none() | st.booleans() | ints | st.integers(2**62, 2**64 - 1) | st.floats() | st.text(max_size=12)
           | st.text(min_size=70, max_size=300))
json_values = st.recursive(scalars | st.integers(2**64, 2**200), lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
msgpack_values = st.recursive(scalars | st.binary(max_size=12), lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)

# Bid fields of the wrong type or form (never a well-typed bid, see well_typed_bid).
bad_lots = st.one_of(ints, st.none(), st.just(""), st.lists(st.just("L1"), max_size=2),
                     st.floats(), st.booleans(), st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
                     st.text(min_size=201, max_size=1000))  # over the room's limit
bad_amounts = st.one_of(ints, st.floats(), st.none(), st.lists(st.text(max_size=5), max_size=3),
                        st.booleans(), st.dictionaries(st.text(max_size=3), ints, max_size=2),
                        st.decimals(allow_nan=False).map(float),
                        st.text(alphabet="0123456789.", min_size=65, max_size=3000))  # a huge string
bad_client_bid_ids = st.one_of(
    ints, st.none(), st.just(""), st.floats(), st.lists(st.just("a"), max_size=2),
    st.text(alphabet="abc123", min_size=65, max_size=200),  # too long
    st.text(min_size=1, max_size=20).filter(lambda s: not CLIENT_BID_ID.fullmatch(s)),  # bad characters
)


@st.composite
def junk_bids(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> dict[str, Any]:
    """A bid map with at least one field of the wrong type or form (or missing)."""
    fields: dict[str, Any] = {"lot": "L1", "amount": "9000.00", "client_bid_id": "ok-1"}
    spoil = draw(st.sets(st.sampled_from(sorted(fields)), min_size=1))
    for name in spoil:
        if draw(st.booleans()) and draw(st.booleans()):
            del fields[name]
        else:
            fields[name] = draw({"lot": bad_lots, "amount": bad_amounts, "client_bid_id": bad_client_bid_ids}[name])
    extra = draw(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ("type", *fields)), values,
                                 max_size=2))
    return {"type": "bid", **fields, **extra}


TYPES = ["bid", "ping", "hello", "welcome", "ack", "BID", "Bid", "bid ", "", "view", "reject", "error"]


def junk_maps(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[Any, Any]]:
    """Maps that look like messages, with `values` (JSON or msgpack ones) in their fields."""
    return st.one_of(
        junk_bids(values),
        st.builds(lambda kind, rest: {**rest, "type": kind}, st.one_of(st.sampled_from(TYPES), values),
                  st.dictionaries(st.text(max_size=8), values, max_size=4)),
        st.dictionaries(st.text(max_size=8), values, max_size=4),  # usually no "type"
        st.builds(lambda i: {"type": "ping", "id": i}, values),  # ping ids of every kind
        st.builds(lambda t: {"type": "hello", "token": t}, values),  # a second hello
    )


MAX_LOT, MAX_AMOUNT = 200, 64  # the room's limits on bid.lot and bid.amount (gateway/protocol.py parse_client)


def well_typed_bid(value: object) -> bool:
    """A map that is a bid with well-typed fields (docs/protocol.md, and the room's length
    limits): not junk."""
    return (isinstance(value, dict) and value.get("type") == "bid" and type(value.get("lot")) is str
            and 0 < len(value["lot"]) <= MAX_LOT and utf8(value["lot"])
            and type(value.get("amount")) is str and len(value["amount"]) <= MAX_AMOUNT
            and type(value.get("client_bid_id")) is str and CLIENT_BID_ID.fullmatch(value["client_bid_id"]) is not None)


def utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON can carry one)
        return False
    return True


def expected_answer(subprotocol: str, frame: str | bytes) -> str | None:
    """The answer docs/protocol.md gives to a frame after the hello: "pong" or an error code;
    None for a well-typed bid (which is not junk)."""
    binary = subprotocol == MSGPACK
    if isinstance(frame, bytes) != binary:
        return "wrong_frame"
    try:
        value = (msgpack.unpackb(frame, raw=False, strict_map_key=True) if isinstance(frame, bytes)
                 else json.loads(frame))
    except Exception:
        return "malformed"
    if not isinstance(value, dict):
        return "malformed"
    kind = value.get("type")
    if kind == "bid":
        return None if well_typed_bid(value) else "invalid_field"
    if kind == "ping":
        ping_id = value.get("id")
        if ping_id is None or (type(ping_id) is str and len(ping_id) <= 64 and utf8(ping_id)) or \
                (type(ping_id) is int and -(2**63) <= ping_id < 2**63):
            return "pong"
        return "invalid_field"
    if kind == "hello":
        return "unexpected_hello"
    return "unknown_type" if isinstance(kind, str) else "malformed"


def junk_frames(subprotocol: str) -> st.SearchStrategy[str | bytes]:
    """Frames of every kind for `subprotocol`: random bytes and text of either frame kind,
    random values and junk maps encoded right, lone surrogates in JSON strings; never a
    well-typed bid."""
    if subprotocol == JSON:
        encoded = st.one_of(json_values, junk_maps(json_values)).map(lambda v: json.dumps(v))
    else:
        encoded = st.one_of(msgpack_values, junk_maps(msgpack_values)).map(lambda v: msgpack.packb(v))
    frames = st.one_of(encoded, encoded, st.binary(max_size=64), st.text(max_size=64),
                       st.sampled_from(['{"type": "bid"', "{}", "[]", "null", '"bid"', "NaN", "{'type': 'ping'}", "",
                                        b"", b"\x81\xa4type", b"\x80", b"\xc1", b"\x81\x01\xa3bid", b"\xd4\x00\x00"]))
    if subprotocol == JSON:  # strings with lone surrogates: JSON's \\uXXXX escapes can carry them
        frames = st.one_of(frames, st.builds(with_surrogate, junk_maps(json_values), st.sampled_from(SURROGATES)))
    return frames.filter(lambda f: expected_answer(subprotocol, f) is not None)


SURROGATES = ["\\ud800", "\\udfff", "x\\udc00y", "\\ud83d"]


def with_surrogate(value: dict[Any, Any], surrogate: str) -> str:
    """`value` as JSON with a lone surrogate in one of its strings (or a new "id" string)."""
    for key in ("id", "token", "lot", "amount", "type"):
        if type(value.get(key)) is str:
            value = {**value, key: value[key] + "@@"}
            break
    else:
        value = {**value, "id": "@@"}
    return json.dumps(value).replace("@@", surrogate, 1)


# -- room: junk after the hello -----------------------------------------------------------------


@pytest.mark.trio
@pytest.mark.parametrize("subprotocol", [JSON, MSGPACK])
async def test_room_answers_junk_frames_with_error_codes_and_changes_nothing(tmp_path: Path,
                                                                            subprotocol: str) -> None:
    async with served(tmp_path) as srv:
        acme, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        url = srv.room_url("A-1")
        sentinels = iter(range(1_000_000))

        async def example(frames: list[str | bytes]) -> None:
            sentinel = f"end-{next(sentinels)}"
            messages, close = await converse(url, [hello(subprotocol, acme), *frames, ping(subprotocol, sentinel)],
                                             subprotocol=subprotocol, stop=is_pong(sentinel))
            assert close is None, close  # at most 12 errors: well under the abuse limit
            assert messages[0]["type"] == "welcome"
            got = answers(messages)[:-1]
            assert [a["type"] if a["type"] == "pong" else a.get("code") for a in got] == \
                [expected_answer(subprotocol, f) for f in frames], got
            for answer in got:
                if answer["type"] == "error":
                    assert answer["code"] in ERROR_CODES and isinstance(answer["message"], str), answer
            await quiet(srv)
            assert state(srv) == before

        @FUZZ
        @given(st.lists(junk_frames(subprotocol), min_size=1, max_size=12))
        def junk_is_answered(frames: list[str | bytes]) -> None:
            in_loop(example, frames)

        await hypothesis(junk_is_answered)
        await still_serves(srv, "A-1", beta, "L1", "9000.00", "beta-1")


# -- room: junk hellos and tokens ---------------------------------------------------------------

claim_values = st.one_of(json_values, st.sampled_from(["A-1", "A-2", "acme", "ghost", "bidder", "observer",
                                                       ISSUER, AUDIENCE]), st.integers(0, 2**40))


@st.composite
def signed_tokens(draw: st.DrawFn) -> str:
    """Tokens signed with the service's secret whose claims are shuffled about: dropped,
    replaced with junk of any type, or joined by extra claims."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "acme", "auc": "A-1", "role": "bidder",
                              "iat": now, "iat_us": now * 1_000_000, "exp": now + 3600}
    for name in draw(st.sets(st.sampled_from(sorted(claims)), min_size=1)):
        if draw(st.booleans()):
            del claims[name]
        else:
            claims[name] = draw(claim_values)
    claims.update(draw(st.dictionaries(st.sampled_from(["nbf", "jti", "typ", "x"]), claim_values, max_size=2)))
    header = {"alg": "HS256", "typ": "JWT", **draw(st.sampled_from([{}, {"kid": "k1"}, {"typ": "nope"},
                                                                    {"crit": ["exp"]}, {"cty": 5}]))}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(TOKEN_SECRET.encode(), signing_input.encode(), 'sha256').digest())}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def junk_tokens(subprotocol: str) -> st.SearchStrategy[Any]:
    return st.one_of(json_values if subprotocol == JSON else msgpack_values,
                     st.text(alphabet="abcXYZ019-_.=", max_size=80),
                     st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40),
                              min_size=3, max_size=3).map(".".join),
                     st.builds(lambda h, p: f"eyJ{h}.eyJ{p}.", st.text(alphabet="abcXYZ019", max_size=20),
                               st.text(alphabet="abcXYZ019", max_size=20)))


@pytest.mark.trio
async def test_room_refuses_junk_hellos_with_close_codes_and_changes_nothing(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        (acme,) = await open_auction(srv, "A-1", ["acme"])
        await open_auction(srv, "A-2", [])
        before = state(srv)
        url = srv.room_url("A-1")

        async def example(subprotocol: str, first: str | bytes) -> None:
            messages, close = await converse(url, [first], subprotocol=subprotocol,
                                             stop=lambda m: m["type"] == "welcome")
            expected = expected_answer(subprotocol, first)  # what it would get after a hello
            if close is None:  # a token whose shuffled claims are all still valid
                assert expected == "unexpected_hello" and messages and messages[-1]["type"] == "welcome", messages
                return
            assert messages == [], messages
            code, reason = close
            if expected == "pong":
                assert close == (4400, "the first message must be hello"), close
            elif expected != "unexpected_hello":  # not a hello: 4400 "<code>: <message>"
                assert code == 4400 and reason is not None and reason.startswith(f"{expected}: "), (expected, close)
            else:  # a hello with a bad token
                token = decode(first).get("token") if isinstance(first, bytes) == (subprotocol == MSGPACK) else None
                if type(token) is not str or not token:
                    assert close == (4401, "token_missing"), close
                else:
                    assert code in (4401, 4403) and reason in HELLO_CLOSES[code], close
            await quiet(srv)
            assert state(srv) == before

        @FUZZ
        @given(st.sampled_from([JSON, MSGPACK]).flatmap(lambda sp: st.tuples(st.just(sp), st.one_of(
            junk_frames(sp),  # not a hello at all
            st.builds(lambda t: hello(sp, t), junk_tokens(sp)),  # a hello with a junk token
            st.builds(lambda t: hello(sp, t), signed_tokens()),  # a well-signed token with junk claims
        ))))
        def hellos_are_refused(case: tuple[str, str | bytes]) -> None:
            in_loop(example, *case)

        await hypothesis(hellos_are_refused)
        await still_serves(srv, "A-1", acme, "L1", "9000.00", "acme-1")


# -- room: well-typed bids with bad values --------------------------------------------------------

amounts = st.one_of(
    st.text(max_size=30), st.text(alphabet="0123456789.-+e ,_", max_size=30),
    st.from_regex(r"-?[0-9]{0,40}(\.[0-9]{0,5})?", fullmatch=True),
    st.sampled_from(["", "0", "0.00", "-1.00", "1e5", "NaN", "Infinity", "0x10", " 9000.00", "9000.00 ", "9,000.00",
                     "٩٠٠٠", "9000.001", "20000.00", "9" * 64, "9" * 5000, "1" + "0" * 30, ".5", "5.", "+5"]),
)


# What the room parses as an amount (2 decimals here, at most 10**18 - 1 minor units:
# auction_engine.money.MAX_AMOUNT); anything else goes to the core as sent, which rejects
# it `invalid_amount` once the lot is known (docs/core.md's order of checks).
DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{1,2})?")


def parses(amount: str) -> bool:
    if not DECIMAL.fullmatch(amount):
        return False
    whole, _, frac = amount.partition(".")
    return int(whole) * 100 + int(frac.ljust(2, "0")) < 10**18


@pytest.mark.trio
async def test_room_rejects_well_typed_bad_bids_with_core_codes(tmp_path: Path) -> None:
    async with served(tmp_path) as srv:
        acme, beta = await open_auction(srv, "A-1", ["acme", "beta"], lots=3)  # the fuzz leaves L3 alone
        url = srv.room_url("A-1")
        numbers = iter(range(1_000_000))

        async def example(bids: list[tuple[str, str]], subprotocol: str) -> None:
            cbids = [f"x{next(numbers)}" for _ in bids]
            frames = [encode(subprotocol, {"type": "bid", "lot": lot, "amount": amount, "client_bid_id": cbid})
                      for (lot, amount), cbid in zip(bids, cbids, strict=True)]
            messages, close = await converse(url, [hello(subprotocol, acme), *frames], subprotocol=subprotocol,
                                             stop=lambda m: m.get("client_bid_id") == cbids[-1])
            assert close is None, close
            got = answers(messages)
            assert [a["client_bid_id"] for a in got] == cbids, got
            for answer, (lot, amount) in zip(got, bids, strict=True):
                assert isinstance(answer["message"] if answer["type"] != "ack" else "", str)
                if not well_typed_bid({"type": "bid", "lot": lot, "amount": amount, "client_bid_id": "x"}):
                    assert (answer["type"], answer["code"]) == ("error", "invalid_field"), answer  # over a limit
                elif not parses(amount):
                    code = "invalid_amount" if lot in ("L1", "L2") else "unknown_lot"
                    assert (answer["type"], answer["code"], answer["lot"]) == ("reject", code, lot), answer
                elif answer["type"] == "reject":
                    assert answer["code"] in REJECTION_CODES and answer["code"] != "malformed", answer
                    assert answer["lot"] == lot
                else:
                    assert answer["type"] == "ack" and lot in ("L1", "L2") and answer["lot"] == lot, answer

        @FUZZ
        @given(st.lists(st.tuples(st.one_of(st.just("L1"), st.just("L2"),
                                            st.text(min_size=1, max_size=300).filter(lambda t: t != "L3")),
                                  amounts), min_size=1, max_size=6),
               st.sampled_from([JSON, MSGPACK]))
        def bids_are_answered(bids: list[tuple[str, str]], subprotocol: str) -> None:
            in_loop(example, bids, subprotocol)

        await hypothesis(bids_are_answered)
        await still_serves(srv, "A-1", beta, "L3", "9000.00", "beta-1")


# -- room: nesting, size and floods ---------------------------------------------------------------

DEEP = 100_000
DEEP_FRAMES = {
    JSON: ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "[" * DEEP,
           '{"type": "bid", "lot": ' + "[" * DEEP + "]" * DEEP + ', "amount": "1.00", "client_bid_id": "d1"}'],
    MSGPACK: [b"\x91" * DEEP + b"\xc0", b"\x81\xa1a" * DEEP + b"\xc0", b"\xdd\x00\x00\x00\x01" * DEEP,
              b"\x84\xa4type\xa3bid\xa3lot" + b"\x91" * DEEP + b"\xc0\xa6amount\xa41.00\xadclient_bid_id\xa2d1"],
}


@pytest.mark.trio
async def test_room_survives_deeply_nested_messages(tmp_path: Path) -> None:
    async with served(tmp_path, max_message_bytes=1 << 20) as srv:
        acme, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        url = srv.room_url("A-1")
        for subprotocol, frames in DEEP_FRAMES.items():
            for frame in frames:  # as the first message: not a valid hello
                messages, close = await converse(url, [frame], subprotocol=subprotocol)
                assert close is not None and close[0] == 4400 and close[1] is not None, close
                assert close[1].startswith("malformed"), close
            # After the hello: one `malformed` error each, and the connection goes on.
            messages, close = await converse(url, [hello(subprotocol, acme), *frames, ping(subprotocol, "end")],
                                             subprotocol=subprotocol, stop=is_pong("end"))
            assert close is None, close
            assert [a.get("code") for a in answers(messages)[:-1]] == ["malformed"] * len(frames), messages
        await quiet(srv)
        assert state(srv) == before
        await still_serves(srv, "A-1", beta, "L1", "9000.00", "beta-1")


@pytest.mark.trio
async def test_room_closes_1009_on_messages_over_the_size_limit(tmp_path: Path) -> None:
    limit = 1024
    async with served(tmp_path, max_message_bytes=limit) as srv:
        acme, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        url = srv.room_url("A-1")
        bid = {"type": "bid", "lot": "L1", "amount": "9000.00", "client_bid_id": "big"}
        for subprotocol in (JSON, MSGPACK):
            over = [encode(subprotocol, {**bid, "padding": "x" * limit}),
                    " " * (limit + 1) if subprotocol == JSON else b"\xc1" * (limit + 1),
                    encode(subprotocol, {"type": "ping", "id": "p" * (4 * limit)})]
            for frame in over:
                # Before the hello (as the hello) and after it.
                for frames in ([frame], [hello(subprotocol, acme), frame]):
                    messages, close = await converse(url, frames, subprotocol=subprotocol)
                    assert close is not None and close[0] == 1009, (subprotocol, len(frame), close)
                    assert not any(m["type"] in ("ack", "reject") for m in messages)
            # Just under the limit: an ordinary answer, and the connection goes on.
            under = encode(subprotocol, {"type": "nope", "padding": "x" * (limit - 100)})
            assert len(under) <= limit
            messages, close = await converse(url, [hello(subprotocol, acme), under, ping(subprotocol, "end")],
                                             subprotocol=subprotocol, stop=is_pong("end"))
            assert close is None and [a.get("code") for a in answers(messages)[:-1]] == ["unknown_type"]
        await quiet(srv)
        assert state(srv) == before  # the oversized bids were not placed
        await still_serves(srv, "A-1", beta, "L1", "9000.00", "beta-1")


@pytest.mark.trio
async def test_room_answers_empty_binary_frames(tmp_path: Path) -> None:
    # Quart hands the room an empty binary frame as None (not b"").
    async with served(tmp_path) as srv:
        (acme,) = await open_auction(srv, "A-1", ["acme"])
        url = srv.room_url("A-1")
        for subprotocol in (JSON, MSGPACK):
            messages, close = await converse(url, [b""], subprotocol=subprotocol)
            assert close is not None and close[0] == 4400, (subprotocol, close)
        messages, close = await converse(url, [hello(JSON, acme), b"", ping(JSON, "end")], stop=is_pong("end"))
        assert close is None and [a.get("code") for a in answers(messages)[:-1]] == ["wrong_frame"], messages
        messages, close = await converse(url, [hello(MSGPACK, acme), b"", ping(MSGPACK, "end")], subprotocol=MSGPACK,
                                         stop=is_pong("end"))
        assert close is None and [a.get("code") for a in answers(messages)[:-1]] == ["malformed"], messages


@pytest.mark.trio
async def test_room_answers_strings_with_lone_surrogates(tmp_path: Path) -> None:
    # JSON's \uXXXX escapes can carry a lone surrogate, which no UTF-8 frame (nor the
    # journal) can: it must be refused with a code, never echoed or journaled.
    async with served(tmp_path) as srv:
        acme, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)
        url = srv.room_url("A-1")
        frames = ['{"type": "ping", "id": "\\ud800"}',
                  '{"type": "bid", "lot": "\\ud800", "amount": "9000.00", "client_bid_id": "s1"}',
                  '{"type": "bid", "lot": "L1\\udfff", "amount": "x", "client_bid_id": "s2"}',
                  '{"type": "bid", "lot": "L1", "amount": "9000.00\\ud800", "client_bid_id": "s3"}',
                  '{"type": "bid\\ud800"}', '{"type": "hello", "token": "\\ud800"}']
        messages, close = await converse(url, [hello(JSON, acme), *frames, ping(JSON, "end")], stop=is_pong("end"))
        assert close is None, close
        got = answers(messages)[:-1]
        assert [(a["type"], a["code"]) for a in got] == [
            ("error", "invalid_field"), ("error", "invalid_field"), ("error", "invalid_field"),
            ("error", "invalid_field"), ("error", "unknown_type"), ("error", "unexpected_hello")], got
        assert [a.get("client_bid_id") for a in got[1:4]] == ["s1", "s2", "s3"]
        # (As the hello's token: test_gateway_auth.py.)
        await quiet(srv)
        assert state(srv) == before
        await still_serves(srv, "A-1", beta, "L1", "9000.00", "beta-1")


# -- RPC: junk on every route -------------------------------------------------------------------

# (method, path, role with the right to call it); "{a}" is the auction, "{b}" a bidder.
ROUTES = [
    ("POST", "/auctions", "portal"), ("GET", "/auctions", "buyer"), ("GET", "/auctions/{a}", "auditor"),
    ("POST", "/auctions/{a}/bidders", "portal"), ("POST", "/auctions/{a}/bidders/{b}/revoke", "portal"),
    ("POST", "/auctions/{a}/observers", "buyer"), ("POST", "/auctions/{a}/suspend", "buyer"),
    ("POST", "/auctions/{a}/resume", "portal"), ("POST", "/auctions/{a}/cancel", "portal"),
    ("GET", "/auctions/{a}/results", "buyer"), ("GET", "/auctions/{a}/journal", "auditor"),
    ("GET", "/events", "portal"), ("GET", "/openapi.json", "portal"),
]
POST_ROUTES = [path for method, path, _ in ROUTES if method == "POST"]
# Codes an RPC error may carry (docs/api.md); the core's command refusals come on top.
RPC_STATUSES = {400, 401, 403, 404, 405, 409, 413, 415, 422}

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
content_types = st.one_of(st.none(), st.sampled_from([
    "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=zz",
    "multipart/form-data", "application/json; charset=utf-16", "application/octet-stream", "application/msgpack",
    "*/*", ""]), header_text)
query_keys = st.one_of(st.sampled_from(["limit", "after", "status", "buyer_ref", "wait", "auction_id"]),
                       st.text(max_size=8))
query_values = st.one_of(st.text(max_size=12), st.integers().map(str), st.floats().map(str),
                         st.sampled_from(["", "0", "-1", "201", "1e999", "nan", "inf", "open", "A-1", "%00"]))


def is_junk_body(raw: bytes) -> bool:
    """Not JSON, not an object, or an object with the unknown field."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return True
    return not isinstance(value, dict) or "zz-unknown" in value


# Bodies that are never a valid request: not JSON, not an object, or an object with an
# unknown field (every POST route refuses unknown fields), possibly with known fields of
# any type, possibly in another encoding.
junk_objects = st.builds(
    lambda known, rest: {**known, **rest, "zz-unknown": True},
    st.dictionaries(st.sampled_from(["auction_id", "bidders", "ttl_s", "reason", "lot_id", "name", "title", "lots"]),
                    json_values, max_size=3),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3))
junk_bodies = st.one_of(
    st.binary(min_size=1, max_size=200), st.text(min_size=1, max_size=200).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    junk_objects.map(lambda v: json.dumps(v).encode()),
    st.tuples(junk_objects, st.sampled_from(["utf-16", "utf-32", "utf-8-sig"])).map(
        lambda t: json.dumps(t[0]).encode(t[1])),
    st.sampled_from([b"{", b"{}}", b"[]", b"null", b"\x00", b"\xff\xfe", b" ", b"a=1&b=2", b'{"a":1,}',
                     b"{'a': 1}", b"[" * 5000, b'{"a":' * 5000]),
).filter(is_junk_body)


# Path segments (quoted in the URL); "/" (%2F, decoded by the server) is left to
# test_rpc_paths_with_double_slashes_get_a_coded_404.
segments = st.text(min_size=1, max_size=20).filter(lambda t: "/" not in t)


@st.composite
def rpc_requests(draw: st.DrawFn) -> dict[str, Any]:
    method, template, role = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    auction = draw(st.one_of(st.just("A-1"), st.just("A-1"), segments))
    bidder = draw(st.one_of(st.just("acme"), segments))
    path = template.format(a=quote(auction, safe=""), b=quote(bidder, safe=""))
    if draw(st.integers(0, 9)) == 0:
        path += "/" + quote(draw(segments), safe="")
    headers: dict[str, str] = {"Authorization": f"Bearer {KEYS[role]}"}
    if draw(st.integers(0, 9)) == 0:
        headers["Authorization"] = draw(st.one_of(header_text, st.just(""),
                                                  header_text.map(lambda t: ("Bearer " + t).strip())))
    content_type = draw(content_types)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return {"method": method, "url": path, "headers": headers,
            "params": draw(st.dictionaries(query_keys, query_values, max_size=3)),
            "content": draw(junk_bodies) if method != "GET" or draw(st.booleans()) else None}


def assert_coded_error(response: httpx.Response) -> None:
    """A JSON error with a code and message, a documented 4xx status."""
    assert response.status_code in RPC_STATUSES, (response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    error = response.json()["error"]
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z_]+", error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error


@pytest.mark.trio
async def test_rpc_answers_junk_on_every_route_with_a_coded_4xx(tmp_path: Path) -> None:
    async with served(tmp_path, feed_wait_max_s=0) as srv, \
            httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=10) as http:
        _, beta = await open_auction(srv, "A-1", ["acme", "beta"])
        before = state(srv)

        async def example(request: dict[str, Any]) -> None:
            response = await http.request(**request)
            if response.status_code < 300:  # a GET with a junk query may well be answered; junk never posts
                assert request["method"] == "GET", (request, response.status_code, response.text[:300])
            else:
                assert_coded_error(response)
            await quiet(srv)
            assert state(srv) == before

        @FUZZ
        @given(rpc_requests())
        def junk_is_refused(request: dict[str, Any]) -> None:
            in_loop(example, request)

        await hypothesis(junk_is_refused)
        response = await http.get("/auctions/A-1", headers={"Authorization": f"Bearer {KEYS['portal']}"})
        assert response.status_code == 200 and response.json()["admitted_bidders"] == 2
        await still_serves(srv, "A-1", beta, "L1", "9000.00", "beta-1")


@pytest.mark.trio
async def test_rpc_paths_with_double_slashes_get_a_coded_404(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base, timeout=10) as http:
        await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        auth = {"Authorization": f"Bearer {KEYS['portal']}"}
        for method, path in [("GET", "/api/v1//auctions"), ("POST", "/api/v1//auctions"),
                             ("GET", "/api/v1/auctions/%2F/results"), ("GET", "/api/v1/auctions/A-1//results"),
                             ("POST", "/api/v1/auctions/A-1//suspend")]:
            response = await http.request(method, path, headers=auth, content=b"{}")
            assert_coded_error(response)
            assert response.status_code in (404, 405), (method, path, response.status_code)
        assert state(srv) == before


async def raw_request(port: int, head: str, body_chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
    """Send an HTTP/1.1 request by hand (chunked bodies included); the status and JSON body."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    received = bytearray()

    def complete() -> bool:
        head, blank, body = bytes(received).partition(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head.lower())
        return bool(blank) and length is not None and len(body) >= int(length.group(1))

    async def read() -> None:
        while not complete():
            data = await stream.receive_some(65536)
            if not data:
                return
            received.extend(data)

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(read)
        try:
            await stream.send_all(head.encode())
            for chunk in body_chunks:
                await stream.send_all(chunk)
        except trio.BrokenResourceError:
            pass  # the server answered and closed early
    head_bytes, _, body = bytes(received).partition(b"\r\n\r\n")
    return int(head_bytes.split(b" ")[1]), json.loads(body)


@pytest.mark.trio
async def test_rpc_refuses_bodies_over_1_mib_with_413(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=30) as http:
        await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        big = json.dumps({"reason": "x" * (1 << 20)}).encode()
        for template in POST_ROUTES:
            path = template.format(a="A-1", b="acme")
            for content_type in ("application/json", "text/plain"):
                response = await http.post(path, content=big, headers={
                    "Authorization": f"Bearer {KEYS['portal']}", "Content-Type": content_type})
                assert_coded_error(response)
                assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
        # Chunked, so the size is only known as it arrives (a body that would suspend every lot).
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        for path in ("/api/v1/auctions/A-1/suspend", "/api/v1/auctions"):
            status, body = await raw_request(srv.port, f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                             f"{KEYS['portal']}\r\nTransfer-Encoding: chunked\r\n\r\n",
                                             [b"%x\r\n{}\r\n" % 2] + [chunk] * 24 + [b"0\r\n\r\n"])
            assert (status, body["error"]["code"]) == (413, "body_too_large"), (path, status, body)
        await quiet(srv)
        assert state(srv) == before
        response = await http.get("/auctions/A-1", headers={"Authorization": f"Bearer {KEYS['buyer']}"})
        assert response.status_code == 200 and response.json()["status"] == "open"


@pytest.mark.trio
async def test_rpc_refuses_strings_with_lone_surrogates(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base + "/api/v1", timeout=10) as http:
        await open_auction(srv, "A-1", ["acme"])
        before = state(srv)
        auth = {"Authorization": f"Bearer {KEYS['portal']}"}
        new = json.dumps(auction_body("A-2", seconds=600, buyer_ref="REF")).replace('"REF"', '"\\ud800"')
        statuses = []
        for path, body in [("/auctions/A-1/bidders/acme/revoke", '{"reason": "\\ud800"}'),
                           ("/auctions/A-1/suspend", '{"reason": "\\udfff"}'),
                           ("/auctions/A-1/cancel", '{"lot_id": "\\ud800"}'),
                           ("/auctions", new)]:
            response = await http.post(path, content=body.encode(), headers=auth)
            statuses.append((path, response.status_code))
            if response.status_code >= 400:
                assert_coded_error(response)
        assert all(status == 422 for _, status in statuses), statuses
        await quiet(srv)
        assert state(srv) == before
