"""The collective kind: every purchasing collective of a host, deterministic and IO-free.

`handle(command) -> events` first closes the needs of every collective whose deadline is
due at or before `now` (a `Tick` naming a collective: only its own), then applies the
command. A refused command yields one `CollectiveRefused` with a stable code and changes
nothing (it is not journaled). Views for each role are in views.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Self

import msgpack

from auction_engine.kind import CaseTable, ClockRegression, Codec, RetryKey, StateError, Tick
from auction_engine.money import MAX_AMOUNT, format_amount
from auction_engine.timeutil import format_instant

from .checks import (
    MAX_QUANTITY,
    Refused,
    count,
    decode_create,
    decode_prices,
    encode_create,
    encode_prices,
    ident,
    member_list,
    money,
    sha256_hex,
    text,
)
from .commission import designate
from .execution import deliver, pay, receive
from .messages import (
    COMMANDS,
    EVENTS,
    PUBLIC,
    AcceptConvention,
    AddArticle,
    ArticleAdded,
    CollectiveConstituted,
    CollectiveCreated,
    CollectiveRefused,
    ConfirmNeeds,
    ConventionAccepted,
    CreateCollective,
    DeclareNeed,
    DesignateCommission,
    GenerateSchedule,
    LaunchProcurement,
    LotAwardRecorded,
    LotLeftOpen,
    MemberContractIssued,
    NeedDeclared,
    NeedsClosed,
    NeedsConfirmed,
    NeedWithdrawn,
    ProcurementLaunched,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordLotUnsuccessful,
    RecordPayment,
    RecordReceipt,
    ScheduleGenerated,
    WithdrawNeed,
)
from .procurement import EDGE_DECIMALS
from .rules import Article, ContractLine, Schedule, build_lines, contracts_at_prices, contracts_on_total, lot_lines
from .rules import schedule_digest as _digest
from .state import Collective, Contract

STATE_FORMAT = 1  # bump when Collective.to_plain changes shape: old hashes stop matching on purpose
__all__ = ["MAX_QUANTITY", "Collectives"]

class Collectives(CaseTable):
    """Every purchasing collective of one host (a case = one collective)."""

    name: ClassVar[str] = "collective"
    case_field: ClassVar[str] = "collective_id"
    codec: ClassVar[Codec] = Codec(COMMANDS, EVENTS, encoders={CreateCollective: encode_create,
                                                                RecordLotPrices: encode_prices},
                                   decoders={CreateCollective: decode_create, RecordLotPrices: decode_prices},
                                   public=PUBLIC)

    def __init__(self) -> None:
        self.collectives: dict[str, Collective] = {}
        self._now = 0
        self._handlers: dict[type[Any], Callable[[Any, Collective], list[Any]]] = {
            AcceptConvention: self._accept, AddArticle: self._add_article, DeclareNeed: self._declare,
            WithdrawNeed: self._withdraw,
            ConfirmNeeds: self._confirm, GenerateSchedule: self._generate, LaunchProcurement: self._launch,
            RecordLotAward: self._award_total, RecordLotPrices: self._award_prices,
            RecordLotUnsuccessful: self._unsuccessful, RecordDelivery: deliver, RecordReceipt: receive,
            RecordPayment: pay, DesignateCommission: designate}

    @property
    def now(self) -> int:
        return self._now

    def handle(self, command: Any) -> list[Any]:
        """Close what is due at `command.now`, then apply `command`; return the events."""
        now = command.now
        if type(now) is not int:
            raise TypeError(f"command time must be int µs, got {now!r:.40}")
        if now < self._now:
            raise ClockRegression(f"command at {now} µs is before the kind's time {self._now} µs")
        self._now = now
        events: list[Any] = []
        if type(command) is Tick:
            self._close_due(now, events, command.case_id)
            return events
        handler = self._handlers.get(type(command))
        if handler is None and type(command) is not CreateCollective:
            raise TypeError(f"not a command: {command!r:.100}")
        self._close_due(now, events, None)
        cid = command.collective_id
        try:
            if type(command) is CreateCollective:
                events += self._create(command)
            else:
                collective = self.collectives.get(cid) if type(cid) is str else None
                if collective is None:
                    raise Refused("unknown_collective", f"no collective {cid!r:.60}")
                assert handler is not None
                events += handler(command, collective)
        except Refused as refused:
            actor = command[2] if type(command[2]) is str else ""
            events.append(CollectiveRefused(now, cid if type(cid) is str else "", type(command).__name__, actor,
                                            refused.code, refused.message))
        return events

    def _close_due(self, now: int, events: list[Any], only: str | None) -> None:
        """Close the needs of every collective whose deadline is due, earliest first."""
        due = sorted((c.needs_deadline, cid) for cid, c in self.collectives.items()
                     if not c.needs_closed and c.needs_deadline <= now and (only is None or cid == only))
        for at, cid in due:
            collective = self.collectives[cid]
            collective.needs_closed = True
            # Unconfirmed needs are excluded from every schedule (docs/grouped-purchases.md).
            collective.excluded = tuple(m for m in collective.members if m not in collective.confirmed)
            events.append(NeedsClosed(at, cid, collective.excluded))

    # -- preparation ---------------------------------------------------------------------

    def _create(self, cmd: CreateCollective) -> list[Any]:
        cid = ident(cmd.collective_id, "collective_id")
        if cid in self.collectives:
            raise Refused("collective_exists", f"collective {cid!r} exists")
        coordinator = ident(cmd.coordinator, "coordinator")
        members = member_list(cmd.members)
        sha256_hex(cmd.convention_hash, "convention_hash")
        if type(cmd.needs_deadline) is not int or cmd.needs_deadline <= cmd.now:
            raise Refused("invalid_command", "needs_deadline must be a later instant (µs)")
        self.collectives[cid] = Collective(coordinator, members, cmd.convention_hash, cmd.needs_deadline)
        return [CollectiveCreated(cmd.now, cid, coordinator, members, cmd.convention_hash, cmd.needs_deadline)]

    @staticmethod
    def _member(c: Collective, actor: object) -> str:
        if actor not in c.members:
            raise Refused("not_member", f"{actor!r:.60} is not a member of the collective")
        return str(actor)

    @staticmethod
    def _coordinator(c: Collective, actor: object) -> None:
        if actor != c.coordinator:
            raise Refused("not_coordinator", "only the coordinator may do this")

    @staticmethod
    def _collecting(c: Collective) -> None:
        if not c.constituted:
            raise Refused("not_constituted", "every member must accept the convention first")
        if c.needs_closed:
            raise Refused("needs_closed", "the needs deadline has passed")

    def _accept(self, cmd: AcceptConvention, c: Collective) -> list[Any]:
        member = self._member(c, cmd.member_id)
        if cmd.convention_hash != c.convention_hash:
            raise Refused("wrong_convention", "this is not the collective's convention")
        if member in c.accepted:
            raise Refused("already_accepted", "the convention is already accepted")
        c.accepted[member] = cmd.now
        events: list[Any] = [ConventionAccepted(cmd.now, cmd.collective_id, member, c.convention_hash)]
        if c.constituted:
            events.append(CollectiveConstituted(cmd.now, cmd.collective_id))
        return events

    def _add_article(self, cmd: AddArticle, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        if c.needs_closed:
            raise Refused("needs_closed", "the catalogue is closed with the needs")
        code = ident(cmd.code, "code")
        if code in c.articles:
            raise Refused("article_exists", f"article {code!r} exists")
        article = Article(text(cmd.description, "description"), text(cmd.unit, "unit"),
                          money(cmd.unit_price, "unit_price"), text(cmd.lot, "lot"))
        c.articles[code] = article
        return [ArticleAdded(cmd.now, cmd.collective_id, code, *article)]

    def _declare(self, cmd: DeclareNeed, c: Collective) -> list[Any]:
        member = self._member(c, cmd.member_id)
        self._collecting(c)
        if type(cmd.article) is not str or cmd.article not in c.articles:
            raise Refused("unknown_article", f"no article {cmd.article!r:.60} in the catalogue")
        quantity = count(cmd.quantity, "quantity")
        place = text(cmd.place, "place")
        versions = c.needs.setdefault((member, cmd.article), [])
        versions.append((cmd.now, quantity, place))
        c.confirmed.pop(member, None)  # a revision withdraws the confirmation: the member confirms again
        return [NeedDeclared(cmd.now, cmd.collective_id, member, cmd.article, len(versions), quantity, place)]

    def _withdraw(self, cmd: WithdrawNeed, c: Collective) -> list[Any]:
        member = self._member(c, cmd.member_id)
        self._collecting(c)
        versions = c.needs.get((member, cmd.article)) if type(cmd.article) is str else None
        if not versions or versions[-1][1] == 0:
            raise Refused("unknown_need", f"no standing need of {cmd.article!r:.60}")
        versions.append((cmd.now, 0, versions[-1][2]))
        c.confirmed.pop(member, None)  # as for a revision: the member confirms what is left
        return [NeedWithdrawn(cmd.now, cmd.collective_id, member, cmd.article, len(versions))]

    def _confirm(self, cmd: ConfirmNeeds, c: Collective) -> list[Any]:
        member = self._member(c, cmd.member_id)
        self._collecting(c)
        count = c.standing_needs(member)
        if not count:
            raise Refused("nothing_to_confirm", "the member has declared no need")
        c.confirmed[member] = cmd.now
        return [NeedsConfirmed(cmd.now, cmd.collective_id, member, count)]

    def _generate(self, cmd: GenerateSchedule, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        if not c.constituted:
            raise Refused("not_constituted", "every member must accept the convention first")
        lines = build_lines(c.articles, c.confirmed_needs())
        if not lines:
            raise Refused("nothing_to_procure", "no confirmed need")
        total = sum(line.amount for line in lines)
        if total > MAX_AMOUNT:
            raise Refused("amount_too_large", f"the estimated total exceeds {MAX_AMOUNT} minor units")
        version = len(c.schedules) + 1
        schedule = Schedule(version, cmd.now, c.needs_closed, _digest(cmd.collective_id, version, lines), lines)
        c.schedules.append(schedule)
        return [ScheduleGenerated(cmd.now, cmd.collective_id, version, schedule.digest, schedule.final, total)]

    # -- consultation and contracts --------------------------------------------------------

    def _launch(self, cmd: LaunchProcurement, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        pid = ident(cmd.procurement_id, "procurement_id")
        if pid in c.procurements:
            raise Refused("procurement_exists", f"procurement {pid!r} is already recorded")
        version = cmd.schedule_version
        if type(version) is not int or not 1 <= version <= len(c.schedules):
            raise Refused("unknown_schedule", f"no schedule version {version!r:.20}")
        if not c.schedules[version - 1].final:
            raise Refused("schedule_not_final", "a procurement uses a schedule generated after the needs deadline")
        if version != len(c.schedules):
            raise Refused("schedule_stale", f"the latest schedule is version {len(c.schedules)}")
        lots = tuple(lot for lot in c.schedules[version - 1].lots() if lot not in c.lots)
        if not lots:
            raise Refused("nothing_to_procure", "every lot is awarded or in a procurement")
        c.procurements[pid] = (version, lots)
        for lot in lots:
            c.lots[lot] = ("pending", pid)
        return [ProcurementLaunched(cmd.now, cmd.collective_id, pid, version, lots)]

    @staticmethod
    def _pending(c: Collective, pid: object, lot: object) -> Schedule:
        if type(pid) is not str or pid not in c.procurements:
            raise Refused("unknown_procurement", f"no procurement {pid!r:.60}")
        if type(lot) is not str or c.lots.get(lot) != ("pending", pid):
            raise Refused("lot_not_pending", f"lot {lot!r:.60} is not awaiting this procurement's result")
        return c.schedules[c.procurements[str(pid)][0] - 1]

    def _award_total(self, cmd: RecordLotAward, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        schedule = self._pending(c, cmd.procurement_id, cmd.lot)
        supplier = ident(cmd.supplier, "supplier")
        total = money(cmd.total, "total")
        lines = lot_lines(schedule, cmd.lot)
        if total < sum(line.quantity for line in lines):
            # Below one minor unit per unit no line can carry a price: refused, not rounded.
            raise Refused("invalid_amount", "the lot total must be at least one minor unit per unit")
        return self._issue(cmd, c, supplier, total, contracts_on_total(lines, total))

    def _award_prices(self, cmd: RecordLotPrices, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        schedule = self._pending(c, cmd.procurement_id, cmd.lot)
        supplier = ident(cmd.supplier, "supplier")
        lines = lot_lines(schedule, cmd.lot)
        pairs = cmd.prices if type(cmd.prices) is tuple else ()
        prices = {p[0]: p[1] for p in pairs if type(p) is tuple and len(p) == 2 and type(p[0]) is str}
        if sorted(prices) != sorted(line.article for line in lines) or len(prices) != len(pairs):
            raise Refused("prices_mismatch", "give one unit price for each article of the lot")
        for price in prices.values():
            money(price, "a unit price")
        total = sum(prices[line.article] * line.quantity for line in lines)
        if total > MAX_AMOUNT:
            raise Refused("amount_too_large", f"the lot total exceeds {MAX_AMOUNT} minor units")
        return self._issue(cmd, c, supplier, total, contracts_at_prices(lines, prices))

    @staticmethod
    def _issue(cmd: RecordLotAward | RecordLotPrices, c: Collective, supplier: str, total: int,
               by_member: dict[str, list[ContractLine]]) -> list[Any]:
        pid, lot, cid = cmd.procurement_id, cmd.lot, cmd.collective_id
        c.lots[lot] = ("awarded", pid)
        events: list[Any] = [LotAwardRecorded(cmd.now, cid, pid, lot, supplier, total)]
        for member, lines in by_member.items():
            contract_id = f"{pid}/{lot}/{member}"
            contract = c.contracts[contract_id] = Contract(member, lot, pid, supplier, tuple(lines))
            c.progress.add(contract)
            events.append(MemberContractIssued(cmd.now, cid, contract_id, member, lot, contract.total))
        return events

    def _unsuccessful(self, cmd: RecordLotUnsuccessful, c: Collective) -> list[Any]:
        self._coordinator(c, cmd.actor)
        self._pending(c, cmd.procurement_id, cmd.lot)
        del c.lots[cmd.lot]  # open again: the next procurement of the latest schedule takes it
        return [LotLeftOpen(cmd.now, cmd.collective_id, cmd.procurement_id, cmd.lot)]

    # -- as a procedure kind (kind.Kind) ---------------------------------------------------

    def case_table(self) -> dict[str, Any]:
        return self.collectives

    def next_deadline(self) -> int | None:
        """The earliest needs deadline not yet applied (a scan: collectives are few)."""
        return min((c.needs_deadline for c in self.collectives.values() if not c.needs_closed), default=None)

    @staticmethod
    def public_event(event: Any) -> dict[str, Any]:
        """The feed's form: ISO-8601 times, money as decimal strings (`EDGE_DECIMALS`), no
        supplier (the feed names no bidder, as for auctions); members and coordinator are
        public buyers."""
        entry: dict[str, Any] = {"type": type(event).__name__, **event._asdict()}
        entry.pop("supplier", None)
        for name in ("time", "needs_deadline"):
            if name in entry:
                entry[name] = format_instant(entry[name])
        if "total" in entry:
            entry["total"] = format_amount(entry["total"], EDGE_DECIMALS)
        return {k: list(v) if type(v) is tuple else v for k, v in entry.items()}

    @staticmethod
    def changes_state(events: list[Any]) -> bool:
        return any(type(e) is not CollectiveRefused for e in events)

    @staticmethod
    def retry_key(command: Any) -> RetryKey | None:
        return None

    def case_states(self) -> list[list[object]]:
        return [[cid, STATE_FORMAT, *c.to_plain()] for cid, c in self.collectives.items()]

    @staticmethod
    def hash_of(case_states: list[list[object]]) -> str:
        return hashlib.sha256(msgpack.packb(sorted(case_states, key=lambda s: str(s[0])))).hexdigest()

    def state_hash(self) -> str:
        return self.hash_of(self.case_states())

    def dump_state(self) -> object:
        return [STATE_FORMAT, self._now, self.case_states()]

    @classmethod
    def load_state(cls, state: object) -> Self:
        kind = cls()
        try:
            parts: Any = state
            fmt, now, cases = parts
            if fmt != STATE_FORMAT or type(now) is not int:
                raise ValueError(f"format {fmt!r:.20}")
            kind._now = now
            for cid, fmt_, *plain in cases:
                if fmt_ != STATE_FORMAT:
                    raise ValueError(f"format {fmt_!r:.20}")
                kind.collectives[cid] = Collective.from_plain(plain)
        except (TypeError, ValueError) as exc:
            raise StateError(f"not a collectives state: {exc}") from None
        return kind
