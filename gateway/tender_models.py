"""The tender RPC's request models (pydantic v2), declared once: the document states them
and gateway/tenders_api.py validates bodies with them (answers: gateway/tender_answers.py).
Keys, digests and shares are lowercase hex; ciphertexts base64. Rules across fields (the
opening in the future, k at most n...) are the kind's: its refusal codes answer them.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from auction_engine.money import parse_amount
from tenders.messages import PARTS
from tenders.tender import ID as TENDER_ID

from .models import (
    EXAMPLE_AUCTION,
    PAGE_LIMIT,
    AuctionConfig,
    Currency,
    Instant,
    JsonInt,
    Model,
    Percent,
    PositiveMoney,
    Query,
    QueryInt,
    Ttl,
    _distinct,
    _fail,
    _integral,
    _matches,
    _parsed_by,
)

STATUSES = ("published", "opening", "admission", "evaluation", "decided", "cancelled")
MAX_TENDER_TEXT = 5_000  # a question or an answer (the kind's bound)
MAX_REASON = 500

TenderId = Annotated[str, AfterValidator(_matches(TENDER_ID, "must be 1-64 letters, digits or . _ : -, starting "
                                                              "with a letter or digit")), WithJsonSchema({
    "type": "string", "pattern": f"^{TENDER_ID.pattern}$", "minLength": 1, "maxLength": 64,
    "description": "1-64 letters, digits or `. _ : -`, starting with a letter or digit."})]


def _hex(size: int) -> Any:
    return _matches(re.compile(f"[0-9a-f]{{{2 * size}}}"), f"must be {2 * size} lowercase hex digits")


def _hex_schema(size: int, what: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": f"^[0-9a-f]{{{2 * size}}}$",
                           "description": f"{what}: {size} bytes as lowercase hex."})


Key = Annotated[str, AfterValidator(_hex(32)), _hex_schema(32, "A raw X25519 public key")]
Digest = Annotated[str, AfterValidator(_hex(32)), _hex_schema(32, "A SHA-256 digest")]
Share = Annotated[str, AfterValidator(_hex(33)), _hex_schema(33, "A member's share of the tender key (index "
                                                                  "byte, then 32 bytes)")]


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _fail("base64", "must be standard base64 (RFC 4648, with padding)") from None
    return value


Base64 = Annotated[str, Field(min_length=4), AfterValidator(_base64), WithJsonSchema({
    "type": "string", "minLength": 4, "pattern": r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    "contentEncoding": "base64", "description": "Standard base64 with padding (RFC 4648 section 4)."})]
Rate = Annotated[str, AfterValidator(_parsed_by(lambda t: parse_amount(t, 6), "rate", True)), WithJsonSchema({
    "type": "string", "pattern": r"^(?![0.]*$)[0-9]{1,12}(\.[0-9]{1,6})?$", "examples": ["10.85"],
    "description": "Tender currency units per one foreign unit, above zero, at most 6 decimals."})]
Part = Literal[PARTS]  # type: ignore[valid-type]
Days = Annotated[int, Field(ge=1, le=3650), BeforeValidator(_integral)]
Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON)]
Words = Annotated[str, Field(min_length=1, max_length=MAX_TENDER_TEXT)]
Ids = Annotated[list[TenderId], AfterValidator(_distinct)]


# -- requests -------------------------------------------------------------------------------

class TenderLotSpec(Model):
    lot_id: TenderId
    estimate: PositiveMoney = Field(description="The buyer's estimate, at most the tender's `decimals` decimals.")


EXAMPLE_TENDER: dict[str, Any] = {
    "tender_id": "AO-2990-015", "buyer_id": "ministry", "opening_at": "2990-03-02T10:00:00Z",
    "lots": [{"lot_id": "L1", "estimate": "1000000.00"}], "public_key": "ab" * 32,
    "members": ["m1", "m2", "m3"], "share_digests": ["01" * 32, "02" * 32, "03" * 32], "threshold": 2}


class PublishTenderRequest(Model):
    """A tender as published. The key pair and the shares are made by the buyer's software
    (gateway/tender_client.py): the body carries the public key and the SHA-256 of each
    member's share, in `members` order; the service never sees the private key."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_TENDER]})

    tender_id: TenderId = Field(description="Chosen by the buyer; publishing is idempotent on it.")
    buyer_id: TenderId = Field(description="The contracting authority, as journaled.")
    opening_at: Instant = Field(description="The deposit deadline and the opening session (exclusive for "
                                            "deposits); in the future.")
    lots: list[TenderLotSpec] = Field(min_length=1, max_length=100, description="Lot ids unique.")
    public_key: Key
    members: Ids = Field(min_length=1, max_length=255, json_schema_extra={"uniqueItems": True},
                         description="The commission: member i holds Shamir share i+1.")
    share_digests: list[Digest] = Field(min_length=1, max_length=255, description="One per member, in order.")
    threshold: JsonInt = Field(ge=1, le=255, description="k: shares needed to open (at most the number of members).")
    currency: Currency = "MAD"
    decimals: JsonInt = Field(2, ge=0, le=6)
    parts: list[Part] = Field(["admin", "financial"], min_length=1, max_length=3,
                              description="The envelopes a deposit holds; `financial` always.")
    validity_days: Days = Field(75, description="Offers' validity from the opening.")
    preference: Percent = Field("15", description="National preference (art. 18).")
    exemption: Percent = Field("30", description="A groupement whose Moroccan members hold this much is local.")
    abnormally_low: Percent | None = Field(None, description="Flag offers this far below P (unset: never).")
    excessive: Percent | None = Field(None, description="Flag offers this far above P (unset: never).")
    ask_days: JsonInt = Field(7, ge=0, le=3650, description="Questions until this many days before the opening.")
    answer_days: JsonInt = Field(3, ge=0, le=3650, description="Answers until this many days before the opening; at "
                                                          "most `ask_days`.")
    justification_days: Days = Field(7, description="A flagged offer's time to justify itself.")
    amendment_days: JsonInt = Field(7, ge=0, le=3650, description="An amendment published with fewer days than "
                                                             "this left moves the opening to leave exactly this many.")


class TokensRequest(Model):
    model_config = ConfigDict(json_schema_extra={"examples": [{"bidders": ["acme"], "members": ["m1"],
                                                             "ttl_s": 3600}]})

    bidders: Ids = Field([], max_length=1000, json_schema_extra={"uniqueItems": True},
                         description="Bidders to issue a `bidder` token to.")
    members: Ids = Field([], max_length=255, json_schema_extra={"uniqueItems": True},
                         description="Commission members (of the tender) to issue a `commission` token to.")
    ttl_s: Ttl | None = Field(None, description="Token lifetime in seconds, from 60 to the token_ttl_s setting "
                                                "(the default).")


class EnvelopeIn(Model):
    part: Part
    ciphertext: Base64 = Field(description="The HPKE envelope (tenders/sealing.py `seal`).")
    sha256: Digest = Field(description="SHA-256 of the ciphertext's bytes.")


class DepositRequest(Model):
    client_id: TenderId = Field(description="Chosen by the bidder: a retry with the same id gets the first "
                                            "answer (the same receipt).")
    envelopes: list[EnvelopeIn] = Field(min_length=1, max_length=3, description="One per part of the tender.")


class WithdrawRequest(Model):
    client_id: TenderId = Field(description="A retry with the same id gets the first answer.")


class QuestionRequest(Model):
    question_id: TenderId = Field(description="Chosen by the asker; unique in the tender.")
    text: Words


class AnswerRequest(Model):
    text: Words


class RateRequest(Model):
    currency: Currency
    rate: Rate


class ShareRequest(Model):
    share: Share


class AdmissionRequest(Model):
    bidder_id: TenderId
    admitted: bool
    reason: Annotated[str, Field(max_length=MAX_REASON)] = Field("", description="Required for a rejection.")
    established: bool = Field(True, description="Established in Morocco (national preference).")
    moroccan_share: Percent | None = Field(None, description="For a groupement: the share its Moroccan members "
                                                              "hold.")


class JustifyRequest(Model):
    lot_id: TenderId
    sha256: Digest = Field(description="SHA-256 of the justification file (kept by the bidder).")


class JustificationDecision(Model):
    lot_id: TenderId
    bidder_id: TenderId
    accepted: bool
    reason: Annotated[str, Field(max_length=MAX_TENDER_TEXT)] = Field("", description="Required for a rejection.")


class ExtensionRequest(Model):
    days: Days
    answer_by: Instant = Field(description="After now and before the offers' validity ends.")


class ExtensionAnswer(Model):
    accepted: bool


class CancelTenderRequest(Model):
    reason: Reason


class AmendmentRequest(Model):
    """Text, the amended file's SHA-256, or both (at least one: a text not only blanks)."""

    model_config = ConfigDict(json_schema_extra={
        "examples": [{"amendment_id": "A1", "text": "Lot 1: 40 units.", "sha256": "ab" * 32}],
        "anyOf": [{"required": ["sha256"], "properties": {"sha256": {"type": "string"}}},
                  {"required": ["text"], "properties": {"text": {"pattern": "\\S"}}}]})

    amendment_id: TenderId = Field(description="Chosen by the buyer; unique in the tender.")
    text: Annotated[str, Field(max_length=MAX_TENDER_TEXT)] = Field("", description="What changes (may be empty "
                                                                                   "if `sha256` is given).")
    sha256: Digest | None = Field(None, description="SHA-256 of the amended file (kept by the buyer).")

    @model_validator(mode="after")
    def _something(self) -> AmendmentRequest:
        if self.sha256 is None and not self.text.strip():
            raise ValueError("give a text, the amended file's sha256, or both")
        return self


class MinutesQuery(Query):
    which: Literal["opening", "evaluation"] = Field(description="The opening session's or the evaluation's minutes.")
    format: Literal["html", "pdf"] = Field("html", description="A standalone HTML document or an A4 PDF.")
    lang: Literal["fr", "en"] = Field("fr", description="The minutes' language.")


class TenderListQuery(Query):
    status: Literal[STATUSES] | None = Field(None, description="Only tenders in this status.")  # type: ignore
    after: str | None = Field(None, description="The tender id after which the page starts (the previous "
                                                "page's `next`).")
    limit: QueryInt = Field(50, ge=1, le=PAGE_LIMIT, description="Page size.")


# -- the bridge to a reverse auction ------------------------------------------------------------

EXAMPLE_BRIDGE = {k: v for k, v in EXAMPLE_AUCTION.items() if k != "bidders"} | {"auction_id": "AO-2990-015-E"}


class AuctionAfterTender(AuctionConfig):
    """A reverse auction following a tender: the auction configuration without `bidders`
    (the tender's admitted bidders are admitted) and without `tender_ref` (the tender's id)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_BRIDGE]})

    bidders: None = Field(None, description="Not given: the tender's admitted bidders are admitted.")
    tender_ref: None = Field(None, description="Not given: the tender's id.")
