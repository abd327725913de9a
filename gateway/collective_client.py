"""The grouped purchases' SDK on `RpcClient` (gateway/client.py): one method per operation
of /api/v1/collectives. The same client serves the coordinator (a portal or buyer key)
and a member (its member token as the bearer); the service decides what each may do and
see, and answers a refusal as `RpcError` with its code (docs/grouped-purchases.md).

    async with CollectiveClient.connect(base_url, coordinator_key) as coord:
        await coord.create("G-1", "coord", ["m1", "m2"], convention_hash, "2026-03-01T10:00:00Z")
        token = (await coord.member_token("G-1", "m1"))["token"]
    async with CollectiveClient.connect(base_url, token) as m1:
        await m1.accept("G-1", convention_hash)
        await m1.declare_need("G-1", "A4", 100, "Rabat")
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .client import RpcClient


class CollectiveClient:
    """Grouped purchases over an `RpcClient` (whose credential picks the role)."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    @classmethod
    @asynccontextmanager
    async def connect(cls, base_url: str, credential: str) -> AsyncIterator[CollectiveClient]:
        """A client with an API key (coordinator, auditor) or a member token."""
        async with RpcClient(base_url, credential) as rpc:
            yield cls(rpc)

    async def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return await self.rpc.request(method, "/collectives" + path, body, **params)

    # -- everyone (what each sees is decided by the service) -----------------------------

    async def get(self, cid: str) -> Any:
        return await self._call("GET", f"/{cid}")

    async def needs(self, cid: str) -> Any:
        return (await self._call("GET", f"/{cid}/needs"))["needs"]

    async def need_versions(self, cid: str, member_id: str, article: str) -> Any:
        return (await self._call("GET", f"/{cid}/members/{member_id}/needs/{article}"))["versions"]

    async def schedule(self, cid: str, version: int) -> Any:
        return await self._call("GET", f"/{cid}/schedules/{version}")

    async def export_schedule(self, cid: str, version: int, format: str = "csv") -> bytes:
        data: bytes = await self._call("GET", f"/{cid}/schedules/{version}/export", format=format)
        return data

    async def contracts(self, cid: str, *, member_id: str | None = None, contract_id: str | None = None) -> Any:
        return (await self._call("GET", f"/{cid}/contracts", member_id=member_id, contract_id=contract_id))["contracts"]

    async def deliver(self, cid: str, contract_id: str, article: str, quantity: int, allow_over: bool = False) -> Any:
        return await self._call("POST", f"/{cid}/deliveries", {"contract_id": contract_id, "article": article,
                                                               "quantity": quantity, "allow_over": allow_over})

    async def receive(self, cid: str, contract_id: str, article: str, quantity: int, rejected: int = 0,
                      reason: str = "") -> Any:
        return await self._call("POST", f"/{cid}/receipts", {"contract_id": contract_id, "article": article,
                                                             "quantity": quantity, "rejected": rejected,
                                                             "reason": reason})

    async def pay(self, cid: str, contract_id: str, amount: str, allow_over: bool = False) -> Any:
        return await self._call("POST", f"/{cid}/payments", {"contract_id": contract_id, "amount": amount,
                                                             "allow_over": allow_over})

    # -- the coordinator -----------------------------------------------------------------

    async def create(self, cid: str, coordinator: str, members: list[str], convention_hash: str,
                     needs_deadline: str) -> Any:
        return await self._call("POST", "", {"collective_id": cid, "coordinator": coordinator, "members": members,
                                             "convention_hash": convention_hash, "needs_deadline": needs_deadline})

    async def member_token(self, cid: str, member_id: str, ttl_s: int | None = None) -> Any:
        body: dict[str, Any] = {"member_id": member_id}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        return await self._call("POST", f"/{cid}/tokens", body)

    async def designate_commission(self, cid: str, representatives: dict[str, str]) -> Any:
        """Each member's representative ({member id: name}, every member once)."""
        return await self._call("PUT", f"/{cid}/commission", {"representatives": [
            {"member_id": m, "representative": r} for m, r in representatives.items()]})

    async def add_article(self, cid: str, code: str, description: str, unit: str, unit_price: str,
                          lot: str = "L1") -> Any:
        return await self._call("POST", f"/{cid}/articles", {"code": code, "description": description, "unit": unit,
                                                             "unit_price": unit_price, "lot": lot})

    async def generate_schedule(self, cid: str) -> Any:
        return await self._call("POST", f"/{cid}/schedules")

    async def launch(self, cid: str, procurement_id: str, start: str, end: str, **auction: Any) -> Any:
        """The reverse auction for the open lots of the latest final schedule; `auction`:
        the other launch fields (bidders, rules, extension, starting_prices...)."""
        return await self._call("POST", f"/{cid}/launch", {"procurement_id": procurement_id, "start": start,
                                                           "end": end, **auction})

    async def record_award(self, cid: str, lot: str, procurement_id: str, supplier: str, *,
                           total: str | None = None, prices: dict[str, str] | None = None) -> Any:
        body: dict[str, Any] = {"procurement_id": procurement_id, "supplier": supplier}
        body.update({"total": total} if total is not None else {"prices": prices})
        return await self._call("POST", f"/{cid}/lots/{lot}/award", body)

    async def record_unsuccessful(self, cid: str, lot: str, procurement_id: str) -> Any:
        return await self._call("POST", f"/{cid}/lots/{lot}/unsuccessful", {"procurement_id": procurement_id})

    async def consolidation(self, cid: str, *, since: int = 0, wait: float = 0.0) -> Any:
        """The live consolidation; with `since` (a revision seen) and `wait`, a long poll."""
        return await self._call("GET", f"/{cid}/consolidation", since=since, wait=wait)

    # -- a member ------------------------------------------------------------------------

    async def accept(self, cid: str, convention_hash: str) -> Any:
        return await self._call("POST", f"/{cid}/acceptances", {"convention_hash": convention_hash})

    async def declare_need(self, cid: str, article: str, quantity: int, place: str) -> Any:
        return await self._call("PUT", f"/{cid}/needs/{article}", {"quantity": quantity, "place": place})

    async def withdraw_need(self, cid: str, article: str) -> Any:
        return await self._call("DELETE", f"/{cid}/needs/{article}")

    async def confirm_needs(self, cid: str) -> Any:
        return await self._call("POST", f"/{cid}/confirmation")
