"""Bounded sends for hypercorn's trio server: a stalled reader cannot hold a task forever.

hypercorn writes each chunk with a *shielded* `send_all`, so a peer that stops reading
blocks the writing task (and the service's shutdown) for ever, whatever timeout the app
sets around its own send. `BoundedTCPServer` keeps the shield (a chunk is never half
cancelled by an outer scope) but gives the write its own deadline, the `send_timeout`
attribute of the hypercorn config: past it the stream is closed, the protocol learns the
peer is gone, and the app's pending send returns. `install()` makes hypercorn's trio
worker use it.
"""

from __future__ import annotations

import math

import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData
from hypercorn.trio.tcp_server import TCPServer


class BoundedTCPServer(TCPServer):
    async def protocol_send(self, event: Event) -> None:
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        timeout = getattr(self.config, "send_timeout", None) or math.inf
        async with self.send_lock:
            stalled = False
            try:
                with trio.CancelScope(shield=True), trio.move_on_after(timeout) as scope:
                    await self.stream.send_all(event.data)
                stalled = scope.cancelled_caught
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                stalled = True
            if stalled:
                with trio.CancelScope(shield=True):
                    await self.stream.aclose()
                await self.protocol.handle(Closed())


def install() -> None:
    """Make hypercorn's trio worker serve connections with `BoundedTCPServer`."""
    hypercorn.trio.run.TCPServer = BoundedTCPServer  # type: ignore[attr-defined]
