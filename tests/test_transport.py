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
