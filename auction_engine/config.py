"""Auction configuration: validated, immutable, and in the core's units (minor units, µs).

`AuctionConfig.from_dict` reads the edge form (decimal strings, ISO-8601 times, durations)
and raises one `ConfigError` listing every problem with its field path; `to_dict` writes
the canonical edge form back, with every lot's rules fully resolved.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from .money import MAX_DECIMALS, Percent, format_amount, parse_amount, parse_percent
from .timeutil import format_duration, format_instant, parse_duration, parse_instant

Visibility = Literal["rank", "rank_and_best", "ladder"]
ImproveOn = Literal["own", "best"]
Trigger = Literal["any_bid", "new_best", "top_n"]
ExtensionMode = Literal["from_bid", "from_close"]

VISIBILITIES: tuple[Visibility, ...] = ("rank", "rank_and_best", "ladder")
IMPROVE_ON: tuple[ImproveOn, ...] = ("own", "best")
TRIGGERS: tuple[Trigger, ...] = ("any_bid", "new_best", "top_n")
EXTENSION_MODES: tuple[ExtensionMode, ...] = ("from_bid", "from_close")

MAX_BIDDERS = 1 << 20  # size of the pseudonym space (ranking.Pseudonyms)
MAX_LOTS = 1000
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
CURRENCY_PATTERN = re.compile(r"[A-Z]{3}")
MAX_TEXT = 500  # characters in titles and references
# Bounds that keep every instant an auction can reach (start, closes, up to 10^6
# extensions) printable as ISO-8601 (years 1-9999): instants in 1970-2999, a stagger of at
# most 30 days (x 1000 lots), extensions and inactivity of at most one day each.
LATEST_INSTANT = 32503680000 * 1_000_000  # 3000-01-01T00:00:00Z, exclusive
MAX_STAGGER = 30 * 86400 * 1_000_000
MAX_STEP_DURATION = 86400 * 1_000_000


class ConfigError(ValueError):
    """An invalid configuration; `problems` lists every ``(field path, message)``."""

    code = "invalid_config"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"{len(problems)} problem(s) in the configuration:\n{lines}")


@dataclass(frozen=True, kw_only=True, slots=True)
class BidRules:
    """How far a bid must (and may) improve.

    min_step / max_step: amounts in minor units; min_step_percent / max_step_percent: exact
    percentages of the price the step is measured from. When both minimums are set the
    larger applies; when both maximums are set the smaller applies. improve_on: "own"
    (beat the bidder's own previous bid) or "best" (beat the current best price).
    """

    min_step: int = 0
    min_step_percent: Percent | None = None
    max_step: int | None = None
    max_step_percent: Percent | None = None
    improve_on: ImproveOn = "own"

    def required_step(self, base: int) -> int:
        """Smallest allowed improvement on `base` (percent rounded up to a minor unit)."""
        step = self.min_step
        if self.min_step_percent is not None:
            step = max(step, self.min_step_percent.of_rounded_up(base))
        return max(step, 1)

    def allowed_step(self, base: int) -> int | None:
        """Largest allowed improvement on `base` (percent rounded down), None if unbounded."""
        limits = []
        if self.max_step is not None:
            limits.append(self.max_step)
        if self.max_step_percent is not None:
            limits.append(self.max_step_percent.of_rounded_down(base))
        return min(limits) if limits else None

    def bid_bounds(self, starting_price: int, base: int | None) -> tuple[int, int]:
        """The lowest and highest amounts these rules accept from a bid measured from
        `base` (None: the first, which only the starting price bounds); the engine
        decides with the same two steps. The range is empty when low > high."""
        if base is None:
            return 1, starting_price
        allowed = self.allowed_step(base)
        low = base - (base if allowed is None else min(base, allowed))
        return max(low, 1), min(starting_price, base - self.required_step(base))


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtensionPolicy:
    """When the close moves (all durations in µs, instants in µs since the epoch).

    A qualifying accepted bid at time t with ``close - window <= t < close`` extends the
    close: mode "from_bid" to ``max(close, t + extend_by)``, "from_close" to
    ``close + extend_by``. trigger: "any_bid", "new_best" (the bid ranks first) or "top_n"
    (the bid ranks within the first `top_n`). Capped by `max_extensions` and `hard_close`
    (never passed). `inactivity_close`: the lot closes once no valid bid has arrived for
    that long since the later of its opening and its last accepted bid.
    """

    window: int = 0
    extend_by: int = 0
    trigger: Trigger = "any_bid"
    top_n: int = 1
    mode: ExtensionMode = "from_bid"
    max_extensions: int | None = None
    hard_close: int | None = None
    inactivity_close: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LotConfig:
    """One lot: amounts in minor units; `rules` and `extension` are fully resolved."""

    lot_id: str
    title: str
    estimate: int
    starting_price: int
    reserve_price: int | None
    rules: BidRules
    extension: ExtensionPolicy


@dataclass(frozen=True, kw_only=True, slots=True)
class AuctionConfig:
    """One auction. `start` and `end` are µs; lot i's initial close is ``end + i * stagger``.

    `pseudonym_secret` seeds the bidders' pseudonyms; it must be random and kept from
    bidders, or pseudonyms could be linked to admission order.
    """

    auction_id: str
    title: str
    buyer_ref: str
    currency: str
    decimals: int
    start: int
    end: int
    bidders: tuple[str, ...]
    min_bidders: int
    visibility: Visibility
    stagger: int
    lots: tuple[LotConfig, ...]
    pseudonym_secret: str = field(repr=False)
    tender_ref: str = ""  # the tender whose admitted bidders this auction took ("": none); optional in journals

    def initial_close(self, lot_index: int) -> int:
        """The scheduled close of the lot at `lot_index`, before any extension."""
        return self.end + lot_index * self.stagger

    @classmethod
    def from_dict(cls, data: object, *, default_secret: str | None = None) -> AuctionConfig:
        """Read and validate the edge form; raise `ConfigError` listing every problem."""
        return _Reader(default_secret).auction(data)

    def to_dict(self) -> dict[str, Any]:
        """The canonical edge form, which `from_dict` reads back to an equal config."""
        d = self.decimals
        return {
            "auction_id": self.auction_id,
            "title": self.title,
            "buyer_ref": self.buyer_ref,
            "currency": self.currency,
            "decimals": d,
            "start": format_instant(self.start),
            "end": format_instant(self.end),
            "bidders": list(self.bidders),
            "min_bidders": self.min_bidders,
            "visibility": self.visibility,
            "stagger": format_duration(self.stagger),
            "pseudonym_secret": self.pseudonym_secret,
            **({"tender_ref": self.tender_ref} if self.tender_ref else {}),  # absent when unset: old hashes hold
            "lots": [
                {
                    "lot_id": lot.lot_id,
                    "title": lot.title,
                    "estimate": format_amount(lot.estimate, d),
                    "starting_price": format_amount(lot.starting_price, d),
                    "reserve_price": None if lot.reserve_price is None else format_amount(lot.reserve_price, d),
                    "rules": _rules_to_dict(lot.rules, d),
                    "extension": _extension_to_dict(lot.extension),
                }
                for lot in self.lots
            ],
        }


def _rules_to_dict(rules: BidRules, decimals: int) -> dict[str, Any]:
    return {
        "min_step": format_amount(rules.min_step, decimals),
        "min_step_percent": None if rules.min_step_percent is None else str(rules.min_step_percent),
        "max_step": None if rules.max_step is None else format_amount(rules.max_step, decimals),
        "max_step_percent": None if rules.max_step_percent is None else str(rules.max_step_percent),
        "improve_on": rules.improve_on,
    }


def _extension_to_dict(ext: ExtensionPolicy) -> dict[str, Any]:
    return {
        "window": format_duration(ext.window),
        "extend_by": format_duration(ext.extend_by),
        "trigger": ext.trigger,
        "top_n": ext.top_n,
        "mode": ext.mode,
        "max_extensions": ext.max_extensions,
        "hard_close": None if ext.hard_close is None else format_instant(ext.hard_close),
        "inactivity_close": None if ext.inactivity_close is None else format_duration(ext.inactivity_close),
    }


T = TypeVar("T")
_MISSING: Any = object()


class _Reader:
    """Reads the edge form field by field, collecting problems instead of stopping."""

    def __init__(self, default_secret: str | None) -> None:
        self.problems: list[tuple[str, str]] = []
        self.default_secret = default_secret

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def obj(self, data: object, path: str, known: set[str]) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            self.fail(path or "(root)", "must be an object")
            return {}
        for key in data:
            if key not in known:
                self.fail(f"{path}.{key}" if path else str(key), "unknown field")
        return cast(Mapping[str, Any], data)

    def get(self, data: Mapping[str, Any], key: str, path: str, parse: Callable[[Any], T],
            default: Any = _MISSING) -> T:
        where = f"{path}.{key}" if path else key
        if key not in data or (data[key] is None and default is not _MISSING):
            if default is _MISSING:
                self.fail(where, "is required")
                return cast(T, None)
            return cast(T, default)
        try:
            return parse(data[key])
        except (ValueError, TypeError) as exc:
            self.fail(where, str(exc))
            return cast(T, default if default is not _MISSING else None)

    def auction(self, data: object) -> AuctionConfig:
        known = {"auction_id", "title", "buyer_ref", "currency", "decimals", "start", "end", "bidders",
                 "min_bidders", "visibility", "stagger", "pseudonym_secret", "rules", "extension", "lots",
                 "tender_ref"}
        d = self.obj(data, "", known)
        auction_id = self.get(d, "auction_id", "", _identifier)
        title = self.get(d, "title", "", _text)
        buyer_ref = self.get(d, "buyer_ref", "", _text, "")
        tender_ref = self.get(d, "tender_ref", "", _identifier, "")
        currency = self.get(d, "currency", "", _currency)
        decimals = self.get(d, "decimals", "", _int_range(0, MAX_DECIMALS), 2)
        start = self.get(d, "start", "", _instant)
        end = self.get(d, "end", "", _instant)
        if start is not None and end is not None and end <= start:
            self.fail("end", "must be after start")
        bidders = self.get(d, "bidders", "", _identifiers, ())
        min_bidders = self.get(d, "min_bidders", "", _int_range(1, MAX_BIDDERS), 1)
        visibility = self.get(d, "visibility", "", _choice(VISIBILITIES), "rank")
        stagger = self.get(d, "stagger", "", _duration(MAX_STAGGER), 0)
        secret = self.get(d, "pseudonym_secret", "", _secret, self.default_secret)
        if secret is None and all(path != "pseudonym_secret" for path, _ in self.problems):  # missing or null
            self.fail("pseudonym_secret", "is required")
        rules = self.obj(d.get("rules", {}), "rules", _RULE_FIELDS)
        extension = self.obj(d.get("extension", {}), "extension", _EXTENSION_FIELDS)
        lots_data = d.get("lots")
        lots: list[LotConfig] = []
        if not isinstance(lots_data, list) or not lots_data:
            self.fail("lots", "must be a non-empty list")
        elif len(lots_data) > MAX_LOTS:
            self.fail("lots", f"at most {MAX_LOTS} lots")
        else:
            dec = decimals if isinstance(decimals, int) else 2
            for i, lot_data in enumerate(lots_data):
                close = None if end is None or stagger is None else end + i * stagger
                lot = self.lot(lot_data, f"lots[{i}]", dec, rules, extension, close)
                if lot is not None:
                    lots.append(lot)
            seen: set[object] = set()
            for i, lot_data in enumerate(lots_data):
                lot_id = lot_data.get("lot_id") if isinstance(lot_data, Mapping) else None
                if isinstance(lot_id, str) and lot_id in seen:
                    self.fail(f"lots[{i}].lot_id", f"duplicate lot id {lot_id!r}")
                if isinstance(lot_id, str):  # anything else is reported by `lot` (and may be unhashable)
                    seen.add(lot_id)
        if self.problems:
            raise ConfigError(self.problems)
        return AuctionConfig(
            auction_id=auction_id, title=title, buyer_ref=buyer_ref, currency=currency, decimals=decimals,
            start=start, end=end, bidders=bidders, min_bidders=min_bidders, visibility=visibility,
            stagger=stagger, lots=tuple(lots), pseudonym_secret=secret, tender_ref=tender_ref,
        )

    def lot(self, data: object, path: str, decimals: int, rules: Mapping[str, Any],
            extension: Mapping[str, Any], close: int | None) -> LotConfig | None:
        known = {"lot_id", "title", "estimate", "starting_price", "reserve_price", "rules", "extension"}
        before = len(self.problems)
        d = self.obj(data, path, known)
        money = _money(decimals)
        lot_id = self.get(d, "lot_id", path, _identifier)
        title = self.get(d, "title", path, _text, "")
        estimate = self.get(d, "estimate", path, money)
        starting = self.get(d, "starting_price", path, money)
        reserve = self.get(d, "reserve_price", path, money, None)
        for key, value in (("estimate", estimate), ("starting_price", starting), ("reserve_price", reserve)):
            if value == 0:
                self.fail(f"{path}.{key}", "must be positive")
        if reserve is not None and starting is not None and reserve > starting:
            self.fail(f"{path}.reserve_price", "is above the starting price, so it could never apply")
        own_rules = self.obj(d.get("rules", {}), f"{path}.rules", _RULE_FIELDS)
        own_ext = self.obj(d.get("extension", {}), f"{path}.extension", _EXTENSION_FIELDS)
        bid_rules = self.rules({**rules, **own_rules}, f"{path}.rules", decimals)
        policy = self.extension({**extension, **own_ext}, f"{path}.extension", close)
        if len(self.problems) > before:
            return None
        return LotConfig(lot_id=lot_id, title=title, estimate=estimate, starting_price=starting,
                         reserve_price=reserve, rules=bid_rules, extension=policy)

    def rules(self, d: Mapping[str, Any], path: str, decimals: int) -> BidRules:
        money = _money(decimals)
        min_step = self.get(d, "min_step", path, money, 0)
        min_pct = self.get(d, "min_step_percent", path, parse_percent, None)
        max_step = self.get(d, "max_step", path, money, None)
        max_pct = self.get(d, "max_step_percent", path, parse_percent, None)
        improve_on = self.get(d, "improve_on", path, _choice(IMPROVE_ON), "own")
        if max_step is not None and max_step <= 0:
            self.fail(f"{path}.max_step", "must be positive")
        if max_pct is not None and max_pct.numerator == 0:
            self.fail(f"{path}.max_step_percent", "must be positive")
        if max_step is not None and min_step is not None and max_step < min_step:
            self.fail(f"{path}.max_step", "is below min_step")
        if max_pct is not None and min_pct is not None and (
            max_pct.numerator * min_pct.denominator < min_pct.numerator * max_pct.denominator
        ):
            self.fail(f"{path}.max_step_percent", "is below min_step_percent")
        return BidRules(min_step=min_step or 0, min_step_percent=min_pct, max_step=max_step,
                        max_step_percent=max_pct, improve_on=improve_on)

    def extension(self, d: Mapping[str, Any], path: str, close: int | None) -> ExtensionPolicy:
        window = self.get(d, "window", path, _duration(MAX_STEP_DURATION), 0)
        extend_by = self.get(d, "extend_by", path, _duration(MAX_STEP_DURATION), 0)
        trigger = self.get(d, "trigger", path, _choice(TRIGGERS), "any_bid")
        top_n = self.get(d, "top_n", path, _int_range(1, MAX_BIDDERS), 1)
        mode = self.get(d, "mode", path, _choice(EXTENSION_MODES), "from_bid")
        max_ext = self.get(d, "max_extensions", path, _int_range(0, 1_000_000), None)
        hard_close = self.get(d, "hard_close", path, _instant, None)
        inactivity = self.get(d, "inactivity_close", path, _duration(MAX_STEP_DURATION), None)
        if window and not extend_by:
            self.fail(f"{path}.extend_by", "must be positive when window is set")
        if inactivity == 0:
            self.fail(f"{path}.inactivity_close", "must be positive")
        if hard_close is not None and close is not None and hard_close < close:
            self.fail(f"{path}.hard_close", "is before the lot's scheduled close")
        return ExtensionPolicy(window=window or 0, extend_by=extend_by or 0, trigger=trigger, top_n=top_n,
                               mode=mode, max_extensions=max_ext, hard_close=hard_close,
                               inactivity_close=inactivity)


_RULE_FIELDS = {"min_step", "min_step_percent", "max_step", "max_step_percent", "improve_on"}
_EXTENSION_FIELDS = {"window", "extend_by", "trigger", "top_n", "mode", "max_extensions", "hard_close",
                     "inactivity_close"}


def _instant(value: object) -> int:
    us = parse_instant(value)
    if not 0 <= us < LATEST_INSTANT:
        raise ValueError("must be from 1970-01-01 to 2999-12-31 (UTC)")
    return us


def _duration(limit: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        us = parse_duration(value)
        if us > limit:
            raise ValueError(f"must be at most {format_duration(limit)}")
        return us
    return parse


def _identifier(value: object) -> str:
    if type(value) is not str or not ID_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of letters, digits and . _ : @ -, starting with a letter or digit")
    return value


def _identifiers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of bidder ids")
    if len(value) > MAX_BIDDERS:
        raise ValueError(f"at most {MAX_BIDDERS} bidders")
    ids = tuple(_identifier(v) for v in value)
    if len(set(ids)) != len(ids):
        raise ValueError("contains duplicate bidder ids")
    return ids


def _text(value: object) -> str:
    if type(value) is not str or len(value) > MAX_TEXT:
        raise ValueError(f"must be a string of at most {MAX_TEXT} characters")
    return value


def _secret(value: object) -> str:
    if type(value) is not str or not 16 <= len(value) <= 256:
        raise ValueError("must be a string of 16 to 256 characters")
    return value


def _currency(value: object) -> str:
    if type(value) is not str or not CURRENCY_PATTERN.fullmatch(value):
        raise ValueError("must be an ISO 4217 code such as 'MAD'")
    return value


def _int_range(low: int, high: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if type(value) is not int or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}")
        return value
    return parse


def _choice(options: tuple[T, ...]) -> Callable[[object], T]:
    def parse(value: object) -> T:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(map(str, options))}")
        return value
    return parse


def _money(decimals: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        return parse_amount(value, decimals)
    return parse

