"""The schedule's exports carry exactly the kind's figures, as decimal strings."""

from __future__ import annotations

import csv
import io

from grouped_example import CID, preparation
from openpyxl import load_workbook

from grouped_purchases import Article, Collectives, Schedule
from grouped_purchases.export import HEADER, to_csv, to_html, to_xlsx


def schedule_and_articles() -> tuple[Schedule, dict[str, Article]]:
    kind = Collectives()
    for command in preparation():
        kind.handle(command)
    c = kind.collectives[CID]
    return c.schedules[0], c.articles


def test_csv_xlsx_and_html_agree() -> None:
    schedule, articles = schedule_and_articles()
    text = to_csv(schedule, articles)
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == HEADER
    assert ["L1", "A4", "paper A4 80 g", "ream", "30.00", "m3", "60", "1800.00"] in table
    assert ["L1", "*", "lot total", "", "", "", "", "7500.00"] in table
    assert table[-1] == ["*", "*", "total", "", "", "", "", "19500.00"]
    assert not any(row[5] == "m2" for row in table[1:])  # excluded: unconfirmed
    sheet = load_workbook(io.BytesIO(to_xlsx(schedule, articles))).active
    assert sheet is not None
    cells = [[("" if v is None else v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert cells[:-1] == table and cells[-1][:2] == ["sha256", schedule.digest]
    html = to_html(CID, schedule, articles)
    assert schedule.digest in html and "<td>19500.00</td>" in html and html.count("<tr>") == len(table)
