"""The tender kind: every sealed tender of one host, a deterministic state machine, no IO.

Rules: (a private draft, saved and replaced by its buyer, discarded or published) ->
published -> (deposit deadline = opening time, exclusive) opening -> (k valid
shares: key rebuilt, every envelope opened) admission -> (CloseAdmission: every lot
evaluated) evaluation, while flagged offers justify themselves -> decided; cancelled from
any status before that. The offers' validity (from the opening time, extendable) ends a
tender not decided ("offers_expired"). Deadlines (and their order) live in `_advance`;
clarifications, extensions, justifications and amendments (which may move the opening)
in their own modules. A refusal is a
`TenderRefused` with a stable code and changes nothing (answered, not journaled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Self

import msgpack

from auction_engine.kind import CaseTable, ClockRegression, Codec, RetryKey, StateError, Tick
from auction_engine.money import MoneyError, format_amount, parse_amount, parse_percent
from auction_engine.timeutil import format_instant

from . import draft, views
from .amendment import amend, confirm, set_aside
from .dialogue import answer, answer_extension, ask, close_extension, refuse, register_download, request_extension
from .justification import JUSTIFICATION, decide, decide_lot, expire, justify
from .messages import (
    COMMANDS,
    EVENTS,
    FINANCIAL,
    PUBLIC,
    AdmissionDecided,
    AnswerExtension,
    AnswerQuestion,
    AskQuestion,
    CancelTender,
    CloseAdmission,
    ConfirmOffer,
    DecideAdmission,
    DecideJustification,
    DepositOffer,
    DepositsClosed,
    DiscardDraft,
    DraftTender,
    EnvelopeOpened,
    EnvelopeUnreadable,
    JustifyOffer,
    OfferDeposited,
    OfferWithdrawn,
    PublishAmendment,
    PublishTender,
    RateRecorded,
    RecordRate,
    RegisterDownload,
    RequestExtension,
    ShareAccepted,
    SubmitShare,
    TenderCancelled,
    TenderLotUnsuccessful,
    TenderOpened,
    TenderPublished,
    TenderRefused,
    WithdrawOffer,
    decode_draft,
    decode_publish,
    encode_publish,
)
from .offer import CURRENCY, OfferError, parse_financial
from .sealing import SHARE_SIZE, SealingError, combine_shares, digest, open_envelope, public_key_of, share_digest
from .tender import (
    ADMISSION,
    CANCELLED,
    DECIDED,
    EVALUATION,
    OPENING,
    PUBLISHED,
    Tender,
    is_id,
    lot_outcome,
    spec_problem,
)

STATE_FORMAT = 3  # bump when Tender.canonical() or dump() changes shape (3: drafts)
MAX_ENVELOPE = 8 << 20  # bytes of one envelope's ciphertext
MAX_REASON = 500  # characters of a reason

Events = list[Any]
_MONEY_FIELDS = frozenset({"amount", "reference"})
_TIME_FIELDS = frozenset({"time", "opening_at", "validity_until", "answer_by"})
_ID_FIELDS = ("bidder_id", "member_id", "buyer_id", "lot_id", "question_id", "client_id",
              "amendment_id")  # str, or refused


class Tenders(CaseTable):
    """Every tender of one host. Not thread-safe: one owner calls it."""

    name: ClassVar[str] = "tender"
    case_field: ClassVar[str] = "tender_id"
    codec: ClassVar[Codec] = Codec(COMMANDS, EVENTS, encoders={PublishTender: encode_publish,
                                                               DraftTender: encode_publish},
                                   decoders={PublishTender: decode_publish, DraftTender: decode_draft}, public=PUBLIC)

    def __init__(self) -> None:
        self.tenders: dict[str, Tender] = {}
        self.drafts: draft.Drafts = {}  # tender id -> [spec, instant saved] (tenders/draft.py)
        self._now = 0
        self._handlers: dict[type[Any], Callable[[Any, Tender], Any]] = {
            DepositOffer: self._deposit, WithdrawOffer: self._withdraw, RecordRate: self._rate,
            SubmitShare: self._share, DecideAdmission: self._decide, CloseAdmission: self._close_admission,
            CancelTender: self._cancel, RegisterDownload: register_download, AskQuestion: ask,
            AnswerQuestion: answer, RequestExtension: request_extension, AnswerExtension: answer_extension,
            JustifyOffer: justify, DecideJustification: decide, PublishAmendment: amend, ConfirmOffer: confirm}

    @property
    def now(self) -> int:
        return self._now

    def handle(self, command: Any) -> Events:
        """Apply what is due at `command.now`, then `command`; return what happened."""
        now = command.now
        if type(now) is not int:
            raise TypeError(f"command time must be int µs, got {now!r:.40}")
        if now < self._now:
            raise ClockRegression(f"command at {now} µs is before the tender kind's time {self._now} µs")
        self._now = now
        events: Events = []
        if type(command) is Tick:
            self._advance(now, events, command.case_id)
            return events
        self._advance(now, events, None)
        if type(command) in (PublishTender, DraftTender, DiscardDraft):
            events.append(self._publish(command) if type(command) is PublishTender else
                          draft.save(command, self.drafts, self.tenders) if type(command) is DraftTender else
                          draft.discard(command, self.drafts, self.tenders))
            return events
        handler = self._handlers.get(type(command))
        if handler is None:
            raise TypeError(f"not a tender command: {command!r:.100}")
        tid = command.tender_id if type(command.tender_id) is str else ""
        tender = self.tenders.get(tid)
        if tender is None:
            events.append(refuse(command, "not_published" if tid in self.drafts else "unknown_tender"))
            return events
        if any(type(getattr(command, name, "")) is not str for name in _ID_FIELDS):
            events.append(refuse(command, "malformed"))
            return events
        result = handler(command, tender)
        events += result if type(result) is list else [result]
        _settle(tender)
        return events

    # -- deadlines ----------------------------------------------------------------------

    def _advance(self, now: int, events: Events, only: str | None) -> None:
        due = sorted((d, tid) for tid, t in self.tenders.items()
                     if (d := t.deadline()) is not None and d <= now and (only is None or tid == only))
        for _, tid in due:
            tender = self.tenders[tid]
            while (at := tender.deadline()) is not None and at <= now:
                if tender.status == PUBLISHED:
                    tender.status = OPENING
                    events += set_aside(tender, tid, at)
                    events.append(DepositsClosed(at, tid, len(tender.deposits)))
                    if not tender.deposits:
                        self._decide_lots(tender, tid, at, "no_offers", events)
                elif at in tender.answer_by.values():
                    expire(tender, tid, at, events)
                elif tender.extension and tender.extension[1] == at:  # before the validity's end
                    events.append(close_extension(tender, tid, at))
                else:
                    self._decide_lots(tender, tid, at, "offers_expired", events)
                _settle(tender)

    def _decide_lots(self, tender: Tender, tid: str, at: int, reason: str, events: Events) -> None:
        for lot_id, lot in tender.lots.items():
            if lot[0] in ("pending", JUSTIFICATION):
                lot[0], lot[4] = "unsuccessful", reason
                events.append(TenderLotUnsuccessful(at, tid, lot_id, reason))
        tender.answer_by.clear()
        tender.status = DECIDED

    def case_table(self) -> dict[str, Any]:
        return self.tenders

    def has_case(self, case_id: str) -> bool:
        return case_id in self.tenders or case_id in self.drafts  # a draft holds its id against other kinds

    def cases(self) -> list[str]:
        return [*self.tenders, *self.drafts]

    def next_deadline(self) -> int | None:
        return min((d for t in self.tenders.values() if (d := t.deadline()) is not None), default=None)

    # -- commands -----------------------------------------------------------------------

    def _publish(self, cmd: PublishTender) -> Any:
        if not is_id(cmd.tender_id):
            return refuse(cmd, "malformed")
        if cmd.tender_id in self.tenders:
            return refuse(cmd, "tender_exists")
        problem = spec_problem(cmd.spec, cmd.now)
        if problem is not None:
            return refuse(cmd, problem)
        if (refusal := draft.publishing(cmd, self.drafts)) is not None:
            return refusal
        self.drafts.pop(cmd.tender_id, None)  # the publication's spec replaces the draft's
        tender = self.tenders[cmd.tender_id] = Tender(cmd.spec)
        return TenderPublished(cmd.now, cmd.tender_id, tender.opening_at, tender.validity_until)

    def _deposit(self, cmd: DepositOffer, tender: Tender) -> Any:
        if tender.status != PUBLISHED:
            return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "deposit_closed")
        if not is_id(cmd.bidder_id) or type(cmd.client_id) is not str:
            return refuse(cmd, "malformed")
        if cmd.bidder_id in tender.deposits:
            return refuse(cmd, "already_deposited")
        envelopes = cmd.envelopes
        if (type(envelopes) is not tuple
                or not all(type(e) is tuple and len(e) == 3 and type(e[0]) is str for e in envelopes)
                or sorted(e[0] for e in envelopes) != sorted(tender.spec.parts)):
            return refuse(cmd, "malformed_envelopes")
        for _, ciphertext, hashed in envelopes:
            if type(ciphertext) is not bytes or type(hashed) is not bytes or not 0 < len(ciphertext) <= MAX_ENVELOPE:
                return refuse(cmd, "malformed_envelopes")
            if digest(ciphertext) != hashed:
                return refuse(cmd, "hash_mismatch")
        tender.deposits[cmd.bidder_id] = list(envelopes)
        tender.deposited_at[cmd.bidder_id] = cmd.now
        tender.orders[cmd.bidder_id] = max(tender.orders.values(), default=-1) + 1
        return OfferDeposited(cmd.now, cmd.tender_id, cmd.bidder_id, tuple((p, d) for p, _, d in envelopes))

    def _withdraw(self, cmd: WithdrawOffer, tender: Tender) -> Any:
        if tender.status != PUBLISHED:
            return refuse(cmd, "tender_cancelled" if tender.status == CANCELLED else "deposit_closed")
        if cmd.bidder_id not in tender.deposits:
            return refuse(cmd, "nothing_to_withdraw")
        del tender.deposits[cmd.bidder_id], tender.orders[cmd.bidder_id], tender.deposited_at[cmd.bidder_id]
        tender.unconfirmed.pop(cmd.bidder_id, None)
        tender.withdrawals.append([cmd.bidder_id, cmd.now])
        return OfferWithdrawn(cmd.now, cmd.tender_id, cmd.bidder_id)

    def _rate(self, cmd: RecordRate, tender: Tender) -> Any:
        if cmd.buyer_id != tender.spec.buyer_id:
            return refuse(cmd, "not_the_buyer")
        if tender.status in (DECIDED, CANCELLED):
            return refuse(cmd, "already_decided")
        if type(cmd.currency) is not str or not CURRENCY.fullmatch(cmd.currency) \
                or cmd.currency == tender.spec.currency:
            return refuse(cmd, "invalid_currency")
        try:
            if parse_amount(cmd.rate, 6) == 0:
                return refuse(cmd, "invalid_rate")
        except MoneyError:
            return refuse(cmd, "invalid_rate")
        tender.rates[cmd.currency] = cmd.rate
        return RateRecorded(cmd.now, cmd.tender_id, cmd.currency, cmd.rate)

    def _share(self, cmd: SubmitShare, tender: Tender) -> Any:
        if tender.status != OPENING:
            return refuse(cmd, "opening_not_started" if tender.status == PUBLISHED else "not_opening")
        members = tender.spec.members
        if cmd.member_id not in members:
            return refuse(cmd, "not_a_member")
        if cmd.member_id in tender.shares:
            return refuse(cmd, "share_already_submitted")
        index = members.index(cmd.member_id)
        if (type(cmd.share) is not bytes or len(cmd.share) != SHARE_SIZE or cmd.share[0] != index + 1
                or share_digest(cmd.share) != tender.spec.share_digests[index]):
            return refuse(cmd, "bad_share")
        tender.shares[cmd.member_id] = cmd.share
        events: Events = [ShareAccepted(cmd.now, cmd.tender_id, cmd.member_id, len(tender.shares))]
        if len(tender.shares) >= tender.spec.threshold:
            self._open(cmd.now, cmd.tender_id, tender, events)
        return events

    def _open(self, now: int, tid: str, tender: Tender, events: Events) -> None:
        """Rebuild the key from the shares and open every envelope, in deposit order."""
        try:
            key = combine_shares(list(tender.shares.values()))
        except SealingError:  # shares with their published digests: the shell published bad digests
            return
        if public_key_of(key) != tender.spec.public_key:
            return  # the same: the shares do not match the public key; the opening waits
        tender.private_key, tender.status, tender.opened_at = key, ADMISSION, now
        events.append(TenderOpened(now, tid, key))
        lot_ids = frozenset(lot for lot, _ in tender.spec.lots)
        for bidder in sorted(tender.deposits, key=lambda b: tender.orders[b]):
            parts = tender.opened[bidder] = {}
            for part, ciphertext, _ in sorted(tender.deposits[bidder]):
                try:
                    plaintext = open_envelope(key, ciphertext, tid, bidder, part)
                    if part == FINANCIAL:
                        parse_financial(plaintext, lot_ids)
                except (SealingError, OfferError) as exc:
                    parts[part] = [exc.code, b"", b""]
                    events.append(EnvelopeUnreadable(now, tid, bidder, part, exc.code))
                    continue
                content = plaintext if part == FINANCIAL else b""
                parts[part] = ["ok", digest(plaintext), content]
                events.append(EnvelopeOpened(now, tid, bidder, part, digest(plaintext), content))

    def _decide(self, cmd: DecideAdmission, tender: Tender) -> Any:
        if tender.status != ADMISSION:
            return refuse(cmd, "not_in_admission")
        if cmd.member_id not in tender.spec.members:
            return refuse(cmd, "not_a_member")
        if cmd.bidder_id not in tender.opened:
            return refuse(cmd, "unknown_bidder")
        if (type(cmd.admitted) is not bool or type(cmd.established) is not bool or type(cmd.reason) is not str
                or len(cmd.reason) > MAX_REASON):
            return refuse(cmd, "malformed")
        if not cmd.admitted and not cmd.reason.strip():
            return refuse(cmd, "reason_required")
        try:
            if cmd.moroccan_share != "":
                parse_percent(cmd.moroccan_share)
        except MoneyError:
            return refuse(cmd, "invalid_percent")
        tender.decisions[cmd.bidder_id] = [cmd.admitted, cmd.reason, cmd.member_id, cmd.established,
                                           cmd.moroccan_share]
        return AdmissionDecided(cmd.now, cmd.tender_id, cmd.member_id, cmd.bidder_id, cmd.admitted, cmd.reason)

    def _close_admission(self, cmd: CloseAdmission, tender: Tender) -> Any:
        if tender.status != ADMISSION:
            return refuse(cmd, "not_in_admission")
        if cmd.member_id not in tender.spec.members:
            return refuse(cmd, "not_a_member")
        if any(b not in tender.decisions for b in tender.opened):
            return refuse(cmd, "undecided_bidders")
        tender.status = EVALUATION
        events: Events = []
        for lot_id in tender.lots:
            decide_lot(tender, cmd.tender_id, lot_id, cmd.now, events)
        return events

    def _cancel(self, cmd: CancelTender, tender: Tender) -> Any:
        if cmd.buyer_id != tender.spec.buyer_id:
            return refuse(cmd, "not_the_buyer")
        if tender.status in (DECIDED, CANCELLED):
            return refuse(cmd, "already_decided")
        if type(cmd.reason) is not str or not cmd.reason.strip() or len(cmd.reason) > MAX_REASON:
            return refuse(cmd, "reason_required")
        tender.status, tender.reason = CANCELLED, cmd.reason
        return TenderCancelled(cmd.now, cmd.tender_id, cmd.reason)

    # -- queries ------------------------------------------------------------------------

    def explain(self, tender_id: str, lot_id: str) -> list[dict[str, Any]]:
        """Every step of a lot's evaluation with its inputs and result (KeyError if unknown;
        before the opening there is nothing to explain)."""
        tender = self.tenders[tender_id]
        if lot_id not in tender.lots:
            raise KeyError(lot_id)
        if tender.status in (PUBLISHED, OPENING) or not tender.private_key:
            return []
        return lot_outcome(tender, lot_id)[3]

    def public_view(self, tender_id: str) -> dict[str, Any]:
        """What anyone may see (`views.public_view`; KeyError if unknown)."""
        return views.public_view(tender_id, self.tenders[tender_id])

    def bidder_view(self, tender_id: str, bidder_id: str) -> dict[str, Any]:
        """What one bidder may see: its own file and evaluation (`views.bidder_view`)."""
        return views.bidder_view(tender_id, self.tenders[tender_id], bidder_id)

    def buyer_view(self, tender_id: str) -> dict[str, Any]:
        """What the buyer may see: identities, decisions, every explain (`views.buyer_view`)."""
        return views.buyer_view(tender_id, self.tenders[tender_id])

    # -- as a procedure kind ------------------------------------------------------------

    def public_event(self, event: Any) -> dict[str, Any]:
        """The feed's entry: money in the tender's decimals, ISO-8601 times, no bidder (lapsed
        ones counted), the key in hex."""
        decimals = self.tenders[event.tender_id].spec.decimals
        entry: dict[str, Any] = {"type": type(event).__name__}
        for name, value in event._asdict().items():
            if name in _MONEY_FIELDS:
                entry[name] = format_amount(value, decimals)
            elif name in _TIME_FIELDS:
                entry[name] = format_instant(value)
            elif name == "lapsed":
                entry[name] = len(value)
            elif type(value) is bytes:
                entry[name] = value.hex()
            elif name != "bidder_id":
                entry[name] = value
        return entry

    @staticmethod
    def changes_state(events: Events) -> bool:
        return any(type(e) is not TenderRefused for e in events)

    @staticmethod
    def retry_key(command: Any) -> RetryKey | None:
        if type(command) in (DepositOffer, WithdrawOffer) and type(command.client_id) is str and command.client_id:
            return command.tender_id, command.bidder_id, command.client_id
        return None

    def case_states(self) -> list[list[object]]:
        return [*([tid, *t.canonical()] for tid, t in self.tenders.items()), *draft.canonical(self.drafts)]

    @staticmethod
    def hash_of(case_states: list[list[object]]) -> str:
        ordered = sorted(case_states, key=lambda s: str(s[0]))
        return hashlib.sha256(msgpack.packb([STATE_FORMAT, ordered], use_bin_type=True)).hexdigest()

    def dump_state(self) -> object:
        return [STATE_FORMAT, self._now, [[tid, t.dump()] for tid, t in self.tenders.items()],
                draft.canonical(self.drafts)]

    @classmethod
    def load_state(cls, state: object) -> Self:
        kind = cls()
        try:
            data: Any = state
            fmt, now, *rest = data
            if fmt != STATE_FORMAT or type(now) is not int:
                raise ValueError(f"format {fmt!r}")
            tenders, drafts = rest
            kind._now = now
            for tid, data in tenders:
                kind.tenders[tid] = Tender.load(data)
            kind.drafts = draft.load(drafts)
        except (TypeError, ValueError) as exc:
            raise StateError(f"not a tender kind's state: {exc}") from None
        return kind


def _settle(tender: Tender) -> None:
    """A tender in evaluation is decided once no lot waits any more."""
    if tender.status == EVALUATION and all(lot[0] not in ("pending", JUSTIFICATION) for lot in tender.lots.values()):
        tender.status = DECIDED
