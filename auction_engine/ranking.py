"""Anonymised ranking: pseudonyms, bidder and observer views, and results.

Pseudonyms are a keyed permutation (a Feistel network over 20 bits, HMAC-SHA-256 rounds)
of the admission index, so they are stable and unique per auction but say nothing about
admission order to whoever lacks the auction's secret. No bidder view holds an identity.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .clock import CANCELLED, CLOSED
from .money import percent_of

if TYPE_CHECKING:
    from .auction import Auction, Lot

_HALF_BITS = 10  # the permutation is over 2 * 10 bits: config.MAX_BIDDERS pseudonyms
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols, no 0/O or 1/I look-alikes


def pseudonym(secret: str, index: int) -> str:
    """The pseudonym of the bidder admitted `index`-th (from 0) under `secret`."""
    if not 0 <= index < 1 << (2 * _HALF_BITS):
        raise ValueError(f"admission index {index} is outside the pseudonym space")
    key = secret.encode()
    left, right = index >> _HALF_BITS, index & _HALF_MASK
    for round_no in range(_ROUNDS):
        digest = hmac.new(key, bytes((round_no, right >> 8, right & 0xFF)), hashlib.sha256).digest()
        left, right = right, left ^ (int.from_bytes(digest[:2], "big") & _HALF_MASK)
    value = left << _HALF_BITS | right
    return "B-" + "".join(_ALPHABET[(value >> shift) & 31] for shift in (15, 10, 5, 0))


@dataclass(frozen=True, kw_only=True, slots=True)
class LadderLine:
    """One line of an anonymised ladder; `own` marks the viewer's own line."""

    rank: int
    pseudonym: str
    price: int
    own: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class BidderView:
    """What one bidder sees of one lot, per the auction's visibility mode.

    Always: status, close, extensions, own price and rank, and the number of active
    bidders (those with a standing bid). "rank_and_best" adds the best price and the
    bidder's gap to it; "ladder" adds every standing price under pseudonyms.
    """

    auction_id: str
    lot_id: str
    pseudonym: str
    visibility: str
    status: str
    starting_price: int
    close_at: int
    extensions: int
    own_price: int | None
    rank: int | None
    active_bidders: int
    best_price: int | None = None
    gap: int | None = None
    ladder: tuple[LadderLine, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ObserverView:
    """What the buyer and the commission see of a lot while it runs: anonymised."""

    auction_id: str
    lot_id: str
    status: str
    starting_price: int
    close_at: int
    extensions: int
    active_bidders: int
    bids: int
    rejected_bids: int
    ladder: tuple[LadderLine, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RankedBid:
    """A line of a final ranking; `bidder_id` is None unless identities are revealed."""

    rank: int
    pseudonym: str
    bidder_id: str | None
    price: int
    time: int


@dataclass(frozen=True, kw_only=True, slots=True)
class LotResult:
    """The outcome of one lot. status: "pending" (not final yet), "awarded" or
    "unsuccessful" (with `reason`). Savings = estimate - awarded price."""

    lot_id: str
    title: str
    status: str
    reason: str | None
    winner_pseudonym: str | None
    winner_id: str | None
    awarded_price: int | None
    estimate: int
    starting_price: int
    savings: int | None
    savings_percent: str | None
    ranking: tuple[RankedBid, ...]
    bids: int
    rejected_bids: int
    extensions: int
    closed_at: int | None
    close_reason: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuctionResults:
    """Per-lot results and totals over the awarded lots."""

    auction_id: str
    title: str
    currency: str
    decimals: int
    final: bool
    lots: tuple[LotResult, ...]
    awarded_estimate: int
    awarded_total: int
    savings: int
    savings_percent: str


def _ladder(auction: Auction, lot: Lot, own: str | None) -> tuple[LadderLine, ...]:
    names = auction.pseudonyms
    return tuple(
        LadderLine(rank=rank, pseudonym=names[s.bidder_id], price=s.price, own=s.bidder_id == own)
        for rank, s in enumerate(lot.book.ranked(), 1)
    )


@dataclass(frozen=True, slots=True)
class Shown:
    """What one role sees under a visibility mode: the one place that decides it (views,
    acks, rejection messages, the welcome's lots). A bidder always sees its own rank,
    price and the count of active bidders, never another bidder's identity."""

    best_price: bool  # the lot's best price, and the gap to it
    ladder: bool  # every standing price, under pseudonyms
    amounts_in_refusals: bool  # step refusals may name amounts (they reveal the best price)
    estimate: bool  # the buyer's estimate and reserve price


def shown(visibility: str, role: str) -> Shown:
    """What `role` ("bidder" or "observer": the buyer, the commission) sees in an auction
    of `visibility` ("rank", "rank_and_best", "ladder")."""
    if role != "bidder":
        return Shown(best_price=True, ladder=True, amounts_in_refusals=True, estimate=True)
    return _BIDDER_SHOWN[visibility]


_BIDDER_SHOWN = {
    "rank": Shown(best_price=False, ladder=False, amounts_in_refusals=False, estimate=False),
    "rank_and_best": Shown(best_price=True, ladder=False, amounts_in_refusals=True, estimate=False),
    "ladder": Shown(best_price=True, ladder=True, amounts_in_refusals=True, estimate=False),
}


def _close(lot: Lot) -> int:
    """The close a view shows: the current scheduled one, or the actual one once ended."""
    closed_at = lot.clock.closed_at
    return lot.clock.close_at if closed_at is None else closed_at


def bidder_view(auction: Auction, lot: Lot, bidder_id: str) -> BidderView:
    """The view of `lot` for `bidder_id`, in the auction's visibility mode."""
    book, clock = lot.book, lot.clock
    standing = book.standing(bidder_id)
    mode = auction.config.visibility
    best = book.best
    see = shown(mode, "bidder")
    show_best = see.best_price
    return BidderView(
        auction_id=auction.config.auction_id, lot_id=lot.config.lot_id,
        pseudonym=auction.pseudonyms[bidder_id], visibility=mode, status=clock.status,
        starting_price=lot.config.starting_price, close_at=_close(lot), extensions=clock.extensions,
        own_price=None if standing is None else standing.price, rank=book.rank_of(bidder_id),
        active_bidders=len(book),
        best_price=best if show_best else None,
        gap=standing.price - best if show_best and standing is not None and best is not None else None,
        ladder=_ladder(auction, lot, bidder_id) if see.ladder else None,
    )


def observer_view(auction: Auction, lot: Lot) -> ObserverView:
    """The anonymised view of `lot` for the buyer and the commission."""
    clock = lot.clock
    return ObserverView(
        auction_id=auction.config.auction_id, lot_id=lot.config.lot_id, status=clock.status,
        starting_price=lot.config.starting_price, close_at=_close(lot), extensions=clock.extensions,
        active_bidders=len(lot.book), bids=lot.bids, rejected_bids=lot.rejected,
        ladder=_ladder(auction, lot, None),
    )


@dataclass(frozen=True, slots=True)
class LotSnapshot:
    """A lot's state at one instant, from which every viewer's view is derived without
    touching the engine again: the gateway takes one per changed lot per journal batch,
    and sends the views once that batch is durable. `ranks` maps pseudonyms to ranks."""

    visibility: str
    observer: ObserverView
    ranks: dict[str, int]


def lot_snapshot(auction: Auction, lot: Lot) -> LotSnapshot:
    """Snapshot `lot` now (one pass over its ladder)."""
    observer = observer_view(auction, lot)
    return LotSnapshot(auction.config.visibility, observer, {line.pseudonym: line.rank for line in observer.ladder})


def snapshot_bidder_view(snapshot: LotSnapshot, name: str) -> BidderView:
    """The view of the bidder whose pseudonym is `name`: equal to `bidder_view` at the
    instant of the snapshot."""
    obs, mode = snapshot.observer, snapshot.visibility
    ladder = obs.ladder
    rank = snapshot.ranks.get(name)
    own_price = None if rank is None else ladder[rank - 1].price
    best = ladder[0].price if ladder else None
    see = shown(mode, "bidder")
    show_best = see.best_price
    own_ladder = None
    if see.ladder:
        own_ladder = ladder if rank is None else (*ladder[:rank - 1], replace(ladder[rank - 1], own=True),
                                                   *ladder[rank:])
    return BidderView(
        auction_id=obs.auction_id, lot_id=obs.lot_id, pseudonym=name, visibility=mode, status=obs.status,
        starting_price=obs.starting_price, close_at=obs.close_at, extensions=obs.extensions,
        own_price=own_price, rank=rank, active_bidders=obs.active_bidders,
        best_price=best if show_best else None,
        gap=own_price - best if show_best and own_price is not None and best is not None else None,
        ladder=own_ladder,
    )


def lot_outcome(auction: Auction, lot: Lot) -> tuple[str, str | None]:
    """("awarded", None) or ("unsuccessful", reason) for a lot that has ended."""
    if lot.clock.status == CANCELLED:
        return "unsuccessful", "cancelled"
    best = lot.book.best
    if best is None:
        return "unsuccessful", "no_bids"
    if len(lot.book) < auction.config.min_bidders:
        return "unsuccessful", "too_few_bidders"
    reserve = lot.config.reserve_price
    if reserve is not None and best > reserve:
        return "unsuccessful", "above_reserve"
    return "awarded", None


def lot_result(auction: Auction, lot: Lot, *, reveal: bool) -> LotResult:
    """The result of `lot`; identities only when `reveal`."""
    clock, cfg, names = lot.clock, lot.config, auction.pseudonyms
    final = clock.status in (CLOSED, CANCELLED)
    status, reason = lot_outcome(auction, lot) if final else ("pending", None)
    ranking = tuple(
        RankedBid(rank=rank, pseudonym=names[s.bidder_id], bidder_id=s.bidder_id if reveal else None,
                  price=s.price, time=s.time)
        for rank, s in enumerate(lot.book.ranked(), 1)
    )
    winner = ranking[0] if status == "awarded" else None
    price = None if winner is None else winner.price
    return LotResult(
        lot_id=cfg.lot_id, title=cfg.title, status=status, reason=reason,
        winner_pseudonym=None if winner is None else winner.pseudonym,
        winner_id=None if winner is None else winner.bidder_id,
        awarded_price=price, estimate=cfg.estimate, starting_price=cfg.starting_price,
        savings=None if price is None else cfg.estimate - price,
        savings_percent=None if price is None else percent_of(cfg.estimate - price, cfg.estimate),
        ranking=ranking, bids=lot.bids, rejected_bids=lot.rejected, extensions=clock.extensions,
        closed_at=clock.closed_at, close_reason=clock.close_reason,
    )


def auction_results(auction: Auction, *, reveal: bool) -> AuctionResults:
    """Results of every lot, and totals over the awarded ones."""
    lots = tuple(lot_result(auction, lot, reveal=reveal) for lot in auction.lots.values())
    awarded = [r for r in lots if r.awarded_price is not None]
    estimate = sum(r.estimate for r in awarded)
    total = sum(r.awarded_price or 0 for r in awarded)
    cfg = auction.config
    return AuctionResults(
        auction_id=cfg.auction_id, title=cfg.title, currency=cfg.currency, decimals=cfg.decimals,
        final=all(r.status != "pending" for r in lots), lots=lots, awarded_estimate=estimate,
        awarded_total=total, savings=estimate - total, savings_percent=percent_of(estimate - total, estimate),
    )
