"""`auction-engine demo`: serve in-process, create a 2-lot supply auction over the RPC, let
bot bidders with varied strategies fight it out over WebSockets while a buyer's observer
drives a live display, print the award and the savings, then verify the journal written.

Every timing scales with `seconds` (a short run still has last-second bids that extend
the close); `seed` fixes the bots' strategies, private floors and reflexes, not the race.
Shell-side (it runs the gateway): plan (the auction, timings), board (the display), bots, run.
"""

from .run import run_demo

__all__ = ["run_demo"]
