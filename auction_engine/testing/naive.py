"""A deliberately naive reference model of the engine, written from docs/core.md.

`NaiveEngine` has the same interface as `auction_engine.engine.Engine` (handle, tick,
next_deadline, canonical_state, state_hash, bidder_view, observer_view, results) but is
built for obvious correctness, not speed:

- every accepted bid is kept in a plain list; a bidder's standing bid is its latest one
  (also kept in a dict by bidder, so that 100,000-command streams stay fast; `results`
  checks the dict against the list), and the ranking is recomputed by sorting the
  standing bids on every query;
- there is no deadline heap: before and after each command every lot of every auction is
  scanned for the earliest thing due, which is applied, and the scan starts again;
- steps are recomputed from the rule fields with plain integer arithmetic.

It shares with the engine only what the spec names as shared vocabulary: the config
dataclasses, the command and event records, money formatting (`percent_of`), the
pseudonym permutation and the view/result dataclasses, so that outcomes compare with ==.

Where docs/core.md is silent, the choices made here are marked `AMBIGUITY:`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import msgpack

from ..commands import AdmitBidder, Cancel, Command, CreateAuction, PlaceBid, Resume, RevokeBidder, Suspend, Tick
from ..config import AuctionConfig, BidRules, LotConfig
from ..events import (
    AuctionClosed,
    AuctionCreated,
    BidAccepted,
    BidderAdmitted,
    BidderRevoked,
    BidRejected,
    CommandRejected,
    Event,
    LotAwarded,
    LotCancelled,
    LotClosed,
    LotExtended,
    LotOpened,
    LotResumed,
    LotSuspended,
    LotUnsuccessful,
)
from ..money import percent_of
from ..ranking import AuctionResults, BidderView, LadderLine, LotResult, ObserverView, RankedBid, pseudonym

PSEUDONYM_SPACE = 2**20  # docs/core.md: too_many_bidders at 2^20
MAX_REASON = 500  # AMBIGUITY: the spec does not bound `reason`; titles are at most 500 characters
ID_FIRST = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
ID_REST = ID_FIRST | set("._:@-")


class NaiveClockRegression(RuntimeError):
    """A command stamped before the previous one."""


class NaiveQueryError(LookupError):
    """A query on something unknown, or a reveal asked too early; see `code`."""

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


def is_identifier(value: object) -> bool:
    """1-64 characters: ASCII letters, digits, `. _ : @ -`, the first a letter or digit."""
    if type(value) is not str or not 1 <= len(value) <= 64:
        return False
    return value[0] in ID_FIRST and all(ch in ID_REST for ch in value)


def ceil_percent(base: int, numerator: int, denominator: int) -> int:
    """`numerator / denominator` percent of `base`, rounded up to a whole minor unit."""
    whole, rest = divmod(base * numerator, 100 * denominator)
    return whole + (1 if rest else 0)


def floor_percent(base: int, numerator: int, denominator: int) -> int:
    """`numerator / denominator` percent of `base`, rounded down to a whole minor unit."""
    whole, _rest = divmod(base * numerator, 100 * denominator)
    return whole


def minimum_step(rules: BidRules, base: int) -> int:
    """max(min_step, ceil(base × min_step_percent / 100), 1 minor unit)."""
    candidates = [rules.min_step, 1]
    if rules.min_step_percent is not None:
        candidates.append(ceil_percent(base, rules.min_step_percent.numerator, rules.min_step_percent.denominator))
    return max(candidates)


def maximum_step(rules: BidRules, base: int) -> int | None:
    """min(max_step, floor(base × max_step_percent / 100)), None when neither is set."""
    candidates = []
    if rules.max_step is not None:
        candidates.append(rules.max_step)
    if rules.max_step_percent is not None:
        candidates.append(floor_percent(base, rules.max_step_percent.numerator, rules.max_step_percent.denominator))
    return min(candidates) if candidates else None


@dataclass
class NaiveBid:
    """One accepted bid."""

    bidder_id: str
    price: int
    time: int
    seq: int


@dataclass
class NaiveLot:
    """One lot: its clock as plain fields, every accepted bid, its counts."""

    config: LotConfig
    creation: int  # engine-wide creation order of lots: breaks ties between equal deadlines
    status: str
    open_at: int
    close_at: int
    hard_close: int | None
    idle_deadline: int | None  # later of the opening and the last accepted bid, + inactivity_close
    extensions: int = 0
    suspended_at: int | None = None
    suspended_from: str | None = None
    closed_at: int | None = None
    close_reason: str | None = None
    accepted: list[NaiveBid] = field(default_factory=list)
    latest: dict[str, NaiveBid] = field(default_factory=dict)  # bidder -> its latest accepted bid
    rejected: int = 0

    def standings(self) -> list[NaiveBid]:
        """The standing bids (each bidder's latest accepted one), best first:
        by price, then by the time of the bid, then by sequence."""
        return sorted(self.latest.values(), key=lambda b: (b.price, b.time, b.seq))

    def best(self) -> int | None:
        ranked = self.standings()
        return ranked[0].price if ranked else None

    def rank_of(self, bidder_id: str) -> int | None:
        for rank, bid in enumerate(self.standings(), 1):
            if bid.bidder_id == bidder_id:
                return rank
        return None

    def is_final(self) -> bool:
        return self.status in ("closed", "cancelled")

    def due(self) -> tuple[int, str] | None:
        """(instant, what) of the next change by itself: "open", "scheduled" or "inactivity"."""
        if self.status == "scheduled":
            return self.open_at, "open"
        if self.status == "open":
            if self.idle_deadline is not None and self.idle_deadline < self.close_at:
                return self.idle_deadline, "inactivity"
            return self.close_at, "scheduled"
        return None


@dataclass
class NaiveAuction:
    config: AuctionConfig
    lots: list[NaiveLot]
    admitted: list[str] = field(default_factory=list)  # admitted now
    ever: list[tuple[str, str]] = field(default_factory=list)  # (bidder, pseudonym) in admission order
    finished: bool = False
    last_seq: int = 0  # the last accepted bid's sequence number, per auction
    digest: str = ""  # sha256 of the canonical config JSON (the config never changes)

    def lot(self, lot_id: object) -> NaiveLot | None:
        for lot in self.lots:
            if lot.config.lot_id == lot_id:
                return lot
        return None

    def pseudonym_of(self, bidder_id: str) -> str | None:
        for bidder, name in self.ever:
            if bidder == bidder_id:
                return name
        return None


class NaiveEngine:
    """The reference model. Same commands in, same events, views, results and hash out."""

    def __init__(self) -> None:
        self.auctions: dict[str, NaiveAuction] = {}  # by id, in creation order
        self.now = 0
        self.lots_created = 0

    # -- commands ------------------------------------------------------------------------

    def handle(self, command: Command) -> list[Event]:
        now = command.now
        if type(now) is not int:
            raise TypeError("command time must be int µs")
        if now < self.now:
            raise NaiveClockRegression(f"{now} < {self.now}")
        self.now = now
        events: list[Event] = []
        if type(command) is Tick and command.case_id is not None:
            self._apply_due(now, events, only=command.case_id)
            return events
        self._apply_due(now, events)
        if type(command) is CreateAuction:
            self._create(command, events)
        elif type(command) is AdmitBidder:
            self._admit(command, events)
        elif type(command) is RevokeBidder:
            self._revoke(command, events)
        elif type(command) is PlaceBid:
            self._bid(command, events)
        elif type(command) is Suspend:
            self._suspend(command, events)
        elif type(command) is Resume:
            self._resume(command, events)
        elif type(command) is Cancel:
            self._cancel(command, events)
        elif type(command) is not Tick:
            raise TypeError(f"not a command: {command!r:.200}")
        self._apply_due(now, events)  # a new auction can be due at once
        return events

    def tick(self, now: int) -> list[Event]:
        return self.handle(Tick(now))

    def next_deadline(self) -> int | None:
        instants = [due[0] for auction in self.auctions.values() for lot in auction.lots
                    if (due := lot.due()) is not None]
        return min(instants) if instants else None

    # -- time ------------------------------------------------------------------------------

    def _apply_due(self, now: int, events: list[Event], only: str | None = None) -> None:
        """Apply everything due at or before `now` (in auction `only`, if given), one change
        at a time, earliest first (ties: lots in creation order), rescanning every lot after
        each change."""
        while True:
            candidates: list[tuple[int, int, str, NaiveAuction, NaiveLot]] = []
            for auction in self.auctions.values():
                if auction.finished or (only is not None and auction.config.auction_id != only):
                    continue  # every lot is final: nothing is ever due
                for lot in auction.lots:
                    due = lot.due()
                    if due is not None and due[0] <= now:
                        candidates.append((due[0], lot.creation, due[1], auction, lot))
            if not candidates:
                return
            at, _creation, what, auction, lot = min(candidates, key=lambda c: (c[0], c[1]))
            aid, lid = auction.config.auction_id, lot.config.lot_id
            if what == "open":
                lot.status = "open"
                events.append(LotOpened(time=at, auction_id=aid, lot_id=lid, close_at=lot.close_at))
            else:
                lot.status = "closed"
                lot.closed_at = at
                lot.close_reason = what
                events.append(LotClosed(time=at, auction_id=aid, lot_id=lid, reason=what))
                self._conclude(at, auction, lot, events)

    def _outcome(self, auction: NaiveAuction, lot: NaiveLot) -> tuple[str, str | None]:
        """("awarded", None) or ("unsuccessful", reason), for a final lot."""
        if lot.status == "cancelled":
            return "unsuccessful", "cancelled"
        ranked = lot.standings()
        if not ranked:
            return "unsuccessful", "no_bids"
        if len({b.bidder_id for b in ranked}) < auction.config.min_bidders:
            return "unsuccessful", "too_few_bidders"
        if lot.config.reserve_price is not None and ranked[0].price > lot.config.reserve_price:
            return "unsuccessful", "above_reserve"
        return "awarded", None

    def _conclude(self, at: int, auction: NaiveAuction, lot: NaiveLot, events: list[Event]) -> None:
        aid, lid = auction.config.auction_id, lot.config.lot_id
        status, reason = self._outcome(auction, lot)
        if status == "awarded":
            winner = lot.standings()[0]
            events.append(LotAwarded(time=at, auction_id=aid, lot_id=lid, bidder_id=winner.bidder_id,
                                     amount=winner.price))
        else:
            assert reason is not None
            events.append(LotUnsuccessful(time=at, auction_id=aid, lot_id=lid, reason=reason))
        if all(other.is_final() for other in auction.lots):
            auction.finished = True
            events.append(AuctionClosed(time=at, auction_id=aid))

    # -- the commands ----------------------------------------------------------------------

    def _find(self, auction_id: object) -> NaiveAuction | None:
        return self.auctions.get(auction_id) if type(auction_id) is str else None

    @staticmethod
    def _refuse(events: list[Event], cmd: Command, auction_id: str, code: str) -> None:
        events.append(CommandRejected(time=cmd.now, command=type(cmd).__name__, auction_id=auction_id, code=code,
                                      message=""))

    def _create(self, cmd: CreateAuction, events: list[Event]) -> None:
        config = cmd.config
        if not isinstance(config, AuctionConfig):
            raise TypeError("CreateAuction.config must be an AuctionConfig")
        aid = config.auction_id
        if self._find(aid) is not None:
            return self._refuse(events, cmd, aid, "auction_exists")
        closes = [config.end + i * config.stagger for i in range(len(config.lots))]
        # ends_in_past: "every lot would already be closed, at its scheduled close or for
        # inactivity, with no bid possible": a lot created after its start cannot have had
        # a bid, so it closes at start + inactivity_close if that is earlier. The close is
        # exclusive: a lot closing exactly now is closed.
        would_close = []
        for close, lot_config in zip(closes, config.lots, strict=True):
            inactivity = lot_config.extension.inactivity_close
            would_close.append(close if inactivity is None else min(close, config.start + inactivity))
        if all(instant <= cmd.now for instant in would_close):
            return self._refuse(events, cmd, aid, "ends_in_past")
        lots = []
        for i, lot_config in enumerate(config.lots):
            inactivity = lot_config.extension.inactivity_close
            lots.append(NaiveLot(
                config=lot_config, creation=self.lots_created, status="scheduled", open_at=config.start,
                close_at=closes[i], hard_close=lot_config.extension.hard_close,
                idle_deadline=None if inactivity is None else config.start + inactivity,
            ))
            self.lots_created += 1
        # AMBIGUITY: "canonical config JSON (to_dict, sorted keys, no spaces)": json.dumps
        # defaults otherwise (ensure_ascii=True), encoded as UTF-8.
        text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
        auction = NaiveAuction(config=config, lots=lots, digest=hashlib.sha256(text.encode()).hexdigest())
        self.auctions[aid] = auction
        events.append(AuctionCreated(time=cmd.now, auction_id=aid))
        for bidder_id in config.bidders:
            events.append(BidderAdmitted(time=cmd.now, auction_id=aid, bidder_id=bidder_id,
                                         pseudonym=self._admit_bidder(auction, bidder_id)))

    @staticmethod
    def _admit_bidder(auction: NaiveAuction, bidder_id: str) -> str:
        name = auction.pseudonym_of(bidder_id)
        if name is None:
            name = pseudonym(auction.config.pseudonym_secret, len(auction.ever))
            auction.ever.append((bidder_id, name))
        auction.admitted.append(bidder_id)
        return name

    def _portal_auction(self, cmd: AdmitBidder | RevokeBidder | Suspend | Resume | Cancel,
                        events: list[Event]) -> NaiveAuction | None:
        """The checks every portal command shares.

        AMBIGUITY: docs/core.md lists the codes of each command without saying in which
        order the checks run. Here, like the bid checks (types first), a command whose
        auction_id, lot_id or reason has the wrong type (or a reason over 500 characters)
        is `malformed` first; then `unknown_auction`, then `auction_finished`; then the
        checks of the command itself (a malformed bidder id comes after auction_finished).
        """
        aid: object = cmd.auction_id
        reason: object = getattr(cmd, "reason", "")
        lot_id: object = getattr(cmd, "lot_id", None)
        if (type(aid) is not str or type(reason) is not str or len(reason) > MAX_REASON
                or not (lot_id is None or type(lot_id) is str)):
            self._refuse(events, cmd, str(aid)[:64], "malformed")
            return None
        auction = self._find(aid)
        if auction is None:
            self._refuse(events, cmd, aid, "unknown_auction")
            return None
        if auction.finished:
            self._refuse(events, cmd, aid, "auction_finished")
            return None
        return auction

    def _admit(self, cmd: AdmitBidder, events: list[Event]) -> None:
        auction = self._portal_auction(cmd, events)
        if auction is None:
            return
        bidder_id: object = cmd.bidder_id
        if not is_identifier(bidder_id):
            return self._refuse(events, cmd, cmd.auction_id, "malformed")
        assert isinstance(bidder_id, str)
        if bidder_id in auction.admitted:
            return self._refuse(events, cmd, cmd.auction_id, "already_admitted")
        if auction.pseudonym_of(bidder_id) is None and len(auction.ever) >= PSEUDONYM_SPACE:
            return self._refuse(events, cmd, cmd.auction_id, "too_many_bidders")
        events.append(BidderAdmitted(time=cmd.now, auction_id=cmd.auction_id, bidder_id=bidder_id,
                                     pseudonym=self._admit_bidder(auction, bidder_id)))

    def _revoke(self, cmd: RevokeBidder, events: list[Event]) -> None:
        auction = self._portal_auction(cmd, events)
        if auction is None:
            return
        bidder_id: object = cmd.bidder_id
        if type(bidder_id) is not str:
            return self._refuse(events, cmd, cmd.auction_id, "malformed")
        if bidder_id not in auction.admitted:
            code = "unknown_bidder" if auction.pseudonym_of(bidder_id) is None else "not_admitted"
            return self._refuse(events, cmd, cmd.auction_id, code)
        auction.admitted.remove(bidder_id)
        events.append(BidderRevoked(time=cmd.now, auction_id=cmd.auction_id, bidder_id=bidder_id,
                                    reason=cmd.reason))

    def _target_lots(self, cmd: Suspend | Resume | Cancel, events: list[Event], states: tuple[str, ...],
                     code: str) -> tuple[NaiveAuction | None, list[NaiveLot]]:
        auction = self._portal_auction(cmd, events)
        if auction is None:
            return None, []
        if cmd.lot_id is None:
            lots = [lot for lot in auction.lots if lot.status in states]
            if not lots:
                self._refuse(events, cmd, cmd.auction_id, code)
            return auction, lots
        lot = auction.lot(cmd.lot_id)
        if lot is None:
            self._refuse(events, cmd, cmd.auction_id, "unknown_lot")
            return auction, []
        if lot.status not in states:
            self._refuse(events, cmd, cmd.auction_id, code)
            return auction, []
        return auction, [lot]

    def _suspend(self, cmd: Suspend, events: list[Event]) -> None:
        auction, lots = self._target_lots(cmd, events, ("scheduled", "open"), "not_suspendable")
        for lot in lots:
            assert auction is not None
            lot.suspended_from = lot.status
            lot.suspended_at = cmd.now
            lot.status = "suspended"
            events.append(LotSuspended(time=cmd.now, auction_id=auction.config.auction_id,
                                       lot_id=lot.config.lot_id, reason=cmd.reason))

    def _resume(self, cmd: Resume, events: list[Event]) -> None:
        auction, lots = self._target_lots(cmd, events, ("suspended",), "not_suspended")
        for lot in lots:
            assert auction is not None and lot.suspended_at is not None and lot.suspended_from is not None
            shift = cmd.now - lot.suspended_at
            # AMBIGUITY: "every deadline of the lot (opening, ...) moves later": the opening
            # instant moves too when the lot was already open (it is in the canonical state).
            lot.open_at += shift
            lot.close_at += shift
            if lot.hard_close is not None:
                lot.hard_close += shift
            if lot.idle_deadline is not None:
                lot.idle_deadline += shift
            lot.status = lot.suspended_from
            lot.suspended_at = None
            lot.suspended_from = None
            events.append(LotResumed(time=cmd.now, auction_id=auction.config.auction_id, lot_id=lot.config.lot_id,
                                     close_at=lot.close_at))

    def _cancel(self, cmd: Cancel, events: list[Event]) -> None:
        auction, lots = self._target_lots(cmd, events, ("scheduled", "open", "suspended"), "not_cancellable")
        for lot in lots:
            assert auction is not None
            lot.status = "cancelled"
            # AMBIGUITY: the spec gives a cancelled lot's "actual close time and reason" in
            # the results without naming them: the cancellation instant and "cancelled".
            lot.closed_at = cmd.now
            lot.close_reason = "cancelled"
            lot.suspended_at = None  # docs/core.md: only a suspended lot has these
            lot.suspended_from = None
            events.append(LotCancelled(time=cmd.now, auction_id=auction.config.auction_id, lot_id=lot.config.lot_id,
                                       reason=cmd.reason))
            self._conclude(cmd.now, auction, lot, events)

    # -- bids ------------------------------------------------------------------------------

    def _bid(self, cmd: PlaceBid, events: list[Event]) -> None:
        now = cmd.now
        aid: object = cmd.auction_id
        lid: object = cmd.lot_id
        bidder: object = cmd.bidder_id
        amount: object = cmd.amount

        def reject(lot: NaiveLot | None, code: str) -> None:
            if lot is not None:
                lot.rejected += 1
            events.append(BidRejected(time=now, auction_id=cmd.auction_id, lot_id=cmd.lot_id,
                                      bidder_id=cmd.bidder_id, amount=amount, code=code, message=""))

        # 1. malformed: "a malformed bid changes nothing at all", even on a lot that exists
        if type(aid) is not str or type(lid) is not str or type(bidder) is not str:
            # AMBIGUITY: which ids a malformed rejection carries is not specified: str(id)[:64].
            events.append(BidRejected(time=now, auction_id=str(aid)[:64], lot_id=str(lid)[:64],
                                      bidder_id=str(bidder)[:64], amount=amount, code="malformed", message=""))
            return
        # 2. unknown_auction
        auction = self._find(aid)
        if auction is None:
            return reject(None, "unknown_auction")
        # 3. unknown_lot
        lot = auction.lot(lid)
        if lot is None:
            return reject(None, "unknown_lot")
        # 4. not_admitted (now)
        if bidder not in auction.admitted:
            return reject(lot, "not_admitted")
        # 5. the lot is open at the bid's time
        if lot.status != "open":
            code = {"scheduled": "lot_not_open", "suspended": "lot_suspended", "closed": "lot_closed",
                    "cancelled": "lot_cancelled"}[lot.status]
            return reject(lot, code)
        # 6. a positive int, not a bool, at most 10**18 - 1 minor units
        if type(amount) is not int or amount <= 0 or amount >= 10**18:
            return reject(lot, "invalid_amount")
        # 7. the starting price is the ceiling
        if amount > lot.config.starting_price:
            return reject(lot, "above_starting_price")
        # 8, 9. steps, measured from the base
        rules = lot.config.rules
        if rules.improve_on == "own":
            own = lot.latest.get(bidder)
            base = None if own is None else own.price
        else:
            base = lot.best()
        if base is not None:
            improvement = base - amount
            if improvement < minimum_step(rules, base):
                return reject(lot, "insufficient_step")
            largest = maximum_step(rules, base)
            if largest is not None and improvement > largest:
                return reject(lot, "step_too_large")
        # accepted
        auction.last_seq += 1
        bid = NaiveBid(bidder_id=bidder, price=amount, time=now, seq=auction.last_seq)
        lot.accepted.append(bid)
        lot.latest[bidder] = bid
        ranked = lot.standings()
        rank = next(i for i, b in enumerate(ranked, 1) if b.bidder_id == bidder)
        events.append(BidAccepted(time=now, auction_id=aid, lot_id=lid, bidder_id=bidder, amount=amount,
                                  seq=bid.seq, rank=rank, best=ranked[0].price))
        policy = lot.config.extension
        if policy.inactivity_close is not None:
            lot.idle_deadline = now + policy.inactivity_close
        # extensions: a qualifying bid at t with close - window <= t < close
        if policy.window > 0 and lot.close_at - policy.window <= now < lot.close_at:
            if policy.trigger == "any_bid":
                qualifies = True
            elif policy.trigger == "new_best":
                qualifies = rank == 1
            else:
                qualifies = rank <= policy.top_n
            if policy.max_extensions is not None and lot.extensions >= policy.max_extensions:
                qualifies = False
            if qualifies:
                if policy.mode == "from_bid":
                    new_close = max(lot.close_at, now + policy.extend_by)
                else:
                    new_close = lot.close_at + policy.extend_by
                if lot.hard_close is not None and new_close > lot.hard_close:
                    new_close = lot.hard_close
                if new_close > lot.close_at:
                    lot.close_at = new_close
                    lot.extensions += 1
                    events.append(LotExtended(time=now, auction_id=aid, lot_id=lid, close_at=new_close,
                                              extensions=lot.extensions))

    # -- queries ---------------------------------------------------------------------------

    def _auction(self, auction_id: str) -> NaiveAuction:
        auction = self._find(auction_id)
        if auction is None:
            raise NaiveQueryError("unknown_auction")
        return auction

    def _lot(self, auction: NaiveAuction, lot_id: str) -> NaiveLot:
        lot = auction.lot(lot_id)
        if lot is None:
            raise NaiveQueryError("unknown_lot")
        return lot

    @staticmethod
    def _ladder(auction: NaiveAuction, lot: NaiveLot, own: str | None) -> tuple[LadderLine, ...]:
        lines = []
        for rank, bid in enumerate(lot.standings(), 1):
            name = auction.pseudonym_of(bid.bidder_id)
            assert name is not None
            lines.append(LadderLine(rank=rank, pseudonym=name, price=bid.price, own=bid.bidder_id == own))
        return tuple(lines)

    def bidder_view(self, auction_id: str, lot_id: str, bidder_id: str) -> BidderView:
        auction = self._auction(auction_id)
        lot = self._lot(auction, lot_id)
        name = auction.pseudonym_of(bidder_id)
        if name is None:
            raise NaiveQueryError("unknown_bidder")
        mode = auction.config.visibility
        own = lot.latest.get(bidder_id)
        best = lot.best()
        extra = mode in ("rank_and_best", "ladder")
        return BidderView(
            auction_id=auction.config.auction_id, lot_id=lot.config.lot_id, pseudonym=name, visibility=mode,
            status=lot.status, starting_price=lot.config.starting_price,
            close_at=lot.close_at if lot.closed_at is None else lot.closed_at,
            extensions=lot.extensions, own_price=None if own is None else own.price,
            rank=lot.rank_of(bidder_id), active_bidders=len(lot.standings()),
            best_price=best if extra else None,
            gap=own.price - best if extra and own is not None and best is not None else None,
            ladder=self._ladder(auction, lot, bidder_id) if mode == "ladder" else None,
        )

    def observer_view(self, auction_id: str, lot_id: str) -> ObserverView:
        auction = self._auction(auction_id)
        lot = self._lot(auction, lot_id)
        return ObserverView(
            auction_id=auction.config.auction_id, lot_id=lot.config.lot_id, status=lot.status,
            starting_price=lot.config.starting_price,
            close_at=lot.close_at if lot.closed_at is None else lot.closed_at, extensions=lot.extensions,
            active_bidders=len(lot.standings()), bids=len(lot.accepted), rejected_bids=lot.rejected,
            ladder=self._ladder(auction, lot, None),
        )

    def results(self, auction_id: str, *, reveal: bool = False) -> AuctionResults:
        auction = self._auction(auction_id)
        if reveal and not all(lot.is_final() for lot in auction.lots):
            raise NaiveQueryError("results_not_final")
        lot_results = []
        for lot in auction.lots:
            # The standing bids are each bidder's latest accepted bid, in the plain list.
            assert lot.latest == {bid.bidder_id: bid for bid in lot.accepted}
            cfg = lot.config
            status, reason = self._outcome(auction, lot) if lot.is_final() else ("pending", None)
            ranking = []
            for rank, bid in enumerate(lot.standings(), 1):
                name = auction.pseudonym_of(bid.bidder_id)
                assert name is not None
                ranking.append(RankedBid(rank=rank, pseudonym=name, bidder_id=bid.bidder_id if reveal else None,
                                         price=bid.price, time=bid.time))
            winner = ranking[0] if status == "awarded" else None
            price = None if winner is None else winner.price
            lot_results.append(LotResult(
                lot_id=cfg.lot_id, title=cfg.title, status=status, reason=reason,
                winner_pseudonym=None if winner is None else winner.pseudonym,
                winner_id=None if winner is None else winner.bidder_id,
                awarded_price=price, estimate=cfg.estimate, starting_price=cfg.starting_price,
                savings=None if price is None else cfg.estimate - price,
                savings_percent=None if price is None else percent_of(cfg.estimate - price, cfg.estimate),
                ranking=tuple(ranking), bids=len(lot.accepted), rejected_bids=lot.rejected,
                extensions=lot.extensions, closed_at=lot.closed_at, close_reason=lot.close_reason,
            ))
        awarded_estimate = sum(r.estimate for r in lot_results if r.status == "awarded")
        awarded_total = sum(r.awarded_price or 0 for r in lot_results if r.status == "awarded")
        config = auction.config
        return AuctionResults(
            auction_id=config.auction_id, title=config.title, currency=config.currency, decimals=config.decimals,
            final=all(r.status != "pending" for r in lot_results), lots=tuple(lot_results),
            awarded_estimate=awarded_estimate, awarded_total=awarded_total,
            savings=awarded_estimate - awarded_total,
            savings_percent=percent_of(awarded_estimate - awarded_total, awarded_estimate),
        )

    # -- the state hash --------------------------------------------------------------------

    def canonical_state(self) -> list[object]:
        auctions = []
        for auction in sorted(self.auctions.values(), key=lambda a: a.config.auction_id):
            lots: list[object] = []
            for lot in auction.lots:
                lots.append([
                    lot.config.lot_id, lot.status, lot.open_at, lot.close_at, lot.hard_close, lot.extensions,
                    lot.idle_deadline, lot.suspended_at, lot.suspended_from, lot.closed_at, lot.close_reason,
                    len(lot.accepted), lot.rejected,
                    [[b.bidder_id, b.price, b.time, b.seq] for b in lot.standings()],
                ])
            auctions.append([
                auction.config.auction_id, auction.digest, sorted(auction.admitted),
                [[bidder, name] for bidder, name in auction.ever], auction.finished,
                auction.last_seq, lots,
            ])
        return [2, auctions]

    def state_hash(self) -> str:
        packed = msgpack.packb(self.canonical_state())
        assert isinstance(packed, bytes)
        return hashlib.sha256(packed).hexdigest()
