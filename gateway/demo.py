"""`auction-engine demo`: serve in-process, create a 2-lot supply auction over the RPC, let
bot bidders with varied strategies fight it out over WebSockets while a buyer's observer
drives a live display, print the award and the savings, then verify the journal written.

Every timing scales with `seconds` (a short run still has last-second bids that extend
the close); `seed` fixes the bots' strategies, private floors and reflexes, not the race.
"""

from __future__ import annotations

import math
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import trio
from trio_websocket import HandshakeError

from auction_engine.money import Percent, format_amount, parse_amount, parse_percent
from auction_engine.timeutil import format_duration, format_instant, parse_instant

from .app import serve
from .client import Room, RoomClosed, RpcClient, RpcError
from .demo_seat import SEAT_ID, open_seat, stay_open
from .logs import configure_logging
from .service import Service
from .settings import ApiKey, Settings

COMPANIES = (  # bot bidders' ids; beyond these, "fournisseur-N"
    "atlas-informatique", "maghreb-bureautique", "sofitech-sarl", "rif-digital", "souss-equipement",
    "casanet-distribution", "fes-systemes", "tanger-tech", "oasis-it-services", "agadir-office",
    "marrakech-computers", "zagora-numerique", "meknes-data", "oujda-reseaux", "saharatek", "kenitra-solutions",
)
STRATEGIES = ("aggressive", "steady", "sniper", "floor", "steady", "sniper", "passive", "aggressive", "floor",
              "sniper", "steady", "passive")  # bot i plays STRATEGIES[i % 12]: any 3 bots include a sniper
FLOOR_OFF = {  # a bot's private floor per lot: starting price minus this fraction of it (uniform range)
    "aggressive": (0.10, 0.20), "steady": (0.09, 0.20), "sniper": (0.11, 0.21), "floor": (0.02, 0.07),
    "passive": (0.01, 0.06),
}
# A bot concedes gradually: at a fraction p of the scheduled length it goes no lower than
# starting - (starting - floor) * min(1, OPENING + p / c), c drawn from CONCEDE (snipers: their floor at once).
CONCEDE = {"aggressive": (0.45, 0.75), "steady": (0.7, 1.15), "floor": (0.5, 0.9), "passive": (0.9, 1.4),
           "sniper": (0.0, 0.0)}
OPENING = 0.04
THINK = {"aggressive": (0.5, 1.5), "steady": (1.0, 2.5), "floor": (0.8, 2.0), "passive": (2.5, 5.0)}  # s, x pace
LOTS = (  # lot_id, title, estimate, starting price, reserve price (MAD)
    ("L1", "Micro-ordinateurs de bureau (120 unités)", "1380000.00", "1350000.00", "1300000.00"),
    ("L2", "Imprimantes laser réseau (45 unités)", "540000.00", "525000.00", None),
)
MAX_EXTENSIONS = 8
GRID = 1000  # minor units: the bots bid in whole tens of dirhams
SNIPE_POLL = 0.04  # seconds between a sniper's looks at the clock
REFRESH = 0.5  # seconds between redraws of the live display
LOG_FILE = "service.log"  # the service's JSON logs, in the data dir (kept off the display)
RESULTS_WAIT = 10.0  # seconds to wait for final results once every lot has closed
SUBPROTOCOLS = ("auction.v1.json", "auction.v1.msgpack")


def now_us() -> int:
    return time.time_ns() // 1000


def money(minor: int | None, decimals: int = 2) -> str:
    """1234567.5 MAD as "1 234 567.50" (narrow, readable); None as "-"."""
    if minor is None:
        return "-"
    whole, _, frac = format_amount(minor, decimals).partition(".")
    return f"{int(whole):,}".replace(",", " ") + (f".{frac}" if frac else "")


def edge_money(text: str | None) -> int | None:
    return None if text is None else parse_amount(text, 2)


def clock_text(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%H:%M:%S.%f")[:10]


# -- the plan: timings and the auction's configuration ------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    """Every duration of the demo, in seconds, derived from the scheduled length."""

    seconds: float
    start_in: float  # creation -> opening
    stagger: float  # between the scheduled closes of L1 and L2
    window: float  # extension window, and extend_by
    hard_after: float  # hard close, after the last lot's scheduled close
    suspend_at: float  # the incident, after the opening
    suspend_for: float
    pace: float  # multiplies the bots' thinking times
    status_every: float  # a plain status line this often when the output is not a terminal

    @classmethod
    def of(cls, seconds: float) -> Timing:
        window = min(120.0, max(1.0, round(seconds / 10, 1)))
        stagger = min(600.0, max(1.0, round(seconds / 8, 1)))
        return cls(seconds=seconds, start_in=min(3.0, max(1.5, seconds * 0.075)), stagger=stagger, window=window,
                   hard_after=stagger + 3 * window, suspend_at=round(seconds * 0.35, 1),
                   suspend_for=min(5.0, max(1.0, round(seconds / 20, 1))), pace=min(1.5, max(0.25, seconds / 40)),
                   status_every=max(3.0, seconds / 8))


def us(seconds: float) -> int:
    return round(seconds * 1e6)


def auction_config(auction_id: str, created_us: int, timing: Timing) -> dict[str, Any]:
    """A SEEI-style 2-lot supply auction (the body of POST /auctions)."""
    start = created_us + us(timing.start_in)
    end = start + us(timing.seconds)
    window = format_duration(us(timing.window))
    lots = []
    for lot_id, title, estimate, starting, reserve in LOTS:
        lot: dict[str, Any] = {"lot_id": lot_id, "title": title, "estimate": estimate, "starting_price": starting}
        if reserve is not None:
            lot["reserve_price"] = reserve
        lots.append(lot)
    return {
        "auction_id": auction_id,
        "title": "Fourniture de matériel informatique pour les services déconcentrés",
        "buyer_ref": "AO-EEI-DEMO/2026 Trésorerie Régionale de Rabat",
        "currency": "MAD", "decimals": 2,
        "start": format_instant(start), "end": format_instant(end),
        "stagger": format_duration(us(timing.stagger)),
        "bidders": [], "min_bidders": 2, "visibility": "rank_and_best",
        "rules": {"min_step": "500.00", "min_step_percent": "0.5", "max_step_percent": "10", "improve_on": "own"},
        "extension": {"window": window, "extend_by": window, "trigger": "any_bid", "mode": "from_bid",
                      "max_extensions": MAX_EXTENSIONS,
                      "hard_close": format_instant(end + us(timing.stagger + timing.hard_after))},
        "lots": lots,
    }


# -- the live display ---------------------------------------------------------------------


@dataclass(slots=True)
class LotLine:
    """What the buyer's observer knows of one lot."""

    lot_id: str
    title: str
    estimate: int
    status: str = "scheduled"
    close_at: int = 0
    extensions: int = 0
    bids: int = 0
    rejected: int = 0
    best: int | None = None
    leader: str | None = None
    outcome: str | None = None


class Board:
    """The terminal display: a scrolling log of notable events under which a status block
    is redrawn (ANSI, on a terminal), or plain lines every few seconds (logs, CI)."""

    def __init__(self, out: TextIO, tty: bool, timing: Timing, auction_id: str) -> None:
        self.out, self.tty, self.timing, self.auction_id = out, tty, timing, auction_id
        self.t0 = trio.current_time()
        self.lots = {lot_id: LotLine(lot_id, title, parse_amount(estimate, 2))
                     for lot_id, title, estimate, _s, _r in LOTS}
        self.pending: list[str] = []
        self.strategy_of: dict[str, str] = {}  # pseudonym -> the bot's strategy (the demo knows everyone)
        self.sent = 0
        self.accepted = 0
        self.rejections: Counter[str] = Counter()
        self.all_closed = trio.Event()
        self._drawn = 0
        self._last_plain = -math.inf

    def elapsed(self) -> float:
        return trio.current_time() - self.t0

    def note(self, text: str) -> None:
        """A notable event, kept in the scrolling log."""
        self.pending.append(f"[{self.elapsed():5.1f}s] {text}")

    def on_observer(self, message: dict[str, Any]) -> None:
        """Every message the buyer's observer receives."""
        kind, lot_id = message.get("type"), message.get("lot")
        line = self.lots.get(lot_id) if isinstance(lot_id, str) else None
        if line is None:
            return
        if kind == "view":
            line.status, line.close_at = message["status"], parse_instant(message["close_at"])
            line.extensions, line.bids, line.rejected = message["extensions"], message["bids"], message["rejected_bids"]
            line.best = edge_money(message.get("best_price"))
            ladder = message.get("ladder") or []
            line.leader = ladder[0]["pseudonym"] if ladder else None
        elif kind == "clock":
            close_at = parse_instant(message["close_at"])
            if message["extensions"]:
                moved = (close_at - line.close_at) / 1e6 if line.close_at else 0.0
                last = " (the last one allowed)" if message["extensions"] >= MAX_EXTENSIONS else ""
                self.note(f"{lot_id} EXTENDED #{message['extensions']}{last}: a bid in the last "
                          f"{self.timing.window:g} s moves the close to {clock_text(close_at)} (+{moved:.1f} s)")
            else:
                self.note(f"{lot_id} open: scheduled to close at {clock_text(close_at)} UTC")
            line.status, line.close_at, line.extensions = "open", close_at, message["extensions"]
        elif kind == "suspended":
            line.status = "suspended"
            self.note(f"{lot_id} SUSPENDED by the buyer: {message.get('reason') or '-'}")
        elif kind == "resumed":
            line.status, line.close_at = "open", parse_instant(message["close_at"])
            self.note(f"{lot_id} resumed: remaining time preserved, now closes at {clock_text(line.close_at)}")
        elif kind == "closed":
            line.outcome = message["outcome"]
            line.status = "closed"
            if line.outcome == "awarded":
                winner = message.get("winner")
                line.best, line.leader = edge_money(message.get("awarded_price")), winner
                self.note(f"{lot_id} CLOSED ({message['close_reason']}, {line.extensions} extension(s)): awarded "
                          f"to {winner} at {money(line.best)} MAD")
            else:
                self.note(f"{lot_id} CLOSED: unsuccessful ({message.get('unsuccessful_reason')})")
            if all(lot.outcome is not None for lot in self.lots.values()):
                self.all_closed.set()

    def status_lines(self) -> list[str]:
        now = now_us()
        head = (f"{self.auction_id} | t+{self.elapsed():.1f} s | {len(self.strategy_of)} bots | bids: {self.sent} "
                f"sent, {self.accepted} accepted, {sum(self.rejections.values())} rejected")
        lines = [head, f"{'lot':<4}{'status':<11}{'best (MAD)':>15}{'vs est.':>9}  {'leader':<19}"
                       f"{'bids':>5}{'rej':>5}{'ext':>6}{'closes in':>11}"]
        for lot in self.lots.values():
            vs = f"{(lot.best - lot.estimate) * 100 / lot.estimate:+.1f}%" if lot.best is not None else "-"
            leader = "-" if lot.leader is None else f"{lot.leader} {self.strategy_of.get(lot.leader, '')}"
            if lot.status in ("open", "scheduled") and lot.close_at:
                left = f"{max(0.0, (lot.close_at - now) / 1e6):.1f} s"
            else:
                left = lot.outcome or ("frozen" if lot.status == "suspended" else "-")
            lines.append(f"{lot.lot_id:<4}{lot.status:<11}{money(lot.best):>15}{vs:>9}  {leader:<19}"
                         f"{lot.bids:>5}{lot.rejected:>5}{f'{lot.extensions}/{MAX_EXTENSIONS}':>6}{left:>11}")
        return lines

    def plain_status(self) -> str:
        now = now_us()
        parts = []
        for lot in self.lots.values():
            left = (f"closes in {max(0.0, (lot.close_at - now) / 1e6):.1f}s"
                    if lot.status == "open" and lot.close_at else lot.outcome or lot.status)
            parts.append(f"{lot.lot_id} {lot.status} best {money(lot.best)} bids {lot.bids} "
                         f"ext {lot.extensions} {left}")
        return f"[{self.elapsed():5.1f}s] status: " + " | ".join(parts)

    def refresh(self, final: bool = False) -> None:
        """Print the new log lines, then (re)draw the status block."""
        out = self.out
        if self.tty:
            width = max(40, shutil.get_terminal_size((120, 24)).columns - 1)
            if self._drawn:
                out.write(f"\x1b[{self._drawn}F\x1b[J")
            for text in self.pending:
                out.write(text[:width] + "\n")
            block = self.status_lines()
            for i, text in enumerate(block):
                out.write(f"\x1b[7m{text[:width]}\x1b[0m\n" if i == 0 else text[:width] + "\n")
            self._drawn = 0 if final else len(block)  # the final block stays
        else:
            for text in self.pending:
                out.write(text + "\n")
            if final or self.elapsed() - self._last_plain >= self.timing.status_every:
                self._last_plain = self.elapsed()
                out.write(self.plain_status() + "\n")
        self.pending.clear()
        out.flush()

    async def run(self) -> None:
        """Refresh until cancelled."""
        if self.tty:
            self.out.write("\x1b[?25l")  # hide the cursor while redrawing
        try:
            while True:
                self.refresh()
                await trio.sleep(REFRESH)
        finally:
            self.refresh(final=True)
            if self.tty:
                self.out.write("\x1b[?25h")
                self.out.flush()


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


# -- the run ------------------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    auction_id: str = ""
    results: dict[str, Any] | None = None
    interrupted: bool = False
    problem: str = ""
    auction_seconds: float = 0.0
    stayed: bool = False  # --stay: the stop that ended the run was asked for, not an interruption


def demo_settings(data_dir: Path) -> tuple[Settings, dict[str, str]]:
    """Loopback, any free port, fsync, fresh API keys (one per role) and token secret."""
    keys = {role: secrets.token_urlsafe(32) for role in ("portal", "buyer", "auditor")}
    api_keys = (ApiKey.from_plaintext("demo-portal", "portal", keys["portal"]),
                ApiKey.from_plaintext("demo-buyer", "buyer", keys["buyer"]),
                ApiKey.from_plaintext("demo-auditor", "auditor", keys["auditor"]))
    settings = Settings(host="127.0.0.1", port=0, data_dir=str(data_dir), durability="fsync", api_keys=api_keys,
                        token_secret=secrets.token_urlsafe(48), log_level="info")
    return settings, keys


async def _serve_flagged(settings: Settings, stopped: trio.Event, *, task_status: Any = trio.TASK_STATUS_IGNORED
                         ) -> None:
    try:
        await serve(settings, task_status=task_status)
    finally:
        stopped.set()  # ended by itself: a signal (Ctrl-C) or a failure


async def _main(data_dir: Path, bidders: int, timing: Timing, rng: random.Random, out: TextIO, tty: bool,
                stay: bool = False) -> Outcome:
    outcome = Outcome()
    settings, keys = demo_settings(data_dir)
    stopped = trio.Event()
    async with trio.open_nursery() as nursery:
        service: Service = await nursery.start(_serve_flagged, settings, stopped)
        base = f"http://127.0.0.1:{service.port}"
        out.write(f"service on {base} (metrics {base}/metrics), journal fsynced to {service.journal_dir}\n")
        out.flush()
        with trio.CancelScope() as scope:
            nursery.start_soon(_cancel_when, stopped, scope)
            await _auction(service, keys, bidders, timing, rng, out, tty, outcome)
            with trio.move_on_after(2):  # the room sessions end as the clients leave
                while service.rooms.count:
                    await trio.sleep(0.02)
            if service.rooms.count and not stay:
                out.write(f"note: {service.rooms.count} room session(s) still open after the clients left\n")
            if stay and outcome.results is not None:
                outcome.stayed = True
                await stay_open(out, stopped)
        outcome.interrupted = stopped.is_set() and not outcome.stayed
        nursery.cancel_scope.cancel()  # stops the service: connections closed, journal flushed
    return outcome


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def _auction(service: Service, keys: dict[str, str], count: int, timing: Timing, rng: random.Random,
                   out: TextIO, tty: bool, outcome: Outcome) -> None:
    """Create the auction, run the bots and the display until every lot has ended, print the results."""
    base = f"http://127.0.0.1:{service.port}"
    created = now_us()
    auction_id = "TGR-EEI-DEMO-" + datetime.fromtimestamp(created / 1e6, UTC).strftime("%Y%m%d-%H%M%S")
    outcome.auction_id = auction_id
    config = auction_config(auction_id, created, timing)
    room_url = f"ws://127.0.0.1:{service.port}/ws/v1/auctions/{auction_id}"
    async with RpcClient(base, keys["portal"]) as portal, RpcClient(base, keys["buyer"]) as buyer:
        await portal.create_auction(config)
        board = Board(out, tty, timing, auction_id)
        bots = make_bots(count, rng, timing, board)
        tokens = {t["bidder_id"]: t["token"] for t in (await portal.admit(auction_id, [b.bidder_id for b in bots]))
                  ["tokens"]}
        watch = (await buyer.observer_token(auction_id, "commission"))["token"]
        _print_plan(out, config, timing, bots)
        await open_seat(portal, base, auction_id, watch, keys["buyer"], out)
        async with trio.open_nursery() as nursery, Room.connect(room_url, watch) as observer:
            observer.on_message = board.on_observer
            for message in observer.views.values():
                board.on_observer(message)
            nursery.start_soon(board.run)
            nursery.start_soon(_incident, buyer, auction_id, parse_instant(config["start"]), timing, board)
            # everything is bounded by the hard close (moved by the suspension); then some slack
            limit = parse_instant(config["extension"]["hard_close"]) + us(timing.suspend_for + 15) - now_us()
            with trio.move_on_after(max(0.0, limit / 1e6)):
                async with trio.open_nursery() as players:  # each bot leaves once its lots have ended
                    for i, bot in enumerate(bots):
                        players.start_soon(bot.run, room_url, tokens[bot.bidder_id], SUBPROTOCOLS[i % 2])
                await board.all_closed.wait()
            nursery.cancel_scope.cancel()
        if not board.all_closed.is_set():
            outcome.problem = "the lots did not all close in time"
            return
        with trio.move_on_after(RESULTS_WAIT):
            while True:
                results = await buyer.results(auction_id)
                if results["final"] and results["identities"]:
                    outcome.results = results
                    last = max(parse_instant(lot["closed_at"]) for lot in results["lots"])
                    outcome.auction_seconds = (last - parse_instant(config["start"])) / 1e6
                    break
                await trio.sleep(0.1)
        if outcome.results is None:
            outcome.problem = "the results did not become final"
            return
        _print_results(out, outcome.results, board)


async def _incident(buyer: RpcClient, auction_id: str, start_us: int, timing: Timing, board: Board) -> None:
    """The buyer suspends every lot for a moment (a network incident), then resumes."""
    await trio.sleep(max(0.0, (start_us + us(timing.suspend_at) - now_us()) / 1e6))
    try:
        await buyer.suspend(auction_id, None, "incident réseau signalé par un soumissionnaire (démonstration)")
        await trio.sleep(timing.suspend_for)
        await buyer.resume(auction_id)
    except RpcError as exc:
        board.note(f"the buyer's suspend/resume was refused: {exc}")


def _print_plan(out: TextIO, config: dict[str, Any], timing: Timing, bots: list[Bot]) -> None:
    ext = config["extension"]
    out.write(f"auction {config['auction_id']}: {config['title']}\n"
              f"  {config['buyer_ref']}; opens {clock_text(parse_instant(config['start']))} UTC, L1 closes "
              f"{timing.seconds:g} s later, L2 {timing.stagger:g} s after L1; a bid in the last {timing.window:g} s "
              f"extends the close by up to {timing.window:g} s (at most {ext['max_extensions']} times, never "
              f"past {clock_text(parse_instant(ext['hard_close']))}); steps 0.5 %..10 %; view rank_and_best\n")
    for lot in config["lots"]:
        out.write(f"  {lot['lot_id']} {lot['title']}: estimate {money(edge_money(lot['estimate']))} MAD, "
                  f"starting price {money(edge_money(lot['starting_price']))} MAD\n")
    mix = Counter(bot.strategy for bot in bots)
    out.write(f"  {len(bots)} bots: " + ", ".join(f"{n} {s}" for s, n in sorted(mix.items())) +
              f"; the buyer suspends every lot {timing.suspend_at:g} s after the opening for "
              f"{timing.suspend_for:g} s\n\n")
    out.flush()


def _print_results(out: TextIO, results: dict[str, Any], board: Board) -> None:
    out.write(f"\nRESULTS of {results['auction_id']} (buyer's view after close: identities revealed)\n")
    for lot in results["lots"]:  # the person in the browser seat, if it placed a bid
        for line in lot["ranking"]:
            if line["bidder_id"] == SEAT_ID:
                board.strategy_of[line["pseudonym"]] = "browser"
    for lot in results["lots"]:
        out.write(f"  {lot['lot_id']} {lot['title']}\n")
        if lot["status"] == "awarded":
            out.write(f"    awarded to     {lot['winner_id']} ({lot['winner_pseudonym']}, "
                      f"{board.strategy_of.get(lot['winner_pseudonym'], '?')})\n"
                      f"    awarded price  {money(edge_money(lot['awarded_price']))} MAD "
                      f"(estimate {money(edge_money(lot['estimate']))}, starting "
                      f"{money(edge_money(lot['starting_price']))})\n"
                      f"    savings        {money(edge_money(lot['savings']))} MAD ({lot['savings_percent']} %)\n")
        else:
            out.write(f"    unsuccessful   {lot['reason']}\n")
        closed = clock_text(parse_instant(lot["closed_at"])) if lot["closed_at"] else "-"
        out.write(f"    bids           {lot['bids']} accepted, {lot['rejected_bids']} rejected; "
                  f"{lot['extensions']} extension(s); closed {closed} UTC ({lot['close_reason']})\n")
        for line in lot["ranking"][:3]:
            who = f"{line['bidder_id']} ({board.strategy_of.get(line['pseudonym'], '?')})"
            price = money(edge_money(line["price"]))
            out.write(f"      {line['rank']:>2}. {line['pseudonym']}  {who:<38} {price:>15}\n")
        if len(lot["ranking"]) > 3:
            out.write(f"      ... {len(lot['ranking']) - 3} more\n")
    out.write(f"  TOTAL awarded {money(edge_money(results['awarded_total']))} MAD against estimates of "
              f"{money(edge_money(results['awarded_estimate']))} MAD: SAVINGS "
              f"{money(edge_money(results['savings']))} MAD ({results['savings_percent']} %)\n")
    rejected = ", ".join(f"{code} {n}" for code, n in board.rejections.most_common()) or "none"
    out.write(f"  bots: {board.sent} bids sent, {board.accepted} accepted, rejected: {rejected}\n")
    out.flush()


def _tool(name: str) -> str:
    """How to run one of our console scripts: the one beside this Python (a venv) if any."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def run_demo(*, data_dir: str | None, bidders: int, seconds: float, seed: int | None, stay: bool = False) -> int:
    """Run the whole demo; 0 only if every lot was awarded and the journal verifies."""
    from replay.verify import verify  # the auditors' code: imported late, as `auction-replay` would run it

    out = sys.stdout
    if not 2 <= bidders <= 1000 or not 4 <= seconds <= 3600:
        print("auction-engine demo: --bidders must be 2 to 1000 and --seconds 4 to 3600", file=sys.stderr)
        return 2
    seed = secrets.randbelow(1 << 31) if seed is None else seed
    if data_dir and Path(data_dir).exists() and not Path(data_dir).is_dir():
        print(f"auction-engine demo: --data-dir {data_dir}: not a directory", file=sys.stderr)
        return 2
    directory = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="auction-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    timing = Timing.of(seconds)
    tty = out.isatty() and os.environ.get("TERM") != "dumb"
    out.write(f"auction-engine demo: {bidders} bots, {seconds:g} s, seed {seed}; data dir {directory} "
              f"(kept; service logs in {directory / LOG_FILE})\n")
    began = time.perf_counter()
    with open(directory / LOG_FILE, "a", encoding="utf-8") as log_stream:
        configure_logging("info", stream=log_stream)
        try:
            outcome = trio.run(_main, directory, bidders, timing, random.Random(seed), out, tty, stay)
        except KeyboardInterrupt:
            outcome = Outcome(interrupted=True)
        finally:
            configure_logging("warning")  # the file closes: back to standard error
    if outcome.interrupted:
        out.write("\ninterrupted: the service stopped; lots still open stay open in the journal\n")
    elif outcome.problem:
        out.write(f"\ndemo FAILED: {outcome.problem}\n")
    journal = directory / "journal"
    checked = verify(journal)
    if checked.ok:
        out.write(f"\nauction-replay verify: OK, {checked.records} records, state {checked.state_hash[:16]}\n")
    else:
        out.write(f"\nauction-replay verify: FAILED: {checked.problem or checked.torn}\n")
    out.write(f"  re-verify:   {_tool('auction-replay')} verify {journal}\n")
    if outcome.auction_id:
        out.write(f"  HTML report: {_tool('auction-replay')} report {journal} --auction {outcome.auction_id} "
                  f"-o report.html --reveal\n")
    out.write(f"demo took {time.perf_counter() - began:.1f} s"
              + (f"; the auction was open {outcome.auction_seconds:.1f} s ({timing.seconds:g} s scheduled, "
                 f"{timing.suspend_for:g} s suspended, the rest extensions and the stagger)\n"
                 if outcome.auction_seconds else "\n"))
    out.flush()
    results = outcome.results
    awarded = results is not None and all(lot["status"] == "awarded" for lot in results["lots"])
    return 0 if awarded and checked.ok and not outcome.interrupted else 1

