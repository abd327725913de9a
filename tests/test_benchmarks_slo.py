"""The capacity-at-SLO search and the CPU split of benchmarks/slo.py, on deterministic probes (no timing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchmarks.common import Result
from benchmarks.scale import MODES, diff, summarize
from benchmarks.slo import Slo, cpu_split, fit_cpu, search


def threshold_probe(limit: float, calls: list[float]) -> Callable[[float], Result]:
    """A service that meets the SLO exactly up to `limit` bids/s."""

    def probe(rate: float) -> Result:
        calls.append(rate)
        ok = rate <= limit
        return {"ack_p99_ms": 10.0 if ok else 80.0, "view_p99_ms": 20.0 if ok else 300.0, "rate": rate}

    return probe


def test_search_bisects_from_the_first_fraction() -> None:
    calls: list[float] = []
    found = search(threshold_probe(700.0, calls), 1000.0, 4, Slo(), 0.5)
    assert calls == [500.0, 750.0, 625.0, 687.5]
    assert found.capacity == 687.5
    assert found.below == 750.0
    assert found.at is not None and found.at["rate"] == 687.5
    assert [p["met_slo"] for p in found.probes] == [True, False, True, True]
    assert [p["offered_per_s"] for p in found.probes] == [500.0, 750.0, 625.0, 687.5]


def test_search_with_no_passing_probe_reports_none_and_the_bound() -> None:
    calls: list[float] = []
    found = search(threshold_probe(10.0, calls), 1000.0, 3, Slo(), 0.5)
    assert calls == [500.0, 250.0, 125.0]
    assert found.capacity is None and found.at is None
    assert found.below == 125.0


def test_search_refuses_a_meaningless_range() -> None:
    with pytest.raises(ValueError):
        search(lambda rate: {}, 0.0, 3, Slo())
    with pytest.raises(ValueError):
        search(lambda rate: {}, 100.0, 3, Slo(), 1.0)


def test_slo_needs_both_percentiles_within_bounds() -> None:
    slo = Slo()
    assert slo.met({"ack_p99_ms": 50.0, "view_p99_ms": 100.0})
    assert not slo.met({"ack_p99_ms": 50.1, "view_p99_ms": 10.0})
    assert not slo.met({"ack_p99_ms": 5.0, "view_p99_ms": 100.5})
    assert not slo.met({"ack_p99_ms": 5.0, "view_p99_ms": None})
    assert slo.as_dict() == {"ack_p99_ms": 50.0, "view_p99_ms": 100.0}


def test_fit_cpu_splits_per_bid_and_per_view() -> None:
    # 200 us per bid + 40 us per view sent, exactly
    assert fit_cpu([(2.0, 280.0), (12.0, 680.0), (20.0, 1000.0)]) == pytest.approx((200.0, 40.0))
    assert fit_cpu([(19.0, 900.0), (19.5, 950.0)]) is None  # too little spread in views per bid
    assert fit_cpu([(2.0, 900.0), (20.0, 300.0)]) is None  # a negative cost per view: noise, no split
    assert fit_cpu([(2.0, 280.0)]) is None


def test_cpu_split_reads_saturation_runs_and_probes() -> None:
    points = [{"server_views_sent_per_bid": 2.0, "server_cpu_us_per_answer": 280.0},
              {"server_views_sent_per_bid": 20.0, "server_cpu_us_per_bid": 1000.0}]
    assert cpu_split(points) == {"server_cpu_us_per_bid_alone": 200.0, "server_cpu_us_per_view": 40.0,
                                 "fit_points": 2}


def test_scale_modes_and_summary() -> None:
    assert list(MODES) == ["embedded", "redis", "roles1", "roles2"]
    assert not MODES["embedded"].needs_redis and all(MODES[m].needs_redis for m in ("redis", "roles1", "roles2"))
    embedded = {"capacity_at_slo_bids_per_s": 400.0, "saturation_bids_per_s": 3000, "low_ack_p50_ms": 4.0,
                "low_ack_p99_ms": 9.5, "cpu_us_per_bid": {"server": 1000.0}}
    redis = {"capacity_at_slo_bids_per_s": 300.0, "saturation_bids_per_s": 2000, "low_ack_p50_ms": 5.25,
             "low_ack_p99_ms": 12.0, "cpu_us_per_bid": {"server": 1100.0, "redis": 60.0}}
    out = summarize({"embedded": embedded, "redis": redis}, {"per_s": 6000, "redis_cpu_us_per_round_trip": 50.0})
    assert out["embedded_capacity_at_slo_bids_per_s"] == 400.0
    assert out["redis_cpu_us_per_bid"] == {"server": 1100.0, "redis": 60.0}
    assert out["redis_raw_xadd_read_per_s"] == 6000
    assert out["redis_capacity_over_raw"] == 0.05
    assert out["redis_saturation_over_raw"] == 0.333
    assert out["redis_hop_added_ack_p50_ms"] == 1.25
    assert out["redis_hop_added_ack_p99_ms"] == 2.5
    assert diff(None, 1.0) is None


def test_search_starts_from_a_passing_floor() -> None:
    calls: list[float] = []
    floor = {"offered_per_s": 50.0, "ack_p99_ms": 5.0, "view_p99_ms": 6.0}
    found = search(threshold_probe(10.0, calls), 1000.0, 2, Slo(), 0.5, floor=floor)
    assert calls == [500.0, 275.0]
    assert found.capacity == 50.0 and found.at is floor
    assert found.below == 275.0
    failing = {"offered_per_s": 50.0, "ack_p99_ms": 500.0, "view_p99_ms": 6.0}
    calls.clear()
    found = search(threshold_probe(10.0, calls), 1000.0, 2, Slo(), 0.5, floor=failing)
    assert calls == [500.0, 250.0]
    assert found.capacity is None


def test_cpu_split_prefers_the_figure_net_of_idle() -> None:
    points = [{"server_views_sent_per_bid": 2.0, "server_cpu_us_per_bid": 900.0, "server_cpu_us_per_bid_net": 280.0},
              {"server_views_sent_per_bid": 20.0, "server_cpu_us_per_bid_net": 1000.0}]
    assert cpu_split(points)["server_cpu_us_per_view"] == 40.0
