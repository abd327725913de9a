"""The demo's browser seat: one more admitted bidder for a person, and the observer page.

`open_seat` admits the seat's bidder and prints the two URLs of the web room (the tokens
travel in the `#token=` fragment, which the page removes at once and never sends to the
server); `stay_open` keeps the service up after the results until Ctrl-C (`--stay`).
"""

from __future__ import annotations

from typing import TextIO

import trio

from gateway.client import RpcClient

SEAT_ID = "votre-entreprise"  # the person's bidder id (the bots are named after companies)


async def open_seat(portal: RpcClient, base: str, auction_id: str, observer_token: str, buyer_key: str,
                    out: TextIO) -> None:
    """Admit the seat's bidder and print the bidder's and the observer's page URLs."""
    admitted = await portal.admit(auction_id, [SEAT_ID])
    token = admitted["tokens"][0]["token"]
    out.write(f"  YOUR SEAT in a browser (bid against the bots as {SEAT_ID}; French, switch to العربية or English "
              f"on the page):\n    {base}/room/{auction_id}#token={token}\n"
              f"  the buyer's observer page:\n    {base}/room/{auction_id}/observe#token={observer_token}\n"
              f"  (to suspend/resume from that page, open {base}/room/{auction_id}/observe and paste this demo's "
              f"throwaway buyer API key: {buyer_key})\n\n")
    out.flush()


async def stay_open(out: TextIO, stopped: trio.Event) -> None:
    """Keep serving (the pages, the results) until the service stops: Ctrl-C or SIGTERM."""
    out.write("\n--stay: the service stays up for the browser pages; press Ctrl-C to stop it "
              "(the journal is flushed and then verified)\n")
    out.flush()
    await stopped.wait()
