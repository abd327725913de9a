"""The room's typed messages: server messages encode to the wire bytes the room sent as
maps (field order, fields left out, UTF-8 as is), and a client frame the types decode
directly reads the same as on the checked path."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import messages as m
from gateway import protocol as p

CODECS = [p.Codec(name) for name in sorted(p.SUBPROTOCOLS)]
T = "2026-03-01T10:00:00.000000Z"
LADDER = [{"rank": 1, "pseudonym": "B-7K2Q", "price": "990.00", "own": False},
          {"rank": 2, "pseudonym": "B-é€😀", "price": "995.00", "own": True}]

# Each typed message and the map the room sent before it was typed, in its key order.
GOLDEN: list[tuple[m.ServerMessage, dict[str, Any]]] = [
    (p.error("malformed", "not a valid auction.v1.json message: JSONDecodeError"),
     {"type": "error", "code": "malformed", "message": "not a valid auction.v1.json message: JSONDecodeError"}),
    (p.error("invalid_field", "bid.lot must be the lot's id (a string)", "c-1"),
     {"type": "error", "code": "invalid_field", "message": "bid.lot must be the lot's id (a string)",
      "client_bid_id": "c-1"}),
    (p.reject(None, "", "rate_limited", "at most 20 bids per second"),
     {"type": "reject", "client_bid_id": None, "lot": "", "code": "rate_limited",
      "message": "at most 20 bids per second"}),
    (m.Reject(client_bid_id="c", lot="L1", code="insufficient_step", message="x", duplicate=True),
     {"type": "reject", "client_bid_id": "c", "lot": "L1", "code": "insufficient_step", "message": "x",
      "duplicate": True}),
    (p.pong(None, 1_772_359_200_000_000), {"type": "pong", "id": None, "server_time": T}),
    (p.pong(-(2**63), 1_772_359_200_000_000), {"type": "pong", "id": -(2**63), "server_time": T}),
    (m.Ack(client_bid_id="c", lot="L1", amount="990.00", time=T, rank=1, duplicate=False, best_price="990.00"),
     {"type": "ack", "client_bid_id": "c", "lot": "L1", "amount": "990.00", "time": T, "rank": 1,
      "duplicate": False, "best_price": "990.00"}),
    (m.Ack(client_bid_id="c", lot="L1", amount="990.00", time=T, rank=2, duplicate=True),
     {"type": "ack", "client_bid_id": "c", "lot": "L1", "amount": "990.00", "time": T, "rank": 2,
      "duplicate": True}),
    (m.Clock(lot="L1", status="open", close_at=T, extensions=3, server_time=T),
     {"type": "clock", "lot": "L1", "status": "open", "close_at": T, "extensions": 3, "server_time": T}),
    (m.Suspended(lot="L1", reason="incident «réseau»", server_time=T),
     {"type": "suspended", "lot": "L1", "reason": "incident «réseau»", "server_time": T}),
    (m.Resumed(lot="L1", close_at=T, server_time=T), {"type": "resumed", "lot": "L1", "close_at": T, "server_time": T}),
    (m.Closed(lot="L1", close_reason="time", server_time=T, outcome="awarded", winner="B-1", awarded_price="9.00"),
     {"type": "closed", "lot": "L1", "close_reason": "time", "server_time": T, "outcome": "awarded",
      "winner": "B-1", "awarded_price": "9.00"}),
    (m.Closed(lot="L1", close_reason=None, server_time=T, outcome="unsuccessful", rank=None, own_price=None,
              unsuccessful_reason="no_bids"),
     {"type": "closed", "lot": "L1", "close_reason": None, "server_time": T, "outcome": "unsuccessful",
      "rank": None, "own_price": None, "unsuccessful_reason": "no_bids"}),
    (m.Welcome(connection_id="c1", role="bidder", auction_id="A-1", title="Fournitures é", currency="MAD",
               decimals=2, visibility="ladder", pseudonym=None, start=T, end=T, stagger="0s", server_time=T,
               lots=[m.WelcomeLot(lot_id="L1", title="Lot", starting_price="1.00", rules={"min_step": "1.00"},
                                  extension={"window": "2s"}, estimate="2.00", reserve_price=None)]),
     {"type": "welcome", "connection_id": "c1", "role": "bidder", "auction_id": "A-1", "title": "Fournitures é",
      "currency": "MAD", "decimals": 2, "visibility": "ladder", "pseudonym": None, "start": T, "end": T,
      "stagger": "0s", "lots": [{"lot_id": "L1", "title": "Lot", "starting_price": "1.00",
                                 "rules": {"min_step": "1.00"}, "extension": {"window": "2s"}, "estimate": "2.00",
                                 "reserve_price": None}], "server_time": T}),
    (m.BidderView(lot="L1", status="open", close_at=T, extensions=0, own_price="995.00", rank=2, active_bidders=2,
                  best_price="990.00", gap="5.00",
                  ladder=[m.LadderLine(**line) for line in LADDER]),
     {"type": "view", "lot": "L1", "status": "open", "close_at": T, "extensions": 0, "own_price": "995.00",
      "rank": 2, "active_bidders": 2, "best_price": "990.00", "gap": "5.00", "ladder": LADDER}),
    (m.BidderView(lot="L1", status="open", close_at=T, extensions=0, own_price=None, rank=None, active_bidders=0),
     {"type": "view", "lot": "L1", "status": "open", "close_at": T, "extensions": 0, "own_price": None,
      "rank": None, "active_bidders": 0}),
    (m.ObserverView(lot="L1", status="closed", close_at=T, extensions=1, active_bidders=2, bids=5, rejected_bids=1,
                    best_price="990.00", ladder=[m.LadderLine(rank=1, pseudonym="B-1", price="990.00")]),
     {"type": "view", "lot": "L1", "status": "closed", "close_at": T, "extensions": 1, "active_bidders": 2,
      "bids": 5, "rejected_bids": 1, "best_price": "990.00",
      "ladder": [{"rank": 1, "pseudonym": "B-1", "price": "990.00"}]}),
]


@pytest.mark.parametrize(("message", "sent"), GOLDEN)
def test_server_messages_encode_to_the_bytes_of_their_maps(message: m.ServerMessage, sent: dict[str, Any]) -> None:
    json_codec, msgpack_codec = p.Codec("auction.v1.json"), p.Codec("auction.v1.msgpack")
    assert json_codec.encode(message) == json.dumps(sent, ensure_ascii=False, separators=(",", ":"))
    assert msgpack_codec.encode(message) == msgpack.packb(sent)


def outcome(codec: p.Codec, frame: str | bytes) -> object:
    try:
        return codec.read(frame)
    except p.ProtocolError as exc:
        return (exc.code, exc.message, exc.client_bid_id)


def checked(codec: p.Codec, frame: str | bytes) -> object:
    try:
        return p.parse_client(codec.decode(frame))
    except p.ProtocolError as exc:
        return (exc.code, exc.message, exc.client_bid_id)


texts = st.one_of(st.sampled_from(["L1", "c-1", "1234.50", "", "a b", "x" * 64, "x" * 65, "x" * 201]), st.text())
ints = st.integers(-(2**63), 2**64 - 1)  # what MessagePack can carry
values = st.one_of(texts, st.none(), st.booleans(), ints, st.floats(allow_nan=False),
                   st.lists(ints, max_size=2), st.dictionaries(st.text(max_size=2), ints, max_size=2))
maps = st.fixed_dictionaries(
    {"type": st.sampled_from(["bid", "ping", "hello", "nope"])},
    optional={"client_bid_id": values, "lot": values, "amount": values, "id": values, "token": values,
              "extra": values})


@settings(max_examples=400, deadline=None)
@given(value=maps, integer=ints)
def test_the_typed_path_reads_as_the_checked_path(value: dict[str, Any], integer: int) -> None:
    if value.get("id") == 0:
        value["id"] = integer  # ping ids around the int64 bounds
    for codec in CODECS:
        frame = msgpack.packb(value) if codec.binary else json.dumps(value, ensure_ascii=False)
        assert outcome(codec, frame) == checked(codec, frame)


def test_client_messages_are_typed() -> None:
    codec = p.Codec("auction.v1.json")
    assert codec.read('{"type":"bid","client_bid_id":"c-1","lot":"L1","amount":"12,5"}') == \
        m.Bid(client_bid_id="c-1", lot="L1", amount="12,5")  # the core decides about the amount
    assert codec.read('{"type":"ping","id":7,"extra":[1]}') == m.Ping(id=7)  # unknown fields ignored
    assert codec.read('{"type":"hello","token":5}') == m.Hello(token=None)  # no token: token_missing
    assert codec.read('{"type":"hello","token":"\\ud800"}') == m.Hello(token="invalid")
    assert outcome(codec, '{"type":"ping","id":9223372036854775808}') == \
        ("invalid_field", "ping.id is out of range", None)
    assert outcome(codec, '{"type":"bid","client_bid_id":"c","lot":"\\udfff","amount":"1"}') == \
        ("invalid_field", "bid.lot must be the lot's id (a string)", "c")
    assert outcome(codec, b"{}") == ("wrong_frame", "a binary frame on auction.v1.json", None)
