"""The web room in Chromium: page weight, time to interactive, and the page under a busy auction.

    python -m benchmarks.web_room [--quick] [--bidders 20] [--busy-seconds S] [--loads N]

- **weight**: every file under gateway/static/room/, uncompressed and gzip -9 (what a first
  visit downloads: both pages' HTML, the modules, the stylesheet, one catalogue; and all files);
- **time to interactive** on loopback: navigation start to the moment the bid form can send
  (welcome and the first view of every lot received), median of `--loads` fresh contexts;
  and with each load the page's clock offset estimate after its sync pings (the browser and
  the service share the host's clock, so the true offset is 0) and the error it states;
- **busy auction**: `--bidders` - 1 bots in a ladder auction (each accepted bid is a view to
  every bidder: one every 100 ms in all) and one browser bidder page; over the last
  `--busy-seconds` (a minute; --quick 20 s): the renderer's CPU share (the DevTools
  protocol's TaskDuration over wall time), long tasks over 50 ms (PerformanceObserver
  `longtask`), views the room sent that the page did not process (dropped), the worst lag
  from a view's arrival to its render, and whether the final display shows the last view.
  The raw reference in the same run: the same page idle (countdown only) for 5 s.

The service runs in a thread of this process (its own trio loop), the bots in its loop.
Human-readable lines first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

import gateway.app as app_module
from auction_engine.timeutil import format_instant
from gateway.client import Room, RpcClient
from gateway.settings import ApiKey, Settings

STATIC = Path(__file__).parent.parent / "gateway" / "static" / "room"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KEY = "bench-portal-key-0123456789abcdefghij"
VIEW_EVERY = 0.1  # seconds between accepted bids in the auction (so between views to a ladder bidder)
LONG_TASKS = """new PerformanceObserver((list) => { for (const e of list.getEntries())
  (window.__longtasks ??= []).push(e.duration); }).observe({type: "longtask", buffered: true});"""


def weight() -> dict[str, int]:
    """Bytes of the room's files: all of them, and a first visit's (one language)."""
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    visit = [p for p in files if p.parent == STATIC] + [STATIC / "i18n" / "fr.json"]

    def sizes(paths: list[Path]) -> tuple[int, int]:
        return sum(p.stat().st_size for p in paths), sum(len(gzip.compress(p.read_bytes(), 9)) for p in paths)

    all_raw, all_gz = sizes(files)
    visit_raw, visit_gz = sizes(visit)
    return {"files": len(files), "bytes": all_raw, "gzip_bytes": all_gz, "first_visit_bytes": visit_raw,
            "first_visit_gzip_bytes": visit_gz}


class Service:
    """The real service in a thread; `call` runs a coroutine function in its loop."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(data_dir=str(data_dir), port=0, token_secret="bench-secret-" + "x" * 40,
                                 durability="fsync", bid_rate=50, bid_burst=100,
                                 api_keys=(ApiKey.from_plaintext("bench", "portal", KEY),))
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        async def no_signals(stop: trio.Event) -> None:  # signals belong to the main thread
            await trio.sleep_forever()

        app_module._signals = no_signals
        async with trio.open_nursery() as nursery:
            service = await nursery.start(app_module.serve, self.settings)
            self.base, self.nursery = f"http://127.0.0.1:{service.port}", nursery
            self.token, self.stop = trio.lowlevel.current_trio_token(), trio.Event()
            self.ready.set()
            await self.stop.wait()
            nursery.cancel_scope.cancel()

    def __enter__(self) -> Service:
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self.thread.join(30)

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        return trio.from_thread.run(fn, *args, trio_token=self.token)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        trio.from_thread.run_sync(self.nursery.start_soon, fn, *args, trio_token=self.token)


def create(service: Service, auction_id: str, bidders: int, seconds: float, start_in: float) -> dict[str, str]:
    """A one-lot ladder auction; its tokens by bidder id."""
    start = int((time.time() + start_in) * 1e6)
    body = {"auction_id": auction_id, "title": "Banc d'essai", "buyer_ref": "BENCH", "currency": "MAD",
            "decimals": 2, "start": format_instant(start), "end": format_instant(start + int(seconds * 1e6)),
            "stagger": "0s", "bidders": [], "min_bidders": 1, "visibility": "ladder", "rules": {"min_step": "1.00"},
            "lots": [{"lot_id": "L1", "title": "Lot 1", "estimate": "1000000.00", "starting_price": "1000000.00"}]}

    async def go() -> dict[str, str]:
        async with RpcClient(service.base, KEY) as rpc:
            await rpc.create_auction(body)
            admitted = await rpc.admit(auction_id, [f"b{i:02d}" for i in range(bidders)])
            return {t["bidder_id"]: t["token"] for t in admitted["tokens"]}
    return dict(service.call(go))


async def bots(url: str, tokens: list[str], until: float) -> None:
    """Bots taking turns: one accepted bid every VIEW_EVERY seconds in all, each lower."""
    price = [100_000_000]  # minor units, shared: every bid is a new best

    async def one(token: str, phase: float, rng: random.Random) -> None:
        async with Room.connect(url, token) as room:
            n = 0
            await trio.sleep(phase)
            while trio.current_time() < until:
                price[0] -= rng.randint(100, 5000)
                n += 1
                await room.bid("L1", f"{price[0] // 100}.{price[0] % 100:02d}", f"{n}")
                await trio.sleep(VIEW_EVERY * len(tokens))

    async with trio.open_nursery() as nursery:
        for i, token in enumerate(tokens):
            nursery.start_soon(one, token, i * VIEW_EVERY, random.Random(i))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {"weight": weight()}
    print(f"weight: {out['weight']}")
    with tempfile.TemporaryDirectory() as tmp, Service(Path(tmp)) as service, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # time to interactive
        tokens = create(service, "TTI", 2, 600, 0)
        tti: list[float] = []
        clock: list[list[float]] = []  # [offset, stated error] per load; same host: the true offset is 0
        for _ in range(args.loads):
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{service.base}/room/TTI#token={tokens['b00']}")
            page.wait_for_function("() => window.__roomStats && window.__roomStats.liveAt !== undefined")
            tti.append(page.evaluate("window.__roomStats.liveAt"))
            page.wait_for_function("() => window.__roomStats.uncertaintyMs !== undefined")
            page.wait_for_timeout(1200)  # the five sync pings, 250 ms apart
            clock.append(page.evaluate("[window.__roomStats.offsetMs, window.__roomStats.uncertaintyMs]"))
            context.close()
        out["tti_ms_median"] = round(statistics.median(tti), 1)
        out["tti_ms_all"] = [round(x, 1) for x in tti]
        out["clock_error_ms_max"] = round(max(abs(offset) for offset, _ in clock), 1)
        out["clock_stated_error_ms_max"] = round(max(stated for _, stated in clock), 1)
        print(f"clock offset (true 0) and stated error per load (ms): {clock}")
        print(f"time to interactive (ms): {out['tti_ms_all']}")
        # busy auction
        warm = 3.0
        tokens = create(service, "BUSY", args.bidders, warm + args.busy_seconds + 30, 6.0)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        page = context.new_page()
        page.add_init_script(LONG_TASKS)
        frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f if isinstance(f, str)
                                                                                   else f.decode())))
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(f"{service.base}/room/BUSY#token={tokens['b00']}")
        page.wait_for_function("() => window.__roomStats && window.__roomStats.liveAt !== undefined")

        def task_seconds() -> float:
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            return float(metrics["TaskDuration"])

        t0, c0 = time.monotonic(), task_seconds()
        page.wait_for_timeout(4000)  # the raw reference: idle, the countdown ticking
        out["idle_cpu_pct"] = round(100 * (task_seconds() - c0) / (time.monotonic() - t0), 2)
        bot_tokens = [tokens[f"b{i:02d}"] for i in range(1, args.bidders)]
        deadline_wall = time.time() + warm + args.busy_seconds

        async def launch() -> None:
            until = trio.current_time() + (deadline_wall - time.time())
            service.nursery.start_soon(bots, f"ws://{service.base[7:]}/ws/v1/auctions/BUSY", bot_tokens, until)
        page.wait_for_function("() => document.querySelector('#lot-L1')?.dataset.status === 'open'", timeout=20000)
        service.call(launch)
        page.wait_for_timeout(warm * 1000)
        page.evaluate("window.__longtasks = []; window.__roomStats.maxRenderLagMs = 0")
        views0 = page.evaluate("window.__roomStats.views")
        sent0 = sum(1 for f in frames if '"type":"view"' in f)
        t0, c0 = time.monotonic(), task_seconds()
        page.wait_for_timeout(args.busy_seconds * 1000)
        wall = time.monotonic() - t0
        cpu = task_seconds() - c0
        page.wait_for_timeout(500)  # the last frames in flight
        stats = page.evaluate("window.__roomStats")
        sent = sum(1 for f in frames if '"type":"view"' in f) - sent0
        longtasks = page.evaluate("window.__longtasks")
        last_view = json.loads(next(f for f in reversed(frames) if '"type":"view"' in f))
        shown = page.inner_text("#lot-L1 tbody tr:first-child td:last-child")
        digits = "".join(ch for ch in shown if ch.isdigit())
        out.update({
            "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),  # a shared machine: context
            "busy_seconds": args.busy_seconds, "bidders": args.bidders,
            "views_received": sent, "views_per_s": round(sent / wall, 1),
            "views_processed": stats["views"] - views0, "dropped_updates": sent - (stats["views"] - views0),
            "renderer_cpu_pct": round(100 * cpu / wall, 2), "long_tasks_over_50ms": len(longtasks),
            "longest_task_ms": round(max(longtasks, default=0.0), 1),
            "max_render_lag_ms": round(stats["maxRenderLagMs"], 1), "renders": stats["renders"],
            "final_display_is_last_view": digits == last_view["ladder"][0]["price"].replace(".", ""),
        })
        print(f"busy: {sent} views in {wall:.1f} s, renderer CPU {out['renderer_cpu_pct']} % "
              f"(idle {out['idle_cpu_pct']} %), long tasks {len(longtasks)}, max render lag "
              f"{out['max_render_lag_ms']} ms, dropped {out['dropped_updates']}")
        browser.close()
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s busy, 3 loads: under a minute")
    parser.add_argument("--bidders", type=int, default=20)
    parser.add_argument("--busy-seconds", type=float, default=None)
    parser.add_argument("--loads", type=int, default=None)
    args = parser.parse_args(argv)
    args.busy_seconds = args.busy_seconds or (20.0 if args.quick else 60.0)
    args.loads = args.loads or (3 if args.quick else 10)
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
