"""The demo's plan: the auction it creates, its lots and bots' parameters, and every timing.

`Timing.of(seconds)` scales every duration of the demo with the scheduled length (a short
run still has last-second bids that extend the close); `auction_config` is the body of the
POST /auctions that creates the 2-lot supply auction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auction_engine.money import format_amount, parse_amount
from auction_engine.timeutil import format_duration, format_instant

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

