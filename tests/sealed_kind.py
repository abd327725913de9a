"""A second procedure kind, tiny on purpose: a one-round sealed-bid purchase.

It proves the host is general: it is journaled, recovered, checkpointed and verified
through the same paths as auctions, with nothing of its own in the shell. A round opens
with its bidders and a deadline; each bidder may submit one sealed price before it; at
the deadline the lowest price wins (the earliest on a tie), or the round is unsuccessful.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, NamedTuple, Self

import msgpack

from auction_engine.kind import CaseTable, ClockRegression, Codec, RetryKey, StateError, Tick


class OpenRound(NamedTuple):
    now: int
    round_id: str
    closes_at: int
    bidders: tuple[str, ...]


class SubmitSealed(NamedTuple):
    now: int
    round_id: str
    bidder_id: str
    amount: int
    client_id: str = ""


class RoundOpened(NamedTuple):
    time: int
    round_id: str
    closes_at: int


class SealedAccepted(NamedTuple):
    time: int
    round_id: str
    bidder_id: str


class SealedRejected(NamedTuple):
    time: int
    round_id: str
    bidder_id: str
    code: str


class RoundAwarded(NamedTuple):
    time: int
    round_id: str
    winner: str
    amount: int


class RoundUnsuccessful(NamedTuple):
    time: int
    round_id: str


def _encode_open(command: OpenRound) -> list[Any]:
    return ["OpenRound", command.now, command.round_id, command.closes_at, list(command.bidders)]


def _decode_open(fields: tuple[Any, ...]) -> OpenRound:
    now, round_id, closes_at, bidders = fields
    if type(bidders) not in (list, tuple) or not all(type(b) is str for b in bidders):
        raise ValueError("bidders must be a list of strings")
    return OpenRound(now, round_id, closes_at, tuple(bidders))


class Round:
    __slots__ = ("closes_at", "bidders", "offers", "closed")

    def __init__(self, closes_at: int, bidders: tuple[str, ...]) -> None:
        self.closes_at = closes_at
        self.bidders = bidders
        self.offers: dict[str, tuple[int, int]] = {}  # bidder -> (amount, order of arrival)
        self.closed = False

    def state(self) -> list[object]:
        return [self.closes_at, list(self.bidders), sorted([b, a, n] for b, (a, n) in self.offers.items()),
                self.closed]


class SealedBid(CaseTable):
    """Every sealed-bid round of one host."""

    name: ClassVar[str] = "sealed"
    case_field: ClassVar[str] = "round_id"
    codec: ClassVar[Codec] = Codec(
        (OpenRound, SubmitSealed), (RoundOpened, SealedAccepted, SealedRejected, RoundAwarded, RoundUnsuccessful),
        encoders={OpenRound: _encode_open}, decoders={OpenRound: _decode_open},
        public=frozenset({RoundOpened, RoundAwarded, RoundUnsuccessful}))

    def __init__(self) -> None:
        self.rounds: dict[str, Round] = {}
        self._now = 0

    @property
    def now(self) -> int:
        return self._now

    def handle(self, command: Any) -> list[Any]:
        now = command.now
        if now < self._now:
            raise ClockRegression(f"{now} < {self._now}")
        self._now = now
        events: list[Any] = []
        if type(command) is Tick:
            self._close_due(now, events, command.case_id)
            return events
        self._close_due(now, events, None)
        if type(command) is OpenRound:
            if command.round_id in self.rounds or command.closes_at <= now:
                return events  # refused: nothing changes (not journaled)
            self.rounds[command.round_id] = Round(command.closes_at, command.bidders)
            events.append(RoundOpened(now, command.round_id, command.closes_at))
        elif type(command) is SubmitSealed:
            events.append(self._submit(command))
        else:
            raise TypeError(f"not a command: {command!r:.100}")
        return events

    def _submit(self, cmd: SubmitSealed) -> Any:
        round_ = self.rounds.get(cmd.round_id)
        if round_ is None:
            return SealedRejected(cmd.now, cmd.round_id, cmd.bidder_id, "unknown_round")
        if round_.closed:
            return SealedRejected(cmd.now, cmd.round_id, cmd.bidder_id, "round_closed")
        if cmd.bidder_id not in round_.bidders:
            return SealedRejected(cmd.now, cmd.round_id, cmd.bidder_id, "not_invited")
        if cmd.bidder_id in round_.offers:
            return SealedRejected(cmd.now, cmd.round_id, cmd.bidder_id, "already_submitted")
        if type(cmd.amount) is not int or cmd.amount <= 0:
            return SealedRejected(cmd.now, cmd.round_id, cmd.bidder_id, "invalid_amount")
        round_.offers[cmd.bidder_id] = (cmd.amount, len(round_.offers))
        return SealedAccepted(cmd.now, cmd.round_id, cmd.bidder_id)

    def _close_due(self, now: int, events: list[Any], only: str | None) -> None:
        due = sorted((r.closes_at, rid) for rid, r in self.rounds.items()
                     if not r.closed and r.closes_at <= now and (only is None or rid == only))
        for at, rid in due:
            round_ = self.rounds[rid]
            round_.closed = True
            if round_.offers:
                winner = min(round_.offers, key=lambda b: round_.offers[b])
                events.append(RoundAwarded(at, rid, winner, round_.offers[winner][0]))
            else:
                events.append(RoundUnsuccessful(at, rid))

    def case_table(self) -> dict[str, Any]:
        return self.rounds

    def next_deadline(self) -> int | None:
        return min((r.closes_at for r in self.rounds.values() if not r.closed), default=None)

    @staticmethod
    def public_event(event: Any) -> dict[str, Any]:
        entry = {"type": type(event).__name__, **event._asdict()}
        entry.pop("winner", None)  # the feed names no bidder
        return entry

    @staticmethod
    def changes_state(events: list[Any]) -> bool:
        return any(type(e) is not SealedRejected or e.code != "unknown_round" for e in events)

    @staticmethod
    def retry_key(command: Any) -> RetryKey | None:
        if type(command) is SubmitSealed and command.client_id:
            return command.round_id, command.bidder_id, command.client_id
        return None

    def case_states(self) -> list[list[object]]:
        return [[rid, *r.state()] for rid, r in self.rounds.items()]

    @staticmethod
    def hash_of(case_states: list[list[object]]) -> str:
        return hashlib.sha256(msgpack.packb(sorted(case_states, key=lambda s: str(s[0])))).hexdigest()

    def dump_state(self) -> object:
        return [self._now, [[rid, r.closes_at, list(r.bidders), [[b, a, n] for b, (a, n) in r.offers.items()],
                             r.closed] for rid, r in self.rounds.items()]]

    @classmethod
    def load_state(cls, state: object) -> Self:
        kind = cls()
        try:
            now, rounds = state  # type: ignore[misc]
            kind._now = now
            for rid, closes_at, bidders, offers, closed in rounds:
                round_ = kind.rounds[rid] = Round(closes_at, tuple(bidders))
                round_.offers = {b: (a, n) for b, a, n in offers}
                round_.closed = closed
        except (TypeError, ValueError) as exc:
            raise StateError(f"not a sealed-bid state: {exc}") from None
        return kind
