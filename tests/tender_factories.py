"""Tenders for tests: a fixed key, its shares, specs, sealed deposits and offers."""

from __future__ import annotations

from factories import START, S

from tenders.messages import DepositOffer, PublishTender, SubmitShare, TenderSpec
from tenders.offer import offer_json
from tenders.sealing import digest, public_key_of, seal, share_digest, split_key

DAY = 86_400 * S
PRIVATE = bytes(range(1, 33))  # a fixed tender key: same journal bytes, run after run (shares aside)
PUBLIC = public_key_of(PRIVATE)
MEMBERS = ("m1", "m2", "m3", "m4", "m5")
SHARES = split_key(PRIVATE, 3, 5)
OPENING = START + 10 * DAY


def spec(**changes: object) -> TenderSpec:
    base = TenderSpec(buyer_id="buyer", opening_at=OPENING, lots=(("L1", 1_000_000_00), ("L2", 50_000_00)),
                      public_key=PUBLIC, members=MEMBERS, share_digests=tuple(share_digest(s) for s in SHARES),
                      threshold=3)
    return base._replace(**changes)


def publish(now: int = START, tender_id: str = "T1", **changes: object) -> PublishTender:
    return PublishTender(now, tender_id, spec(**changes))


def financial(lots: dict[str, tuple[str, list[tuple[str, str, str]]]], currency: str = "MAD") -> bytes:
    return offer_json(currency, lots)


def simple(amount: str, lot: str = "L1", currency: str = "MAD") -> bytes:
    """An offer of one BPDE line (quantity 1) at `amount`, its form total equal."""
    return financial({lot: (amount, [("1", "1", amount)])}, currency)


def deposit(now: int, bidder: str, plaintext: bytes, tender_id: str = "T1", client_id: str = "",
            admin: bytes = b"%PDF admin file", public: bytes = PUBLIC) -> DepositOffer:
    envelopes = []
    for part, content in (("admin", admin), ("financial", plaintext)):
        ciphertext = seal(public, content, tender_id, bidder, part)
        envelopes.append((part, ciphertext, digest(ciphertext)))
    return DepositOffer(now, tender_id, bidder, tuple(envelopes), client_id or f"{bidder}-{now}")


def share(now: int, member: str, tender_id: str = "T1") -> SubmitShare:
    return SubmitShare(now, tender_id, member, SHARES[MEMBERS.index(member)])
