"""What gateways and engines read from Redis Streams (cluster/wire.py): every field
checked, anything else refused with its code, never trusted."""

from __future__ import annotations

import msgpack
import pytest
from factories import START, config

from auction_engine.cluster.layout import ClusterError, Layout
from auction_engine.cluster.wire import (
    Answer,
    answer_fields,
    command_fields,
    feed_fields,
    read_answer,
    read_command,
    read_feed,
)
from auction_engine.commands import CreateAuction, PlaceBid
from auction_engine.journal.sequencer import Journaled


def as_read(fields: dict[str, bytes]) -> dict[bytes, bytes]:
    return {k.encode(): v for k, v in fields.items()}


def test_a_command_and_an_answer_round_trip() -> None:
    bid = PlaceBid(START, "A1", "L1", "bob", 90_000, "b-1")
    forwarded = read_command(as_read(command_fields(7, "g1", bid)))
    assert (forwarded.request, forwarded.gateway, forwarded.command) == (7, "g1", bid)
    journaled = Journaled()
    journaled.submit(CreateAuction(START - 1, config()))
    events = tuple(journaled.submit(bid).events)
    answer = Answer(7, "ok", "", events, True, "A1", 2, 2)
    assert read_answer(as_read(answer_fields(answer))) == answer
    refusal = Answer(8, "not_owner", "engine e1 does not own case 'A1'")
    assert read_answer(as_read(answer_fields(refusal))) == refusal


@pytest.mark.parametrize("fields", [
    {"q": b"1", "g": b"g1"},  # a field missing
    {"q": b"1", "g": b"g1", "c": b"\x90", "x": b""},  # one too many
    {"q": b"0", "g": b"g1", "c": b"\x90"},  # not a positive request id
    {"q": b"abc", "g": b"g1", "c": b"\x90"},
    {"q": b"1", "g": b"g 1", "c": b"\x90"},  # not a process id
    {"q": b"1", "g": b"g1", "c": b"\x90"},  # an empty list: no command
    {"q": b"1", "g": b"g1", "c": b"\xc1"},  # not msgpack
    {"q": b"1", "g": b"g1", "c": msgpack.packb(["PlaceBid", "late", "A1"])},  # wrong fields
    {"q": b"1", "g": b"g1", "c": msgpack.packb(["Nope", 1])},  # not a command
    {"q": b"1", "g": b"g1", "c": b"\x91" * 200_000},  # nesting far too deep
])
def test_a_malformed_command_is_refused(fields: dict[str, bytes]) -> None:
    with pytest.raises(ClusterError) as info:
        read_command(as_read(fields))
    assert info.value.code == "malformed_command"


@pytest.mark.parametrize("fields", [
    {"q": b"1", "k": b"ok"},  # m missing
    {"q": b"x", "k": b"ok", "m": b""},
    {"q": b"1", "k": b"ok", "m": b""},  # ok without its outcome
    {"q": b"1", "k": b"not owner", "m": b""},  # not a code
    {"q": b"1", "k": b"not_owner", "m": b"", "e": b"\x90"},  # an error with an outcome
    {"q": b"1", "k": b"ok", "m": b"", "e": b"\x90", "d": b"2", "s": b"A1", "a": b"1", "g": b"1"},  # d not 0/1
    {"q": b"1", "k": b"ok", "m": b"", "e": b"\x90", "d": b"0", "s": b"A1", "a": b"-1", "g": b"1"},  # a not a seq
    {"q": b"1", "k": b"ok", "m": b"", "e": b"\x90", "d": b"0", "s": b"A1", "a": b"1"},  # g missing
    {"q": b"1", "k": b"ok", "m": b"", "e": b"\x91\x92\xa3Bad\x01", "d": b"0", "s": b"A1", "a": b"1",
     "g": b"1"},  # no event
])
def test_a_malformed_answer_is_refused(fields: dict[str, bytes]) -> None:
    with pytest.raises(ClusterError) as info:
        read_answer(as_read(fields))
    assert info.value.code == "malformed_reply"


def test_feed_entries_carry_checked_frames() -> None:
    journaled = Journaled()
    frames = journaled.submit(CreateAuction(START - 1, config())).frames
    frames += journaled.submit(PlaceBid(START, "A1", "L1", "bob", 90_000, "b-1")).frames
    records, published = read_feed(as_read(feed_fields(frames, 1_700_000_000_000_000)))
    assert published == 1_700_000_000_000_000
    assert [(r.auction_id, r.aseq) for r, _ in records] == [("A1", 1), ("A1", 2), ("A1", 3)]  # (the opening tick)
    assert [frame for _, frame in records] == frames
    whole = b"".join(frames)
    flipped = whole[:-1] + bytes([whole[-1] ^ 1])
    for fields in ({"f": whole, "t": b"1", "x": b""}, {"f": whole}, {"f": whole, "t": b"-1"},
                   {"f": whole[:-3], "t": b"1"}, {"f": flipped, "t": b"1"}, {"f": b"\xff" * 12, "t": b"1"}):
        with pytest.raises(ClusterError) as info:
            read_feed(as_read(fields))
        assert info.value.code == "malformed_feed"


def test_messages_unpack_to_fields_or_nothing() -> None:
    """What is not a msgpack map of bytes to bytes unpacks to no field: its reader refuses it."""
    from auction_engine.cluster.channel import pack, unpack

    assert unpack(pack({"q": b"1", "g": b"g1"})) == {b"q": b"1", b"g": b"g1"}
    for data in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"q": 1}), msgpack.packb({1: b"x"}),
                 msgpack.packb({"q": b"1"}) + b"\x00"):
        assert unpack(data) == {}
    with pytest.raises(ClusterError):
        read_command(unpack(b"\xc1"))


def test_channels_are_named_and_never_keys_of_ours() -> None:
    layout = Layout()
    assert (layout.inbox("e1"), layout.replies("g-2"), layout.case_feed("A1"), layout.feeds) == (
        "ae:inbox:e1", "ae:replies:g-2", "ae:feed:{A1}", "ae:feed:*")
    for key in ("ae:inbox:e1", "ae:replies:g-2", "ae:feed:{A1}", "ae:feed"):  # a key by such a name is foreign
        assert layout.parse(key) is None
    with pytest.raises(ClusterError) as info:
        layout.inbox("e|1")
    assert info.value.code == "bad_process_id"
