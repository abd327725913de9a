"""A minimal engine process that owns one auction case in Redis and bids in it: the crash
test's subject (`python -m auction_engine.cluster.worker URL CASE OWNER`).

It checks that Redis makes appends durable (exit 5, ``{"refused": code}``, unless
`--unsafe`), claims the case (exit 4 if held), rebuilds it from its stream, creates the auction if
the stream is empty, renews its lease in the background and places bids, one JSON line on
stdout per event: ``{"claimed": token, "records": n}``, ``{"ack": aseq, "token": t, "c":
client_bid_id}`` once a bid's record is in Redis, ``{"refused": code}`` (exit 3) when an
append is refused, ``{"done": bids}`` (exit 0) after `--bids` bids (0: until refused).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import trio

from ..commands import CreateAuction, PlaceBid
from ..config import AuctionConfig
from ..runtime import wall_clock_us
from ..timeutil import format_instant
from . import CaseOwner, ClusterError, Layout, Leases, StreamJournal, check_durability, connect

START_PRICE = 10_000_000_000  # minor units: 100,000,000.00
BIDDERS = [f"p{i}" for i in range(4)]


def auction(case_id: str, now: int) -> AuctionConfig:
    """An auction open from a minute ago for a day, four bidders, steps of a cent."""
    return AuctionConfig.from_dict({
        "auction_id": case_id, "title": "Fencing test", "currency": "MAD",
        "start": format_instant(now - 60_000_000), "end": format_instant(now + 86_400_000_000),
        "bidders": BIDDERS, "pseudonym_secret": "fencing-test-secret-0123456789",
        "lots": [{"lot_id": "L1", "title": "Lot", "estimate": "100000000.00", "starting_price": "100000000.00",
                  "rules": {"min_step": "0.01"}}],
    })


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def run(url: str, case_id: str, owner_id: str, ttl_ms: int, bids: int, pace: float, namespace: str,
              unsafe: bool) -> int:
    async with connect(url) as client:
        try:
            await check_durability(client, unsafe=unsafe)  # the engine role's rule: never ack what may be lost
        except ClusterError as exc:
            say(refused=exc.code)
            return 5
        layout = Layout(namespace)
        journal, leases = StreamJournal(client, layout), Leases(client, layout)
        try:
            owner = await CaseOwner.claim(journal, leases, case_id, owner_id, ttl_ms)
        except ClusterError as exc:
            say(refused=exc.code)
            return 4
        say(claimed=owner.lease.token, records=owner.recovered.records)
        host = owner.journaled.host
        async with trio.open_nursery() as nursery:
            await nursery.start(owner.keep)
            try:
                if owner.recovered.records == 0:
                    now = max(wall_clock_us(), host.now)
                    await owner.execute(CreateAuction(now, auction(case_id, now)))
                placed = 0
                while bids == 0 or placed < bids:
                    aseq = owner.journaled.chains[case_id][0] + 1
                    cid = f"{owner_id}-{placed}"
                    amount = START_PRICE - 100 * aseq  # lower with every record: accepted
                    command = PlaceBid(max(wall_clock_us(), host.now), case_id, "L1", BIDDERS[aseq % 4], amount, cid)
                    await owner.execute(command)
                    say(ack=owner.journaled.chains[case_id][0], token=owner.lease.token, c=cid)
                    placed += 1
                    await trio.sleep(pace)
            except ClusterError as exc:
                say(refused=exc.code)
                return 3
            finally:
                nursery.cancel_scope.cancel()
        await owner.release()
        say(done=placed)
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m auction_engine.cluster.worker", description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("case")
    p.add_argument("owner")
    p.add_argument("--ttl-ms", type=int, default=1000)
    p.add_argument("--bids", type=int, default=0, help="bids to place (0: until an append is refused)")
    p.add_argument("--pace", type=float, default=0.005, help="seconds between bids")
    p.add_argument("--namespace", default="ae")
    p.add_argument("--unsafe", action="store_true", help="run against a Redis that cannot promise durability")
    args = p.parse_args(argv)
    return trio.run(run, args.url, args.case, args.owner, args.ttl_ms, args.bids, args.pace, args.namespace,
                    args.unsafe)


if __name__ == "__main__":
    sys.exit(main())
