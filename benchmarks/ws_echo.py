"""The raw limit of `benchmarks.ws_load`: a bare WebSocket echo on the service's stack.

    python -m benchmarks.ws_echo --port P [--reply-bytes N]

One trio process, hypercorn serving a quart-trio app, configured like the service
(`gateway.app.hypercorn_config` and `listening_socket` with default settings: the same
message size limit, send buffer and listen backlog). Its one WebSocket route, /echo,
negotiates the room's subprotocols the same way, then answers every text message with
that message, padded with spaces to `--reply-bytes` (the size of an ack) so the round
trip moves a bid-sized request and an ack-sized reply; /healthz says it is up. Like the
service after its recovery, it freezes what it built before serving (`gc.freeze()`).
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Sequence
from typing import Any

import trio
from hypercorn.config import Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart import websocket
from quart_trio import QuartTrio

from gateway import protocol as p
from gateway.app import GC_THRESHOLDS, hypercorn_config, listening_socket
from gateway.settings import Settings

from .common import raise_nofile


def create_echo_app(reply_bytes: int) -> QuartTrio:
    app = QuartTrio("ws_echo")

    @app.websocket("/echo")
    async def echo() -> Any:
        chosen = next((s for s in websocket.requested_subprotocols if s in p.SUBPROTOCOLS), None)
        await websocket.accept(subprotocol=chosen)
        while True:
            data = await websocket.receive()
            if isinstance(data, str) and len(data) < reply_bytes:
                data += " " * (reply_bytes - len(data))
            await websocket.send(data)

    @app.route("/healthz")
    async def healthz() -> Any:
        return {"status": "ok"}

    return app


async def serve_echo(port: int, reply_bytes: int) -> None:
    settings = Settings(port=port)
    config = hypercorn_config(settings)
    sock = listening_socket(settings)
    app = create_echo_app(reply_bytes)
    await worker_serve(wrap_app(app, config.wsgi_max_body_size, None), config, sockets=Sockets([], [sock], []))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ws_echo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reply-bytes", type=int, default=0, help="pad each reply to this many characters")
    args = parser.parse_args(argv)
    raise_nofile()
    gc.collect()
    gc.freeze()  # as the service does once it has recovered
    gc.set_threshold(*GC_THRESHOLDS)  # and with the service's collector policy
    trio.run(serve_echo, args.port, args.reply_bytes)


if __name__ == "__main__":
    main()
