"""Builders for test auctions: the edge form with small, readable overrides."""

from __future__ import annotations

import copy
from typing import Any

from auction_engine import AuctionConfig, CreateAuction, Engine, PlaceBid
from auction_engine.timeutil import parse_instant

START = parse_instant("2026-03-02T10:00:00Z")
END = parse_instant("2026-03-02T11:00:00Z")
S = 1_000_000  # one second in µs
SECRET = "test-secret-0123456789abcdef"

BASE: dict[str, Any] = {
    "auction_id": "A1",
    "title": "Test auction",
    "currency": "MAD",
    "start": "2026-03-02T10:00:00Z",
    "end": "2026-03-02T11:00:00Z",
    "bidders": ["alice", "bob", "carol"],
    "pseudonym_secret": SECRET,
    "lots": [{"lot_id": "L1", "title": "Lot 1", "estimate": "1200.00", "starting_price": "1000.00"}],
}


def config_dict(**overrides: Any) -> dict[str, Any]:
    """The base auction with top-level fields replaced (and `lot` fields merged into lot 0)."""
    data = copy.deepcopy(BASE)
    lot = overrides.pop("lot", None)
    data.update(overrides)
    if lot:
        data["lots"][0].update(lot)
    return data


def config(**overrides: Any) -> AuctionConfig:
    return AuctionConfig.from_dict(config_dict(**overrides))


def engine_with(*, opened: bool = True, **overrides: Any) -> Engine:
    """An engine holding one auction created an hour before it starts; its lots already
    opened (at START) unless `opened` is False."""
    engine = Engine()
    events = engine.handle(CreateAuction(START - 3600 * S, config(**overrides)))
    assert type(events[0]).__name__ == "AuctionCreated", events
    if opened:
        assert {type(e).__name__ for e in engine.tick(START)} == {"LotOpened"}
    return engine


def bid(engine: Engine, at: int, bidder: str, amount: int, lot: str = "L1", auction: str = "A1") -> list[Any]:
    return engine.handle(PlaceBid(at, auction, lot, bidder, amount))


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]
