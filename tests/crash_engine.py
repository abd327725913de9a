"""An engine process for the crash suite: the real `Runtime` (journal with fsync, group
commit, recovery) behind a minimal line protocol on a loopback TCP port.

Usage: python crash_engine.py DATA_DIR [CHECKPOINT_EVERY]. It prints one JSON line with what recovery found,
then one with the port; then each request line ``{"b": bidder, "a": amount, "c": client_bid_id}``
gets ``{"c": ..., "o": "accepted"|"rejected", "code": ..., "dup": bool}`` once durable.
The test kills it with SIGKILL at random moments and starts it again on the same directory.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import trio

from auction_engine import AuctionConfig, CreateAuction, PlaceBid
from auction_engine.events import BidAccepted, BidRejected
from auction_engine.runtime import Runtime, wall_clock_us
from auction_engine.timeutil import format_instant

AUCTION = "CRASH-1"
BIDDERS = [f"p{i:02d}" for i in range(16)]


def config(now: int) -> AuctionConfig:
    return AuctionConfig.from_dict({
        "auction_id": AUCTION, "title": "Crash suite", "currency": "MAD",
        "start": format_instant(now - 60_000_000), "end": format_instant(now + 86_400_000_000),
        "bidders": BIDDERS, "pseudonym_secret": "crash-suite-secret-0123456789",
        "lots": [{"lot_id": "L1", "title": "Lot", "estimate": "100000000.00", "starting_price": "100000000.00",
                  "rules": {"min_step": "0.01"}}],
    })


async def serve(runtime: Runtime, stream: trio.SocketStream) -> None:
    buffer = b""
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request: dict[str, Any] = json.loads(line)
                submission = await runtime.execute(
                    PlaceBid(runtime.now(), AUCTION, "L1", request["b"], request["a"], request["c"]))
                outcome = next(e for e in submission.events if type(e) in (BidAccepted, BidRejected))
                reply = {"c": request["c"], "o": "accepted" if type(outcome) is BidAccepted else "rejected",
                         "code": getattr(outcome, "code", ""), "dup": submission.duplicate}
                await stream.send_all(json.dumps(reply).encode() + b"\n")


async def main(directory: str, checkpoint_every: int) -> None:
    async with Runtime.open(directory, checkpoint_every=checkpoint_every) as runtime:
        report = runtime.recovery
        print(json.dumps({"records": report.records, "state_hash": report.state_hash,
                          "torn": None if report.torn is None else report.torn.size,
                          "checkpoint": report.checkpoint, "replayed": report.replayed,
                          "skipped": report.skipped}), flush=True)
        if AUCTION not in runtime.engine.auction_ids():
            await runtime.execute(CreateAuction(runtime.now(), config(wall_clock_us())))
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)
        await trio.serve_listeners(lambda s: serve(runtime, s), listeners)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
