"""Commands in, records out; records in, the same engine back. No IO.

`Journaled.submit(command)` runs a command through the core and returns the framed
records of what changed, one per auction touched: the shell writes them and acknowledges
once they are durable. `Verifier.feed(record)` checks a record's sequences and hash chain,
re-executes its command through a fresh core and compares the outcome: recovery and the
auditors' tool are the same loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from ..commands import Command, CreateAuction, PlaceBid, Tick
from ..engine import ClockRegression, Engine
from ..events import BidRejected, CommandRejected, Event
from .format import (
    GENESIS,
    FormatError,
    JournalCorruption,
    Location,
    Record,
    decode_command,
    encode_command,
    encode_events,
    frame,
)

# Rejections that leave the state untouched (no lot to count them on): not journaled.
_NO_CHANGE_BID_CODES = frozenset({"malformed", "unknown_auction", "unknown_lot"})

_pack = msgpack.Packer(use_bin_type=True).pack


def changes_state(events: list[Event]) -> bool:
    """True unless the outcome is only refusals that change nothing."""
    for e in events:
        if type(e) is CommandRejected:
            continue
        if type(e) is BidRejected and e.code in _NO_CHANGE_BID_CODES:
            continue
        return True
    return False


def target_auction(command: Command) -> object:
    """The auction a command is about (a Tick's is None unless scoped)."""
    if type(command) is CreateAuction:
        return command.config.auction_id
    return getattr(command, "auction_id", None)


@dataclass(slots=True)
class Submission:
    """What one command produced: every event (a due tick may touch other auctions first),
    the framed records to write in order, and the global sequence of the last one."""

    events: list[Event]
    frames: list[bytes] = field(default_factory=list)
    last_gseq: int = 0
    duplicate: bool = False  # a bid whose client_bid_id was seen: `events` is its first outcome


class Journaled:
    """An engine whose every state change becomes a record with sequences and a hash chain."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or Engine()
        self.gseq = 0  # the global sequence of the last record
        self.chains: dict[str, tuple[int, bytes]] = {}  # auction -> (its last aseq, that record's SHA-256)
        self.bids: dict[tuple[str, str, str], list[Event]] = {}  # (auction, bidder, client_bid_id) -> outcome

    def previous_outcome(self, command: Command) -> list[Event] | None:
        """The outcome of a journaled bid with the same bidder and client_bid_id, if any."""
        if type(command) is not PlaceBid or not command.client_bid_id:
            return None
        return self.bids.get((command.auction_id, command.bidder_id, command.client_bid_id))

    def remember(self, command: Command, events: list[Event]) -> None:
        """Index a journaled bid's outcome under its client_bid_id."""
        if type(command) is PlaceBid and command.client_bid_id:
            self.bids[command.auction_id, command.bidder_id, command.client_bid_id] = events

    def submit(self, command: Command) -> Submission:
        """Apply `command` (after every deadline due by its time) and frame the records."""
        engine = self.engine
        now = command.now
        previous = self.previous_outcome(command)
        if previous is not None:
            return Submission(previous, [], self.gseq, duplicate=True)
        out = Submission([], [], self.gseq)
        scoped = type(command) is Tick and command.auction_id is not None
        if not scoped:
            due = engine.next_deadline()
            if due is not None and type(now) is int and due <= now:
                ticked = engine.handle(Tick(now))  # raises ClockRegression before changing anything
                out.events += ticked
                by_auction: dict[str, list[Event]] = {}
                for e in ticked:
                    by_auction.setdefault(e.auction_id, []).append(e)
                for aid, events in by_auction.items():
                    self._record(out, now, aid, _pack(encode_command(Tick(now, aid))), events)
            if type(command) is Tick:
                return out
        try:  # before handle: what cannot be journaled changes nothing
            packed = _pack(encode_command(command))
        except (OverflowError, TypeError, ValueError) as exc:
            raise FormatError("unjournalable", f"the command cannot be journaled ({exc}): {command!r:.200}") from None
        events = engine.handle(command)
        out.events += events
        if changes_state(events):
            target = target_auction(command)
            assert type(target) is str, command
            self._record(out, now, target, packed, events)
            self.remember(command, events)
        return out

    def _record(self, out: Submission, now: int, aid: str, command: bytes, events: list[Event]) -> None:
        aseq, prev = self.chains.get(aid, (0, GENESIS))
        gseq = self.gseq + 1  # committed only once the record is encoded
        payload = b"".join((b"\x97", _pack([gseq, aseq + 1, now, aid])[1:], command,
                            _pack([encode_events(events), prev])[1:]))
        self.gseq = gseq
        self.chains[aid] = (aseq + 1, hashlib.sha256(payload).digest())
        out.frames.append(frame(payload))
        out.last_gseq = self.gseq


class Verifier:
    """Feeds records, in journal order, through a fresh engine and checks every rule.

    `contiguous`: the global sequence must have no gap (an engine's journal); otherwise it
    must only increase (an export, or `only` one auction). `only`: re-execute one auction.
    """

    def __init__(self, *, contiguous: bool = True, only: str | None = None) -> None:
        self.journaled = Journaled()
        self.contiguous = contiguous and only is None
        self.only = only
        self.records = 0  # records checked
        self.replayed = 0  # records re-executed

    def feed(self, record: Record, where: Location | None = None) -> list[Event]:
        """Check one record and re-execute it; return the replayed events.
        Raise `JournalCorruption` at the first broken rule."""
        j = self.journaled
        gseq, aseq, _time, aid, _command, outcome, prev, digest, _payload = record
        if gseq != j.gseq + 1 and (self.contiguous or gseq <= j.gseq):
            if self.contiguous:
                raise _fail(record, where, "gseq_gap", "the global sequence must follow the previous record's",
                            j.gseq + 1, gseq)
            raise _fail(record, where, "gseq_order", "the global sequence must increase", f"> {j.gseq}", gseq)
        j.gseq = gseq
        self.records += 1
        if self.only is not None and aid != self.only:
            return []
        last, head = j.chains.get(aid, _NO_CHAIN)
        if aseq != last + 1:
            raise _fail(record, where, "aseq_gap", f"auction {aid!r:.70}: its sequence must follow its previous "
                        "record's", last + 1, aseq)
        if prev != head:
            raise _fail(record, where, "chain_broken", f"auction {aid!r:.70}: prev is not the SHA-256 of its "
                        "previous record", head.hex(), prev.hex())
        command = self._command(record, where)
        if j.previous_outcome(command) is not None:
            raise _fail(record, where, "duplicate_bid", "a bid with this bidder and client_bid_id is already journaled")
        try:
            events = j.engine.handle(command)
        except ClockRegression as exc:
            raise _fail(record, where, "time_regression", str(exc)) from None
        if len(events) == 1:  # the common case, a bid's one event, without building a list
            same = len(outcome) == 1 and (type(events[0]).__name__, *events[0]) == outcome[0]
        else:
            same = [(type(e).__name__, *e) for e in events] == list(outcome)
        if not same:
            raise _fail(record, where, "divergence", "re-executing the command gives another outcome",
                        _plain(outcome), _plain(encode_events(events)))
        j.chains[aid] = (aseq, digest)
        j.remember(command, events)
        self.replayed += 1
        return events

    def _command(self, record: Record, where: Location | None) -> Command:
        try:
            command = decode_command(record.command)
        except FormatError as exc:
            raise _fail(record, where, exc.code, str(exc)) from None
        target = target_auction(command)
        if target != record.auction_id:
            raise _fail(record, where, "wrong_auction", "the command is about another auction than the record",
                        record.auction_id, target)
        if command.now != record.time:
            raise _fail(record, where, "bad_time", "the command's time is not the record's", record.time, command.now)
        if type(command) is Tick and command.auction_id is None:
            raise _fail(record, where, "bad_command", "a journaled tick names its auction")
        if type(command) is PlaceBid and type(command.client_bid_id) is not str:
            raise _fail(record, where, "bad_command", "client_bid_id must be a string")
        return command


_NO_CHAIN = (0, GENESIS)


def _fail(record: Record, where: Location | None, code: str, message: str, expected: object = None,
          found: object = None) -> JournalCorruption:
    return JournalCorruption(code, message, where, gseq=record.gseq, expected=expected, found=found)


def _plain(outcome: Sequence[Any]) -> list[list[Any]]:
    """Encoded events as lists, for messages and JSON."""
    return [list(e) for e in outcome]
