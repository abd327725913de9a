"""The collectives RPC's answers and feed entries (pydantic v2), declared once: the
OpenAPI document states them and tests/test_openapi.py checks every answer against them.
Money is a decimal string with 2 decimals, times ISO-8601 UTC (gateway/collective_views.py
renders them). Names start with `Collective` (or end with `Entry`) so no other kind's
schema shares them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .collective_models import Sha256
from .models import Identifier
from .views import Count, InstantOut, MoneyOut, RoomToken, View

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


class CollectiveCommissionMember(View):
    member_id: Identifier
    representative: str


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
    commission: list[CollectiveCommissionMember] = Field(description="Each member's representative, in member "
                                                                     "order; empty until designated.")


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
