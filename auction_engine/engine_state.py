"""Reading a dumped engine state back (`Engine.load_state`), every field checked.

`load_engine` fills an empty engine from `Engine.dump_state()`'s list, `load_auction`
one auction of it, as is or after a msgpack round trip; anything `dump_state` could not
have written raises `StateError` naming the first field that is wrong (docs/core.md,
"Snapshots").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, TypeVar

from .auction import Auction, Lot
from .clock import CANCELLED, CLOSED, STATUSES, SUSPENDED, from_states
from .config import ID_PATTERN, MAX_BIDDERS, AuctionConfig, ConfigError
from .kind import StateError
from .order_book import SEQ_LIMIT, OrderBook, Standing
from .timeutil import parse_instant

if TYPE_CHECKING:
    from .engine import Engine

E = TypeVar("E", bound="Engine")

_CLOSE_REASONS = {CLOSED: ("scheduled", "inactivity"), CANCELLED: ("cancelled",)}
_FIRST_US = parse_instant("0001-01-01T00:00:00Z")  # the instants format_instant can write
_LAST_US = parse_instant("9999-12-31T23:59:59.999999Z")
_MAX_COUNT = (1 << 64) - 1  # msgpack's largest integer


SNAPSHOT_STATE_FORMAT = 1  # bump when dump_state() changes shape: load_state() refuses other formats


def load_engine(engine: E, state: object) -> E:
    """Fill a new, empty `engine` with the state `Engine.dump_state()` wrote:
    ``[SNAPSHOT_STATE_FORMAT, now, lot_keys, [auction, ...]]``; `StateError` otherwise."""
    fmt, now, lot_keys, auctions = _items(state, "state", 4)
    if type(fmt) is not int or fmt != SNAPSHOT_STATE_FORMAT:
        _fail("format", f"{fmt!r:.40} is not {SNAPSHOT_STATE_FORMAT}")
    engine._now = _instant(now, "now", 0)  # the engine starts at 0 and never goes back
    next_key = 0  # lot keys grow in creation order (they order equal deadlines)
    for i, value in enumerate(_items(auctions, "auctions")):
        auction = load_auction(value, f"auctions[{i}]", next_key, engine._now)
        aid = auction.config.auction_id
        if aid in engine._auctions:
            _fail(f"auctions[{i}].config.auction_id", f"{aid!r} appears twice")
        engine._auctions[aid] = auction
        next_key += len(auction.lots)
    engine._lot_keys = _int(lot_keys, "lot_keys", next_key)
    # The deadline heap is bookkeeping: one exact entry per lot that has a deadline.
    # Entries order by (deadline, lot key), both as in the original engine, so equal
    # deadlines fire in the same order; its stale entries never changed an outcome.
    for auction in engine._auctions.values():
        for lot in auction.lots.values():
            engine._schedule(lot, auction)
    return engine


def load_auction(value: object, path: str, first_key: int, now: int) -> Auction:
    """One auction of a dumped state, its lot keys starting at or after `first_key`."""
    data, admitted, pseudonyms, finished, bid_seq, lots = _items(value, path, 6)
    if type(data) is not dict:
        _fail(f"{path}.config", "must be a map")
    try:
        config = AuctionConfig.from_dict(data)
    except ConfigError as exc:
        raise StateError(f"{path}.config: {exc}") from None
    if type(config.pseudonym_secret) is not str:  # from_dict takes a null secret when given no default
        _fail(f"{path}.config.pseudonym_secret", "is required")
    lot_values = _items(lots, f"{path}.lots", len(config.lots))
    keys = [_items(lot, f"{path}.lots[{i}]", 16)[1] for i, lot in enumerate(lot_values)]
    auction = Auction(config, _int(keys[0], f"{path}.lots[0].key", first_key))
    auction.bid_seq = _int(bid_seq, f"{path}.bid_seq", 0, SEQ_LIMIT - 1)
    pairs = _items(pseudonyms, f"{path}.pseudonyms")
    if len(pairs) > MAX_BIDDERS:
        _fail(f"{path}.pseudonyms", f"more than {MAX_BIDDERS} bidders")
    names: set[str] = set()  # (not recomputed from the secret: 4 HMACs a bidder would double the load time)
    for i, pair in enumerate(pairs):
        bidder_id, name = _items(pair, f"{path}.pseudonyms[{i}]", 2)
        if type(bidder_id) is not str or not ID_PATTERN.fullmatch(bidder_id) or bidder_id in auction.pseudonyms:
            _fail(f"{path}.pseudonyms[{i}]", f"{bidder_id!r:.70} is not a new bidder id")
        if type(name) is not str or name in names:
            _fail(f"{path}.pseudonyms[{i}]", f"{name!r:.40} is not a new pseudonym")
        names.add(name)
        auction.pseudonyms[bidder_id] = name
    for i, bidder_id in enumerate(_items(admitted, f"{path}.admitted")):
        if type(bidder_id) is not str or bidder_id not in auction.pseudonyms or bidder_id in auction.admitted:
            _fail(f"{path}.admitted[{i}]", f"{bidder_id!r:.70} is not a bidder with a pseudonym, once")
        auction.admitted.add(bidder_id)
    seqs: set[int] = set()  # bid sequence numbers are per auction
    for i, (lot, lot_value) in enumerate(zip(auction.lots.values(), lot_values, strict=True)):
        _load_lot(auction, lot, lot_value, f"{path}.lots[{i}]", now, seqs)
    auction.finished = _bool(finished, f"{path}.finished")
    if auction.finished != auction.all_final():
        _fail(f"{path}.finished", "must be true exactly when every lot has closed or been cancelled")
    return auction


def _load_lot(auction: Auction, lot: Lot, value: object, path: str, now: int, seqs: set[int]) -> None:
    """Set the dumped state of a lot that `Auction.__init__` built from the config."""
    (lot_id, key, status, open_at, close_at, hard_close, extensions, active_since, suspended_at, suspended_from,
     closed_at, close_reason, bids, rejected, sorted_ladder, standings) = _items(value, path, 16)
    if lot_id != lot.config.lot_id:
        _fail(f"{path}.lot_id", f"must be {lot.config.lot_id!r} (the config's lot order)")
    if type(key) is not int or key != lot.key:
        _fail(f"{path}.key", f"must be {lot.key} (lot keys are consecutive within an auction)")
    clock = lot.clock
    policy = clock.policy
    clock.status = _choice(status, f"{path}.status", STATUSES)
    clock.open_at = _instant(open_at, f"{path}.open_at")
    clock.close_at = _instant(close_at, f"{path}.close_at", clock.open_at + 1)
    if policy.hard_close is None:
        _none(hard_close, f"{path}.hard_close")
    else:
        clock.hard_close = _instant(hard_close, f"{path}.hard_close", clock.close_at)
    max_extensions = _MAX_COUNT if policy.max_extensions is None else policy.max_extensions
    clock.extensions = _int(extensions, f"{path}.extensions", 0, max_extensions)
    clock.active_since = _instant(active_since, f"{path}.active_since")
    if clock.status == SUSPENDED:
        clock.suspended_at = _instant(suspended_at, f"{path}.suspended_at", high=now)
        clock.suspended_from = _choice(suspended_from, f"{path}.suspended_from", from_states("suspend"))
    else:
        _none(suspended_at, f"{path}.suspended_at")
        _none(suspended_from, f"{path}.suspended_from")
    reasons = _CLOSE_REASONS.get(clock.status)
    if reasons is None:
        _none(closed_at, f"{path}.closed_at")
        _none(close_reason, f"{path}.close_reason")
    else:
        clock.closed_at = _instant(closed_at, f"{path}.closed_at", high=now)
        clock.close_reason = _choice(close_reason, f"{path}.close_reason", reasons)
    lot.bids = _int(bids, f"{path}.bids")
    lot.rejected = _int(rejected, f"{path}.rejected")
    entries: dict[str, Standing] = {}  # in the book's order: the order bidders first bid
    for i, item in enumerate(_items(standings, f"{path}.standings")):
        where = f"{path}.standings[{i}]"
        bidder_id, price, time, seq = _items(item, where, 4)
        if type(bidder_id) is not str or bidder_id not in auction.pseudonyms or bidder_id in entries:
            _fail(f"{where}.bidder_id", f"{bidder_id!r:.70} is not a bidder with a pseudonym, once")
        seq = _int(seq, f"{where}.seq", 1, auction.bid_seq)
        if seq in seqs:
            _fail(f"{where}.seq", f"bid sequence {seq} is used twice in the auction")
        seqs.add(seq)
        entries[bidder_id] = Standing(bidder_id, _int(price, f"{where}.price", 1, lot.config.starting_price),
                                      _instant(time, f"{where}.time", high=now), seq)
    if lot.bids < len(entries):
        _fail(f"{path}.bids", f"{lot.bids} accepted bids cannot leave {len(entries)} standing bids")
    lot.book = OrderBook.restore(entries.values(), _bool(sorted_ladder, f"{path}.sorted_ladder"))


def _fail(path: str, message: str) -> NoReturn:
    raise StateError(f"{path}: {message}")


def _items(value: object, path: str, count: int | None = None) -> list[object]:
    if type(value) is not list:
        _fail(path, f"must be a list, got {type(value).__name__}")
    if count is not None and len(value) != count:
        _fail(path, f"must have {count} items, has {len(value)}")
    return value


def _int(value: object, path: str, low: int = 0, high: int = _MAX_COUNT) -> int:
    if type(value) is not int or not low <= value <= high:
        _fail(path, f"{value!r:.40} is not an integer from {low} to {high}")
    return value


def _instant(value: object, path: str, low: int = _FIRST_US, high: int = _LAST_US) -> int:
    return _int(value, path, low, high)


def _bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        _fail(path, f"{value!r:.40} is not true or false")
    return value


def _none(value: object, path: str) -> None:
    if value is not None:
        _fail(path, f"{value!r:.40} must be None here")


def _choice(value: object, path: str, options: tuple[str, ...]) -> str:
    if type(value) is not str or value not in options:
        _fail(path, f"{value!r:.40} is not one of {', '.join(options)}")
    return value


