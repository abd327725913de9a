"""One auction's history, rebuilt from a journal by re-executing it through the core.

`history(path, auction)` verifies the auction's records while it replays them, and keeps,
for each record, the command and the events, plus what a report needs at that moment
(each bid's rank after it). `timeline` turns it into rows of bids for CSV or JSON.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

from auction_engine.commands import Command, PlaceBid
from auction_engine.engine import Engine
from auction_engine.events import BidAccepted, BidRejected, Event, LotExtended
from auction_engine.journal import JournalCorruption, JournalReader, Verifier
from auction_engine.journal.format import decode_command
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

    auction_id: str
    engine: Engine
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
    out = History(auction, engine)
    for record, where in JournalReader(path).records():
        events = verifier.feed(record, where)
        if record.auction_id != auction:
            continue
        command = decode_command(record.command)
        out.steps.append(Step(record.gseq, record.time, command, tuple(events)))
        out.head = record.digest.hex()
        if type(command) is PlaceBid:
            out.bids.append(_bid_row(engine, record.gseq, command, events))
    if not out.steps:
        raise JournalCorruption("unknown_auction", f"the journal has no record of auction {auction!r}")
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


def timeline(path: str | os.PathLike[str], auction: str, *, reveal: bool = False) -> list[dict[str, Any]]:
    """Every bid of `auction` in journal order, money as decimal strings and times as
    ISO-8601; `bidder_id` only with `reveal` (pseudonyms always)."""
    h = history(path, auction)
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


def render_timeline(rows: list[dict[str, Any]], fmt: str) -> str:
    """The rows as CSV (a header line first) or as a JSON array."""
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False)
    buffer = io.StringIO()
    names = [f for f in TIMELINE_FIELDS if not rows or f in rows[0]]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()
