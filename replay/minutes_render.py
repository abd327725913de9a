"""The minutes laid out: HTML through templates/minutes.html.j2 (Jinja2, autoescaped) and
PDF through fpdf2. Both are deterministic: the same minutes give the same bytes.

The PDF embeds Debian's DejaVu Sans (package fonts-dejavu-core) so any text a reason or an
answer holds prints as written; without it, the core Helvetica is used and characters
outside Latin-1 print as "?" (`PDF_FONT` says which one a run uses).
"""

from __future__ import annotations

import datetime
from pathlib import Path

import jinja2
from fpdf import FPDF
from fpdf.fonts import FontFace

from .minutes import Minutes

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
PDF_FONT = "DejaVu" if (DEJAVU / "DejaVuSans.ttf").is_file() and (DEJAVU / "DejaVuSans-Bold.ttf").is_file() \
    else "Helvetica"
_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)  # fixed metadata: the bytes depend on the minutes only

_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("replay", "templates"), autoescape=True,
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def to_html(minutes: Minutes) -> bytes:
    """One standalone HTML document (inline CSS, nothing loaded from anywhere), UTF-8."""
    return _TEMPLATES.get_template("minutes.html.j2").render(m=minutes).encode("utf-8")


def to_pdf(minutes: Minutes) -> bytes:
    """An A4 PDF: the title, then each section's facts, table and paragraphs."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(_EPOCH)
    pdf.set_title(f"{minutes.title} — {minutes.subtitle}")
    pdf.set_lang(minutes.lang)
    if PDF_FONT == "DejaVu":
        pdf.add_font("DejaVu", "", str(DEJAVU / "DejaVuSans.ttf"))
        pdf.add_font("DejaVu", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
    clean = _clean if PDF_FONT == "Helvetica" else str
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font(PDF_FONT, "B", 14)
    pdf.multi_cell(0, 7, clean(minutes.title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(PDF_FONT, "", 11)
    pdf.multi_cell(0, 6, clean(minutes.subtitle), new_x="LMARGIN", new_y="NEXT")
    for section in minutes.sections:
        pdf.ln(3)
        pdf.set_font(PDF_FONT, "B", 11)
        pdf.multi_cell(0, 6, clean(section.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(PDF_FONT, "", 8)
        if section.facts:
            with pdf.table(col_widths=(1, 2), first_row_as_headings=False, text_align="LEFT",
                           line_height=4.5) as table:
                for label, value in section.facts:
                    row = table.row()
                    row.cell(clean(label), style=FontFace(emphasis="BOLD"))
                    row.cell(clean(value))
        if section.rows:
            with pdf.table(text_align="LEFT", line_height=4.5,
                           headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235))) as table:
                table.row([clean(h) for h in section.headers])
                for cells in section.rows:
                    table.row([clean(c) for c in cells])
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 5, clean(paragraph), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(PDF_FONT, "", 7)
    pdf.multi_cell(0, 4, clean(minutes.footer), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _clean(value: str) -> str:
    """Text the core fonts can print (Latin-1), everything else as "?"."""
    return value.encode("latin-1", "replace").decode("latin-1")
