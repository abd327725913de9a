"""The HTML audit report: standalone, escaped, anonymous unless revealed, and faithful to the replay."""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from auction_engine.cli import write_journal
from auction_engine.events import LotExtended
from auction_engine.journal import Journaled
from auction_engine.money import format_amount
from auction_engine.scenario import load_scenario, run_scenario
from replay.history import History, history
from replay.report import render_report
from replay.verify import verify

ROOT = Path(__file__).resolve().parent.parent
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "examples" / name).read_text(encoding="utf-8"))
    return data


def replayed(tmp_path: Path, scenario: dict[str, Any]) -> History:
    """Run `scenario` through a journal written under `tmp_path`, and replay it."""
    run = run_scenario(load_scenario(scenario), journal=Journaled())
    directory = tmp_path / "journal"
    write_journal(directory, run.frames)
    return history(directory, scenario["auction"]["auction_id"])


class Structure(HTMLParser):
    """Checks that every element is closed in order, and notes what the tests look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.row_classes: list[str] = []
        self.svgs: list[dict[str, int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, dict(attrs))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def _note(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "tr" and attrs.get("class"):
            self.row_classes.append(attrs["class"] or "")
        if tag == "svg":
            self.svgs.append({})
        elif "svg" in self.stack:
            self.svgs[-1][tag] = self.svgs[-1].get(tag, 0) + 1


def parse(document: str) -> Structure:
    parser = Structure()
    parser.feed(document)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


@pytest.fixture(scope="module")
def seei(tmp_path_factory: pytest.TempPathFactory) -> History:
    return replayed(tmp_path_factory.mktemp("seei"), example("seei-supply-2-lots.json"))


@pytest.fixture(scope="module")
def incidents(tmp_path_factory: pytest.TempPathFactory) -> History:
    return replayed(tmp_path_factory.mktemp("incidents"), example("unsuccessful-and-incidents.json"))


def extensions(h: History) -> list[LotExtended]:
    return [e for step in h.steps for e in step.events if isinstance(e, LotExtended)]


def test_report_is_standalone_and_well_formed(seei: History) -> None:
    document = render_report(seei)
    assert document.startswith("<!DOCTYPE html>")
    parsed = parse(document)
    for reference in ("http://", "https://", "src=", "@import", "url("):
        assert reference not in document
    assert "<script" not in document.lower()
    assert len(parsed.svgs) == len(seei.engine.auction(seei.auction_id).config.lots)
    assert render_report(seei) == document  # deterministic: no generation time


def test_summary_and_results(seei: History) -> None:
    document = render_report(seei)
    results, cfg = seei.results(), seei.engine.auction(seei.auction_id).config
    for text in (cfg.auction_id, cfg.currency, seei.head, f"{len(seei.steps)}"):
        assert text in document
    for lot in results.lots:
        assert f'id="lot-{lot.lot_id}"' in document
        assert lot.status == "awarded" and lot.winner_pseudonym and lot.awarded_price is not None
        assert lot.winner_pseudonym in document
        assert format_amount(lot.awarded_price, results.decimals) in document
        assert format_amount(lot.starting_price, results.decimals) in document
        assert f"{lot.savings_percent} %" in document
    assert format_amount(results.awarded_total, results.decimals) in document
    assert f"{results.savings_percent} %" in document


def test_chart_has_a_point_per_accepted_bid_and_a_marker_per_extension(seei: History) -> None:
    parsed = parse(render_report(seei))
    results = seei.results()
    for lot, svg in zip(results.lots, parsed.svgs, strict=True):
        assert svg.get("circle", 0) == lot.bids
        assert svg.get("path", 0) == 1  # the best price's step line
    marks = sum(svg.get("line", 0) for svg in parsed.svgs)
    assert marks > len(extensions(seei))


def test_one_row_per_extension(seei: History) -> None:
    parsed = parse(render_report(seei))
    assert parsed.row_classes.count("ev-extended") == len(extensions(seei)) > 0


def test_rejections_counted_by_code(seei: History) -> None:
    document = render_report(seei)
    for code in ("step_too_large", "insufficient_step", "not_admitted"):
        assert code in document
    rejected = sum(1 for b in seei.bids if b.outcome == "rejected")
    assert re.search(rf"<td>total</td><td class=\"num\">{rejected}</td>", document)


def test_anonymous_unless_revealed(seei: History) -> None:
    bidders = seei.engine.auction(seei.auction_id).config.bidders
    hidden = render_report(seei)
    for bidder in (*bidders, "intrus-sarl"):
        assert bidder not in hidden
    shown = render_report(seei, reveal=True)
    for lot in seei.results(reveal=True).lots:
        assert lot.winner_id and lot.winner_id in shown


def test_verification_is_shown(seei: History, tmp_path: Path) -> None:
    assert "NOT VERIFIED" in render_report(seei)
    scenario = example("seei-supply-2-lots.json")
    h = replayed(tmp_path, scenario)
    outcome = verify(tmp_path / "journal").to_dict()
    document = render_report(h, verification=outcome)
    assert 'class="verify ok"' in document and "VERIFIED" in document
    assert str(outcome["state_hash"]) in document
    assert "matches" in document  # the verified head is the replayed one
    failed = render_report(h, verification={"ok": False, "problem": {"code": "bad_crc", "message": "<b>&x"}})
    assert 'class="verify failed"' in failed and "&lt;b&gt;&amp;x" in failed and "<b>&x" not in failed


def test_text_from_data_is_escaped(tmp_path: Path) -> None:
    scenario = copy.deepcopy(example("seei-supply-2-lots.json"))
    scenario["auction"]["title"] = '<script>alert("x")</script> & "Co" \'s'
    scenario["auction"]["buyer_ref"] = "<img src=x onerror=alert(1)>"
    scenario["auction"]["lots"][0]["title"] = "Lot </td></tr></table> broken?"
    document = render_report(replayed(tmp_path, scenario))
    parse(document)
    assert "<script" not in document and "<img" not in document and "</td></tr></table> broken" not in document
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;Co&quot; &#x27;s" in document
    assert "&lt;img src=x onerror=alert(1)&gt;" in document


def test_lots_without_bids_and_incidents(incidents: History) -> None:
    document = render_report(incidents)
    parsed = parse(document)
    results = incidents.results()
    assert len(parsed.svgs) == len(results.lots)
    for lot in results.lots:
        assert lot.lot_id in document
        if lot.reason:
            assert f"({lot.reason})" in document
    cancelled = next(lot for lot in results.lots if lot.reason == "cancelled")
    assert cancelled.bids == 0 and "no accepted bid" in document
    assert "besoin annulé par l&#x27;ordonnateur" in document  # the cancellation's reason
    assert "incident: coupure réseau" in document  # the suspension's reason
    for kind in ("ev-suspended", "ev-resumed", "ev-cancelled", "ev-unsuccessful"):
        assert kind in parsed.row_classes
    assert "invalid_amount" in document and "lot_suspended" in document


def test_a_lot_nobody_bid_on(tmp_path: Path) -> None:
    scenario = copy.deepcopy(example("seei-supply-2-lots.json"))
    scenario["actions"] = [a for a in scenario["actions"] if a["bid"]["lot"] != "L2"][:1]
    h = replayed(tmp_path, scenario)
    lots = {lot.lot_id: lot for lot in h.results().lots}
    assert lots["L2"].reason == "no_bids" and lots["L1"].bids == 1
    parsed = parse(render_report(h))
    assert [svg.get("circle", 0) for svg in parsed.svgs] == [1, 0]
    assert "(no_bids)" in "".join(parsed.text)
