"""A whole grouped purchase as a scenario for `auction-engine simulate` (`"kind":
"grouped_purchase"`, docs/scenario-format.md): constitution, needs, the BPDE, the reverse
auction with bot bidders, the member contracts at its award, deliveries and payments.

`load_grouped(data)` validates the JSON form (one `ConfigError` listing every problem);
`run_grouped(scenario)` runs its steps in time order through one `Journaled` host (so
`--journal` writes a journal `auction-replay verify` re-executes), ticking every deadline
on the way, and records each ended auction lot in the collective as the service does
(gateway/collective_awards.py). Amounts are decimal strings with 2 decimals.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    CollectiveRefused,
    Collectives,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    GenerateSchedule,
    LaunchProcurement,
    RecordDelivery,
    RecordLotAward,
    RecordLotUnsuccessful,
    RecordPayment,
    RecordReceipt,
    WithdrawNeed,
    consolidation,
)
from grouped_purchases.procurement import EDGE_DECIMALS, auction_for, open_lots

from .commands import CreateAuction, PlaceBid, Tick
from .config import AuctionConfig, ConfigError
from .edge import results_to_dict
from .events import BidRejected, CommandRejected, LotAwarded, LotUnsuccessful
from .journal.sequencer import Journaled
from .money import MoneyError, format_amount, parse_amount
from .ranking import lot_result
from .timeutil import TimeFormatError, format_instant, parse_duration, parse_instant

KIND = "grouped_purchase"
# act -> (required fields, optional fields), besides "at" and "act"
ACTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "accept": (frozenset({"member"}), frozenset()),
    "need": (frozenset({"member", "article", "quantity", "place"}), frozenset()),
    "withdraw": (frozenset({"member", "article"}), frozenset()),
    "confirm": (frozenset({"member"}), frozenset()),
    "schedule": (frozenset(), frozenset()),
    "launch": (frozenset({"procurement_id", "start", "end"}), frozenset({
        "title", "currency", "stagger", "bidders", "min_bidders", "visibility", "rules", "extension",
        "starting_prices"})),
    "bots": (frozenset({"procurement_id", "floors", "step", "every"}), frozenset()),
    "deliver": (frozenset({"actor", "contract", "article", "quantity"}), frozenset({"allow_over"})),
    "receive": (frozenset({"actor", "contract", "article", "quantity"}), frozenset({"rejected", "reason"})),
    "pay": (frozenset({"actor", "contract", "amount"}), frozenset({"allow_over"})),
}
_COLLECTIVE = frozenset({"collective_id", "coordinator", "members", "convention", "created_at", "needs_deadline"})
_ARTICLE = frozenset({"code", "description", "unit", "unit_price", "lot"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    at: int
    act: str
    fields: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupedScenario:
    create: CreateCollective
    articles: tuple[AddArticle, ...]
    steps: tuple[Step, ...]  # by time, then file order


@dataclass(kw_only=True, slots=True)
class GroupedRun:
    journaled: Journaled = field(default_factory=Journaled)
    commands: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)


def _time(value: object, base: int) -> int:
    """ISO-8601, or ``+duration`` from the collective's creation."""
    if isinstance(value, str) and value.startswith("+"):
        return base + parse_duration(value[1:])
    return parse_instant(value)


def _minor(value: object) -> int:
    return parse_amount(value, EDGE_DECIMALS)


def load_grouped(data: Mapping[str, Any]) -> GroupedScenario:
    """Validate the JSON form; raise `ConfigError` with every problem and its path."""
    problems: list[tuple[str, str]] = []
    problems += [(str(k), "unknown field") for k in data if k not in ("kind", "collective", "articles", "steps")]
    raw = data.get("collective")
    if not isinstance(raw, Mapping) or not set(raw) >= _COLLECTIVE:
        raise ConfigError([*problems, ("collective", f"must be an object with {', '.join(sorted(_COLLECTIVE))}")])
    problems += [(f"collective.{k}", "unknown field") for k in raw if k not in _COLLECTIVE]
    created = 0
    try:
        created = parse_instant(raw["created_at"])
        deadline = _time(raw["needs_deadline"], created)
    except TimeFormatError as exc:
        problems.append(("collective.created_at/needs_deadline", str(exc)))
        deadline = 0
    convention = hashlib.sha256(str(raw["convention"]).encode()).hexdigest()
    members = raw["members"]
    create = CreateCollective(created, raw["collective_id"], raw["coordinator"],
                              tuple(members) if isinstance(members, list) else members, convention, deadline)
    articles = []
    for i, a in enumerate(data.get("articles") or []):
        if not isinstance(a, Mapping) or not _ARTICLE - {"lot"} <= set(a) or not set(a) <= _ARTICLE:
            problems.append((f"articles[{i}]", f"must be an object with {', '.join(sorted(_ARTICLE))} (lot optional)"))
            continue
        try:
            price = _minor(a["unit_price"])
        except MoneyError as exc:
            problems.append((f"articles[{i}].unit_price", str(exc)))
            continue
        articles.append(AddArticle(created, create.collective_id, create.coordinator, a["code"], a["description"],
                                   a["unit"], price, a.get("lot", "L1")))
    steps: list[tuple[int, int, Step]] = []
    raw_steps = data.get("steps")
    for i, step in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        path = f"steps[{i}]"
        act = step.get("act") if isinstance(step, Mapping) else None
        if act not in ACTS:
            problems.append((f"{path}.act", f"must be one of {', '.join(ACTS)}"))
            continue
        assert isinstance(step, Mapping)
        required, optional = ACTS[act]
        given = set(step) - {"at", "act"}
        problems += [(f"{path}.{k}", "required") for k in sorted(required - given)]
        problems += [(f"{path}.{k}", f"unknown field for {act}") for k in sorted(given - required - optional)]
        try:
            at = _time(step.get("at"), created)
        except TimeFormatError as exc:
            problems.append((f"{path}.at", str(exc)))
            continue
        if at < created:
            problems.append((f"{path}.at", "is before the collective is created"))
        problems += [(f"{path}.{k}", m) for k, m in _values(act, step)]
        steps.append((at, i, Step(at=at, act=act, fields={k: step[k] for k in given})))
    if not isinstance(raw_steps, list):
        problems.append(("steps", "must be a list"))
    if problems:
        raise ConfigError(problems)
    steps.sort(key=lambda s: (s[0], s[1]))
    return GroupedScenario(create=create, articles=tuple(articles), steps=tuple(s for _, _, s in steps))


MAX_BOT_BIDS = 10_000  # per bots step: a floor far below the start with a tiny step is a mistake


def _positive(value: object) -> int:
    amount = _minor(value)
    if amount <= 0:
        raise ValueError("must be above zero")
    return amount


def _values(act: str, step: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The problems of a step's amounts, durations and times (checked before running)."""
    checks: list[tuple[str, object, Any]] = []  # (field, value, parser)
    if act == "pay":
        checks.append(("amount", step.get("amount"), _positive))
    if act == "launch":
        checks += [(k, step.get(k), lambda v: _time(v, 0)) for k in ("start", "end")]
    if act == "bots":
        floors = step.get("floors")
        checks += [("step", step.get("step"), _positive), ("every", step.get("every"), parse_duration)]
        if not isinstance(floors, Mapping) or not all(isinstance(lots, Mapping) for lots in floors.values()):
            return [*_run_checks(checks), ("floors", "must map each bidder to {lot: floor price}")]
        checks += [(f"floors.{b}.{lot}", p, _positive) for b, lots in floors.items() for lot, p in lots.items()]
    return _run_checks(checks)


def _run_checks(checks: list[tuple[str, object, Any]]) -> list[tuple[str, str]]:
    out = []
    for name, value, parse in checks:
        try:
            parse(value)
        except ValueError as exc:  # MoneyError and TimeFormatError are ValueErrors
            out.append((name, str(exc)))
    return out


def run_grouped(scenario: GroupedScenario) -> GroupedRun:
    """Run every step in time order (deadlines ticked on the way), then every deadline
    left; an ended auction lot is recorded in the collective at once. A step whose auction
    configuration is invalid raises `ConfigError`."""
    run = GroupedRun()
    host = run.journaled.host
    cid = scenario.create.collective_id
    kind = host.kind(Collectives)

    def submit(command: Any) -> None:
        submission = run.journaled.submit(command)
        run.commands.append(command)
        run.events.extend(submission.events)
        run.frames.extend(submission.frames)
        c = kind.collectives.get(cid)
        for event in submission.events:
            if isinstance(event, LotAwarded | LotUnsuccessful) and c is not None and event.auction_id in c.procurements:
                if c.lots.get(event.lot_id) != ("pending", event.auction_id):
                    continue
                auction = run.journaled.engine.auction(event.auction_id)
                result = lot_result(auction, auction.lots[event.lot_id], reveal=True)
                now = command.now
                if result.winner_id is not None and result.awarded_price is not None:
                    submit(RecordLotAward(now, cid, c.coordinator, event.auction_id, event.lot_id, result.winner_id,
                                          result.awarded_price))
                else:
                    submit(RecordLotUnsuccessful(now, cid, c.coordinator, event.auction_id, event.lot_id))

    def advance(until: int | None) -> None:
        while (deadline := host.next_deadline()) is not None and (until is None or deadline <= until):
            submit(Tick(deadline))

    submit(scenario.create)
    for article in scenario.articles:
        submit(article)
    queue: list[tuple[int, int, Any]] = []  # commands the steps made (bots bid over time), by time
    steps = list(scenario.steps)
    order = itertools.count()
    while steps or queue:
        if queue and (not steps or queue[0][0] <= steps[0].at):  # made earlier: first at the same time
            at, _, command = heapq.heappop(queue)
            advance(at)
            submit(command)
            continue
        step = steps.pop(0)
        advance(step.at)
        for command in _commands(step, cid, kind, run.journaled):
            heapq.heappush(queue, (command.now, next(order), command))
    advance(None)
    return run


def _commands(step: Step, cid: str, kind: Collectives, journaled: Journaled) -> list[Any]:
    f, at = step.fields, step.at
    c = kind.collectives.get(cid)
    coordinator = c.coordinator if c is not None else ""
    convention = c.convention_hash if c is not None else ""
    simple: dict[str, Callable[[], Any]] = {
              "accept": lambda: AcceptConvention(at, cid, f["member"], convention),
              "need": lambda: DeclareNeed(at, cid, f["member"], f["article"], f["quantity"], f["place"]),
              "withdraw": lambda: WithdrawNeed(at, cid, f["member"], f["article"]),
              "confirm": lambda: ConfirmNeeds(at, cid, f["member"]),
              "schedule": lambda: GenerateSchedule(at, cid, coordinator),
              "deliver": lambda: RecordDelivery(at, cid, f["actor"], f["contract"], f["article"], f["quantity"],
                                                f.get("allow_over", False)),
              "receive": lambda: RecordReceipt(at, cid, f["actor"], f["contract"], f["article"], f["quantity"],
                                               f.get("rejected", 0), f.get("reason", "")),
              "pay": lambda: RecordPayment(at, cid, f["actor"], f["contract"], _minor(f["amount"]),
                                           f.get("allow_over", False))}
    if step.act in simple:
        return [simple[step.act]()]
    if c is None or not c.schedules:
        raise ConfigError([(f"{step.act} at {format_instant(at)}", "no schedule to procure yet")])
    if step.act == "launch":  # start and end: ISO-8601 or +duration from the launch
        launch = {**f, "start": format_instant(_time(f["start"], at)), "end": format_instant(_time(f["end"], at))}
        body = auction_for(cid, c.schedules[-1], open_lots(c, c.schedules[-1]), launch)
        secret = hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()  # reproducible dry runs
        config = AuctionConfig.from_dict(body, default_secret=secret)
        return [LaunchProcurement(at, cid, coordinator, f["procurement_id"], len(c.schedules)),
                CreateAuction(at, config)]
    return _bots(step, journaled)


def _bots(step: Step, journaled: Journaled) -> list[Any]:
    """Bidders undercutting the best price in turn by `step` (the leader waits), one bid
    every `every`, each down to its floor (per lot), lot after lot; deterministic."""
    f = step.fields
    auction = journaled.engine.auction(f["procurement_id"])
    every, decrement = parse_duration(f["every"]), _minor(f["step"])
    floors = {bidder: {lot: _minor(p) for lot, p in lots.items()} for bidder, lots in f["floors"].items()}
    bids: list[Any] = []
    at = step.at
    for lot_id, lot in auction.lots.items():
        best = lot.config.starting_price + decrement  # the first bid is at the starting price
        leader = None
        moved = True
        while moved:
            moved = False
            for bidder, own in floors.items():
                if bidder == leader or lot_id not in own or best - decrement < own[lot_id]:
                    continue
                best, leader = best - decrement, bidder
                if len(bids) == MAX_BOT_BIDS:
                    raise ConfigError([("bots", f"more than {MAX_BOT_BIDS} bids: raise the step or the floors")])
                bids.append(PlaceBid(at, auction.config.auction_id, lot_id, bidder, best, f"bot-{len(bids) + 1}"))
                at += every
                moved = True
    return bids


def grouped_summary(run: GroupedRun, cid: str) -> dict[str, Any]:
    """The JSON output of `simulate` for a grouped purchase."""
    host = run.journaled.host
    c = host.kind(Collectives).collectives[cid]

    def money(minor: int) -> str:
        return format_amount(minor, EDGE_DECIMALS)

    refused = [{"command": e.command, "actor": e.actor, "code": e.code, "message": e.message}
               for e in run.events if type(e) is CollectiveRefused]
    refused += [{"command": "auction", "actor": "", "code": e.code, "message": ""}
                for e in run.events if isinstance(e, CommandRejected | BidRejected)]
    view = consolidation(c, c.coordinator)
    latest = c.schedules[-1] if c.schedules else None
    return {
        "collective_id": cid, "state_hash": host.state_hash(), "commands": len(run.commands),
        "events_by_type": dict(Counter(type(e).__name__ for e in run.events)), "refused": refused,
        "excluded": list(c.excluded),
        "schedule": None if latest is None else {"version": latest.version, "final": latest.final,
                                                 "digest": latest.digest, "total": money(latest.total)},
        "auctions": [results_to_dict(run.journaled.engine.results(pid, reveal=run.journaled.engine.auction(
            pid).finished)) for pid in c.procurements if pid in run.journaled.engine.auction_ids()],
        "contracts": [{"contract_id": k, "member": v.member, "supplier": v.supplier, "total": money(v.total),
                       "paid": money(v.paid), "delivered": dict(sorted(v.delivered.items())),
                       "received": dict(sorted(v.received.items())), "rejected": dict(sorted(v.rejected.items()))}
                      for k, v in sorted(c.contracts.items())],
        "consolidation": {"articles": [p._asdict() for p in view.articles],
                          "members": [{**p._asdict(), "amount": money(p.amount), "paid": money(p.paid),
                                       "outstanding": money(p.outstanding)} for p in view.members]},
    }


def simulate_grouped(data: Mapping[str, Any], args: Any) -> int:
    """`auction-engine simulate` of a grouped purchase: print the summary as JSON; with
    `--journal DIR`, also write the journal. `ConfigError` for an invalid scenario."""
    from .cli import EXIT_INPUT, EXIT_IO, write_journal  # the CLI imports this module first

    scenario = load_grouped(data)
    journal_dir = Path(args.journal) if args.journal else None
    if journal_dir is not None and journal_dir.exists() and (not journal_dir.is_dir() or any(journal_dir.iterdir())):
        print(f"auction-engine: --journal {journal_dir}: must be a new or empty directory", file=sys.stderr)
        return EXIT_INPUT
    run = run_grouped(scenario)
    if journal_dir is not None:
        try:
            write_journal(journal_dir, run.frames)
        except OSError as exc:
            print(f"auction-engine: cannot write the journal to {journal_dir}: {exc}", file=sys.stderr)
            return EXIT_IO
    print(json.dumps(grouped_summary(run, scenario.create.collective_id), indent=2, ensure_ascii=False))
    return 0
