"""The collectives RPC's request bodies and queries (pydantic v2: strict, unknown fields
refused), declared once: the OpenAPI document states them (answers: collective_answers.py).

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


class CollectiveRepresentative(Model):
    member_id: Identifier
    representative: KindText = Field(min_length=1, description="The member's representative on the commission.")


class CollectiveCommissionRequest(Model):
    representatives: list[CollectiveRepresentative] = Field(
        min_length=1, max_length=MAX_MEMBERS, description="Every member of the collective once (else 409 "
        "`commission_incomplete`, 403 `not_member` for an id that is not a member, 422 for a member named twice).")


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
