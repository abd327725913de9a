"""The built-in procedure kinds: adding a kind to the platform is one line here.

The order is part of the journal's meaning (a tick applies kinds in this order), so a new
kind goes at the end.
"""

from __future__ import annotations

from grouped_purchases import Collectives
from tenders import Tenders

from .engine import Engine
from .kind import Kind

BUILT_IN: tuple[type[Kind], ...] = (Engine, Tenders, Collectives)
