"""Scripted tenders: a tender's spec and timed actions, run through the tender kind.

`load_tender_scenario` reads the JSON form (docs/scenario-format.md, "Tender scenarios")
and raises one `ConfigError` listing every problem. It plays the shell and the bidders:
a key pair derived from the scenario, its k-of-n shares, and every offer sealed with real
HPKE to the public key. `run_tender_scenario` publishes, runs the actions in time order,
then ticks through every deadline until the tender is decided, cancelled or expired.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tenders import messages as m
from tenders.kind import Tenders
from tenders.offer import offer_json
from tenders.sealing import digest, public_key_of, seal, share_digest, split_key
from tenders.tender import DAY

from .config import ConfigError
from .host import Host
from .journal.sequencer import Journaled
from .kind import Tick
from .money import MoneyError, parse_amount
from .scenario import action_name
from .timeutil import TimeFormatError, parse_duration, parse_instant

_DAYS = re.compile(r"(\d+)d(.*)")
_SPEC_INTS = ("validity_days", "ask_days", "answer_days", "justification_days", "amendment_days")
_SPEC_TEXTS = ("preference", "exemption", "abnormally_low", "excessive")
Problems = list[tuple[str, str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class TenderScenario:
    """A validated tender scenario: the publication and the timed commands, sealed."""

    publish: m.PublishTender
    commands: tuple[Any, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class TenderRun:
    host: Host
    commands: tuple[Any, ...]
    events: tuple[Any, ...]
    frames: tuple[bytes, ...] = ()

    @property
    def kind(self) -> Tenders:
        return self.host.kind(Tenders)


def _duration(text: str) -> int:
    """A duration, days allowed first: "10d", "2d3h", "90m"."""
    match = _DAYS.fullmatch(text)
    if match is None:
        return parse_duration(text)
    return int(match[1]) * DAY + (parse_duration(match[2]) if match[2] else 0)


def _at(value: object, opening: int) -> int:
    """An ISO-8601 instant, or ``+duration`` / ``-duration`` from the (first) opening."""
    if isinstance(value, str) and value[:1] in "+-" and len(value) > 1:
        offset = _duration(value[1:])
        return opening + offset if value[0] == "+" else opening - offset
    return parse_instant(value)


def load_tender_scenario(data: object) -> TenderScenario:
    """Validate a tender scenario's JSON form and seal its offers; `ConfigError` lists
    every problem with its path."""
    problems: Problems = []
    if not isinstance(data, Mapping) or not isinstance(data.get("tender"), Mapping):
        raise ConfigError([("(root)", "must be an object with 'tender' and 'actions'")])
    problems += [(str(k), "unknown field") for k in data if k not in ("tender", "actions")]
    raw = data["tender"]
    key = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).digest()  # reproducible key
    published = _publish(raw, key, problems)
    publish = published[0] if published else None
    actions = data.get("actions", [])
    if not isinstance(actions, list):
        problems.append(("actions", "must be a list"))
        actions = []
    timed: list[tuple[int, int, Any]] = []
    if published is not None:
        publish, shares = published
        for i, action in enumerate(actions):
            command = _action(action, f"actions[{i}]", publish, shares, problems)
            if command is not None:
                if command.now < publish.now:
                    problems.append((f"actions[{i}].at", "is before the tender is published (published_at)"))
                timed.append((command.now, i, command))
    if problems or publish is None:
        raise ConfigError(problems)
    timed.sort(key=lambda item: (item[0], item[1]))  # by time; file order breaks ties
    return TenderScenario(publish=publish, commands=tuple(c for _, _, c in timed))


def _publish(raw: Mapping[str, Any], key: bytes, problems: Problems) -> tuple[m.PublishTender, dict[str, bytes]] | None:
    """The publication and each member's share (split once: their digests are published)."""
    def fail(where: str, message: str) -> None:
        problems.append((f"tender.{where}", message))

    known = {"tender_id", "buyer", "published_at", "opening_at", "currency", "decimals", "lots", "members",
             "threshold", "parts", *_SPEC_INTS, *_SPEC_TEXTS}
    for k in raw:
        if k not in known:
            fail(k, "unknown field")
    for k in ("tender_id", "buyer", "published_at", "opening_at", "lots", "members", "threshold"):
        if k not in raw:
            fail(k, "required")
    if problems:
        return None
    try:
        published, opening = parse_instant(raw["published_at"]), parse_instant(raw["opening_at"])
    except TimeFormatError as exc:
        fail("opening_at", str(exc))
        return None
    decimals = raw.get("decimals", 2)
    lots: list[tuple[str, int]] = []
    for i, lot in enumerate(raw["lots"] if isinstance(raw["lots"], list) else []):
        try:
            lots.append((lot["id"], parse_amount(lot["estimate"], decimals)))
        except (MoneyError, KeyError, TypeError) as exc:
            fail(f"lots[{i}]", f"needs 'id' and 'estimate' (a decimal string): {exc}")
    members, threshold = raw["members"], raw["threshold"]
    if not isinstance(members, list) or type(threshold) is not int or not 1 <= threshold <= len(members) <= 255:
        fail("members", "a list of member ids, and 'threshold' a whole number from 1 to their count")
        return None
    shares = split_key(key, threshold, len(members))
    options = {k: raw[k] for k in (*_SPEC_INTS, *_SPEC_TEXTS, "currency", "decimals") if k in raw}
    if "parts" in raw:
        options["parts"] = tuple(raw["parts"]) if isinstance(raw["parts"], list) else raw["parts"]
    spec = m.TenderSpec(raw["buyer"], opening, tuple(lots), public_key_of(key), tuple(members),
                        tuple(share_digest(s) for s in shares), threshold, **options)
    command = m.PublishTender(published, raw["tender_id"], spec)
    refused = Tenders().handle(command)[0]
    if type(refused) is m.TenderRefused:  # the kind's own checks, as the service would answer
        fail("(spec)", f"refused by the tender kind: {refused.code}")
        return None
    return command, dict(zip(members, shares, strict=True))


# action -> (required fields, optional fields)
_ACTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "download": (frozenset({"bidder"}), frozenset()),
    "deposit": (frozenset({"bidder"}), frozenset({"offer", "offer_text", "admin", "technical", "client_id"})),
    "withdraw": (frozenset({"bidder"}), frozenset()),
    "confirm": (frozenset({"bidder"}), frozenset()),
    "ask": (frozenset({"bidder", "question", "text"}), frozenset()),
    "answer": (frozenset({"question", "text"}), frozenset()),
    "amend": (frozenset({"id"}), frozenset({"text", "file_sha256"})),
    "rate": (frozenset({"currency", "rate"}), frozenset()),
    "share": (frozenset({"member"}), frozenset()),
    "decide": (frozenset({"member", "bidder", "admitted"}), frozenset({"reason", "established", "moroccan_share"})),
    "close_admission": (frozenset({"member"}), frozenset()),
    "extend": (frozenset({"days", "answer_by"}), frozenset()),
    "answer_extension": (frozenset({"bidder", "accepted"}), frozenset()),
    "justify": (frozenset({"bidder", "lot", "file_sha256"}), frozenset()),
    "decide_justification": (frozenset({"member", "lot", "bidder", "accepted"}), frozenset({"reason"})),
    "cancel": (frozenset({"reason"}), frozenset()),
}


def _action(action: object, path: str, publish: m.PublishTender, shares: dict[str, bytes],
            problems: Problems) -> Any:
    def fail(where: str, message: str) -> None:
        problems.append((f"{path}{where}", message))

    name = action_name(action, path, _ACTIONS, '{"at": "-5d", "deposit": {...}}', problems)
    if name is None:
        return None
    assert isinstance(action, Mapping)
    try:
        now = _at(action.get("at"), publish.spec.opening_at)
    except TimeFormatError as exc:
        fail(".at", f"{exc} (or '+duration' / '-duration' from opening_at, days allowed: '-10d')")
        return None
    body = action[name]
    required, optional = _ACTIONS[name]
    if not isinstance(body, Mapping) or set(body) - required - optional or required - set(body):
        fail(f".{name}", f"must be an object with {sorted(required)}" + (f", optional {sorted(optional)}"
                                                                           if optional else ""))
        return None
    try:
        return _BUILD[name](now, publish, shares, body)
    except (KeyError, TypeError, ValueError, TimeFormatError) as exc:
        fail(f".{name}", f"{type(exc).__name__}: {exc}")
        return None


def _sha256(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("file_sha256 must be 64 hex digits")
    value = bytes.fromhex(text)
    if len(value) != 32:
        raise ValueError("file_sha256 must be 64 hex digits")
    return value


def _deposit(now: int, publish: m.PublishTender, body: Mapping[str, Any]) -> m.DepositOffer:
    """Seal each part as the bidder's software would: HPKE to the tender's public key."""
    tid, bidder = publish.tender_id, body["bidder"]
    if "offer" in body:
        offer = body["offer"]
        financial = offer_json(offer["currency"], {lot: (v["total"], [tuple(x) for x in v["lines"]])
                                                   for lot, v in offer["lots"].items()})
    else:
        financial = str(body.get("offer_text", "")).encode()
    contents = {"financial": financial, "admin": str(body.get("admin", "administrative file")).encode(),
                "technical": str(body.get("technical", "technical offer")).encode()}
    envelopes = []
    for part in publish.spec.parts:
        ciphertext = seal(publish.spec.public_key, contents[part], tid, bidder, part)
        envelopes.append((part, ciphertext, digest(ciphertext)))
    return m.DepositOffer(now, tid, bidder, tuple(envelopes), str(body.get("client_id", f"{bidder}@{now}")))


_BUILD: dict[str, Callable[[int, m.PublishTender, dict[str, bytes], Mapping[str, Any]], Any]] = {
    "download": lambda t, p, s, b: m.RegisterDownload(t, p.tender_id, b["bidder"]),
    "deposit": lambda t, p, s, b: _deposit(t, p, b),
    "withdraw": lambda t, p, s, b: m.WithdrawOffer(t, p.tender_id, b["bidder"], f"{b['bidder']}-w@{t}"),
    "confirm": lambda t, p, s, b: m.ConfirmOffer(t, p.tender_id, b["bidder"]),
    "ask": lambda t, p, s, b: m.AskQuestion(t, p.tender_id, b["bidder"], b["question"], b["text"]),
    "answer": lambda t, p, s, b: m.AnswerQuestion(t, p.tender_id, p.spec.buyer_id, b["question"], b["text"]),
    "amend": lambda t, p, s, b: m.PublishAmendment(t, p.tender_id, p.spec.buyer_id, b["id"], b.get("text", ""),
                                                   _sha256(b["file_sha256"]) if "file_sha256" in b else b""),
    "rate": lambda t, p, s, b: m.RecordRate(t, p.tender_id, p.spec.buyer_id, b["currency"], b["rate"]),
    "share": lambda t, p, s, b: m.SubmitShare(t, p.tender_id, b["member"], s.get(b["member"], b"\0" * 33)),
    "decide": lambda t, p, s, b: m.DecideAdmission(t, p.tender_id, b["member"], b["bidder"], b["admitted"],
                                                   b.get("reason", ""), b.get("established", True),
                                                   b.get("moroccan_share", "")),
    "close_admission": lambda t, p, s, b: m.CloseAdmission(t, p.tender_id, b["member"]),
    "extend": lambda t, p, s, b: m.RequestExtension(t, p.tender_id, p.spec.buyer_id, b["days"],
                                                    _at(b["answer_by"], p.spec.opening_at)),
    "answer_extension": lambda t, p, s, b: m.AnswerExtension(t, p.tender_id, b["bidder"], b["accepted"]),
    "justify": lambda t, p, s, b: m.JustifyOffer(t, p.tender_id, b["bidder"], b["lot"], _sha256(b["file_sha256"])),
    "decide_justification": lambda t, p, s, b: m.DecideJustification(t, p.tender_id, b["member"], b["lot"],
                                                                     b["bidder"], b["accepted"], b.get("reason", "")),
    "cancel": lambda t, p, s, b: m.CancelTender(t, p.tender_id, p.spec.buyer_id, b["reason"]),
}


def run_tender_scenario(scenario: TenderScenario, journal: Journaled | None = None) -> TenderRun:
    """Publish, run every action, then tick through every deadline until none is left.
    With a `journal`, commands go through it and `frames` holds its records."""
    host = journal.host if journal is not None else Host()
    handled: list[Any] = []
    events: list[Any] = []
    frames: list[bytes] = []

    def handle(command: Any) -> None:
        handled.append(command)
        if journal is None:
            events.extend(host.handle(command))
        else:
            submission = journal.submit(command)
            events.extend(submission.events)
            frames.extend(submission.frames)

    handle(scenario.publish)
    for command in scenario.commands:
        handle(command)
    kind = host.kind(Tenders)
    while (deadline := kind.next_deadline()) is not None:
        handle(Tick(deadline))
    return TenderRun(host=host, commands=tuple(handled), events=tuple(events), frames=tuple(frames))


def _event(kind: Tenders, event: Any) -> dict[str, Any]:
    """An event as the feed shows it, with the bidder named (a dry run is the buyer's)."""
    entry = kind.public_event(event)
    if hasattr(event, "bidder_id"):
        entry["bidder_id"] = event.bidder_id
    return entry


def tender_summary(run: TenderRun, *, with_events: bool = False) -> dict[str, Any]:
    """The JSON output of `simulate` for a tender scenario."""
    kind = run.kind
    tid = run.commands[0].tender_id
    tender = kind.tenders[tid]
    money = kind.public_event  # formats amounts in the tender's decimals
    lots = {}
    for lot_id, (status, bidder, amount, reference, reason) in tender.lots.items():
        awarded = money(m.TenderLotAwarded(0, tid, lot_id, bidder, amount, reference))
        lots[lot_id] = {"status": status, "winner": bidder or None,
                        "amount": awarded["amount"] if status == "awarded" else None,
                        "reference": awarded["reference"] if status == "awarded" else None, "reason": reason}
    out: dict[str, Any] = {
        "tender_id": tid, "status": tender.status,
        "opening_at": kind.public_event(m.DepositsClosed(tender.opening_at, tid, 0))["time"],
        "state_hash": run.host.state_hash(), "commands": len(run.commands),
        "events_by_type": dict(Counter(type(e).__name__ for e in run.events)),
        "refused_commands": [_event(kind, e) for e in run.events if type(e) is m.TenderRefused],
        "set_aside": sorted(tender.set_aside), "lots": lots,
    }
    if with_events:
        out["events"] = [_event(kind, e) for e in run.events]
    return out


def render_tender_table(run: TenderRun) -> str:
    """A readable report: the tender's status, then each lot's outcome and ranking."""
    summary = tender_summary(run)
    tid = summary["tender_id"]
    lines = [f"Tender {tid}  {summary['status']}  (opening {summary['opening_at']})", ""]
    for lot_id, lot in summary["lots"].items():
        outcome = (f"awarded to {lot['winner']} at {lot['amount']} (P = {lot['reference']})"
                   if lot["status"] == "awarded" else f"{lot['status']} ({lot['reason']})")
        lines.append(f"Lot {lot_id}  {outcome}")
        steps = run.kind.explain(tid, lot_id)
        ranking: list[str] = next((s["ranking"] for s in steps if s["step"] == "best_offer"), [])
        lines += [f"    {i:>3}. {bidder}" for i, bidder in enumerate(ranking, 1)]
    refused = summary["refused_commands"]
    lines += ["", f"{len(refused)} refused command(s)"]
    lines += [f"  {r['time']} {r['command']} by {r['actor']}: {r['code']}" for r in refused]
    lines.append(f"state hash {summary['state_hash']}")
    return "\n".join(lines)
