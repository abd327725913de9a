"""The web room in French, Arabic and English in a real browser: locale formats typed and
shown, right-to-left layout, the keyboard-only bid with its fat-finger confirmation, a
rejection with its code, what `rank` visibility hides, the remembered language, axe-core,
and a screenshot of each page in each language (build/web-room/)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from served import auction_body
from webroom_harness import AXE, KEYS, LiveService, browser, live, new_page, shot
from webroom_pages import Wire, no_identity, page_texts

from auction_engine.config import BidRules
from auction_engine.money import Percent, format_amount, parse_percent

NNBSP = "\u202f"
DOCS_IMG = Path(__file__).parent.parent / "docs" / "img"
BIDDERS = {"fr": "societe-fr-1001", "ar": "sharika-ar-2002", "en": "company-en-3003"}
__all__ = ["browser", "live"]  # fixtures


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on `page` (WCAG 2.1 A and AA rules)."""
    page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP does not apply
    found = page.evaluate("""async () => (await axe.run(document, {runOnly: {type: "tag",
        values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})).violations
        .filter(v => v.impact === "serious" || v.impact === "critical")
        .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(" ")).slice(0, 5)}))""")
    return list(found)


def tab_to(page: Any, selector: str, limit: int = 40) -> None:
    """Press Tab until `selector` has the focus (the keyboard-only path)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement?.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def test_three_languages_formats_keyboard_and_accessibility(live: LiveService, browser: Any) -> None:
    from playwright.sync_api import expect

    body = auction_body("W-2", start_in=1.5, seconds=120, visibility="rank")
    body["lots"][0].update(starting_price="1300.00", estimate="1300.00")
    body["rules"] = {"min_step": "1.00", "max_step_percent": "20"}
    live.rpc("portal", "POST", "/auctions", body)
    tokens = {t["bidder_id"]: t["token"] for t in
              live.rpc("portal", "POST", "/auctions/W-2/bidders", {"bidders": list(BIDDERS.values())})["tokens"]}
    observer = live.rpc("buyer", "POST", "/auctions/W-2/observers", {"name": "commission"})["token"]
    errors: list[str] = []
    pages, wires = {}, {}
    for lang, bidder in BIDDERS.items():
        page = pages[lang] = new_page(browser, errors)
        wires[lang] = Wire()
        wires[lang].install(page)
        if lang == "en":  # a damaged link: the room refuses it, the login form takes a good one
            page.goto(f"{live.base}/room/W-2?lang=en#token=damaged.token.value")
            expect(page.locator("#banner")).to_contain_text("This access token is not valid")
            page.fill("#token-input", tokens[bidder])
            page.press("#token-input", "Enter")
        else:
            page.goto(f"{live.base}/room/W-2?lang={lang}#token={tokens[bidder]}")
        expect(page.locator("#lot-L1")).to_have_attribute("data-status", "open")
    fr, ar, en = pages["fr"], pages["ar"], pages["en"]

    # French, keyboard only: a 15 % drop asks first; Escape keeps the bid unsent.
    fr.locator("body").focus()
    tab_to(fr, "#lot-L1-amount")
    fr.keyboard.type("1 100,00")
    fr.keyboard.press("Enter")
    expect(fr.locator("#confirm")).to_be_visible()
    expect(fr.locator("#confirm")).to_contain_text("15,38")
    fr.keyboard.press("Escape")
    expect(fr.locator("#confirm")).to_be_hidden()
    assert not [m for m in wires["fr"].sent if m["type"] == "bid"]
    # Then 1 234,50 (a 5.04 % drop, over the 5 % guard): confirmed by Tab and Enter.
    fr.keyboard.press("Control+A")
    fr.keyboard.type("1 234,50")
    fr.keyboard.press("Enter")
    expect(fr.locator("#confirm")).to_be_visible()
    fr.keyboard.press("Tab")  # from the safe choice (focused first) to the confirmation
    fr.keyboard.press("Enter")
    expect(fr.locator("#lot-L1-feedback")).to_contain_text("acceptée")
    assert [m["amount"] for m in wires["fr"].sent if m["type"] == "bid"] == ["1234.50"]  # exact decimal string
    expect(fr.locator("#lot-L1 [data-f=own]")).to_have_text(f"1{NNBSP}234,50{NNBSP}MAD")
    # The bounds as the core computes them: 1 step under, at most 20 % (rounded down) under.
    expect(fr.locator("#lot-L1 [data-f=bounds]")).to_have_text(
        f"Votre prochaine offre : au plus 1{NNBSP}233,50{NNBSP}MAD, au moins 987,60{NNBSP}MAD.")
    # A rejection shows its code in plain language (the next bid typed straight away: the
    # focus came back to the emptied field with the answer).
    expect(fr.locator("#lot-L1-amount")).to_be_focused()
    fr.keyboard.type("1 300,01")
    fr.keyboard.press("Enter")
    expect(fr.locator("#lot-L1-feedback")).to_contain_text("(above_starting_price)")
    expect(fr.locator("#lot-L1-feedback")).to_contain_text("dépasse le prix de départ")
    # A typo is refused by the page with its code, and nothing is sent.
    fr.fill("#lot-L1-amount", "12 34,5")
    fr.press("#lot-L1-amount", "Enter")
    expect(fr.locator("#lot-L1-feedback")).to_contain_text("(amount_format)")
    assert len([m for m in wires["fr"].sent if m["type"] == "bid"]) == 2

    # English: 1,250.40 typed (under the 5 % guard) and shown with English grouping.
    en.fill("#lot-L1-amount", "1,250.40")
    en.press("#lot-L1-amount", "Enter")
    expect(en.locator("#lot-L1-feedback")).to_contain_text("accepted")
    expect(en.locator("#lot-L1 [data-f=own]")).to_have_text("MAD 1,250.40")
    # Arabic: typed in Arabic-Indic digits with the Arabic decimal sign; shown (ar-MA) in
    # Latin digits, as Moroccan documents write amounts.
    ar.fill("#lot-L1-amount", "١٢٤٠٫٣٠")
    ar.press("#lot-L1-amount", "Enter")
    expect(ar.locator("#lot-L1-feedback")).to_contain_text("قُبل عرضكم")
    assert wires["ar"].last("ack")["amount"] == "1240.30"
    expect(ar.locator("#lot-L1 [data-f=own]")).to_contain_text("1.240,30")

    # Right to left in Arabic: the document's direction, and the header and lot head mirrored.
    assert ar.evaluate("document.documentElement.dir") == "rtl" and ar.evaluate("document.documentElement.lang") == "ar"
    assert fr.evaluate("document.documentElement.dir") == "ltr"
    for page, rtl in ((ar, True), (fr, False)):
        title, tools = page.locator(".brand").bounding_box(), page.locator(".tools").bounding_box()
        name, badge = page.locator("#lot-L1 h2").bounding_box(), page.locator("#lot-L1 .badge").bounding_box()
        assert (title["x"] > tools["x"]) is rtl and (name["x"] > badge["x"]) is rtl

    # `rank` visibility: no best price, no ladder, in the page or on the wire; ranks are there.
    for lang, page in pages.items():
        expect(page.locator("#lot-L1 [data-f=best]")).to_be_hidden()
        expect(page.locator("#lot-L1 table.ladder")).to_be_hidden()
        view = wires[lang].last("view")
        assert "best_price" not in view and "ladder" not in view and view["rank"] is not None
        assert no_identity(page_texts(page, wires[lang]), list(BIDDERS.values())) == []
    expect(fr.locator("#lot-L1 [data-f=rank]")).to_have_text(f"{wires['fr'].last('view')['rank']} sur 3")

    # Observer pages, one per language; the language switch is remembered across a reload.
    watchers = {}
    for lang in BIDDERS:
        page = watchers[lang] = new_page(browser, errors)
        wire = Wire()
        wire.install(page)
        page.goto(f"{live.base}/room/W-2/observe?lang={lang}#token={observer}")
        expect(page.locator("#lot-L1 tbody tr")).to_have_count(3)  # observers see the anonymised ladder
        assert no_identity(page_texts(page, wire), list(BIDDERS.values())) == []
    switched = watchers["fr"]
    switched.goto(f"{live.base}/room/W-2/observe")  # no ?lang: French by default, token from this tab
    expect(switched.locator("html")).to_have_attribute("lang", "fr")
    switched.select_option("#lang", "en")
    expect(switched.locator("html")).to_have_attribute("lang", "en")
    switched.reload()
    expect(switched.locator("#lot-L1 [data-f=status]")).to_have_text("Open")
    assert switched.evaluate("localStorage.getItem('room.lang')") == "en"
    switched.select_option("#lang", "fr")

    # axe-core: no serious or critical violation on any page, in any language.
    for lang in BIDDERS:
        for kind, page in (("bidder", pages[lang]), ("observer", watchers[lang])):
            expect(page.locator("#lot-L1 .countdown")).not_to_be_empty()
            shot(page, f"{kind}-{lang}")
            found = axe_violations(page)
            assert found == [], json.dumps({"page": kind, "lang": lang, "violations": found}, ensure_ascii=False)
    if os.environ.get("WEB_ROOM_DOCS"):  # WEB_ROOM_DOCS=1 pytest tests/test_web_room_i18n.py: docs/img/
        for name, page in (("bidder-fr", fr), ("bidder-ar", ar), ("bidder-en", en), ("observer-fr", watchers["fr"])):
            page.set_viewport_size({"width": 960, "height": 760})
            page.screenshot(path=str(DOCS_IMG / f"web-room-{name}.png"))
    # Cancelling is the portal's (docs/api.md): the buyer's key is refused with its code,
    # the portal's key cancels, and every bidder page shows the lot cancelled.
    control = new_page(browser, errors)
    control.goto(f"{live.base}/room/W-2/observe")
    control.fill("#key-input", KEYS["buyer"])
    control.press("#key-input", "Enter")
    control.fill("#control-reason", "marché infructueux")
    control.click("#do-cancel")
    control.click("#confirm button[value=yes]")
    expect(control.locator("#control-feedback")).to_contain_text("(forbidden)")
    control.reload()  # the key was in memory only: the page asks again
    control.fill("#key-input", KEYS["portal"])
    control.press("#key-input", "Enter")
    control.click("#do-cancel")
    control.click("#confirm button[value=yes]")
    expect(control.locator("#control-feedback")).to_contain_text("Annulé")
    for page in pages.values():
        expect(page.locator("#lot-L1")).to_have_attribute("data-status", "cancelled")
        expect(page.locator("#lot-L1 [data-f=result]")).to_have_attribute("data-outcome", "unsuccessful")
    expect(fr.locator("#lot-L1 [data-f=result]")).to_contain_text("infructueux (annulé)")
    expect(control.locator("#results")).to_be_visible()
    assert errors == []


def test_page_arithmetic_matches_the_core(live: LiveService, browser: Any) -> None:
    """The page's step bounds equal the core's on random rules and bases, and every amount
    the page formats in a locale parses back to the same decimal string (in the browser)."""
    from playwright.sync_api import expect

    rng = random.Random(17)
    cases = []
    for _ in range(300):
        decimals = rng.choice((0, 2, 3))
        unit = 10**decimals
        starting = rng.randint(1, 10**9)
        base = rng.randint(1, 10**9)
        pct = lambda: f"{rng.randint(0, 30)}.{rng.randint(0, 999):03d}" if rng.random() < 0.6 else None  # noqa: E731
        rules = BidRules(min_step=rng.choice((0, 1, unit, 50 * unit)), min_step_percent=_percent(pct()),
                         max_step=rng.choice((None, 100 * unit, 10**6)), max_step_percent=_percent(pct()))
        high = min(starting, base - rules.required_step(base))
        allowed = rules.allowed_step(base)
        low = max(1, base - allowed) if allowed is not None else 1
        lot = {"starting_price": format_amount(starting, decimals), "rules": {
            "min_step": format_amount(rules.min_step, decimals),
            "min_step_percent": None if rules.min_step_percent is None else str(rules.min_step_percent),
            "max_step": None if rules.max_step is None else format_amount(rules.max_step, decimals),
            "max_step_percent": None if rules.max_step_percent is None else str(rules.max_step_percent)}}
        cases.append({"lot": lot, "decimals": decimals, "base": format_amount(base, decimals),
                      "expect": [format_amount(low, decimals), format_amount(high, decimals)]})
    errors: list[str] = []
    page = new_page(browser, errors)
    page.goto(f"{live.base}/room/W-3")  # any room page: the modules load from this origin
    # No token: the login form, which follows a language switch (before any connection).
    page.select_option("#lang", "ar")
    expect(page.locator("#login h2")).to_have_text("الدخول إلى القاعة")
    assert page.evaluate("document.documentElement.dir") == "rtl"
    got = page.evaluate("""async (cases) => {
        const m = await import("/room/_static/money.js");
        return cases.map(({lot, decimals, base}) => {
            const b = m.bounds(lot, decimals, m.toMinor(base, decimals));
            return [m.fromMinor(b.low, decimals), m.fromMinor(b.high, decimals)];
        });
    }""", cases)
    assert got == [c["expect"] for c in cases]
    amounts = [format_amount(rng.randint(1, 10**14), 2) for _ in range(200)]
    for locale in ("fr-FR", "ar-MA", "en-GB"):
        back = page.evaluate("""async ([amounts, locale]) => {
            const m = await import("/room/_static/money.js");
            const f = new Intl.NumberFormat(locale, {minimumFractionDigits: 2, maximumFractionDigits: 2});
            return amounts.map((a) => m.parseTyped(f.format(a), locale, 2));
        }""", [amounts, locale])
        assert back == amounts, locale
    assert errors == []


def _percent(text: str | None) -> Percent | None:
    return None if text is None else parse_percent(text)
