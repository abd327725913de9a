"""The reverse auction a collective launches for its schedule's open lots, in the auction
configuration's edge form (`AuctionConfig.from_dict`): pure, used by the RPC's launch and
by the grouped scenario of `auction-engine simulate`.

One auction lot per open lot of the schedule, named like it; its estimate is the lot's
estimated total and its starting price the given one or that estimate. The auction's
`buyer_ref` names the collective and the schedule version, `collective:{id}:schedule:{v}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auction_engine.money import format_amount

from .rules import Schedule
from .state import Collective

EDGE_DECIMALS = 2  # a collective's amounts at the edges (feed, RPC, scenario): centimes


def buyer_ref(collective_id: str, version: int) -> str:
    """The auction's reference to its collective and schedule version."""
    return f"collective:{collective_id}:schedule:{version}"


def open_lots(c: Collective, schedule: Schedule) -> list[str]:
    """The schedule's lots neither pending nor awarded: those a launch buys (as the kind does)."""
    return [lot for lot in schedule.lots() if lot not in c.lots]


def auction_for(collective_id: str, schedule: Schedule, lots: list[str], launch: Mapping[str, Any]) -> dict[str, Any]:
    """The auction configuration of a launch. `launch` holds `procurement_id` (the auction's
    id), optional `starting_prices` (lot -> decimal string) and any other auction field
    (start, end, currency, bidders, rules, extension...); None values are left out."""
    starting = launch.get("starting_prices") or {}
    body = {k: v for k, v in launch.items() if k not in ("procurement_id", "starting_prices") and v is not None}
    body.update(auction_id=launch["procurement_id"], title=launch.get("title") or collective_id,
                buyer_ref=buyer_ref(collective_id, schedule.version), decimals=EDGE_DECIMALS)
    body.setdefault("currency", "MAD")
    body["lots"] = []
    for lot in lots:
        estimate = format_amount(schedule.lot_total(lot), EDGE_DECIMALS)
        body["lots"].append({"lot_id": lot, "title": lot, "estimate": estimate,
                             "starting_price": starting.get(lot, estimate)})
    return body
