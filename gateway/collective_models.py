"""The collectives RPC's request and answer models (pydantic v2), declared once: the
OpenAPI document states them and tests/test_openapi.py checks every answer against them.

Money of a collective is a decimal string with at most 2 decimals (`COLLECTIVE_DECIMALS`;
the kind keeps integer minor units); quantities are integer units of an article's unit.
Names start with `Collective` so no other kind's schema shares them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from auction_engine.config import MAX_BIDDERS, VISIBILITIES
from auction_engine.money import MAX_AMOUNT_DIGITS, parse_amount
from grouped_purchases.checks import MAX_MEMBERS, MAX_QUANTITY
from grouped_purchases.checks import MAX_TEXT as KIND_TEXT
from grouped_purchases.procurement import EDGE_DECIMALS

from .models import (
    BidRules,
    Currency,
    Duration,
    ExtensionPolicy,
    Identifier,
    Instant,
    Model,
    Query,
    QueryInt,
    Ttl,
    _distinct,
    _fail,
    _integral,
)
from .views import Count, InstantOut, MoneyOut, RoomToken, View

COLLECTIVE_DECIMALS = EDGE_DECIMALS  # a collective's amounts at the edge: centimes
_DIGITS = MAX_AMOUNT_DIGITS - COLLECTIVE_DECIMALS  # so every amount the pattern admits is at most MAX_AMOUNT
_MONEY = rf"^(?![0.]*$)[0-9]{{1,{_DIGITS}}}(\.[0-9]{{1,{COLLECTIVE_DECIMALS}}})?$"


def _positive_amount(value: str) -> str:
    try:
        if parse_amount(value, COLLECTIVE_DECIMALS) > 0:
            return value
    except ValueError as exc:
        raise _fail("money", str(exc)) from None
    raise _fail("money", "must be above zero")


CMoney = Annotated[str, AfterValidator(_positive_amount), WithJsonSchema({
    "type": "string", "pattern": _MONEY, "examples": ["1234.50"],
    "description": "A decimal string above zero with at most 2 decimals (never a JSON number)."})]
KindText = Annotated[str, Field(max_length=KIND_TEXT)]
# The constraint before the validator: so the schema states it (as gateway/models.py's Ttl).
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY), BeforeValidator(_integral)]
Units = Annotated[int, Field(ge=0, le=MAX_QUANTITY), BeforeValidator(_integral)]
ContractId = Annotated[str, Field(min_length=1, max_length=3 * 64 + 2, description="A contract's id, "
                                  "`{procurement}/{lot}/{member}` (from the award or the contracts list).")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 in lowercase hex.")]
EXAMPLE_COLLECTIVE: dict[str, Any] = {
    "collective_id": "G-2990-1", "coordinator": "coord", "members": ["m1", "m2", "m3"],
    "convention_hash": "5" * 64, "needs_deadline": "2990-03-01T10:00:00Z"}

# -- requests ------------------------------------------------------------------------------


class CollectiveRequest(Model):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True,
                              json_schema_extra={"examples": [EXAMPLE_COLLECTIVE]})

    collective_id: Identifier = Field(description="Chosen by the coordinator.")
    coordinator: Identifier = Field(description="The coordinator's buyer id (it may also be a member).")
    members: Annotated[list[Identifier], AfterValidator(_distinct)] = Field(
        min_length=1, max_length=MAX_MEMBERS, json_schema_extra={"uniqueItems": True},
        description="The member buyers' ids, each once.")
    convention_hash: Sha256 = Field(description="SHA-256 of the founding convention every member accepts.")
    needs_deadline: Instant = Field(description="Needs are declared and confirmed before it; later than now.")


class CollectiveTokenRequest(Model):
    member_id: Identifier = Field(description="A member of the collective: the token's subject.")
    ttl_s: Ttl | None = Field(None, description="Token lifetime in seconds, from 60 to the token_ttl_s setting "
                                                "(the default).")


class CollectiveAcceptRequest(Model):
    convention_hash: Sha256 = Field(description="The convention the member read: must be the collective's.")


class CollectiveArticleRequest(Model):
    code: Identifier
    description: KindText
    unit: KindText
    unit_price: CMoney = Field(description="The estimated unit price.")
    lot: Identifier = Field("L1", description="The lot (an auction lot id at the launch); default `L1`.")


class CollectiveNeedRequest(Model):
    quantity: Quantity
    place: KindText = Field(description="The delivery place.")


class CollectiveLaunchRequest(Model):
    """The reverse auction bought for the open lots of the latest final schedule: one
    auction lot per schedule lot, its estimate the lot's estimated total."""

    procurement_id: Identifier = Field(description="The auction's id, also the procurement's in the collective.")
    title: Annotated[str, Field(max_length=500)] | None = Field(None, description="Default: the collective's id.")
    currency: Currency = "MAD"
    start: Instant
    end: Instant = Field(description="After `start`; lot i closes at end + i * stagger.")
    stagger: Duration | None = None
    bidders: Annotated[list[Identifier], AfterValidator(_distinct)] | None = Field(
        None, max_length=MAX_BIDDERS, json_schema_extra={"uniqueItems": True}, description="Admitted at creation.")
    min_bidders: Annotated[int, Field(ge=1, le=MAX_BIDDERS), BeforeValidator(_integral)] | None = None
    visibility: Literal[VISIBILITIES] | None = None  # type: ignore[valid-type]
    rules: BidRules = Field(default_factory=BidRules)
    extension: ExtensionPolicy = Field(default_factory=ExtensionPolicy)
    starting_prices: dict[str, CMoney] | None = Field(None, description="Per lot; a lot not named starts at its "
                                                      "estimated total.")


class CollectiveAwardOnTotal(Model):
    """A lot awarded on its total: unit prices derived pro rata to the estimates."""

    procurement_id: Identifier
    supplier: Identifier
    total: CMoney


class CollectiveAwardOnPrices(Model):
    """A lot awarded on unit prices: one per article of the lot."""

    procurement_id: Identifier
    supplier: Identifier
    prices: dict[str, CMoney]


class CollectiveAwardRequest(RootModel[CollectiveAwardOnTotal | CollectiveAwardOnPrices]):
    """Either `total` or `prices` (not both)."""

    model_config = ConfigDict(strict=True, frozen=True)


class CollectiveUnsuccessfulRequest(Model):
    procurement_id: Identifier


class CollectiveDeliveryRequest(Model):
    contract_id: ContractId
    article: Identifier
    quantity: Quantity
    allow_over: bool = Field(False, description="The coordinator's leave to deliver beyond the contract.")


class CollectiveReceiptRequest(Model):
    contract_id: ContractId
    article: Identifier
    quantity: Units = Field(description="Units received (accepted on inspection).")
    rejected: Units = Field(0, description="Units rejected on inspection: a discrepancy, which needs a reason.")
    reason: KindText = ""


class CollectivePaymentRequest(Model):
    contract_id: ContractId
    amount: CMoney
    allow_over: bool = Field(False, description="The coordinator's leave to pay beyond the amount due.")


class CollectiveExportQuery(Query):
    format: Literal["csv", "xlsx", "html"] = Field("csv", description="The document's format.")


class CollectiveContractsQuery(Query):
    member_id: str | None = Field(None, description="Only this member's contracts (a member: only its own).")
    contract_id: str | None = Field(None, description="Only this contract (a member: only its own).")


class CollectiveLiveQuery(Query):
    since: QueryInt = Field(0, ge=0, le=1 << 62, description="Answer once `revision` is above this (long poll).")
    wait: float = Field(0.0, ge=0, allow_inf_nan=False, description="Seconds to wait for a revision above "
                                                                    "`since`: 0 answers at once.")


# -- answers -------------------------------------------------------------------------------


class CollectiveArticle(View):
    code: Identifier
    description: str
    unit: str
    unit_price: MoneyOut
    lot: str


class CollectiveScheduleSummary(View):
    version: int = Field(ge=1)
    time: InstantOut
    final: bool = Field(description="Generated after the needs deadline: a procurement may use it.")
    digest: Sha256
    total: MoneyOut


class CollectiveProcurement(View):
    procurement_id: Identifier
    schedule_version: int = Field(ge=1)
    lots: list[str]


class CollectiveLotStatus(View):
    lot: str
    status: Literal["pending", "awarded"]
    procurement_id: Identifier


class CollectiveView(View):
    collective_id: Identifier
    coordinator: Identifier
    members: list[Identifier]
    convention_hash: Sha256
    needs_deadline: InstantOut
    accepted: list[Identifier] = Field(description="Members that accepted the convention.")
    constituted: bool
    needs_closed: bool
    excluded: list[Identifier] = Field(description="Members whose needs were unconfirmed at the deadline.")
    articles: list[CollectiveArticle]
    schedules: list[CollectiveScheduleSummary]
    procurements: list[CollectiveProcurement]
    lots: list[CollectiveLotStatus] = Field(description="Lots pending or awarded; a lot not listed is open.")
    contracts: Count


class CollectiveMemberToken(View):
    collective_id: Identifier
    member_id: Identifier
    token: RoomToken
    expires_at: InstantOut


class CollectiveNeed(View):
    member_id: Identifier
    article: Identifier
    version: int = Field(ge=1)
    quantity: Count = Field(description="0: withdrawn.")
    place: str
    time: InstantOut
    confirmed: bool = Field(description="The member's confirmation stands (it counts in the schedule).")


class CollectiveNeeds(View):
    needs: list[CollectiveNeed]


class CollectiveNeedVersion(View):
    version: int = Field(ge=1)
    time: InstantOut
    quantity: Count
    place: str


class CollectiveNeedVersions(View):
    member_id: Identifier
    article: Identifier
    versions: list[CollectiveNeedVersion]


class CollectiveConfirmation(View):
    member_id: Identifier
    articles: int = Field(ge=1)


class CollectiveMemberPart(View):
    member_id: Identifier
    quantity: int = Field(ge=1)
    amount: MoneyOut


class CollectiveScheduleLine(View):
    article: Identifier
    lot: str
    unit_price: MoneyOut
    quantity: int = Field(ge=1)
    amount: MoneyOut
    members: list[CollectiveMemberPart]


class CollectiveLotTotal(View):
    lot: str
    total: MoneyOut


class CollectiveSchedule(CollectiveScheduleSummary):
    collective_id: Identifier
    lines: list[CollectiveScheduleLine]
    lots: list[CollectiveLotTotal]


class CollectiveLaunchLot(View):
    lot: str
    estimate: MoneyOut
    starting_price: MoneyOut


class CollectiveLaunch(View):
    collective_id: Identifier
    procurement_id: Identifier
    auction_id: Identifier
    schedule_version: int = Field(ge=1)
    buyer_ref: str = Field(description="The auction's `buyer_ref`: `collective:{id}:schedule:{version}`.")
    lots: list[CollectiveLaunchLot]


class CollectiveContractLine(View):
    article: Identifier
    unit_price: MoneyOut
    quantity: int = Field(ge=1)
    extra: Count = Field(description="Minor units of the lot's rounding remainder this line carries.")
    amount: MoneyOut
    delivered: Count
    received: Count
    rejected: Count


class CollectiveDiscrepancy(View):
    time: InstantOut
    article: Identifier
    rejected: int = Field(ge=1)
    reason: str


class CollectiveContract(View):
    contract_id: str
    member_id: Identifier
    lot: str
    procurement_id: Identifier
    supplier: Identifier
    total: MoneyOut
    paid: MoneyOut
    outstanding: MoneyOut
    lines: list[CollectiveContractLine]
    discrepancies: list[CollectiveDiscrepancy]


class CollectiveContracts(View):
    contracts: list[CollectiveContract]


class CollectiveLotResult(View):
    collective_id: Identifier
    procurement_id: Identifier
    lot: str
    status: Literal["awarded", "open"]
    total: MoneyOut | None = Field(description="The awarded total; null when the lot is left open.")
    contracts: list[CollectiveContract]


class CollectiveArticleProgress(View):
    article: Identifier
    ordered: Count
    delivered: Count
    received: Count
    rejected: Count
    outstanding: int = Field(description="ordered - received (negative after an allowed over-delivery).")


class CollectiveMemberProgress(View):
    member_id: Identifier
    ordered: Count
    delivered: Count
    received: Count
    amount: MoneyOut
    paid: MoneyOut
    outstanding: MoneyOut


class CollectiveConsolidation(View):
    collective_id: Identifier
    revision: Count = Field(description="Grows with every contract, delivery, receipt and payment (stable across "
                                        "restarts): pass it as `since` to wait for the next change.")
    articles: list[CollectiveArticleProgress]
    members: list[CollectiveMemberProgress]


# -- feed entries (the kind's public events) -------------------------------------------------


class _CollectiveEntry(View):
    seq: int = Field(ge=1)
    time: InstantOut
    collective_id: Identifier


class CollectiveCreatedEntry(_CollectiveEntry):
    type: Literal["CollectiveCreated"]
    coordinator: Identifier
    members: list[Identifier]
    convention_hash: Sha256
    needs_deadline: InstantOut


class CollectiveConstitutedEntry(_CollectiveEntry):
    type: Literal["CollectiveConstituted"]


class NeedsClosedEntry(_CollectiveEntry):
    type: Literal["NeedsClosed"]
    excluded: list[Identifier]


class ScheduleGeneratedEntry(_CollectiveEntry):
    type: Literal["ScheduleGenerated"]
    version: int = Field(ge=1)
    digest: Sha256
    final: bool
    total: MoneyOut


class ProcurementLaunchedEntry(_CollectiveEntry):
    type: Literal["ProcurementLaunched"]
    procurement_id: Identifier
    schedule_version: int = Field(ge=1)
    lots: list[str]


class LotAwardRecordedEntry(_CollectiveEntry):
    type: Literal["LotAwardRecorded"]
    procurement_id: Identifier
    lot: str
    total: MoneyOut


class LotLeftOpenEntry(_CollectiveEntry):
    type: Literal["LotLeftOpen"]
    procurement_id: Identifier
    lot: str


FEED_ENTRIES = (CollectiveCreatedEntry, CollectiveConstitutedEntry, NeedsClosedEntry, ScheduleGeneratedEntry,
                ProcurementLaunchedEntry, LotAwardRecordedEntry, LotLeftOpenEntry)
