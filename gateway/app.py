"""The `serve` service: hypercorn serving a quart-trio app, the engine in the same process.

`serve(settings)` opens the service (recovery first), binds the listening socket (with
the configured send buffer, which bounds how much a slow reader can hold), and serves
until cancelled or SIGINT/SIGTERM; shutdown closes the room connections, then flushes
the journal. `create_app(service)` is the app alone, for tests and embedding.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart import Response, websocket
from quart_trio import QuartTrio

from auction_engine.timeutil import format_instant

from . import protocol as p
from . import transport
from .logs import configure_logging, log
from .rpc import MAX_BODY, error_body, register_rpc
from .service import Service
from .settings import Settings
from .webroom import register_web_room

logger = logging.getLogger("gateway.app")

# CPython's default collector runs a full collection every ~10 middle ones; with thousands
# of connections that is a 0.5-1 s pause several times a minute, measured by
# benchmarks/ws_load.py. Almost all garbage here is freed by reference counting; keep
# young collections, make full ones rare.
GC_THRESHOLDS = (700, 10, 10_000)


def create_app(service: Service) -> QuartTrio:
    """The quart-trio app of `service`: RPC, room, web room pages, metrics and health endpoints."""
    app = QuartTrio("auction_engine_gateway")
    app.url_map.merge_slashes = False  # an empty path segment is a 404 with a coded body, not a redirect
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, RESPONSE_TIMEOUT=None, BODY_TIMEOUT=30,
                      JSON_SORT_KEYS=False)
    if service.settings.redis_role == "engine":  # an engine takes commands from gateways only
        register_health(app, service)
        return app
    if service.settings.redis_follow == "all":  # (a gateway following only its rooms' cases has no RPC)
        register_rpc(app, service)
    register_web_room(app)  # the browser room's static pages under /room/

    @app.websocket("/ws/v1/auctions/<auction_id>")
    async def room(auction_id: str) -> Any:
        offered = websocket.requested_subprotocols
        chosen = next((s for s in offered if s in p.SUBPROTOCOLS), None)
        if chosen is None:
            return error_body("subprotocol_required", "negotiate auction.v1.json or auction.v1.msgpack with "
                              "Sec-WebSocket-Protocol"), 400
        await websocket.accept(subprotocol=chosen)
        direct = transport.direct_sender(websocket.scope) if service.settings.direct_writes else None
        await service.rooms.session(websocket, auction_id, chosen, direct)
        return None

    register_health(app, service)
    return app


def register_health(app: QuartTrio, service: Service) -> None:
    """/metrics, /healthz and /readyz."""

    @app.route("/metrics")
    async def metrics() -> Any:
        return Response(service.metrics.render(), 200, {"Content-Type": "text/plain; version=0.0.4"})

    @app.route("/healthz")
    async def healthz() -> Any:
        return {"status": "ok", "server_time": format_instant(service.runtime.now())}

    @app.route("/readyz")
    async def readyz() -> Any:
        if service.is_ready():
            return {"status": "ready"}
        reason = service.trouble()
        return error_body("not_ready", f"not taking commands: {reason}"), 503


def hypercorn_config(settings: Settings) -> Config:
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.websocket_max_message_size = settings.max_message_bytes
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    config.graceful_timeout = 5.0
    # The room's own send timeout fires first and closes with CLOSE_TOO_SLOW; this one
    # (read by transport.py) bounds every other write, and the close frame's.
    config.send_timeout = settings.send_timeout_s + 1.0  # type: ignore[attr-defined]
    config.keep_alive_timeout = 30.0
    return config


def listening_socket(settings: Settings) -> socket.socket:
    """The listening socket; accepted sockets inherit its send buffer size."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if settings.send_buffer_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings.send_buffer_bytes)
    sock.bind((settings.host, settings.port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def serve(settings: Settings, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Run the service until SIGINT/SIGTERM or `service.stop()`, then shut down gracefully
    (room connections closed with 1001, journal flushed); `task_status.started(service)`
    with its `port` set. Cancelling it also flushes the journal, without the goodbyes."""
    transport.install()
    gc.set_threshold(*GC_THRESHOLDS)
    sock = listening_socket(settings)
    port = sock.getsockname()[1]
    async with Service.open(settings) as service:
        app = create_app(service)
        config = hypercorn_config(settings)
        stop = service.stopping
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_signals, stop)
            await nursery.start(lambda task_status: worker_serve(
                wrap_app(app, config.wsgi_max_body_size, None), config, sockets=Sockets([], [sock], []),
                shutdown_trigger=stop.wait, task_status=task_status))
            log(logger, logging.INFO, "serving", host=settings.host, port=port, settings=settings.describe())
            service.port = port
            task_status.started(service)
            await stop.wait()
            log(logger, logging.INFO, "shutting down: closing connections, flushing the journal")
            service.ready = False
            for conns in list(service.rooms.by_auction.values()):
                for conn in list(conns):
                    conn.request_close(p.CLOSE_GOING_AWAY, "the service is shutting down")
            with trio.move_on_after(10):
                while service.rooms.count:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    log(logger, logging.INFO, "stopped; journal flushed")


async def _signals(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return


def run(settings: Settings) -> None:
    configure_logging(settings.log_level)
    trio.run(serve, settings)
