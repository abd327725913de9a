"""The web room in a real browser (Playwright driving Debian's Chromium) against the real
service: two browser bidders, bots and the buyer's page in one auction, each step checked
against what the room actually sent (the frames the page received)."""

from __future__ import annotations

import re
import threading
from typing import Any

from served import auction_body
from webroom_harness import KEYS, LiveService, browser, live, new_page, shot
from webroom_pages import Wire, bot, no_identity, page_texts

ACME, BETA = "acme-sarl-7731", "beta-industries-5512"
BOTS = ("bot-atlas-0101", "bot-rif-0202", "bot-souss-0303")
EVERY_ID = [ACME, BETA, *BOTS]
NNBSP = "\u202f"  # fr groups digits with a narrow no-break space
__all__ = ["browser", "live"]  # fixtures


def test_two_browser_bidders_bots_and_the_buyer(live: LiveService, browser: Any) -> None:
    from playwright.sync_api import expect

    body = auction_body("W-1", start_in=3, seconds=25, visibility="ladder", window="60s", extend_by="1s")
    body["extension"].update(mode="from_close", max_extensions=3)
    live.rpc("portal", "POST", "/auctions", body)
    tokens = {t["bidder_id"]: t["token"] for t in
              live.rpc("portal", "POST", "/auctions/W-1/bidders", {"bidders": EVERY_ID})["tokens"]}
    errors: list[str] = []
    wires = {ACME: Wire(), BETA: Wire()}
    pages = {}
    for who, lang in ((ACME, "fr"), (BETA, "en")):
        page = pages[who] = new_page(browser, errors)
        wires[who].install(page)
        page.goto(f"{live.base}/room/W-1?lang={lang}#token={tokens[who]}")
        assert "#" not in page.url and "token" not in page.url  # the fragment is gone at once
    buyer = new_page(browser, errors)
    buyer.goto(f"{live.base}/room/W-1/observe")
    buyer.fill("#key-input", KEYS["buyer"])
    buyer.press("#key-input", "Enter")
    expect(buyer.locator("#controls")).to_be_visible()
    acme, beta = pages[ACME], pages[BETA]

    # The bots bid as the lot opens; the browsers then see a stable ladder to compare with.
    done = [threading.Event() for _ in BOTS]
    prices = (["9950.00", "9900.00"], ["9920.00"], ["9890.00", "9880.00"])
    for name, bid_prices, flag in zip(BOTS, prices, done, strict=True):
        live.spawn(bot, live.srv.room_url("W-1"), tokens[name], bid_prices, name, flag)
    for flag in done:
        assert flag.wait(20)
    expect(acme.locator("#lot-L1")).to_have_attribute("data-status", "open")
    # The clock: same host, so the true offset is 0 and the estimate must be within the error
    # it states (half the best round trip: the room read the ping between send and pong),
    # which the header shows. (Its size is a figure: benchmarks/web_room.py; the routed
    # sockets here add the driver's hops.) The final minute is emphasised.
    for page in (*pages.values(), buyer):
        page.wait_for_function("() => window.__roomStats && window.__roomStats.uncertaintyMs !== undefined")
        sync = page.evaluate("window.__roomStats")
        assert abs(sync["offsetMs"]) <= sync["uncertaintyMs"] + 2, sync
        good = "true" if sync["uncertaintyMs"] <= 50 else "false"
        expect(page.locator("#clock-sync")).to_have_attribute("data-good", good)
        expect(page.locator("#lot-L1")).to_have_class(re.compile(r"\bfinal\b"))

    # acme bids through the form, in French format with ordinary spaces.
    acme.fill("#lot-L1-amount", "9 700,00")
    acme.click("#lot-L1 button[type=submit]")
    expect(acme.locator("#lot-L1-feedback")).to_contain_text("acceptée")
    ack = wires[ACME].last("ack")
    assert ack["amount"] == "9700.00" and ack["rank"] == 1
    expect(acme.locator("#lot-L1 [data-f=own]")).to_have_text(f"9{NNBSP}700,00{NNBSP}MAD")

    # beta bids with the keyboard alone (in English format) and takes the lead.
    beta.locator("#lot-L1-amount").focus()
    beta.keyboard.type("9,650.00")
    beta.keyboard.press("Enter")
    expect(beta.locator("#lot-L1-feedback")).to_contain_text("accepted")
    assert wires[BETA].last("ack")["rank"] == 1

    # Ranks, best price and ladder as the room says (ladder visibility shows all three).
    for who, page in pages.items():
        view = wires[who].last("view")
        expect(page.locator("#lot-L1 [data-f=rank]")).to_contain_text(str(view["rank"]))
        if who == ACME:
            view = _wait_view(page, wires[who], lambda v: v["rank"] == 2)
            expect(page.locator("#lot-L1 [data-f=rank]")).to_have_text(f"2 sur {view['active_bidders']}")
            expect(page.locator("#lot-L1 [data-f=best]")).to_have_text(f"9{NNBSP}650,00{NNBSP}MAD")
            rows = page.locator("#lot-L1 tbody tr")
            expect(rows).to_have_count(len(view["ladder"]))
            own = next(line for line in view["ladder"] if line["own"])
            expect(page.locator("#lot-L1 tr.own")).to_contain_text(own["pseudonym"])
            expect(page.locator("#announce")).to_contain_text(f"vous êtes au rang 2 sur {view['active_bidders']}")
    # An extension (any bid extends, three times at most) is shown with its new close.
    expect(acme.locator("#lot-L1 [data-f=closes]")).to_contain_text("Prorogation n°")
    assert wires[ACME].last("view")["extensions"] >= 1

    # A reconnection: the ack of acme's next bid is lost with the socket; the page says so,
    # blocks the form, reconnects, resends the same client_bid_id, and bids only once.
    wires[ACME].drop_next_ack = True
    acme.fill("#lot-L1-amount", "9600")
    acme.click("#lot-L1 button[type=submit]")
    # Both at once: the banner says so while the form cannot send (the retry waits >= 375 ms).
    acme.wait_for_function("() => document.getElementById('banner').dataset.kind === 'reconnecting'"
                           " && document.getElementById('lot-L1-amount').matches(':disabled')")
    expect(acme.locator("#lot-L1-feedback")).to_contain_text("acceptée")
    expect(acme.locator("#banner")).to_be_hidden()
    dropped = wires[ACME].dropped_id
    assert dropped is not None and wires[ACME].connections == 2
    assert [m["amount"] for m in wires[ACME].sent if m.get("client_bid_id") == dropped] == ["9600.00", "9600.00"]
    assert wires[ACME].last("ack")["duplicate"] is True

    # The buyer suspends from its page (reason, confirmation): every bidder sees the banner.
    buyer.fill("#control-reason", "incident réseau")
    buyer.click("#do-suspend")
    buyer.click("#confirm button[value=yes]")
    for page in pages.values():
        expect(page.locator("#banner")).to_have_attribute("data-kind", "suspended")
        expect(page.locator("#lot-L1-amount")).to_be_disabled()
    expect(acme.locator("#banner")).to_contain_text("incident réseau")
    shot(acme, "scenario-suspended-fr")
    buyer.click("#do-resume")
    buyer.click("#confirm button[value=yes]")
    for page in pages.values():
        expect(page.locator("#lot-L1")).to_have_attribute("data-status", "open")

    # The close: each bidder's own result, as its `closed` message says.
    for who, page in pages.items():
        expect(page.locator("#lot-L1 [data-f=result]")).to_be_visible(timeout=40_000)
        closed = wires[who].last("closed")
        assert closed["outcome"] == ("won" if who == ACME else "not_won")  # acme's 9600.00 is the best
        expect(page.locator("#lot-L1 [data-f=result]")).to_have_attribute("data-outcome", closed["outcome"])
    expect(acme.locator("#lot-L1 [data-f=result]")).to_contain_text("vous remportez le lot")
    expect(beta.locator("#lot-L1 [data-f=result]")).to_contain_text("not won; your final rank 2")
    # Bids placed once each: the bots' five, acme's two, beta's one.
    results = live.rpc("buyer", "GET", "/auctions/W-1/results")
    assert results["lots"][0]["bids"] == 8
    # The buyer sees identities once every lot has ended; the bidders never do.
    expect(buyer.locator("#results-body")).to_contain_text(ACME)
    expect(buyer.locator("#lot-L1 [data-f=rate]")).not_to_have_text("—")  # bids per minute, once 5 s are seen
    expect(buyer.locator("#lot-L1 [data-f=bids]")).to_have_text("8 (0)")
    shot(buyer, "scenario-results-fr")
    for who, page in pages.items():
        assert no_identity(page_texts(page, wires[who]), EVERY_ID) == []
    assert errors == []


def _wait_view(page: Any, wire: Wire, predicate: Any) -> dict[str, Any]:
    page.wait_for_function("() => true")  # let frames delivered so far be recorded
    for _ in range(100):
        views = [m for m in wire.received if m.get("type") == "view" and m["lot"] == "L1"]
        if views and predicate(views[-1]):
            return views[-1]
        page.wait_for_timeout(50)
    raise AssertionError(f"no view satisfying the condition: {wire.last('view')}")
