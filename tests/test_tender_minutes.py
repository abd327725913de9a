"""A tender's minutes (procès-verbaux) from its journal: the opening's and the evaluation's,
French and English, HTML and PDF; exact rows and values, never the asker of a question,
and the CLI's refusals (not opened yet, unknown tender, a tampered journal)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from factories import START, S
from journals import write
from pypdf import PdfReader
from tender_factories import DAY, MEMBERS, OPENING, deposit, publish, share, simple
from test_tender_amendments import amended
from test_tenders import lifecycle

from auction_engine.host import Host
from auction_engine.kind import Tick
from replay import tender_minutes as minutes
from replay.cli import main as replay_main
from replay.minutes import MinutesError, render_minutes
from replay.minutes_render import PDF_FONT
from tenders import (
    AnswerQuestion,
    AskQuestion,
    CancelTender,
    CloseAdmission,
    DecideAdmission,
    DecideJustification,
    JustifyOffer,
    RegisterDownload,
    Tenders,
)
from tenders.sealing import digest

ASKER = "quiet-asker"  # downloads and asks, never deposits: its name must appear nowhere


def rows(html: bytes) -> list[list[str]]:
    """Every table row of an HTML document, as its cells' text (entities unescaped)."""
    import html as h

    text = html.decode()
    return [[h.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", text)]


def facts(html: bytes) -> list[tuple[str, str]]:
    import html as h

    return [(h.unescape(k), h.unescape(v)) for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html.decode())]


def with_question() -> list[Any]:
    """The lifecycle with a clarification asked by a bidder who never deposits."""
    commands = lifecycle()
    return [commands[0], RegisterDownload(START + S // 2, "T1", ASKER),
            AskQuestion(START + S // 2, "T1", ASKER, "q1", "Quelle tension ?"),
            AnswerQuestion(START + S // 2, "T1", "buyer", "q1", "220 V, monophasé"), *commands[1:]]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("minutes") / "j"
    write(path, with_question())
    return path


def test_the_opening_minutes_in_french(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "pv.html"
    assert replay_main(["minutes", str(journal), "T1", "--which", "opening", "--format", "html", "-o", str(out)]) == 0
    html = out.read_bytes()
    table = rows(html)
    assert ["Membre", "Présent (a remis sa part)"] in table
    assert [r for r in table if len(r) == 2 and r[0] in MEMBERS] == [
        ["m1", "non"], ["m2", "oui"], ["m3", "non"], ["m4", "oui"], ["m5", "oui"]]
    assert ["1", "acme", "2026-03-02T10:00:01.000000Z", "dossier administratif: lisible; offre financière: lisible"] \
        in table
    assert ["6", "zeta", "2026-03-02T10:00:09.000000Z",
            "dossier administratif: ne se déchiffre pas; offre financière: ne se déchiffre pas"] in table
    amounts = [r for r in table if len(r) == 3 and r[1] in ("L1", "L2", "—")]
    assert amounts == [["acme", "L1", "900000.00 MAD"], ["beta", "L1", "1050000.00 MAD"],
                       ["gamma", "L1", "80000.00 EUR"], ["eps", "L1", "880000.00 MAD"],
                       ["eps", "L2", "45000.00 MAD"], ["delta", "L1", "940000.00 MAD"],
                       ["zeta", "—", "ne se déchiffre pas"]]
    assert ["retrait", "delta", "2026-03-02T10:00:07.000000Z"] in table
    assert ["enveloppe illisible", "zeta", "offre financière: ne se déchiffre pas"] in table
    assert ["q1", "Quelle tension ?", "220 V, monophasé"] in table
    assert ("Plis ouverts le", "2026-03-12T10:00:04.000000Z") in facts(html)
    assert ("Parts de clé requises", "3 / 5") in facts(html)
    assert ASKER.encode() not in html
    assert html.startswith(b'<!DOCTYPE html>\n<html lang="fr">')


def test_the_evaluation_minutes_in_english(journal: Path) -> None:
    html = minutes(journal, "T1", "evaluation", "html", "en")
    table = rows(html)
    assert ["zeta", "rejected", "no offer could be read", "m1", "yes", "—"] in table
    assert ["delta", "admitted", "—", "m1", "no", "20 %"] in table
    assert ["EUR", "10.85"] in table
    assert ["eps", "880000.00 MAD", "890000.00 MAD", "yes", "—", "890000.00 MAD", "—"] in table
    assert ["gamma", "80000.00 EUR", "80000.00 EUR", "no", "10.85 MAD/EUR", "868000.00 MAD", "—"] in table
    assert ["zeta", "—", "—", "—", "—", "—", "does not decrypt"] in table
    lot = facts(html)
    assert ("Reference price P", "964800.00 MAD") in lot
    assert ("P = (estimate × n + Σ offers) / 2n", "(1000000.00 MAD × 5 + 4648000.00 MAD) / 10") in lot
    assert ("National preference (15 %)", "delta: case 1, 940000.00 MAD → ranked at 799000.00 MAD") in lot
    assert ("Ranking", "1. acme (900000.00 MAD), 2. eps (890000.00 MAD), 3. gamma (868000.00 MAD), "
                       "4. delta (799000.00 MAD), 5. beta (1050000.00 MAD)") in lot
    assert [v for k, v in lot if k == "Outcome"] == ["awarded to acme at 900000.00 MAD",
                                                     "awarded to eps at 45000.00 MAD"]
    assert ASKER.encode() not in html


def test_the_pdf_holds_the_same_values_and_is_deterministic(journal: Path, tmp_path: Path) -> None:
    out = tmp_path / "pv.pdf"
    assert replay_main(["minutes", str(journal), "T1", "--which", "evaluation", "--format", "pdf", "-o",
                        str(out)]) == 0
    pdf = out.read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf == minutes(journal, "T1", "evaluation", "pdf")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = re.sub(r"\s+", " ", text)
    for value in ("Procès-verbal de l'évaluation des offres et de l'attribution", "964800.00 MAD",
                  "attribué à acme pour 900000.00 MAD", "attribué à eps pour 45000.00 MAD",
                  "no offer could be read", "10.85 MAD/EUR", "868000.00 MAD", "delta: cas 1"):
        assert value in flat, value
    opening = minutes(journal, "T1", "opening", "pdf", "en")
    text = re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(opening)).pages))
    for value in ("Minutes of the bid opening session", "1050000.00 MAD", "80000.00 EUR", "withdrawal",
                  "220 V, monophasé"):
        assert value in text, value
    assert ASKER not in text and ASKER not in flat


def test_the_pdf_embeds_dejavu() -> None:
    """Debian's fonts-dejavu-core (`make fonts`): any text prints as written. In CI a
    missing font is a failure; elsewhere the Helvetica fallback is said, not hidden."""
    if PDF_FONT != "DejaVu" and os.environ.get("CI") != "true":
        pytest.skip("fonts-dejavu-core is not installed: `make fonts`")
    assert PDF_FONT == "DejaVu"


def test_flags_justifications_amendments_and_set_aside_deposits() -> None:
    host = Host()
    host.handle(publish(abnormally_low="10"))
    for i, (bidder, amount) in enumerate((("A", "900000.00"), ("B", "1050000.00"), ("C", "500000.00"))):
        host.handle(deposit(START + (i + 1) * S, bidder, simple(amount)))
    for i, m in enumerate(MEMBERS[:3]):
        host.handle(share(OPENING + (i + 1) * S, m))
    for bidder in "ABC":
        host.handle(DecideAdmission(OPENING + 5 * S, "T1", "m1", bidder, True))
    host.handle(CloseAdmission(OPENING + 9 * S, "T1", "m1"))
    waiting = Host.load_state(host.dump_state())  # L1 waits for C's justification
    waiting.handle(CancelTender(OPENING + DAY, "T1", "buyer", "besoin supprimé"))
    cancelled = render_minutes("T1", waiting.kind(Tenders).tenders["T1"], "evaluation", "html", "fr")
    assert "<p>Appel d&#39;offres annulé : besoin supprimé</p>" in cancelled.decode()
    assert [v for k, v in facts(cancelled) if k == "Résultat"] == ["annulé", "infructueux : aucune offre"]
    host.handle(JustifyOffer(OPENING + DAY, "T1", "C", "L1", digest(b"our costs")))
    host.handle(DecideJustification(OPENING + DAY, "T1", "m2", "L1", "C", False, "below cost"))
    html = render_minutes("T1", host.kind(Tenders).tenders["T1"], "evaluation", "html", "en")
    lot = facts(html)
    assert ("Abnormally low or excessive offers", "none") in lot  # evaluated again without C
    assert ["C", "—", "—", "—", "—", "—", "justification rejected"] in rows(html)
    assert ("Thresholds (low / high, % of P)", "10 / unset") in lot
    host = Host()
    for command in amended():
        host.handle(command)
    for m in MEMBERS[:3]:
        host.handle(share(OPENING + 6 * DAY, m))
    opening = render_minutes("T1", host.kind(Tenders).tenders["T1"], "opening", "html", "fr")
    table = rows(opening)
    assert ["pli écarté sans ouverture", "gamma",
            "2026-03-17T10:00:00.000000Z: dépôt antérieur à un avis rectificatif, non confirmé"] in table
    assert ["A2", "2026-03-10T10:00:00.000000Z", "", bytes(range(32)).hex(), "2026-03-17T10:00:00.000000Z"] in table
    assert ("Date initialement fixée", "2026-03-12T10:00:00.000000Z") in facts(opening)


def test_minutes_not_yet_held_and_bad_journals(journal: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    host = Host()
    host.handle(publish())
    host.handle(deposit(START + S, "acme", simple("1.00")))
    tender = host.kind(Tenders).tenders["T1"]
    with pytest.raises(MinutesError) as raised:
        render_minutes("T1", tender, "opening", "html")
    assert raised.value.code == "not_opened"
    with pytest.raises(MinutesError) as raised:
        render_minutes("T1", tender, "evaluation", "pdf")
    assert raised.value.code == "not_evaluated"
    host.handle(Tick(OPENING))
    with pytest.raises(MinutesError):
        render_minutes("T1", tender, "opening", "html")  # the deadline passed, no share yet
    out = tmp_path / "x.html"
    assert replay_main(["minutes", str(journal), "T9", "--which", "opening", "-o", str(out)]) == 2
    assert "unknown_tender" in capsys.readouterr().err and not out.exists()
    write(tmp_path / "early", lifecycle()[:13])
    assert replay_main(["minutes", str(tmp_path / "early"), "T1", "--which", "opening", "-o", str(out)]) == 2
    assert "not_opened" in capsys.readouterr().err and not out.exists()
    segment = next((tmp_path / "early").iterdir())
    data = bytearray(segment.read_bytes())
    data[-20] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert replay_main(["minutes", str(tmp_path / "early"), "T1", "--which", "opening", "-o", str(out)]) == 1
    assert "FAILED" in capsys.readouterr().err and not out.exists()
