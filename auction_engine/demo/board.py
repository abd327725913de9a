"""The demo's terminal display, driven by what the buyer's observer receives in the room.

On a terminal, a scrolling log of notable events under a status block redrawn in place
(ANSI); otherwise (logs, CI) plain lines and a status line every few seconds.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from dataclasses import dataclass
from typing import Any, TextIO

import trio

from auction_engine.money import parse_amount
from auction_engine.timeutil import parse_instant

from .plan import (
    LOTS,
    MAX_EXTENSIONS,
    REFRESH,
    Timing,
    clock_text,
    edge_money,
    money,
    now_us,
)

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

