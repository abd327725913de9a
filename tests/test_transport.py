"""The direct write path's bare frames are the frames wsproto itself would send."""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

from gateway.transport import plain_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_a_plain_frame_equals_wsprotos(size: int) -> None:
    server = Connection(ConnectionType.SERVER)
    text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte UTF-8: the length is in bytes
    assert plain_frame(text) == server.send(TextMessage(data=text))
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert plain_frame(data) == server.send(BytesMessage(data=data))


def test_the_hypercorn_internals_transport_relies_on() -> None:
    """gateway/transport.py subclasses hypercorn's TCPServer and WSStream and swaps them in:
    this fails loudly when a hypercorn release moves what it relies on (pyproject pins it)."""
    import inspect

    import hypercorn.protocol.h11
    import hypercorn.trio.run
    from hypercorn.protocol.ws_stream import WebsocketBuffer, WSStream

    from gateway.transport import BoundedTCPServer, RoomWSStream, install

    install()
    assert hypercorn.protocol.h11.WSStream is RoomWSStream
    assert hypercorn.trio.run.TCPServer is BoundedTCPServer  # type: ignore[attr-defined]
    init = inspect.getsource(WSStream.__init__)
    for field in ("self.buffer = WebsocketBuffer", "self.task_group", "self.context", "self.closed", "self.app_put",
                  "self.stream_id", "self.send"):
        assert field in init, field
    assert {"extend", "clear", "to_message"} <= set(vars(WebsocketBuffer))
    assert {"_handle_events", "_send_wsproto_event", "handle"} <= set(vars(WSStream))
    assert "self._handle_events()" in inspect.getsource(WSStream.handle)
    assert "self.stream.send_all" in inspect.getsource(BoundedTCPServer._write_locked)
