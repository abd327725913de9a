"""Configuration: every problem listed with its field path; overrides; round trip."""

from __future__ import annotations

import pytest
from factories import config, config_dict

from auction_engine import AuctionConfig, ConfigError
from auction_engine.money import Percent


def problems(data: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        AuctionConfig.from_dict(data)
    return dict(exc.value.problems)


def test_valid_config_in_core_units() -> None:
    cfg = config(decimals=3, lot={"starting_price": "1000.5", "reserve_price": "900"},
                 rules={"min_step": "0.250", "min_step_percent": "0.5"}, stagger="5m")
    lot = cfg.lots[0]
    assert lot.starting_price == 1_000_500 and lot.reserve_price == 900_000
    assert lot.rules.min_step == 250 and lot.rules.min_step_percent == Percent(5, 10)
    assert cfg.initial_close(2) == cfg.end + 2 * 300 * 10**6


def test_every_problem_listed_with_its_path() -> None:
    data = config_dict(
        currency="dirham", decimals=9, end="2026-03-02T09:00:00Z", visibility="everything", colour="red",
        bidders=["ok", "ok", "bad id!"],
        rules={"min_step": "-1", "improve_on": "nobody", "max_step": "0.01", "max_step_percent": "0"},
        extension={"window": "2m", "trigger": "sometimes", "inactivity_close": "0s"},
        lots=[
            {"lot_id": "L1", "estimate": "0", "starting_price": "10.001", "reserve_price": "20.00"},
            {"lot_id": "L1", "estimate": "5", "starting_price": "4",
             "extension": {"hard_close": "2026-03-02T08:00:00Z"}},
            "not a lot",
        ],
    )
    found = problems(data)
    for path in ("currency", "decimals", "end", "visibility", "colour", "bidders", "lots[0].estimate",
                 "lots[0].starting_price", "lots[0].rules.min_step", "lots[0].rules.improve_on",
                 "lots[0].rules.max_step_percent", "lots[0].extension.extend_by", "lots[0].extension.trigger",
                 "lots[0].extension.inactivity_close", "lots[1].extension.hard_close", "lots[2]"):
        assert path in found, (path, found)


def test_missing_required_fields() -> None:
    found = problems({"lots": []})
    for path in ("auction_id", "title", "currency", "start", "end", "pseudonym_secret", "lots"):
        assert path in found


def test_reserve_above_starting_price_and_duplicate_lots() -> None:
    found = problems(config_dict(lots=[
        {"lot_id": "L1", "estimate": "5", "starting_price": "4", "reserve_price": "4.01"},
        {"lot_id": "L1", "estimate": "5", "starting_price": "4"},
    ]))
    assert "above the starting price" in found["lots[0].reserve_price"]
    assert "duplicate" in found["lots[1].lot_id"]


@pytest.mark.parametrize("lot_id", [[], {}, ["L1"], 7, None])
def test_a_lot_id_that_is_not_a_string_is_listed_not_a_crash(lot_id: object) -> None:
    found = problems(config_dict(lots=[{"lot_id": lot_id, "estimate": "5", "starting_price": "4"},
                                       {"lot_id": "L1", "estimate": "5", "starting_price": "4"}]))
    assert "lots[0].lot_id" in found and "lots[1].lot_id" not in found


def test_max_below_min() -> None:
    found = problems(config_dict(rules={"min_step": "10", "max_step": "5", "min_step_percent": "2",
                                        "max_step_percent": "1"}))
    assert "lots[0].rules.max_step" in found and "lots[0].rules.max_step_percent" in found


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_not_an_object(data: object) -> None:
    assert "(root)" in problems(data)


def test_lot_overrides_merge_field_by_field() -> None:
    cfg = config(
        rules={"min_step": "5.00", "improve_on": "best"},
        extension={"window": "2m", "extend_by": "2m", "max_extensions": 3},
        lots=[
            {"lot_id": "L1", "estimate": "9", "starting_price": "9"},
            {"lot_id": "L2", "estimate": "9", "starting_price": "9", "rules": {"min_step": "1.00"},
             "extension": {"extend_by": "30s"}},
        ],
    )
    l1, l2 = cfg.lots
    assert (l1.rules.min_step, l1.rules.improve_on) == (500, "best")
    assert (l2.rules.min_step, l2.rules.improve_on) == (100, "best")
    assert (l2.extension.window, l2.extension.extend_by, l2.extension.max_extensions) == (120 * 10**6, 30 * 10**6, 3)


def test_round_trip_through_the_edge_form() -> None:
    cfg = config(decimals=3, stagger="90s", visibility="ladder",
                 rules={"min_step_percent": "0.125", "max_step": "50", "improve_on": "best"},
                 extension={"window": "1m30s", "extend_by": "45s", "trigger": "top_n", "top_n": 3,
                            "mode": "from_close", "max_extensions": 7, "hard_close": "2026-03-02T12:00:00Z",
                            "inactivity_close": "10m"},
                 lot={"reserve_price": "800"})
    assert AuctionConfig.from_dict(cfg.to_dict()) == cfg


def test_default_secret_and_repr_hides_it() -> None:
    data = config_dict()
    del data["pseudonym_secret"]
    cfg = AuctionConfig.from_dict(data, default_secret="s" * 32)
    assert cfg.pseudonym_secret == "s" * 32
    assert "sss" not in repr(cfg)


@pytest.mark.parametrize("secret", [None, "short"])
def test_a_null_or_bad_pseudonym_secret_is_refused_without_a_default(secret: object) -> None:
    found = problems(config_dict(pseudonym_secret=secret))
    assert list(found) == ["pseudonym_secret"], found
    assert AuctionConfig.from_dict(config_dict(pseudonym_secret=None),
                                   default_secret="a-default-secret-0123456789").pseudonym_secret \
        == "a-default-secret-0123456789"


def test_config_amounts_share_the_one_bound() -> None:
    top = config(lot={"starting_price": "9999999999999999.99", "estimate": "9999999999999999.99"})
    assert top.lots[0].starting_price == 10**18 - 1
    with pytest.raises(ConfigError) as exc:
        config(lot={"starting_price": "10000000000000000.00"}, rules={"min_step": "184467440737095516.16"})
    assert ("lots[0].starting_price", "an amount is at most 9999999999999999.99") in exc.value.problems
    assert ("lots[0].rules.min_step", "an amount is at most 9999999999999999.99") in exc.value.problems
