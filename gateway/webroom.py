"""The web auction room: static pages and ES modules served under `/room/` (docs/web-room.md).

`/room/{auction_id}` is the bidder's page, `/room/{auction_id}/observe` the observer's and
buyer's; both are the same HTML for every auction (the page reads the id from its URL).
Assets live under `/room/_static/` (an auction id never starts with `_`). Every answer
carries a strict Content-Security-Policy: scripts and styles from this origin only, no
inline code, WebSocket and RPC calls to this origin only.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quart import Quart, Response, request

from auction_engine.config import ID_PATTERN

from .rpc import error_body

STATIC = Path(__file__).parent / "static" / "room"
# 'self' covers ws:// and wss:// to this host in CSP level 3 (Chromium, Firefox, Safari).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",  # the page URL never leaves in a Referer (it never holds the token anyway)
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
ASSET = re.compile(r"[a-z0-9-]+(/[a-z0-9-]+)?\.(js|css|json|svg)")  # no dots elsewhere: no traversal
TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
         "json": "application/json; charset=utf-8", "svg": "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class _Loaded:
    mtime_ns: int
    body: bytes
    gzipped: bytes
    etag: str


_loaded: dict[Path, _Loaded] = {}  # the files are small and few: kept in memory, reread when changed


def _load(path: Path) -> _Loaded:
    mtime_ns = path.stat().st_mtime_ns
    known = _loaded.get(path)
    if known is None or known.mtime_ns != mtime_ns:
        body = path.read_bytes()
        known = _loaded[path] = _Loaded(mtime_ns, body, gzip.compress(body, 9, mtime=0),
                                        '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return known


def _file(path: Path, content_type: str, cache: str) -> Response:
    loaded = _load(path)
    headers = {"Content-Type": content_type, "Cache-Control": cache, "ETag": loaded.etag,
               "Vary": "Accept-Encoding", **HEADERS}
    if loaded.etag in request.headers.get("If-None-Match", ""):  # a revisit downloads nothing that did not change
        return Response(b"", 304, headers)
    if "gzip" in request.headers.get("Accept-Encoding", ""):  # a third of the bytes (docs/benchmarks.md)
        return Response(loaded.gzipped, 200, {**headers, "Content-Encoding": "gzip"})
    return Response(loaded.body, 200, headers)


def _not_found(message: str) -> Any:
    return error_body("not_found", message), 404, HEADERS


def register_web_room(app: Quart) -> None:
    """Add the `/room/` routes to `app`."""

    def page(name: str, auction_id: str) -> Any:
        if not ID_PATTERN.fullmatch(auction_id):
            return _not_found("no such auction room: the id is not a valid auction id")
        # no-store: a page is tiny, and a cached copy would outlive a deployment of new assets
        return _file(STATIC / name, "text/html; charset=utf-8", "no-store")

    @app.route("/room/<auction_id>")
    async def room_bidder(auction_id: str) -> Any:
        return page("bidder.html", auction_id)

    @app.route("/room/<auction_id>/observe")
    async def room_observer(auction_id: str) -> Any:
        return page("observe.html", auction_id)

    @app.route("/room/_static/<path:name>")
    async def room_asset(name: str) -> Any:
        match = ASSET.fullmatch(name)
        path = STATIC / name
        if match is None or not path.is_file():
            return _not_found(f"no such room asset: {name[:80]}")
        return _file(path, TYPES[match[2]], "no-cache")  # revalidated: a deployment shows at once
