"""The auction room's wire protocol, sans-IO: codecs, client messages, server messages.

Two subprotocols carry the same messages: `auction.v1.json` (text frames) and
`auction.v1.msgpack` (binary frames). The messages are the typed models of messages.py;
`Codec.read` decodes a client frame straight into one (msgspec), and any frame the types
refuse is read again on the checked path for its exact error. docs/protocol.md has them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, get_args

import msgpack
import msgspec

from auction_engine.money import format_amount
from auction_engine.ranking import BidderView, LotSnapshot, ObserverView, shown
from auction_engine.timeutil import format_instant

from . import messages as m
from .messages import MAX_PING_ID, Bid, ClientMessage, Hello, Ping, ServerMessage

SUBPROTOCOLS = ("auction.v1.json", "auction.v1.msgpack")
CLIENT_BID_ID = re.compile(m.CLIENT_BID_ID_PATTERN)
__all__ = ["MAX_PING_ID", "Bid", "ClientMessage", "Hello", "Ping", "ServerMessage"]

# Close codes (RFC 6455 4000-4999 are the application's): docs/protocol.md.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # the service is shutting down
CLOSE_TOO_BIG = 1009  # a message over the size limit (sent by the server stack)
CLOSE_INTERNAL = 1011  # an unexpected error serving this connection (logged)
CLOSE_BAD_HELLO = 4400  # the first message was not a valid hello
CLOSE_UNAUTHORIZED = 4401  # token missing, invalid or expired
CLOSE_FORBIDDEN = 4403  # token for another auction, bidder not admitted or revoked
CLOSE_NOT_FOUND = 4404  # no such auction
CLOSE_HANDSHAKE_TIMEOUT = 4408  # no hello in time
CLOSE_TOO_SLOW = 4410  # the connection fell too far behind its messages
CLOSE_ABUSE = 4429  # too many errors or bids over the rate limit
CLOSE_OVERLOADED = 4503  # the service holds its maximum number of connections

# Error codes of `error` and `reject` messages that the room itself gives (the core's
# rejection codes come on top: auction_engine.events.REJECTION_CODES).
ERROR_CODES: dict[str, str] = {
    "malformed": "the frame is not a valid message of the negotiated subprotocol",
    "wrong_frame": "a text frame on auction.v1.msgpack or a binary frame on auction.v1.json",
    "unknown_type": "the message type is not one the room knows",
    "invalid_field": "a field is missing or has the wrong type or form",
    "unexpected_hello": "hello was already received",
    "observer_cannot_bid": "observers watch the room; they cannot bid",
    "rate_limited": "bids come faster than the connection's bid rate",
    "journal_unavailable": "the service cannot journal bids now; nothing was placed",
    "internal": "the service failed to answer a message (a bug, logged); retry the bid with the same id",
}


class ProtocolError(Exception):
    """A client message the room cannot take: `code` is one of ERROR_CODES;
    `client_bid_id` is the bid's, when the message was a bid that named a valid one."""

    def __init__(self, code: str, message: str, client_bid_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_bid_id = client_bid_id


class Codec:
    """Encodes server messages and decodes client frames for one subprotocol."""

    def __init__(self, subprotocol: str) -> None:
        if subprotocol not in SUBPROTOCOLS:
            raise ValueError(f"unknown subprotocol {subprotocol!r}")
        self.subprotocol = subprotocol
        self.binary = subprotocol.endswith("msgpack")
        self._encode: Callable[[ServerMessage], bytes]
        self._decode: Callable[[Any], ClientMessage]  # a str for JSON, bytes for MessagePack
        if self.binary:
            self._encode, self._decode = msgspec.msgpack.Encoder().encode, msgspec.msgpack.Decoder(ClientMessage).decode
        else:
            self._encode, self._decode = msgspec.json.Encoder().encode, msgspec.json.Decoder(ClientMessage).decode

    def encode(self, message: ServerMessage) -> str | bytes:
        """A text frame for JSON (UTF-8 as sent, docs/protocol.md), else a binary one.
        (No text a client can make the room echo holds a lone surrogate: `read` refuses
        them, and the journal holds none.)"""
        data = self._encode(message)
        return data if self.binary else data.decode()

    def read(self, frame: str | bytes | None) -> ClientMessage:
        """One client frame to a typed message; raise `ProtocolError`. A frame that does
        not decode as one of the types (unknown fields, a wrong value, a lone surrogate, not
        a message) is read again as a map and checked field by field, for its exact error."""
        if frame is None or isinstance(frame, str) == self.binary:
            return parse_client(self.decode(frame))  # wrong_frame, or an empty binary frame
        try:
            return self._decode(frame)
        except (msgspec.MsgspecError, RecursionError, ValueError):  # RecursionError: nested too deeply
            return parse_client(self.decode(frame))

    def decode(self, frame: str | bytes | None) -> dict[str, Any]:
        """One frame to a map; raise `ProtocolError`. (The server stack hands an empty
        binary frame over as None.)"""
        if frame is None:
            frame = b""
        if isinstance(frame, str) == self.binary:
            kind = "text" if isinstance(frame, str) else "binary"
            raise ProtocolError("wrong_frame", f"a {kind} frame on {self.subprotocol}")
        try:
            if self.binary:
                value = msgpack.unpackb(frame, raw=False, strict_map_key=True)
            else:
                value = json.loads(frame)
        except (ValueError, TypeError, RecursionError, msgpack.ExtraData, msgpack.FormatError,
                msgpack.StackError) as exc:
            raise ProtocolError("malformed", f"not a valid {self.subprotocol} message: {type(exc).__name__}") from None
        if not isinstance(value, dict):
            raise ProtocolError("malformed", "a message must be a map with a 'type'")
        return value


_Checks = list[tuple[msgspec.structs.FieldInfo, type[msgspec.Struct]]]


def _one_field_types(cls: type[Bid] | type[Ping]) -> _Checks:
    """Each field of `cls`, in order, with a Struct holding it alone (msgspec caches a
    Struct's validator: converting to it is fast)."""
    return [(f, msgspec.defstruct(f"{cls.__name__}_{f.name}", [(f.name, f.type, f.default)]
                                  if not f.required else [(f.name, f.type)]))
            for f in msgspec.structs.fields(cls)]


_KINDS: dict[str, tuple[type[Bid] | type[Ping], _Checks]] = {
    "bid": (Bid, _one_field_types(Bid)), "ping": (Ping, _one_field_types(Ping))}


def parse_client(message: dict[str, Any]) -> ClientMessage:
    """A decoded map to a client message, checked against its type field by field in
    declared order (a bid's errors carry its client_bid_id once that is valid); unknown
    extra fields are ignored."""
    kind = message.get("type")
    if type(kind) is not str:
        raise ProtocolError("malformed", "a message must be a map with a string 'type'")
    if kind == "hello":
        token = message.get("token")
        if type(token) is not str:
            return Hello(None)  # no token (the room says token_missing)
        return Hello(token if _utf8(token) else "invalid")  # a lone surrogate
    if kind not in _KINDS:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}")
    cls, fields = _KINDS[kind]
    values: dict[str, Any] = {}
    for field, alone in fields:
        given = {field.name: message[field.name]} if field.name in message else {}
        try:
            value = getattr(msgspec.convert(given, alone), field.name)
        except msgspec.ValidationError:
            value = None
            valid = False
        else:
            valid = type(value) is not str or _utf8(value)
        if not valid:
            raise ProtocolError("invalid_field", _rule(field.type, given.get(field.name)), values.get("client_bid_id"))
        values[field.name] = value
    return cls(**values)


def _rule(hint: Any, raw: object) -> str:
    """The description of the union member of `raw`'s own type if it has one, else the field's."""
    for member in get_args(get_args(hint)[0]):  # hint: Annotated[T, Meta(description=...)]
        if get_args(member) and get_args(member)[0] is type(raw) and _description(member):
            return _description(member)
    return _description(hint)


def _description(annotated: Any) -> str:
    return next((meta.description for meta in annotated.__metadata__ if meta.description), "")


def _utf8(text: str) -> bool:
    """False for strings with lone surrogates (JSON can carry them; nothing else can)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# -- server messages -------------------------------------------------------------------


def error(code: str, message: str, client_bid_id: str | None = None) -> m.Error:
    return m.Error(code=code, message=message, client_bid_id=msgspec.UNSET if client_bid_id is None else client_bid_id)


def reject(client_bid_id: str | None, lot: str, code: str, message: str) -> m.Reject:
    return m.Reject(client_bid_id=client_bid_id, lot=lot, code=code, message=message)


def pong(ping_id: str | int | None, now: int) -> m.Pong:
    return m.Pong(id=ping_id, server_time=format_instant(now))


def money(value: int | None, decimals: int) -> str | None:
    return None if value is None else format_amount(value, decimals)


def bidder_view_message(view: BidderView, decimals: int) -> m.BidderView:
    """A bidder's view of one lot, with exactly the fields its visibility mode allows."""
    out = m.BidderView(lot=view.lot_id, status=view.status, close_at=format_instant(view.close_at),
                       extensions=view.extensions, own_price=money(view.own_price, decimals), rank=view.rank,
                       active_bidders=view.active_bidders)
    if shown(view.visibility, "bidder").best_price:
        out.best_price = money(view.best_price, decimals)
        out.gap = money(view.gap, decimals)
    if view.ladder is not None:
        out.ladder = [m.LadderLine(rank=line.rank, pseudonym=line.pseudonym, price=format_amount(line.price, decimals),
                                   own=line.own) for line in view.ladder]
    return out


def observer_view_message(view: ObserverView, decimals: int) -> m.ObserverView:
    """The anonymised view of one lot for observers."""
    return m.ObserverView(
        lot=view.lot_id, status=view.status, close_at=format_instant(view.close_at), extensions=view.extensions,
        active_bidders=view.active_bidders, bids=view.bids, rejected_bids=view.rejected_bids,
        best_price=money(view.ladder[0].price, decimals) if view.ladder else None,
        ladder=[m.LadderLine(rank=line.rank, pseudonym=line.pseudonym, price=format_amount(line.price, decimals))
                for line in view.ladder])


class ViewRenderer:
    """Every room message one lot snapshot gives, each computed and encoded once.

    A bidder's view depends on the snapshot and on the bidder's rank only (never on who
    it is), so the encoded payload is cached per (rank, codec) (in ladder mode, only the
    unranked one: each ranked payload holds the whole ladder); the fields every viewer
    shares are formatted once. Equal, byte for byte, to encoding
    `bidder_view_message(snapshot_bidder_view(snapshot, name), decimals)` (or
    `observer_view_message`): tests/test_view_render.py checks it.
    """

    __slots__ = ("snapshot", "decimals", "sees", "_head", "_prices", "_payloads", "_json_head")

    def __init__(self, snapshot: LotSnapshot, decimals: int) -> None:
        self.snapshot = snapshot
        self.decimals = decimals
        self.sees = shown(snapshot.visibility, "bidder")  # what a bidder may see of it
        obs = snapshot.observer
        self._head = (obs.lot_id, obs.status, format_instant(obs.close_at), obs.extensions)
        self._prices: list[str] | None = None  # the ladder's prices, formatted, once needed
        self._payloads: dict[tuple[int | None, bool], str | bytes] = {}  # rank 0: the observers'
        self._json_head: str | None = None  # the JSON text of the shared fields, without a closing brace

    def lot_id(self) -> str:
        return self.snapshot.observer.lot_id

    def prices(self) -> list[str]:
        if self._prices is None:
            decimals = self.decimals
            self._prices = [format_amount(line.price, decimals) for line in self.snapshot.observer.ladder]
        return self._prices

    def bidder(self, pseudonym: str, codec: Codec) -> str | bytes:
        rank = self.snapshot.ranks.get(pseudonym)
        key = (rank, codec.binary)
        payload = self._payloads.get(key)
        if payload is None:
            ladder = self.sees.ladder
            if codec.binary or ladder:
                payload = codec.encode(self._bidder_message(rank))
            else:
                payload = self._bidder_json(rank)
            if not ladder or rank is None:  # a ladder view per rank would make the cache bidders²
                self._payloads[key] = payload
        return payload

    def _bidder_json(self, rank: int | None) -> str:
        """`Codec.encode(self._bidder_message(rank))` for JSON without a ladder, spelt out:
        the shared head is encoded once; money strings are digits, '-' and '.' only."""
        head = self._json_head
        if head is None:
            lot, status, close_at, extensions = self._head
            head = self._json_head = msgspec.json.encode(
                {"type": "view", "lot": lot, "status": status, "close_at": close_at, "extensions": extensions},
            ).decode()[:-1]
        obs = self.snapshot.observer
        if rank is None:
            own = "null"
        else:
            own = f'"{self.prices()[rank - 1]}"'
        text = f'{head},"own_price":{own},"rank":{"null" if rank is None else rank},' \
               f'"active_bidders":{obs.active_bidders}'
        if not self.sees.best_price:
            return text + "}"
        ladder = obs.ladder
        if not ladder:
            return text + ',"best_price":null,"gap":null}'
        gap = "null" if rank is None else f'"{format_amount(ladder[rank - 1].price - ladder[0].price, self.decimals)}"'
        return f'{text},"best_price":"{self.prices()[0]}","gap":{gap}}}'

    def observer(self, codec: Codec) -> str | bytes:
        key = (0, codec.binary)
        payload = self._payloads.get(key)
        if payload is None:
            payload = self._payloads[key] = codec.encode(self._observer_message())
        return payload

    def _bidder_message(self, rank: int | None) -> m.BidderView:
        snapshot, decimals = self.snapshot, self.decimals
        ladder = snapshot.observer.ladder
        lot, status, close_at, extensions = self._head
        out = m.BidderView(lot=lot, status=status, close_at=close_at, extensions=extensions,
                           own_price=None if rank is None else self.prices()[rank - 1], rank=rank,
                           active_bidders=snapshot.observer.active_bidders)
        if self.sees.best_price:
            own = None if rank is None else ladder[rank - 1].price
            best = ladder[0].price if ladder else None
            out.best_price = self.prices()[0] if ladder else None
            out.gap = None if own is None or best is None else format_amount(own - best, decimals)
        if self.sees.ladder:
            prices = self.prices()
            out.ladder = [m.LadderLine(rank=line.rank, pseudonym=line.pseudonym, price=prices[i], own=line.rank == rank)
                          for i, line in enumerate(ladder)]
        return out

    def _observer_message(self) -> m.ObserverView:
        obs = self.snapshot.observer
        prices = self.prices()
        lot, status, close_at, extensions = self._head
        return m.ObserverView(lot=lot, status=status, close_at=close_at, extensions=extensions,
                              active_bidders=obs.active_bidders, bids=obs.bids, rejected_bids=obs.rejected_bids,
                              best_price=prices[0] if prices else None,
                              ladder=[m.LadderLine(rank=line.rank, pseudonym=line.pseudonym, price=prices[i])
                                      for i, line in enumerate(obs.ladder)])
