"""`auction-engine demo` (being written)."""

from __future__ import annotations


def run_demo(*, data_dir: str | None, bidders: int, seconds: float, seed: int | None) -> int:
    raise NotImplementedError
