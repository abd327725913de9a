"""The room's view renderer (encoded once per snapshot and rank) equals, byte for byte,
the reference rendering of every bidder's and observer's view."""

from __future__ import annotations

from factories import START, S, bid, engine_with
from hypothesis import given, settings
from hypothesis import strategies as st

from auction_engine.ranking import snapshot_bidder_view
from gateway import protocol as p

BIDDERS = [f"b{i}" for i in range(6)]
CODECS = [p.Codec(name) for name in sorted(p.SUBPROTOCOLS)]


@settings(max_examples=60, deadline=None)
@given(
    visibility=st.sampled_from(["rank", "rank_and_best", "ladder"]),
    decimals=st.sampled_from([0, 2, 3]),
    bids=st.lists(st.tuples(st.sampled_from(BIDDERS), st.integers(1, 400)), max_size=25),
    closed=st.booleans(),
)
def test_every_rendered_view_equals_the_reference(visibility: str, decimals: int, bids: list[tuple[str, int]],
                                                  closed: bool) -> None:
    unit = 10 ** decimals
    engine = engine_with(visibility=visibility, decimals=decimals, bidders=BIDDERS,
                         lot={"estimate": "1200", "starting_price": "1000"})
    for i, (bidder, below) in enumerate(bids):  # accepted or rejected: both change the lot
        bid(engine, START + (i + 1) * S, bidder, 1000 * unit - below * unit // 4)
    if closed:
        engine.tick(START + 3600 * S)
    auction = engine.auction("A1")
    snapshot = engine.lot_snapshot("A1", "L1")
    view = p.ViewRenderer(snapshot, decimals)
    for codec in CODECS:
        for bidder in [*BIDDERS, "b0"]:  # b0 twice: the cached payload is the same
            name = auction.pseudonyms[bidder]
            expected = codec.encode(p.bidder_view_message(snapshot_bidder_view(snapshot, name), decimals))
            assert view.bidder(name, codec) == expected
        assert view.observer(codec) == codec.encode(p.observer_view_message(snapshot.observer, decimals))
