"""The consolidated schedule (BPDE) as CSV, XLSX and HTML documents: outside the kind's
state, pure functions of a `Schedule` and the catalogue. Amounts are decimal strings
(`money.format_amount`), never floats, so a spreadsheet shows exactly the core's figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from jinja2 import Environment

from auction_engine.money import format_amount

from .rules import Article, Schedule

HEADER = ("lot", "article", "description", "unit", "unit_price", "member", "quantity", "amount")

_HTML = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>BPDE {{ cid }} v{{ s.version }}</title></head>
<body><h1>Bordereau des prix-détails estimatif consolidé: {{ cid }}, version {{ s.version }}</h1>
<p>SHA-256: <code>{{ s.digest }}</code></p>
<table><thead><tr>{% for h in header %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></body></html>
""")


def rows(schedule: Schedule, articles: Mapping[str, Article], decimals: int = 2) -> list[tuple[str, ...]]:
    """Per article: one row per member, then the article's total row ("*"); after each lot
    its total row, and the overall total last. Every figure is exact."""
    out: list[tuple[str, ...]] = []

    def money(minor: int) -> str:
        return format_amount(minor, decimals)

    for lot in schedule.lots():
        for line in (ln for ln in schedule.lines if ln.lot == lot):
            a = articles[line.article]
            for member, quantity in line.members:
                out.append((lot, line.article, a.description, a.unit, money(line.unit_price), member, str(quantity),
                            money(line.unit_price * quantity)))
            out.append((lot, line.article, a.description, a.unit, money(line.unit_price), "*", str(line.quantity),
                        money(line.amount)))
        out.append((lot, "*", "lot total", "", "", "", "", money(schedule.lot_total(lot))))
    out.append(("*", "*", "total", "", "", "", "", money(schedule.total)))
    return out


def to_csv(schedule: Schedule, articles: Mapping[str, Article], decimals: int = 2) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(schedule, articles, decimals))
    return buffer.getvalue()


def to_xlsx(schedule: Schedule, articles: Mapping[str, Article], decimals: int = 2) -> bytes:
    """An XLSX workbook; amounts stay text so no float rounds them."""
    from openpyxl import Workbook  # imported here: only this export needs it

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = f"BPDE v{schedule.version}"
    sheet.append(list(HEADER))
    for row in rows(schedule, articles, decimals):
        sheet.append(list(row))
    sheet.append(["sha256", schedule.digest])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def to_html(collective_id: str, schedule: Schedule, articles: Mapping[str, Article], decimals: int = 2) -> str:
    return _HTML.render(cid=collective_id, s=schedule, header=HEADER, rows=rows(schedule, articles, decimals))
