"""The auditors' tool: verify a journal from its bytes alone, export one auction, list
its bids, write an HTML audit report, and draw up a tender's minutes. The `auction-replay`
CLI calls these same functions; docs/replay.md describes both.
"""

import os
from typing import Any

from .history import History, history, render_timeline, timeline
from .report import render_report  # now, not in report(): importing the submodule later
from .verify import AuctionSummary, VerifyResult, export, replayed, verify  # would rebind `report` to it


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


def tender_minutes(path: str | os.PathLike[str], tender_id: str, which: str, fmt: str, lang: str = "fr") -> bytes:
    """A tender's minutes (`replay.minutes.render_minutes`) from the journal at `path`, after
    verifying and re-executing it (`Unverified` if it fails; `MinutesError` for an unknown
    tender or a session not held yet)."""
    from tenders import Tenders

    from .minutes import MinutesError, render_minutes

    result, host = replayed(path, tender_id)
    if result.problem is not None and result.problem.code == "unknown_auction":
        raise MinutesError("unknown_tender", f"the journal has no tender {tender_id!r}")
    if not result.ok:
        raise Unverified(result)
    tender = host.kind(Tenders).tenders.get(tender_id)
    if tender is None:
        raise MinutesError("unknown_tender", f"the journal has no tender {tender_id!r}")
    return render_minutes(tender_id, tender, which, fmt, lang)


def ocds_export(path: str | os.PathLike[str], *, uri: str, publisher: str, prefix: str,
                collective_currency: tuple[str, int] = ("MAD", 2)) -> dict[str, Any]:
    """The OCDS 1.1 release package of every auction, tender and collective in the journal
    at `path` (`replay.ocds.release_package`), after verifying and re-executing it (`Unverified`)."""
    from .ocds import release_package

    result, host = replayed(path)
    if not result.ok:
        raise Unverified(result)
    positions = {case: summary.last_gseq for case, summary in result.auctions.items()}
    return release_package(host, uri=uri, publisher=publisher, prefix=prefix, positions=positions,
                           collective_currency=collective_currency)


__all__ = ["AuctionSummary", "History", "Unverified", "VerifyResult", "export", "history", "ocds_export",
           "render_timeline", "replayed", "report", "tender_minutes", "timeline", "verify"]
