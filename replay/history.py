"""One case's history, rebuilt from a journal by re-executing it through the host.

`history(path, case)` verifies the case's records while it replays them, and keeps, for
each record, the command and the events, plus, for an auction, what a report needs at
that moment (each bid's rank after it). `timeline` turns it into rows for CSV or JSON:
an auction's bids, or for a case of another kind one row per record (`ROWS` maps a kind
to its own rows; a kind with none gets the generic ones).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auction_engine.commands import Command, PlaceBid
from auction_engine.engine import Engine
from auction_engine.events import BidAccepted, BidRejected, Event, LotExtended
from auction_engine.host import Host
from auction_engine.journal import JournalCorruption, JournalReader, Verifier
from auction_engine.journal.format import decode_command, encode_command, encode_events
from auction_engine.money import format_amount
from auction_engine.ranking import AuctionResults
from auction_engine.timeutil import format_instant


@dataclass(frozen=True, slots=True)
class Step:
    """One record of the auction: its global sequence, time, command and outcome."""

    gseq: int
    time: int
    command: Command
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class BidRow:
    """A bid as the timeline shows it; `rank` and `best` are the lot's after the bid."""

    gseq: int
    time: int
    lot_id: str
    pseudonym: str
    bidder_id: str
    amount: object  # minor units, or what was sent if it was not a number
    client_bid_id: str
    outcome: str  # accepted | rejected
    code: str  # the rejection code, "" if accepted
    rank: int | None
    best: int | None
    extended_to: int | None


@dataclass(slots=True)
class History:
    """Everything replay learnt about one auction."""

    auction_id: str  # the case
    engine: Engine  # the auction kind (an auction's report reads it)
    host: Host  # every kind, as replayed
    steps: list[Step] = field(default_factory=list)
    bids: list[BidRow] = field(default_factory=list)
    head: str = ""

    @property
    def decimals(self) -> int:
        return self.engine.auction(self.auction_id).config.decimals

    def results(self, *, reveal: bool = False) -> AuctionResults:
        """The results as replayed (identities only with `reveal`, once final)."""
        finished = self.engine.auction(self.auction_id).finished
        return self.engine.results(self.auction_id, reveal=reveal and finished)


def history(path: str | os.PathLike[str], auction: str) -> History:
    """Replay `auction` from the journal at `path`; raise `JournalCorruption` if any
    record fails verification (run `verify` first for a full report)."""
    verifier = Verifier(contiguous=False, only=auction)
    engine = verifier.journaled.engine
    out = History(auction, engine, verifier.journaled.host)
    for record, where in JournalReader(path).records():
        events = verifier.feed(record, where)
        if record.auction_id != auction:
            continue
        command = decode_command(record.command)
        out.steps.append(Step(record.gseq, record.time, command, tuple(events)))
        out.head = record.digest.hex()
        if type(command) is PlaceBid and engine.has_case(auction):
            out.bids.append(_bid_row(engine, record.gseq, command, events))
    if not out.steps:
        raise JournalCorruption("unknown_auction", f"the journal has no record of case {auction!r}")
    return out


def _bid_row(engine: Engine, gseq: int, bid: PlaceBid, events: list[Event]) -> BidRow:
    auction = engine.auction(bid.auction_id)
    lot = auction.lots.get(bid.lot_id)
    accepted = next((e for e in events if type(e) is BidAccepted), None)
    rejected = next((e for e in events if type(e) is BidRejected), None)
    extended = next((e.close_at for e in events if type(e) is LotExtended), None)
    rank = accepted.rank if accepted else (lot.book.rank_of(bid.bidder_id) if lot else None)
    return BidRow(
        gseq=gseq, time=bid.now, lot_id=bid.lot_id, pseudonym=auction.pseudonyms.get(bid.bidder_id, ""),
        bidder_id=bid.bidder_id, amount=bid.amount, client_bid_id=bid.client_bid_id,
        outcome="accepted" if accepted else "rejected", code=rejected.code if rejected else "",
        rank=rank, best=lot.book.best if lot else None, extended_to=extended,
    )


TIMELINE_FIELDS = ("gseq", "time", "lot_id", "pseudonym", "bidder_id", "amount", "client_bid_id", "outcome",
                   "code", "rank_after", "best_after", "extended_to")


def timeline(path: str | os.PathLike[str], case: str, *, reveal: bool = False) -> list[dict[str, Any]]:
    """The case's rows in journal order (an auction's: its bids), by its kind's `ROWS`."""
    h = history(path, case)
    kind = h.host.case_kind[case]
    return ROWS.get(type(kind), _record_rows)(h, reveal)


def _record_rows(h: History, reveal: bool) -> list[dict[str, Any]]:
    """One row per record: its command and its events, as journaled (the generic timeline)."""
    return [{"gseq": s.gseq, "time": format_instant(s.time), "command": encode_command(s.command),
             "events": encode_events(s.events)} for s in h.steps]


def _bid_rows(h: History, reveal: bool) -> list[dict[str, Any]]:
    """Every bid of the auction in journal order, money as decimal strings and times as
    ISO-8601; `bidder_id` only with `reveal` (pseudonyms always)."""
    decimals = h.decimals
    rows = []
    for b in h.bids:
        row: dict[str, Any] = {
            "gseq": b.gseq, "time": format_instant(b.time), "lot_id": b.lot_id, "pseudonym": b.pseudonym,
            "bidder_id": b.bidder_id if reveal else None,
            "amount": format_amount(b.amount, decimals) if type(b.amount) is int else str(b.amount),
            "client_bid_id": b.client_bid_id, "outcome": b.outcome, "code": b.code, "rank_after": b.rank,
            "best_after": None if b.best is None else format_amount(b.best, decimals),
            "extended_to": None if b.extended_to is None else format_instant(b.extended_to),
        }
        if not reveal:
            del row["bidder_id"]
        rows.append(row)
    return rows


ROWS: dict[type[Any], Callable[[History, bool], list[dict[str, Any]]]] = {Engine: _bid_rows}


def render_timeline(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (a header line first) or as a JSON array."""
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str)
    buffer = io.StringIO()
    names = list(rows[0]) if rows else list(TIMELINE_FIELDS)  # a row's keys are in its columns' order
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()
