"""The demo's bot bidders: each a strategy, a private floor per lot, and a room connection.

A bot bids within the lot's rules as its welcome states them (`LotRules.bounds`), concedes
towards its floor as the auction goes on, and snipers bid in the last seconds; every
answer is counted on the `Board`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import trio
from trio_websocket import HandshakeError

from auction_engine.money import Percent, format_amount, parse_amount, parse_percent
from auction_engine.timeutil import parse_instant
from gateway.client import Room, RoomClosed

from .board import Board
from .plan import (
    COMPANIES,
    CONCEDE,
    FLOOR_OFF,
    GRID,
    LOTS,
    OPENING,
    SNIPE_POLL,
    STRATEGIES,
    THINK,
    Timing,
    edge_money,
    money,
    now_us,
    us,
)

# -- the bots -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LotRules:
    """A lot's bid rules as the welcome message states them."""

    starting: int
    min_step: int
    min_percent: Percent | None
    max_step: int | None
    max_percent: Percent | None
    improve_on: str

    @classmethod
    def of(cls, lot: dict[str, Any], decimals: int) -> LotRules:
        r = lot["rules"]
        return cls(parse_amount(lot["starting_price"], decimals), parse_amount(r["min_step"], decimals),
                   None if r["min_step_percent"] is None else parse_percent(r["min_step_percent"]),
                   None if r["max_step"] is None else parse_amount(r["max_step"], decimals),
                   None if r["max_step_percent"] is None else parse_percent(r["max_step_percent"]), r["improve_on"])

    def bounds(self, base: int | None) -> tuple[int, int]:
        """The lowest and highest amounts the rules accept from a bid whose base is `base`."""
        if base is None:
            return 1, self.starting
        low_step = max(self.min_step, self.min_percent.of_rounded_up(base) if self.min_percent else 0, 1)
        high_step = base
        if self.max_step is not None:
            high_step = min(high_step, self.max_step)
        if self.max_percent is not None:
            high_step = min(high_step, self.max_percent.of_rounded_down(base))
        return base - high_step, min(self.starting, base - low_step)


@dataclass(eq=False)
class Bot:
    """One bidder: a strategy, a private floor per lot, a room connection."""

    bidder_id: str
    strategy: str
    lots: tuple[str, ...]
    floors: dict[str, int]
    concede: float
    rng: random.Random
    timing: Timing
    board: Board
    room: Room | None = None
    start: int = 0  # the auction's opening (µs)
    pseudonym: str = ""
    rules: dict[str, LotRules] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)  # standing price per lot, from our acks
    at_floor: set[str] = field(default_factory=set)
    fumbled: set[str] = field(default_factory=set)  # lots where we already made our one fat-finger bid
    bids: int = 0

    async def run(self, url: str, token: str, subprotocol: str) -> None:
        try:
            async with Room.connect(url, token, subprotocol=subprotocol) as room:
                self.room, self.pseudonym = room, room.welcome["pseudonym"]
                self.start = parse_instant(room.welcome["start"])
                self.board.strategy_of[self.pseudonym] = self.strategy
                self.rules = {lot["lot_id"]: LotRules.of(lot, room.welcome["decimals"]) for lot in room.welcome["lots"]}
                async with trio.open_nursery() as nursery:
                    for lot_id in self.lots:
                        nursery.start_soon(self.play, lot_id)
        except (RoomClosed, HandshakeError) as exc:
            self.board.note(f"{self.bidder_id}: connection lost: {exc}")

    def view(self, lot_id: str) -> dict[str, Any] | None:
        assert self.room is not None
        return self.room.views.get(lot_id)

    async def play(self, lot_id: str) -> None:
        """Bid on one lot by the strategy until it ends."""
        await self.pause(self.rng.uniform(0.1, 1.5) * self.timing.pace)
        snipe_at = max(0.25, self.rng.uniform(0.3, 0.7) * self.timing.window)
        last_snipe = -math.inf
        while True:
            view = self.view(lot_id)
            assert self.room is not None
            if self.room.closed is not None or (view is not None and view["status"] in ("closed", "cancelled")):
                return
            if view is None or view["status"] != "open":
                await self.pause(0.1)
                continue
            if self.strategy == "sniper":
                left = (parse_instant(view["close_at"]) - now_us()) / 1e6
                if 0.05 < left <= snipe_at and view["rank"] != 1 and trio.current_time() - last_snipe > 0.25:
                    last_snipe = trio.current_time()
                    await self.outbid(lot_id, view, (0.003, 0.015), f"with {left:.2f} s left")
                await self.pause(SNIPE_POLL)
                continue
            if view["rank"] != 1 and (self.strategy != "passive" or self.rng.random() < 0.35):
                await self.act(lot_id, view)
            await self.pause(self.rng.uniform(*THINK[self.strategy]) * self.timing.pace)

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake up as soon as every lot has ended."""
        with trio.move_on_after(seconds):
            await self.board.all_closed.wait()

    async def act(self, lot_id: str, view: dict[str, Any]) -> None:
        if lot_id in self.at_floor:
            return
        if self.strategy == "aggressive":
            rules, own = self.rules[lot_id], self.base(lot_id, view)
            if own is not None and rules.max_percent is not None and lot_id not in self.fumbled \
                    and self.rng.random() < 0.1:
                # a fat finger, once per lot: a drop beyond the maximum step, which the engine refuses
                self.fumbled.add(lot_id)
                await self.send(lot_id, own - own * 13 // 100 // GRID * GRID, "a fat-finger drop of 13 %")
                return
            await self.outbid(lot_id, view, (0.015, 0.05))
        elif self.strategy in ("steady", "floor"):
            await self.outbid(lot_id, view, (0.004, 0.012))
        else:
            await self.outbid(lot_id, view, (0.003, 0.008))

    def base(self, lot_id: str, view: dict[str, Any]) -> int | None:
        """The price our next bid's step is measured from (our own, or the lot's best)."""
        if self.rules[lot_id].improve_on == "best":
            return edge_money(view.get("best_price"))
        prices = [p for p in (edge_money(view.get("own_price")), self.own.get(lot_id)) if p is not None]
        return min(prices) if prices else None

    def limit(self, lot_id: str) -> int:
        """The lowest price we accept to offer now: our floor, conceded gradually."""
        starting, floor = self.rules[lot_id].starting, self.floors[lot_id]
        if not self.concede:
            return floor
        progress = (now_us() - self.start) / us(self.timing.seconds)
        return starting - int((starting - floor) * min(1.0, OPENING + max(0.0, progress) / self.concede))

    async def outbid(self, lot_id: str, view: dict[str, Any], drop: tuple[float, float], why: str = "") -> None:
        """Bid under the best price by a fraction in `drop`, within the rules and what we
        accept to offer now; note when our floor stops us for good."""
        rules, floor = self.rules[lot_id], self.floors[lot_id]
        best, base = edge_money(view.get("best_price")), self.base(lot_id, view)
        low, high = rules.bounds(base)
        if base is None and best is not None and self.strategy != "sniper" and max(floor, self.limit(lot_id)) >= best:
            # not ready to lead, but in the race: an entry bid at what we accept now
            entry = max(floor, self.limit(lot_id))
            await self.send(lot_id, min(high, entry + (-entry) % GRID), "entry bid")
            return
        if high < floor or (best is not None and best <= floor):
            if lot_id not in self.at_floor:
                self.at_floor.add(lot_id)
                if self.strategy == "floor":
                    self.board.note(f"{lot_id} {self.pseudonym} (floor) stops: its floor is {money(floor)} MAD")
            return
        limit = self.limit(lot_id)
        low = max(low, limit)
        if high < low or (best is not None and limit >= best):
            return  # not ready to go that low yet
        reference = best if best is not None else rules.starting
        target = reference - int(reference * self.rng.uniform(*drop))
        amount = min(max(target, low), high)
        if amount - amount % GRID >= low:
            amount -= amount % GRID
        elif amount % GRID and amount - amount % GRID + GRID <= high:
            amount += GRID - amount % GRID
        await self.send(lot_id, amount, why)

    async def send(self, lot_id: str, amount: int, why: str = "") -> None:
        assert self.room is not None
        self.bids += 1
        self.board.sent += 1
        try:
            answer = await self.room.bid(lot_id, format_amount(amount, 2), f"{self.bidder_id[:40]}-{self.bids}")
        except RoomClosed:
            return
        if answer["type"] == "ack":
            self.board.accepted += 1
            self.own[lot_id] = amount
            if self.strategy == "sniper":
                self.board.note(f"{lot_id} {self.pseudonym} (sniper) bids {money(amount)} {why}: "
                                f"rank {answer['rank']}")
        else:
            self.board.rejections[answer["code"]] += 1
            self.board.note(f"{lot_id} {self.pseudonym} ({self.strategy}) {money(amount)} REJECTED: "
                            f"{answer['code']}{f' ({why})' if why else ''}")


def make_bots(count: int, rng: random.Random, timing: Timing, board: Board) -> list[Bot]:
    """`count` bots, strategies cycling through STRATEGIES, on both lots; from the 5th on,
    some on one lot only (the first four include 3 non-snipers, who always place a bid on
    each lot, so every lot has at least `min_bidders`)."""
    names = [COMPANIES[i] if i < len(COMPANIES) else f"fournisseur-{i + 1}" for i in range(count)]
    rng.shuffle(names)
    lot_ids = tuple(lot[0] for lot in LOTS)
    starting = {lot[0]: parse_amount(lot[3], 2) for lot in LOTS}
    bots = []
    for i, name in enumerate(names):
        strategy = STRATEGIES[i % len(STRATEGIES)]
        lots = lot_ids
        if i >= 4 and strategy != "sniper" and rng.random() < 0.3:
            lots = (rng.choice(lot_ids),)
        floors = {}
        for lot_id in lot_ids:
            off = rng.uniform(*FLOOR_OFF[strategy])
            floors[lot_id] = (starting[lot_id] - int(starting[lot_id] * off)) // GRID * GRID
        bots.append(Bot(name, strategy, lots, floors, rng.uniform(*CONCEDE[strategy]), random.Random(rng.random()),
                        timing, board))
    return bots

