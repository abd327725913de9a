"""Open Contracting Data Standard 1.1: one release package for every auction, tender and
grouped purchase of a replayed journal (docs/ocds.md has the mapping).

`release_package(host, ...)` is a pure function of the replayed cases' state: one release
per case, at its current state (tags: tender, award, tenderCancellation). Bidders are
named and losing bid prices published only once a case is final (every lot decided);
an enquiry never names who asked. Amounts are JSON numbers in the currency's units.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from auction_engine.auction import Auction
from auction_engine.engine import Engine
from auction_engine.host import Host
from auction_engine.money import format_amount
from auction_engine.timeutil import format_instant
from grouped_purchases.collectives import Collectives
from tenders.kind import Tenders
from tenders.messages import FINANCIAL
from tenders.tender import CANCELLED, DECIDED, PUBLISHED, Tender, lot_outcome

OCDS_VERSION = "1.1"
DEFAULT_PREFIX = "ocds-xxxxxx"  # a placeholder: a publisher registers its own prefix with the OCP
_EXT = "https://raw.githubusercontent.com/open-contracting-extensions/{}/master/extension.json"
EXTENSIONS = tuple(_EXT.format(name) for name in ("ocds_lots_extension", "ocds_bid_extension",
                                                  "ocds_techniques_extension", "ocds_enquiry_extension",
                                                  "ocds_multiple_buyers_extension"))
_LOT_STATUS = {"awarded": "complete", "unsuccessful": "unsuccessful", "pending": "active",
               "justification": "active"}


def release_package(host: Host, *, uri: str, publisher: str, prefix: str = DEFAULT_PREFIX,
                    positions: dict[str, int] | None = None, collective_currency: tuple[str, int] = ("MAD", 2),
                    ) -> dict[str, Any]:
    """The release package of every tender, auction and collective in `host`. `positions`:
    each case's last journal position (its release id is ``CASE-POSITION``, so a later state
    gets a new id); `collective_currency`: (code, decimals) of the collectives' amounts."""
    from .ocds_collective import collective_release  # it builds on this module's helpers

    engine, tenders, collectives = host.kind(Engine), host.kind(Tenders), host.kind(Collectives)
    published = format_instant(max(engine.now, tenders.now, collectives.now))
    positions = positions or {}
    ocids = {tid: f"{prefix}-{tid}" for tid in tenders.tenders}
    releases = [_tender(tid, t, ocids[tid], positions.get(tid, 0), published)
                for tid, t in sorted(tenders.tenders.items())]
    for aid in sorted(engine.auction_ids()):
        tender_ref = getattr(engine.auction(aid).config, "tender_ref", "")  # a bridged auction shares its ocid
        ocid = ocids.get(tender_ref, f"{prefix}-{aid}")
        releases.append(_auction(engine, aid, ocid, positions.get(aid, 0), published))
    money = partial(_value, decimals=collective_currency[1], currency=collective_currency[0])
    releases += [collective_release(cid, c, f"{prefix}-{cid}", positions.get(cid, 0), published, money)
                 for cid, c in sorted(collectives.collectives.items())]
    return {"uri": uri, "version": OCDS_VERSION, "extensions": list(EXTENSIONS), "publishedDate": published,
            "publisher": {"name": publisher}, "releases": releases}


def _value(minor: int, decimals: int, currency: str) -> dict[str, Any]:
    """An OCDS Value: the amount as a JSON number (exact for up to 15 significant digits)."""
    amount = Decimal(format_amount(minor, decimals))
    return {"amount": int(amount) if amount == amount.to_integral_value() else float(amount), "currency": currency}


def org(party_id: str) -> dict[str, str]:
    """An OrganizationReference: the platform knows parties by their ids only."""
    return {"id": party_id, "name": party_id}


def party(party_id: str, roles: list[str]) -> dict[str, Any]:
    return {**org(party_id), "roles": roles}


def _tender(tid: str, tender: Tender, ocid: str, position: int, date: str) -> dict[str, Any]:
    """A tender's release: its lots, enquiries, amendments; bids and awards once decided."""
    spec = tender.spec
    money = partial(_value, decimals=spec.decimals, currency=spec.currency)
    final = tender.status == DECIDED
    status = {PUBLISHED: "active", DECIDED: "complete", CANCELLED: "cancelled"}.get(tender.status, "active")
    section: dict[str, Any] = {
        "id": tid, "status": status, "procurementMethod": "open",
        "procurementMethodDetails": "Appel d'offres ouvert (sealed electronic tender)",
        "submissionMethod": ["electronicSubmission"], "tenderPeriod": {"endDate": format_instant(tender.opening_at)},
        "value": money(sum(e for _, e in spec.lots)), "techniques": {"hasElectronicAuction": False},
        "lots": [{"id": lot, "value": money(estimate),
                  "status": "cancelled" if tender.status == CANCELLED else _LOT_STATUS[tender.lots[lot][0]]}
                 for lot, estimate in spec.lots],
        "hasEnquiries": bool(tender.questions),
        # published clarifications only, and never their author (art. 10)
        "enquiries": [{"id": q, "description": v[1], "answer": v[2]} for q, v in tender.questions.items() if v[2]],
    }
    if tender.amendments:
        section["amendments"] = [{"id": a, "date": format_instant(at), "description": text or f"file {dg.hex()}"}
                                 for a, at, text, dg, _ in tender.amendments]
    if tender.status != PUBLISHED:
        section["numberOfTenderers"] = len(tender.deposits)
    release: dict[str, Any] = {"ocid": ocid, "id": f"{tid}-{position}", "date": date, "language": "fr",
                               "initiationType": "tender", "tag": _tags(tender.status == CANCELLED, final),
                               "buyer": org(spec.buyer_id), "tender": section}
    parties = [party(spec.buyer_id, ["buyer", "procuringEntity"])]
    if final:
        winners = {v[1] for v in tender.lots.values() if v[0] == "awarded"}
        bidders = sorted(tender.deposits, key=lambda b: tender.orders[b])
        parties += [party(b, ["tenderer", "supplier"] if b in winners else ["tenderer"]) for b in bidders]
        section["tenderers"] = [org(b) for b in bidders]
        release["bids"] = {"details": _tender_bids(tender, money)}
        release["awards"] = [_award(f"{tid}-{lot}", v[0], v[1], money(v[2]) if v[2] else None, lot, v[4])
                             for lot, v in tender.lots.items()]
    release["parties"] = parties
    return release


def _tags(cancelled: bool, final: bool) -> list[str]:
    return ["tenderCancellation"] if cancelled else ["tender", "award"] if final else ["tender"]


def _tender_bids(tender: Tender, money: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Every opened offer per lot it bids on, at the amount evaluated (losing ones too)."""
    details = []
    for lot_id, _ in tender.spec.lots:
        steps = lot_outcome(tender, lot_id)[3]
        amounts = {s["bidder_id"]: s["amount"] for s in steps if s["step"] == "conversion"}
        excluded = {s["bidder_id"] for s in steps if s["step"] == "excluded"}
        ranking: list[str] = next((s["ranking"] for s in steps if s["step"] == "best_offer"), [])
        for bidder in sorted(set(amounts) | excluded, key=lambda b: tender.orders.get(b, 0)):
            if tender.opened.get(bidder, {}).get(FINANCIAL, [""])[0] != "ok" and bidder not in amounts:
                continue  # unreadable: no amount, and not a bid on this lot that anyone can tell
            bid: dict[str, Any] = {"id": f"{bidder}-{lot_id}", "date": format_instant(tender.deposited_at[bidder]),
                                   "status": "disqualified" if bidder in excluded else "valid",
                                   "tenderers": [org(bidder)], "relatedLots": [lot_id]}
            if bidder in amounts:
                bid["value"] = money(amounts[bidder])
            if bidder in ranking:
                bid["rank"] = ranking.index(bidder) + 1
            details.append(bid)
    return details


def _award(award_id: str, status: str, supplier: str, value: dict[str, Any] | None, lot: str,
           reason: str) -> dict[str, Any]:
    award: dict[str, Any] = {"id": award_id, "relatedLots": [lot]}
    if status == "awarded":
        award.update(status="active", suppliers=[org(supplier)], value=value)
    else:
        award.update(status="unsuccessful" if status == "unsuccessful" else "pending", description=reason)
    return award


def _auction(engine: Engine, aid: str, ocid: str, position: int, date: str) -> dict[str, Any]:
    """An auction's release: the electronic auction technique, lots; the final ranking's
    bids (every bidder's last price) and awards once it is final."""
    auction: Auction = engine.auction(aid)
    cfg = auction.config
    results = engine.results(aid, reveal=auction.finished)
    money = partial(_value, decimals=cfg.decimals, currency=cfg.currency)
    section: dict[str, Any] = {
        "id": aid, "title": cfg.title, "status": "complete" if auction.finished else "active",
        "procurementMethod": "selective", "procurementMethodDetails": "Enchère électronique inversée",
        "submissionMethod": ["electronicAuction"], "awardCriteria": "priceOnly",
        "tenderPeriod": {"startDate": format_instant(cfg.start), "endDate": format_instant(cfg.end)},
        "value": money(sum(lot.estimate for lot in cfg.lots)),
        "techniques": {"hasElectronicAuction": True,
                       "electronicAuction": {"description": "Reverse auction: bids lower the price in real time"}},
        "lots": [{"id": lot.lot_id, "title": lot.title, "value": money(lot.estimate),
                  "status": _LOT_STATUS.get(r.status, "active")}
                 for lot, r in zip(cfg.lots, results.lots, strict=True)],
    }
    release: dict[str, Any] = {"ocid": ocid, "id": f"{aid}-{position}", "date": date, "language": "fr",
                               "initiationType": "tender", "tag": _tags(False, auction.finished),
                               "buyer": org(cfg.buyer_ref), "tender": section}
    parties = [party(cfg.buyer_ref, ["buyer", "procuringEntity"])]
    if auction.finished:
        bidders = list(auction.pseudonyms)
        winners = {r.winner_id for r in results.lots}
        parties += [party(b, ["tenderer", "supplier"] if b in winners else ["tenderer"]) for b in bidders]
        section["numberOfTenderers"] = len(bidders)
        section["tenderers"] = [org(b) for b in bidders]
        release["bids"] = {"details": [
            {"id": f"{line.bidder_id}-{r.lot_id}", "date": format_instant(line.time), "status": "valid",
             "tenderers": [org(str(line.bidder_id))], "value": money(line.price), "relatedLots": [r.lot_id],
             "rank": line.rank} for r in results.lots for line in r.ranking]}
        release["awards"] = [_award(f"{aid}-{r.lot_id}", r.status, str(r.winner_id),
                                    money(r.awarded_price) if r.awarded_price is not None else None, r.lot_id,
                                    r.reason or "") for r in results.lots]
    release["parties"] = parties
    return release
