"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest

from gateway import transport


@pytest.fixture(params=["direct", "asgi"])
def write_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the room writes: its direct path, and the ASGI send it falls back to."""
    if request.param == "asgi":
        monkeypatch.setattr(transport, "direct_sender", lambda scope: None)
    return str(request.param)
