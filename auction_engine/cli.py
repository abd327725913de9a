"""The `auction-engine` command line: `serve` the service, run the `demo`, `simulate` a
scripted auction, `recover` or `repair` a journal.

Exit codes: 0 success; 2 unreadable or invalid input or settings (every problem listed on
stderr); 3 the journal could not be written (or Redis could not be reached at start); 4 `recover` (or
`serve`) found a damaged journal (or stream); 5 `serve --redis` refused Redis: it cannot promise
durability (`not_durable`, `too_few_replicas`, `config_unreadable`: see `--redis-unsafe`) or
another engine keeps holding a case (`held`); 6 `serve --role engine` lost its cases to another
engine while it was paused (`lost`: restart it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import ConfigError
from .edge import event_to_dict, results_to_dict
from .events import BidRejected, CommandRejected, LotExtended
from .host import Host
from .journal import JournalCorruption, Journaled, Position, SegmentStore, recover, repair
from .journal.recovery import SIDE_SUFFIX
from .money import format_amount
from .ranking import AuctionResults
from .scenario import Run, load_scenario, run_scenario
from .scenario_grouped import KIND, simulate_grouped
from .tender_scenario import (
    TenderScenario,
    load_tender_scenario,
    render_tender_table,
    run_tender_scenario,
    tender_summary,
)
from .timeutil import format_instant

EXIT_INPUT = 2
EXIT_IO = 3
EXIT_DAMAGED = 4
EXIT_REDIS = 5  # serve --redis: Redis cannot promise durability, or a case stays held by another engine
EXIT_LOST = 6  # serve --role engine: another engine took this one's cases while it was paused: restart it
REDIS_REFUSALS = frozenset({"not_durable", "too_few_replicas", "config_unreadable", "held", "bad_namespace"})


def write_journal(directory: Path, frames: Sequence[bytes]) -> None:
    """Write records as an engine would, fsynced, into a new journal directory."""
    directory.mkdir(parents=True, exist_ok=True)
    store = SegmentStore(directory, Position(0, 0, 1))
    try:
        store.append(list(frames))
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `auction-engine` console script."""
    parser = argparse.ArgumentParser(prog="auction-engine", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sim = commands.add_parser("simulate", help="run a scenario (docs/scenario-format.md) and print its results")
    sim.add_argument("scenario", help="scenario JSON file, or - for standard input")
    sim.add_argument("--table", action="store_true", help="print a readable table instead of JSON")
    sim.add_argument("--events", action="store_true", help="include every event in the JSON output")
    sim.add_argument("--anonymous", action="store_true", help="results with pseudonyms only, no bidder ids")
    sim.add_argument("--journal", metavar="DIR",
                     help="also write the auction's journal to DIR (new or empty), for auction-replay")
    rec = commands.add_parser("recover", help="check a journal directory as a restart would, and cut a torn tail")
    rec.add_argument("directory")
    fix = commands.add_parser("repair", help="keep a damaged journal's sound prefix; move the rest to .discarded files")
    fix.add_argument("directory")
    srv = commands.add_parser("serve", help="run the service: auction room, portal RPC, metrics (docs/operations.md)")
    srv.add_argument("--config", metavar="FILE", help="settings file (.toml or .json); see docs/operations.md")
    srv.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port to listen on (default 8080; 0 for any free port)")
    srv.add_argument("--data-dir", metavar="DIR", help="journal and secrets directory (default ./data)")
    srv.add_argument("--durability", choices=("fsync", "none"), help="fsync (default) or none (tests only)")
    srv.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    srv.add_argument("--redis", metavar="URL", help="journal of record in Redis (redis://host:port/db), not files")
    srv.add_argument("--redis-namespace", metavar="NAME", help="the key namespace in Redis (default ae)")
    srv.add_argument("--redis-unsafe", action="store_true", default=None,
                     help="run on a Redis that cannot promise durability (tests, comparisons only)")
    srv.add_argument("--redis-follow", choices=("all", "served"),
                     help="with --role gateway: all cases (default; serves the RPC) or only those its rooms serve")
    srv.add_argument("--role", choices=("both", "engine", "gateway"),
                     help="with --redis: both (one process, every case; default), engine (owns its share of "
                          "the cases) or gateway (rooms and RPC, commands forwarded to the engines)")
    demo = commands.add_parser("demo", help="serve, create a 2-lot auction over the RPC, run bot bidders, audit it")
    demo.add_argument("--data-dir", metavar="DIR", help="where the demo's journal goes (default: a new temp dir)")
    demo.add_argument("--bidders", type=int, default=12, help="bot bidders (default 12)")
    demo.add_argument("--seconds", type=float, default=40.0, help="scheduled length of the auction (default 40)")
    demo.add_argument("--seed", type=int, default=None, help="seed of the bots' randomness")
    demo.add_argument("--stay", action="store_true",
                      help="keep the service (and the web room pages) up after the results, until Ctrl-C")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        from .demo import run_demo  # imported late: the demo runs the gateway, which `simulate` never needs

        return run_demo(data_dir=args.data_dir, bidders=args.bidders, seconds=args.seconds, seed=args.seed,
                        stay=args.stay)
    if args.command == "recover":
        return _recover(args.directory)
    if args.command == "repair":
        return _repair(args.directory)
    return _simulate(args)


def _serve(args: argparse.Namespace) -> int:
    from gateway.app import run
    from gateway.settings import SettingsError, load_settings

    from .cluster.layout import ClusterError  # (layout only: coredis loads with `--redis` alone)

    overrides = {"host": args.host, "port": args.port, "data_dir": args.data_dir, "durability": args.durability,
                 "log_level": args.log_level, "redis_url": args.redis, "redis_namespace": args.redis_namespace,
                 "redis_unsafe": args.redis_unsafe, "redis_role": args.role,
                 "redis_follow": args.redis_follow}
    try:
        settings = load_settings(args.config, overrides=overrides)
    except SettingsError as exc:
        print(f"auction-engine serve: {exc.code}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        run(settings)
    except (JournalCorruption, OSError, BaseExceptionGroup, ClusterError) as raised:
        failure = _alone(raised)  # a start failure comes out of the service's nurseries
        if isinstance(failure, ClusterError):
            print(f"auction-engine serve: Redis: {failure}", file=sys.stderr)
            if failure.code == "unreachable":
                return EXIT_IO
            if failure.code == "lost":
                return EXIT_LOST
            return EXIT_REDIS if failure.code in REDIS_REFUSALS else EXIT_DAMAGED
        if isinstance(failure, JournalCorruption):
            print(f"auction-engine serve: the journal is damaged: {failure}; see `auction-engine repair`",
                  file=sys.stderr)
            return EXIT_DAMAGED
        if isinstance(failure, OSError):
            print(f"auction-engine serve: {failure}", file=sys.stderr)
            return EXIT_IO
        raise
    return 0


def _alone(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (else `exc` itself)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _recover(directory: str) -> int:
    if not Path(directory).is_dir():
        print(f"auction-engine: {directory}: not a directory", file=sys.stderr)
        return EXIT_INPUT
    try:
        _journaled, report = recover(directory)
    except JournalCorruption as exc:
        print(f"auction-engine: the journal is damaged, the engine would not start: {exc}\n"
              f"  (after investigation, `auction-engine repair {directory}` keeps what precedes the damage)",
              file=sys.stderr)
        return EXIT_DAMAGED
    print(report.summary())
    return 0


def _repair(directory: str) -> int:
    if not Path(directory).is_dir():
        print(f"auction-engine: {directory}: not a directory", file=sys.stderr)
        return EXIT_INPUT
    damage = repair(directory)
    if damage is None:
        print(f"{directory}: the journal is sound; nothing changed")
        return 0
    print(f"{directory}: repaired: {damage}\n  everything from there on was moved to *{SIDE_SUFFIX} files")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    try:
        with (sys.stdin if args.scenario == "-" else open(args.scenario, encoding="utf-8")) as handle:
            data = json.load(handle)
        if isinstance(data, dict) and data.get("kind") == KIND:  # a grouped purchase (scenario_grouped.py)
            return simulate_grouped(data, args)
        if isinstance(data, dict) and "tender" in data:
            return _simulate_tender(args, load_tender_scenario(data))
        scenario = load_scenario(data)
    except OSError as exc:
        print(f"auction-engine: cannot read {args.scenario}: {exc.strerror}", file=sys.stderr)
        return EXIT_INPUT
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        print(f"auction-engine: {args.scenario} is not valid JSON: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ConfigError as exc:
        print(f"auction-engine: invalid scenario {args.scenario}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    usable, journal_dir = _journal_dir(args)
    if not usable:
        return EXIT_INPUT
    run = run_scenario(scenario, journal=Journaled() if journal_dir else None)
    if journal_dir and not _write_journal(journal_dir, run.frames):
        return EXIT_IO
    results = run.results
    if args.anonymous and run.results.final:
        results = run.engine.results(scenario.config.auction_id, reveal=False)
    if args.table:
        print(render_table(run, results))
    else:
        print(json.dumps(summary(run, results, with_events=args.events), indent=2, ensure_ascii=False))
    return 0


def _journal_dir(args: argparse.Namespace) -> tuple[bool, Path | None]:
    """`--journal`'s directory (None without it); False (said on stderr) if not new or empty."""
    journal_dir = Path(args.journal) if args.journal else None
    if journal_dir is not None and journal_dir.exists() and (not journal_dir.is_dir() or any(journal_dir.iterdir())):
        print(f"auction-engine: --journal {journal_dir}: must be a new or empty directory", file=sys.stderr)
        return False, None
    return True, journal_dir


def _write_journal(journal_dir: Path, frames: Sequence[bytes]) -> bool:
    try:
        write_journal(journal_dir, frames)
    except OSError as exc:
        print(f"auction-engine: cannot write the journal to {journal_dir}: {exc}", file=sys.stderr)
        return False
    return True


def _simulate_tender(args: argparse.Namespace, scenario: TenderScenario) -> int:
    """A tender scenario: its run as JSON (or `--table`), its journal with `--journal`."""
    usable, journal_dir = _journal_dir(args)
    if not usable:
        return EXIT_INPUT
    run = run_tender_scenario(scenario, journal=Journaled() if journal_dir else None)
    if journal_dir and not _write_journal(journal_dir, run.frames):
        return EXIT_IO
    if args.table:
        print(render_tender_table(run))
    else:
        print(json.dumps(tender_summary(run, with_events=args.events), indent=2, ensure_ascii=False))
    return 0


def summary(run: Run, results: AuctionResults, *, with_events: bool = False) -> dict[str, Any]:
    """The JSON output of `simulate`."""
    decimals = results.decimals
    out: dict[str, Any] = {
        "auction_id": results.auction_id,
        "state_hash": Host([run.engine]).state_hash(),
        "commands": len(run.commands),
        "events_by_type": dict(Counter(type(e).__name__ for e in run.events)),
        "bid_rejections": dict(Counter(e.code for e in run.events if isinstance(e, BidRejected))),
        "refused_commands": [event_to_dict(e, decimals) for e in run.events if isinstance(e, CommandRejected)],
        "results": results_to_dict(results),
    }
    if with_events:
        out["events"] = [event_to_dict(e, decimals) for e in run.events]
    return out


def render_table(run: Run, results: AuctionResults) -> str:
    """A readable report: one block per lot, with its extensions and final ranking."""
    def money(minor: int | None) -> str:
        return "-" if minor is None else f"{format_amount(minor, results.decimals)} {results.currency}"

    lines = [f"{results.auction_id}  {results.title}", ""]
    for lot in results.lots:
        extensions = [e for e in run.events if isinstance(e, LotExtended) and e.lot_id == lot.lot_id]
        lines += [
            f"Lot {lot.lot_id}  {lot.title}",
            f"  status          {lot.status}{f' ({lot.reason})' if lot.reason else ''}",
            f"  winner          {lot.winner_id or lot.winner_pseudonym or '-'}",
            f"  awarded price   {money(lot.awarded_price)}   (starting {money(lot.starting_price)},"
            f" estimate {money(lot.estimate)})",
            f"  savings         {money(lot.savings)}{f' ({lot.savings_percent} %)' if lot.savings_percent else ''}",
            f"  bids            {lot.bids} accepted, {lot.rejected_bids} rejected",
            f"  closed          {format_instant(lot.closed_at) if lot.closed_at else '-'}"
            f" ({lot.close_reason or 'open'}) after {lot.extensions} extension(s)",
        ]
        for ext in extensions:
            lines.append(f"    extended at {format_instant(ext.time)} to {format_instant(ext.close_at)}")
        lines.append("  ranking")
        for line in lot.ranking:
            who = f"{line.pseudonym} {line.bidder_id}" if line.bidder_id else line.pseudonym
            lines.append(f"    {line.rank:>3}. {who:<28} {money(line.price):>22}   {format_instant(line.time)}")
        lines.append("")
    lines.append(
        f"Total awarded {money(results.awarded_total)} against estimates of {money(results.awarded_estimate)}: "
        f"savings {money(results.savings)} ({results.savings_percent} %)"
    )
    lines.append(f"state hash {Host([run.engine]).state_hash()}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
