from __future__ import annotations

from pathlib import Path

import pytest
from served import auction_body, served

from gateway.client import Room


@pytest.mark.trio
async def test_smoke(tmp_path: Path) -> None:
    async with served(tmp_path) as srv, srv.rpc() as rpc:
        created = await rpc.create_auction(auction_body("A-1", seconds=30))
        assert created["auction_id"] == "A-1"
        tokens = (await rpc.admit("A-1", ["acme", "beta"]))["tokens"]
        async with Room.connect(srv.room_url("A-1"), tokens[0]["token"], record=True) as acme, \
                Room.connect(srv.room_url("A-1"), tokens[1]["token"], record=True,
                             subprotocol="auction.v1.msgpack") as beta:
            assert acme.welcome["pseudonym"].startswith("B-")
            a = await acme.bid("L1", "9990.00", "a1")
            assert a["type"] == "ack", a
            b = await beta.bid("L1", "9980.00", "b1")
            assert b["type"] == "ack" and b["rank"] == 1, b
            again = await beta.bid("L1", "9980.00", "b1")
            assert again["duplicate"] is True
            view = await acme.wait_for(lambda m: m["type"] == "view" and m.get("rank") == 2)
            assert view["best_price"] == "9980.00"

