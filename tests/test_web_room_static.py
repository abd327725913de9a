"""The web room's files without a browser: the catalogues agree, every message the scripts
name exists, no inline code in the pages, and the service serves them with a strict CSP."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from served import served

STATIC = Path(__file__).parent.parent / "gateway" / "static" / "room"
CATALOGUES = {p.stem: json.loads(p.read_text()) for p in (STATIC / "i18n").glob("*.json")}
# Keys built at run time from a code the room sends: every such code must have a message.
DYNAMIC = {"status.": ("scheduled", "open", "suspended", "closed", "cancelled"),
           "visibility.": ("rank", "rank_and_best", "ladder"), "visibility_short.": ("rank", "rank_and_best", "ladder"),
           "reason.": ("no_bids", "too_few_bidders", "above_reserve", "cancelled"),
           "reject.": ("insufficient_step", "step_too_large", "above_starting_price", "invalid_amount",
                       "lot_not_open", "lot_suspended", "lot_closed", "lot_cancelled", "not_admitted", "unknown_lot",
                       "rate_limited", "journal_unavailable"),
           "input.": ("amount_empty", "amount_format", "amount_decimals"),
           "clock.": ("suspended", "closed", "cancelled"),
           "controls.confirm_": ("suspend", "resume", "cancel"), "controls.done_": ("suspend", "resume", "cancel")}


def test_three_catalogues_with_the_same_keys() -> None:
    assert set(CATALOGUES) == {"fr", "ar", "en"}
    keys = set(CATALOGUES["fr"])
    for lang, catalogue in CATALOGUES.items():
        assert set(catalogue) == keys, (lang, set(catalogue) ^ keys)
        for key, text in catalogue.items():  # the same placeholders in every language
            assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", CATALOGUES["fr"][key])), key


def test_every_message_the_pages_use_exists() -> None:
    keys = set(CATALOGUES["fr"])
    used = set()
    for path in [*STATIC.glob("*.js"), *STATIC.glob("*.html")]:
        text = path.read_text()
        used |= set(re.findall(r"""\bt\("([a-z_.]+)"[,)]""", text))
        used |= set(re.findall(r'data-i18n="([a-z_.]+)"', text))
        used |= {k for pair in re.findall(r'data-i18n-attr="([^"]+)"', text) for k in re.findall(r":([a-z_.]+)", pair)}
    used |= {prefix + code for prefix, codes in DYNAMIC.items() for code in codes}
    assert used - keys == set()


def test_no_inline_script_or_style_in_the_pages() -> None:
    for page in STATIC.glob("*.html"):
        html = page.read_text()
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], page.name
        assert " style=" not in html and "<style" not in html and " on" + "click=" not in html, page.name


@pytest.mark.trio
async def test_served_with_a_strict_csp_and_nothing_else(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, httpx.AsyncClient(base_url=srv.base) as http:
        for path in ("/room/W-1", "/room/W-1/observe", "/room/_static/bidder.js", "/room/_static/i18n/ar.json",
                     "/room/_static/room.css"):
            answer = await http.get(path)
            assert answer.status_code == 200, path
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
            assert answer.headers["referrer-policy"] == "no-referrer"
        first = await http.get("/room/_static/bidder.js")
        assert first.headers["content-type"].startswith("text/javascript")
        again = await http.get("/room/_static/bidder.js", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert first.headers["content-encoding"] == "gzip"  # httpx asks for it, and decodes it
        assert first.text == (STATIC / "bidder.js").read_text()
        plain = await http.get("/room/_static/bidder.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == (STATIC / "bidder.js").read_bytes()
        for path in ("/room/_static/%2e%2e/app.py", "/room/_static/i18n/%2e%2e/room.css", "/room/_static/nope.js",
                     "/room/-bad-id", "/room/_static/webroom.py"):
            answer = await http.get(path)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found", path
