"""The worked example of docs/grouped-purchases.md: 3 members, 2 lots, computed by hand.

Members "m1", "m2", "m3"; coordinator "coord". Lot "L1": paper (A4, 30.00 a ream) and
toner (TN, 450.00 a unit); lot "L2": chairs (CH, 1200.00). m3 revises its paper once; m2
revises a need after confirming and never confirms again, so its needs are excluded.
"""

from __future__ import annotations

import hashlib

from grouped_purchases import (
    AcceptConvention,
    AddArticle,
    ConfirmNeeds,
    CreateCollective,
    DeclareNeed,
    GenerateSchedule,
    LaunchProcurement,
    RecordDelivery,
    RecordLotAward,
    RecordLotPrices,
    RecordPayment,
    RecordReceipt,
)

S = 1_000_000  # µs
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
DEADLINE = T0 + 100 * S
CID = "G-1"
CONVENTION = hashlib.sha256(b"convention constitutive du collectif G-1").hexdigest()
MEMBERS = ("m1", "m2", "m3")


def preparation() -> list[object]:
    """Constitution, catalogue, needs (m3 revises, m2's revision is left unconfirmed: m2 out)."""
    return [
        CreateCollective(T0, CID, "coord", MEMBERS, CONVENTION, DEADLINE),
        *[AcceptConvention(T0 + 1 * S, CID, m, CONVENTION) for m in MEMBERS],
        AddArticle(T0 + 2 * S, CID, "coord", "A4", "paper A4 80 g", "ream", 3_000, "L1"),
        AddArticle(T0 + 2 * S, CID, "coord", "TN", "toner", "unit", 45_000, "L1"),
        AddArticle(T0 + 2 * S, CID, "coord", "CH", "office chair", "unit", 120_000, "L2"),
        DeclareNeed(T0 + 3 * S, CID, "m1", "A4", 100, "Rabat"),
        DeclareNeed(T0 + 3 * S, CID, "m1", "TN", 4, "Rabat"),
        DeclareNeed(T0 + 3 * S, CID, "m1", "CH", 10, "Rabat"),
        DeclareNeed(T0 + 4 * S, CID, "m2", "A4", 50, "Fès"),
        DeclareNeed(T0 + 4 * S, CID, "m2", "CH", 5, "Fès"),
        DeclareNeed(T0 + 5 * S, CID, "m3", "A4", 40, "Tanger"),
        DeclareNeed(T0 + 6 * S, CID, "m3", "A4", 60, "Tanger"),  # a revision: version 2 counts
        DeclareNeed(T0 + 6 * S, CID, "m3", "TN", 2, "Tanger"),
        ConfirmNeeds(T0 + 7 * S, CID, "m1"),
        ConfirmNeeds(T0 + 7 * S, CID, "m2"),
        ConfirmNeeds(T0 + 7 * S, CID, "m3"),
        DeclareNeed(T0 + 8 * S, CID, "m2", "CH", 6, "Fès"),  # revised, never confirmed again: m2 is excluded
        GenerateSchedule(DEADLINE + 1 * S, CID, "coord"),
        LaunchProcurement(DEADLINE + 2 * S, CID, "coord", "A-G1", 1),
    ]


# By hand (m2 excluded): A4 = 100 (m1) + 60 (m3) = 160 reams, TN = 4 + 2 = 6, CH = 10 (m1).
# Estimates: L1 = 160 x 3000 + 6 x 45000 = 480000 + 270000 = 750000; L2 = 10 x 120000 = 1200000.
# L1 awarded on its total 600001: A4 = floor(3000 x 600001 / 750000) = 2400 (rem 3000 x 600001 mod
# 750000 = 3000), TN = floor(45000 x 600001 / 750000) = 36000 (rem 45000); 160 x 2400 + 6 x 36000 =
# 600000, remainder 1 to TN first (larger fraction), to m1 (member order): m1 TN = 4 x 36000 + 1.
# L2 awarded at unit price 110000: m1 CH = 1100000.
EXPECTED_CONTRACTS = {
    "A-G1/L1/m1": 100 * 2_400 + 4 * 36_000 + 1,  # 384001
    "A-G1/L1/m3": 60 * 2_400 + 2 * 36_000,  # 216000
    "A-G1/L2/m1": 10 * 110_000,  # 1100000
}


def awards() -> list[object]:
    return [
        RecordLotAward(DEADLINE + 10 * S, CID, "coord", "A-G1", "L1", "supplier-x", 600_001),
        RecordLotPrices(DEADLINE + 10 * S, CID, "coord", "A-G1", "L2", "supplier-y", (("CH", 110_000),)),
    ]


def execution() -> list[object]:
    """Partial deliveries, a discrepancy, payments."""
    return [
        RecordDelivery(DEADLINE + 20 * S, CID, "m1", "A-G1/L1/m1", "A4", 60),
        RecordReceipt(DEADLINE + 21 * S, CID, "m1", "A-G1/L1/m1", "A4", 55, 5, "torn reams"),
        RecordDelivery(DEADLINE + 22 * S, CID, "coord", "A-G1/L1/m3", "TN", 2),
        RecordReceipt(DEADLINE + 23 * S, CID, "m3", "A-G1/L1/m3", "TN", 2),
        RecordPayment(DEADLINE + 24 * S, CID, "m3", "A-G1/L1/m3", 100_000),
        RecordPayment(DEADLINE + 25 * S, CID, "m1", "A-G1/L2/m1", 1_100_000),
    ]


def commands() -> list[object]:
    return [*preparation(), *awards(), *execution()]
