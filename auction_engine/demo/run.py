"""`auction-engine demo`, the run: serve in-process, create the auction over the RPC, run the
bots and the display until every lot has ended, print the award and the savings, then
verify the journal written. `run_demo` returns the command's exit code.
"""

from __future__ import annotations

import os
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import trio

from auction_engine.timeutil import parse_instant
from gateway.app import serve
from gateway.client import Room, RpcClient, RpcError
from gateway.logs import configure_logging
from gateway.service import Service
from gateway.settings import ApiKey, Settings

from .board import Board
from .bots import Bot, make_bots
from .plan import (
    LOG_FILE,
    RESULTS_WAIT,
    SUBPROTOCOLS,
    Timing,
    auction_config,
    clock_text,
    edge_money,
    money,
    now_us,
    us,
)
from .seat import SEAT_ID, open_seat, stay_open

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
