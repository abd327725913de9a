"""The real service in a background thread (its own trio loop) for browser tests, whose
Playwright calls block; and the Chromium that the project's scripts install.

`LiveService.call(fn, *args)` runs an async function in the service's loop and returns its
result; `spawn` starts one there in the background (bots). In CI (CI=true) a missing
browser fails the run; elsewhere the browser tests are skipped with the reason.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from served import KEYS, Served, served

import gateway.app as app_module

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = Path(__file__).parent / "axe.min.js"
ARTIFACTS = Path(os.environ.get("WEB_ROOM_ARTIFACTS", Path(__file__).parent.parent / "build" / "web-room"))


def require_browser() -> None:
    """Skip (or fail in CI) when Playwright or Chromium is missing."""
    problem = None
    try:
        import playwright  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None and not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (make test installs it: apt-get install chromium)"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: a browser test cannot run: {problem}")
        pytest.skip(problem)


class LiveService:
    """A served service (tests/served.py) running in its own thread until `stop()`."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self._data_dir, self._overrides = data_dir, overrides
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.srv: Served
        self._thread = threading.Thread(target=self._run, name="live-service", daemon=True)

    def start(self) -> LiveService:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the test thread by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        # Signals can only be received in the main thread; the test process's own (pytest)
        # handles Ctrl-C. The service is stopped by `stop()` instead.
        app_module._signals = _no_signals  # type: ignore[assignment]
        async with served(self._data_dir, **self._overrides) as srv, trio.open_nursery() as nursery:
            self.srv, self._nursery = srv, nursery
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    @property
    def base(self) -> str:
        return self.srv.base

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run `fn(*args)` in the service's loop; its result."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start `fn(*args)` in the service's loop, in the background until `stop()`."""
        trio.from_thread.run_sync(self._nursery.start_soon, fn, *args, trio_token=self._token)

    def rpc(self, role: str, method: str, path: str, body: Any = None) -> Any:
        """One RPC call with the `role`'s key; the decoded JSON answer (raises on an error status)."""
        async def go() -> Any:
            async with self.srv.rpc(role) as client:
                return await client.request(method, path, body)
        return self.call(go)

    def stop(self) -> None:
        if self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            self._thread.join(30)


async def _no_signals(stop: trio.Event) -> None:
    await trio.sleep_forever()


@contextmanager
def live_service(data_dir: Path, **overrides: Any) -> Iterator[LiveService]:
    live = LiveService(data_dir, **overrides).start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """The real service for a module's browser tests."""
    require_browser()
    with live_service(tmp_path_factory.mktemp("web-room")) as service:
        yield service


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium per test module (a context per page keeps pages apart); per module
    because a second sync Playwright cannot start while one runs."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=10_000)  # exact conditions, waited for: a busy shared machine only makes it slower
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_page(browser: Any, errors: list[str], **context: Any) -> Any:
    """A page in a fresh context (its own storage), page errors collected in `errors`."""
    page = browser.new_context(viewport={"width": 1200, "height": 900}, **context).new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A script, style or connection the CSP blocks is logged as a console error.
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return page


def shot(page: Any, name: str) -> None:
    """A full-page screenshot kept as a test artifact (build/web-room/, not committed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


__all__ = ["ARTIFACTS", "AXE", "CHROMIUM", "CHROMIUM_ARGS", "KEYS", "LiveService", "browser", "live", "live_service",
           "new_page", "require_browser", "shot"]
