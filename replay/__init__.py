"""The auditors' tool: verify a journal from its bytes alone, export one auction, list
its bids, and write an HTML audit report. The `auction-replay` CLI calls these same
functions; docs/replay.md describes both.
"""

import os

from .history import History, history, render_timeline, timeline
from .report import render_report  # now, not in report(): importing the submodule later
from .verify import AuctionSummary, VerifyResult, export, verify  # would rebind `report` to it


class Unverified(ValueError):
    """The journal failed verification, so no report was made; `result` says why."""

    def __init__(self, result: VerifyResult) -> None:
        self.result = result
        super().__init__(f"the journal fails verification: {result.problem or result.torn}")


def report(path: str | os.PathLike[str], auction: str, *, reveal: bool = False) -> str:
    """The standalone HTML audit report of `auction`, after verifying the journal
    (`Unverified` if it fails)."""
    result = verify(path, auction)
    if not result.ok:
        raise Unverified(result)
    return render_report(history(path, auction), reveal=reveal, verification=result.to_dict())


__all__ = ["AuctionSummary", "History", "Unverified", "VerifyResult", "export", "history", "render_timeline", "report",
           "timeline", "verify"]
