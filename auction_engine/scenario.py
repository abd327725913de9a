"""Scripted auctions: a configuration and timed actions, run through the core.

`load_scenario` reads the JSON form (docs/scenario-format.md) and raises one
`ConfigError` listing every problem; `run_scenario` feeds it to an `Engine`, lets every
lot run to its end, and returns the commands, the events and the results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .commands import AdmitBidder, Cancel, Command, CreateAuction, PlaceBid, Resume, RevokeBidder, Suspend, Tick
from .config import AuctionConfig, ConfigError
from .engine import Engine
from .events import Event
from .journal.sequencer import Journaled
from .money import MoneyError, parse_amount
from .ranking import AuctionResults
from .timeutil import TimeFormatError, parse_duration, parse_instant

# action name -> (required fields, optional fields)
_ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "bid": (frozenset({"bidder", "lot", "amount"}), frozenset()),
    "admit": (frozenset({"bidder"}), frozenset()),
    "revoke": (frozenset({"bidder"}), frozenset({"reason"})),
    "suspend": (frozenset(), frozenset({"lot", "reason"})),
    "resume": (frozenset(), frozenset({"lot"})),
    "cancel": (frozenset(), frozenset({"lot", "reason"})),
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """A validated scenario: the configuration, when it is created, and timed commands."""

    config: AuctionConfig
    created_at: int
    commands: tuple[Command, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """What a scenario produced: every command handled (ticks included) and its events."""

    engine: Engine
    commands: tuple[Command, ...]
    events: tuple[Event, ...]
    results: AuctionResults
    frames: tuple[bytes, ...] = ()  # the journal records, when run through a `Journaled`


def _at(value: object, start: int) -> int:
    """An action time: ISO-8601, or ``+duration`` / ``-duration`` from the auction's start."""
    if isinstance(value, str) and value[:1] in "+-" and value:
        offset = parse_duration(value[1:])
        return start + offset if value[0] == "+" else start - offset
    return parse_instant(value)


def load_scenario(data: object) -> Scenario:
    """Validate a scenario's JSON form; raise `ConfigError` with every problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(data, Mapping):
        raise ConfigError([("(root)", "must be an object with 'auction' and 'actions'")])
    for key in data:
        if key not in ("auction", "created_at", "actions"):
            problems.append((str(key), "unknown field"))
    config: AuctionConfig | None = None
    raw = data.get("auction")
    secret = hashlib.sha256(repr(raw).encode()).hexdigest()  # reproducible runs, for dry runs only
    try:
        config = AuctionConfig.from_dict(raw, default_secret=secret)
    except ConfigError as exc:
        problems.extend((f"auction.{path}", message) for path, message in exc.problems)
    start = config.start if config else 0
    created_at = start
    if "created_at" in data:
        try:
            created_at = _at(data["created_at"], start)
        except TimeFormatError as exc:
            problems.append(("created_at", str(exc)))
    actions = data.get("actions", [])
    commands: list[tuple[int, int, Command]] = []
    if not isinstance(actions, list):
        problems.append(("actions", "must be a list"))
        actions = []
    for i, action in enumerate(actions):
        command = _action(action, f"actions[{i}]", start, config, problems)
        if command is not None:
            commands.append((command.now, i, command))
    for now, i, _ in commands:
        if now < created_at:
            problems.append((f"actions[{i}].at", "is before the auction is created (created_at)"))
    if problems or config is None:
        raise ConfigError(problems)
    commands.sort(key=lambda item: (item[0], item[1]))  # by time; file order breaks ties
    return Scenario(config=config, created_at=created_at, commands=tuple(c for _, _, c in commands))


def action_name(action: object, path: str, actions: Iterable[str], example: str,
                problems: list[tuple[str, str]]) -> str | None:
    """The one action a scenario step names besides its `at` (every scenario format's
    rule), or None once its problems are listed."""
    names = list(actions)
    if not isinstance(action, Mapping):
        problems.append((path, f"must be an object such as {example}"))
        return None
    for key in action:
        if key != "at" and key not in names:
            problems.append((f"{path}.{key}", f"unknown field (actions are: {', '.join(names)})"))
    found = [k for k in action if k in names]
    if len(found) != 1:
        problems.append((path, "must hold exactly one of " + ", ".join(names)))
        return None
    return str(found[0])


def _action(action: object, path: str, start: int, config: AuctionConfig | None,
            problems: list[tuple[str, str]]) -> Command | None:
    def fail(where: str, message: str) -> None:
        problems.append((f"{path}{where}", message))

    kind = action_name(action, path, _ACTIONS, '{"at": "+5m", "bid": {...}}', problems)
    if kind is None:
        return None
    assert isinstance(action, Mapping)
    try:
        now = _at(action.get("at"), start)
    except TimeFormatError as exc:
        fail(".at", f"{exc} (or '+duration' from the start)")
        return None
    body = action[kind]
    required, optional = _ACTIONS[kind]
    if not isinstance(body, Mapping):
        fail(f".{kind}", "must be an object")
        return None
    bad = [k for k in body if k not in required | optional] + [f"{k} (missing)" for k in required - set(body)]
    bad += [k for k in body if not isinstance(body[k], str)]
    if bad:
        fail(f".{kind}", f"fields must be strings, with {sorted(required)} required: check {', '.join(bad)}")
        return None
    if config is None:
        return None
    aid = config.auction_id
    if kind == "bid":
        return PlaceBid(now, aid, body["lot"], body["bidder"], _amount(body["amount"], config.decimals))
    if kind == "admit":
        return AdmitBidder(now, aid, body["bidder"])
    if kind == "revoke":
        return RevokeBidder(now, aid, body["bidder"], body.get("reason", ""))
    if kind == "suspend":
        return Suspend(now, aid, body.get("lot"), body.get("reason", ""))
    if kind == "resume":
        return Resume(now, aid, body.get("lot"))
    return Cancel(now, aid, body.get("lot"), body.get("reason", ""))


def _amount(text: str, decimals: int) -> Any:
    """Minor units; an unreadable amount goes to the core as sent, which rejects it
    with `invalid_amount` as the gateway would."""
    try:
        return parse_amount(text, decimals)
    except MoneyError:
        return text


def run_scenario(scenario: Scenario, engine: Engine | None = None, journal: Journaled | None = None) -> Run:
    """Run every action, then tick through every remaining deadline until all lots end.
    With a `journal`, commands go through it (its engine is used) and `frames` holds the
    records it produced."""
    if journal is not None:
        engine = journal.engine
    engine = engine or Engine()
    handled: list[Command] = []
    events: list[Event] = []
    frames: list[bytes] = []

    def handle(command: Command) -> None:
        handled.append(command)
        if journal is None:
            events.extend(engine.handle(command))
        else:
            submission = journal.submit(command)
            events.extend(submission.events)
            frames.extend(submission.frames)

    handle(CreateAuction(scenario.created_at, scenario.config))
    for command in scenario.commands:
        handle(command)
    while (deadline := engine.next_deadline()) is not None:
        handle(Tick(deadline))
    aid = scenario.config.auction_id
    results = engine.results(aid, reveal=engine.auction(aid).finished)
    return Run(engine=engine, commands=tuple(handled), events=tuple(events), results=results, frames=tuple(frames))
