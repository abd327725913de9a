"""The RPC routes of the procedure kinds other than auctions: one module each, one line here.

Each module follows `operations.KindApi`: its operations join the OpenAPI document and its
`register(api)` binds their handlers (gateway/api.py gives them authentication, bodies,
queries and commands through the runtime).
"""

from __future__ import annotations

from typing import Any

from . import collectives_api, tenders_api

KIND_APIS: tuple[Any, ...] = (tenders_api, collectives_api)
