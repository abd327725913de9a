"""Scale-out on Redis: fenced per-case journal streams, leases, recovery, rendezvous hashing.

The embedded default (one process, a file journal) needs none of this. Here: the key
layout (`layout`), leases with fencing tokens (`lease`), the per-case Streams and their
fenced Lua append (`stream`), the durability check (`durability`), rebuilding and exporting
cases (`recovery`, `export`), the owner of one case (`owner`), and which engine owns which
case (`rendezvous`). docs/scale-out.md describes the layout and what is built.
"""

from __future__ import annotations

import coredis

from .durability import check_durability
from .export import ExportReport, export_streams
from .layout import ClusterError, Layout
from .lease import Client, Lease, Leases
from .owner import CaseOwner
from .recovery import CaseReport, Survey, rebuild, rebuild_all, survey
from .rendezvous import Registry, owner, weight
from .stream import Entry, StreamJournal


def connect(url: str) -> Client:
    """A coredis client for `url` (``redis://host:port/db``), bytes in and out; use it
    as an async context manager (it runs under trio through anyio)."""
    client: Client = coredis.Redis.from_url(url, decode_responses=False)
    return client


__all__ = [
    "CaseOwner", "CaseReport", "Client", "ClusterError", "Entry", "ExportReport", "Layout", "Lease", "Leases",
    "Registry", "StreamJournal", "Survey", "check_durability", "connect", "export_streams", "owner", "rebuild",
    "rebuild_all", "survey", "weight",
]
