"""The auditors' tool: verify a journal from its bytes alone, export one auction, list
its bids, and write an HTML audit report. The `auction-replay` CLI calls these same
functions; docs/replay.md describes both.
"""

from .history import History, history, render_timeline, timeline
from .verify import AuctionSummary, VerifyResult, export, verify


def report(path: str, auction: str, *, reveal: bool = False) -> str:
    """The standalone HTML audit report of `auction` (after verifying the journal)."""
    from .report import render_report

    result = verify(path, auction)
    if not result.ok:
        raise ValueError(f"the journal fails verification: {result.problem or result.torn}")
    return render_report(history(path, auction), reveal=reveal, verification=result.to_dict())


__all__ = ["AuctionSummary", "History", "VerifyResult", "export", "history", "render_timeline", "report",
           "timeline", "verify"]
