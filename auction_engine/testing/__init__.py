"""Test helpers: a deliberately naive reference model of the engine (`naive.NaiveEngine`),
written from docs/core.md, that the model-based tests compare the real `Engine` against."""

from __future__ import annotations

from ..events import BidRejected, CommandRejected, Event


def normalise(events: list[Event]) -> list[Event]:
    """Events with the free-text `message` of rejections blanked: only codes are specified."""
    out: list[Event] = []
    for happened in events:
        if isinstance(happened, (BidRejected, CommandRejected)):
            happened = happened._replace(message="")
        out.append(happened)
    return out
