"""Immutable records for commands and events: NamedTuples compared by type and fields.

Frozen dataclasses cost about 1.2 µs to build against 0.55 µs for a NamedTuple, and the
core builds one event per bid; so commands and events are NamedTuples, with equality
and hashing that also compare the type (two tuple types never compare equal).
"""

from __future__ import annotations

from typing import Any


def _typed_eq(self: tuple[Any, ...], other: object) -> bool:
    return type(self) is type(other) and tuple.__eq__(self, other)


def _typed_ne(self: tuple[Any, ...], other: object) -> bool:
    return not _typed_eq(self, other)


def _typed_hash(self: tuple[Any, ...]) -> int:
    return hash((type(self).__name__, tuple.__hash__(self)))


def typed_records(*classes: type[tuple[Any, ...]]) -> None:
    """Give each NamedTuple class type-aware ``==``, ``!=`` and ``hash``."""
    for cls in classes:
        cls.__eq__ = _typed_eq  # type: ignore[method-assign]
        cls.__ne__ = _typed_ne  # type: ignore[method-assign,assignment]
        cls.__hash__ = _typed_hash  # type: ignore[method-assign]
