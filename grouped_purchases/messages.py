"""The commands (imperative) and events (past tense) of the collective kind.

Every command carries `now` (µs) first, the collective id second and the acting party
third; every event carries `time` first and the collective id second. A refusal is the
event `CollectiveRefused` with a stable `code` (see `REFUSAL_CODES`), never an exception.
Money is in integer minor units; quantities are integer units of the article's unit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# -- commands ---------------------------------------------------------------------------


class CreateCollective(NamedTuple):
    now: int
    collective_id: str
    coordinator: str
    members: tuple[str, ...]
    convention_hash: str  # SHA-256 (hex) of the founding convention
    needs_deadline: int  # µs: needs are declared and confirmed before it


class AcceptConvention(NamedTuple):
    now: int
    collective_id: str
    member_id: str
    convention_hash: str  # must be the collective's: a member accepts what it read


class AddArticle(NamedTuple):
    now: int
    collective_id: str
    actor: str  # the coordinator
    code: str
    description: str
    unit: str
    unit_price: int  # estimated, minor units, > 0
    lot: str = ""  # "" is the collective's one unnamed lot


class DeclareNeed(NamedTuple):
    """Declare or revise (a new version) the member's need of one article."""

    now: int
    collective_id: str
    member_id: str
    article: str
    quantity: int
    place: str  # delivery place


class WithdrawNeed(NamedTuple):
    """Withdraw the member's need of one article: a new version of quantity 0."""

    now: int
    collective_id: str
    member_id: str
    article: str


class ConfirmNeeds(NamedTuple):
    now: int
    collective_id: str
    member_id: str


class GenerateSchedule(NamedTuple):
    now: int
    collective_id: str
    actor: str


class LaunchProcurement(NamedTuple):
    """One procurement (the auction's case id) for every open lot of a final schedule."""

    now: int
    collective_id: str
    actor: str
    procurement_id: str
    schedule_version: int


class RecordLotAward(NamedTuple):
    """A lot awarded on its total: unit prices are derived pro rata (see rules.py)."""

    now: int
    collective_id: str
    actor: str
    procurement_id: str
    lot: str
    supplier: str
    total: int


class RecordLotPrices(NamedTuple):
    """A lot awarded on unit prices, one per article of the lot."""

    now: int
    collective_id: str
    actor: str
    procurement_id: str
    lot: str
    supplier: str
    prices: tuple[tuple[str, int], ...]


class RecordLotUnsuccessful(NamedTuple):
    now: int
    collective_id: str
    actor: str
    procurement_id: str
    lot: str


class RecordDelivery(NamedTuple):
    now: int
    collective_id: str
    actor: str
    contract_id: str
    article: str
    quantity: int
    allow_over: bool = False  # the coordinator's explicit leave to deliver beyond the contract


class RecordReceipt(NamedTuple):
    """Inspection of delivered units: `quantity` received, `rejected` refused (a
    discrepancy, which needs a reason)."""

    now: int
    collective_id: str
    actor: str
    contract_id: str
    article: str
    quantity: int
    rejected: int = 0
    reason: str = ""


class RecordPayment(NamedTuple):
    now: int
    collective_id: str
    actor: str
    contract_id: str
    amount: int
    allow_over: bool = False  # the coordinator's explicit leave to pay beyond the amount due


class DesignateCommission(NamedTuple):
    """The coordinator designates the commission: each member's representative, every
    member once ((member id, representative's name), ...). A new designation replaces it."""

    now: int
    collective_id: str
    actor: str
    representatives: tuple[tuple[str, str], ...]


COMMANDS: tuple[type[Any], ...] = (
    CreateCollective, AcceptConvention, AddArticle, DeclareNeed, WithdrawNeed, ConfirmNeeds, GenerateSchedule,
    LaunchProcurement, RecordLotAward, RecordLotPrices, RecordLotUnsuccessful, RecordDelivery, RecordReceipt,
    RecordPayment, DesignateCommission)

# -- events -----------------------------------------------------------------------------


class CollectiveCreated(NamedTuple):
    time: int
    collective_id: str
    coordinator: str
    members: tuple[str, ...]
    convention_hash: str
    needs_deadline: int


class ConventionAccepted(NamedTuple):
    time: int
    collective_id: str
    member_id: str
    convention_hash: str


class CollectiveConstituted(NamedTuple):
    time: int
    collective_id: str


class ArticleAdded(NamedTuple):
    time: int
    collective_id: str
    code: str
    description: str
    unit: str
    unit_price: int
    lot: str


class NeedDeclared(NamedTuple):
    time: int
    collective_id: str
    member_id: str
    article: str
    version: int  # 1 for the first declaration, +1 per revision
    quantity: int
    place: str


class NeedWithdrawn(NamedTuple):
    time: int
    collective_id: str
    member_id: str
    article: str
    version: int


class NeedsConfirmed(NamedTuple):
    time: int
    collective_id: str
    member_id: str
    articles: int


class NeedsClosed(NamedTuple):
    time: int
    collective_id: str
    excluded: tuple[str, ...]  # members whose needs were not confirmed: left out


class ScheduleGenerated(NamedTuple):
    time: int
    collective_id: str
    version: int
    digest: str  # SHA-256 of the schedule's canonical form (rules.schedule_digest)
    final: bool  # generated after the needs deadline: a procurement may use it
    total: int  # estimated total, minor units


class ProcurementLaunched(NamedTuple):
    time: int
    collective_id: str
    procurement_id: str
    schedule_version: int
    lots: tuple[str, ...]


class LotAwardRecorded(NamedTuple):
    time: int
    collective_id: str
    procurement_id: str
    lot: str
    supplier: str
    total: int


class MemberContractIssued(NamedTuple):
    time: int
    collective_id: str
    contract_id: str
    member_id: str
    lot: str
    total: int


class LotLeftOpen(NamedTuple):
    time: int
    collective_id: str
    procurement_id: str
    lot: str


class DeliveryRecorded(NamedTuple):
    time: int
    collective_id: str
    contract_id: str
    article: str
    quantity: int


class ReceiptRecorded(NamedTuple):
    time: int
    collective_id: str
    contract_id: str
    article: str
    quantity: int
    rejected: int
    reason: str


class PaymentRecorded(NamedTuple):
    time: int
    collective_id: str
    contract_id: str
    amount: int


class CommissionDesignated(NamedTuple):
    time: int
    collective_id: str
    representatives: tuple[tuple[str, str], ...]  # in the collective's member order


class CollectiveRefused(NamedTuple):
    """A command refused; nothing changed. `code` is one of REFUSAL_CODES."""

    time: int
    collective_id: str
    command: str
    actor: str
    code: str
    message: str


EVENTS: tuple[type[Any], ...] = (
    CollectiveCreated, ConventionAccepted, CollectiveConstituted, ArticleAdded, NeedDeclared, NeedWithdrawn,
    NeedsConfirmed,
    NeedsClosed, ScheduleGenerated, ProcurementLaunched, LotAwardRecorded, MemberContractIssued, LotLeftOpen,
    DeliveryRecorded, ReceiptRecorded, PaymentRecorded, CommissionDesignated, CollectiveRefused)

PUBLIC: frozenset[type[Any]] = frozenset({
    CollectiveCreated, CollectiveConstituted, NeedsClosed, ScheduleGenerated, ProcurementLaunched,
    LotAwardRecorded, LotLeftOpen})

REFUSAL_CODES = frozenset({
    "invalid_command", "unknown_collective", "collective_exists", "not_member", "not_coordinator",
    "wrong_convention", "already_accepted", "not_constituted", "article_exists", "unknown_article",
    "unknown_need", "invalid_quantity", "invalid_amount", "needs_closed", "needs_open", "nothing_to_confirm",
    "unknown_schedule", "schedule_not_final", "schedule_stale", "nothing_to_procure", "procurement_exists",
    "unknown_procurement", "lot_not_pending", "prices_mismatch", "amount_too_large", "unknown_contract",
    "beyond_contract", "beyond_delivered", "reason_required", "beyond_due", "commission_incomplete"})
