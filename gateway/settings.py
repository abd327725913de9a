"""Service settings: validated, immutable, loaded as defaults < file < environment < flags.

`load_settings` reads a TOML or JSON file, `AUCTION_ENGINE_*` variables and typed overrides,
and raises one `SettingsError` listing every problem with its path. Plaintext API keys are
hashed at load and never kept; `Settings.describe()` is the secret-free form for the logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar, cast

Role = Literal["portal", "buyer", "auditor"]
Durability = Literal["fsync", "none"]
LogLevel = Literal["debug", "info", "warning", "error"]

ROLES: tuple[Role, ...] = ("portal", "buyer", "auditor")
DURABILITIES: tuple[Durability, ...] = ("fsync", "none")
SyncIn = Literal["process", "thread"]
SYNC_INS: tuple[SyncIn, ...] = ("process", "thread")
LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error")

ENV_PREFIX = "AUCTION_ENGINE_"  # environment variables are ENV_PREFIX + the field name in upper case
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
DAY = 86400  # seconds
NAME_PATTERN = re.compile(r"[A-Za-z0-9._:@-]{1,64}")  # API key names
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")  # a key hash: lowercase hex
MIN_KEY_CHARS = 24  # plaintext API keys
MAX_KEY_CHARS = 1024
MIN_SECRET_CHARS = 32  # token_secret
MAX_SECRET_CHARS = 4096


class SettingsError(ValueError):
    """Invalid settings; `problems` lists every ``(path, message)``, never a secret value."""

    code = "invalid_settings"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {path}: {message}" for path, message in problems)
        super().__init__(f"{len(problems)} problem(s) in the settings:\n{lines}")


def hash_key(key: str) -> str:
    """The stored form of an API key: SHA-256 of its UTF-8 bytes, lowercase hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key: a unique `name`, its `role`, and the SHA-256 (hex) of the plaintext key.

    The repr shows only the name and role.
    """

    name: str
    role: Role
    key_sha256: str = field(repr=False)

    def __post_init__(self) -> None:
        problems = []
        for key, parse in (("name", _name), ("role", _choice(ROLES)), ("key_sha256", _sha256)):
            try:
                parse(getattr(self, key))
            except ValueError as exc:
                problems.append((key, str(exc)))
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_plaintext(cls, name: str, role: Role, key: str) -> ApiKey:
        """An ApiKey for the plaintext `key` (which is hashed, not kept)."""
        try:
            digest = hash_key(_plaintext_key(key))
        except ValueError as exc:
            raise SettingsError([("key", str(exc))]) from None
        return cls(name, role, digest)

    def matches(self, key: str) -> bool:
        """Whether the plaintext `key` is this key (constant-time comparison of the hashes)."""
        return hmac.compare_digest(hash_key(key), self.key_sha256)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The service configuration; the defaults need nothing external.

    host, port: where to listen (port 0: any free port). data_dir: the journal lives in
    ``<data_dir>/journal``, a generated token secret in `data_dir`. durability: "fsync" or
    "none"; sync_in: where the journal's fdatasync runs ("process": a small child process,
    or "thread"); segment_size: journal segment bytes; max_batch / max_delay_ms: group commit;
    checkpoint_every: records between recovery checkpoints (0: none).
    api_keys: who may call the portal RPC. token_secret: signs session tokens (None: the
    service generates one and keeps it in data_dir); token_ttl_s: their lifetime.
    max_message_bytes: largest inbound WebSocket message. bid_rate / bid_burst: per-connection
    token bucket. handshake_timeout_s: time to authenticate. outbound_queue: messages that must
    be delivered, per connection; send_timeout_s: a send blocked longer closes the connection.
    send_buffer_bytes: SO_SNDBUF of the listening socket (0: OS default). max_connections,
    log_level, feed_wait_max_s: the longest long-poll.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    durability: Durability = "fsync"
    sync_in: SyncIn = "process"
    segment_size: int = 64 * MiB
    max_batch: int = 8192
    max_delay_ms: float = 0.0
    checkpoint_every: int = 1_000_000
    api_keys: tuple[ApiKey, ...] = ()
    token_secret: str | None = field(default=None, repr=False)
    token_ttl_s: int = 12 * 3600
    max_message_bytes: int = 16 * KiB
    bid_rate: float = 20.0
    bid_burst: int = 40
    handshake_timeout_s: float = 10.0
    outbound_queue: int = 256
    send_timeout_s: float = 10.0
    send_buffer_bytes: int = 256 * KiB
    max_connections: int = 10_000
    log_level: LogLevel = "info"
    feed_wait_max_s: float = 30.0

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for name, spec in _SPECS.items():
            try:
                spec.parse(getattr(self, name))
            except ValueError as exc:
                problems.append((name, str(exc)))
        keys = self.api_keys
        if type(keys) is not tuple or not all(isinstance(k, ApiKey) for k in keys):
            problems.append(("api_keys", "must be a tuple of ApiKey"))
        else:
            problems.extend(_duplicates([(k.name, k.key_sha256) for k in keys], "api_keys"))
        if problems:
            raise SettingsError(problems)

    def describe(self) -> dict[str, Any]:
        """The effective settings, JSON-ready, without secrets or key hashes (for the startup log)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            out[f.name] = getattr(self, f.name)
        out["api_keys"] = [{"name": k.name, "role": k.role} for k in self.api_keys]
        out["token_secret"] = "generated" if self.token_secret is None else "set"
        return out


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, object] | None = None) -> Settings:
    """Defaults < the TOML/JSON file at `path` < `AUCTION_ENGINE_*` in `env` (None: os.environ)
    < `overrides` (field name -> typed value; None values ignored).

    Raises `SettingsError` listing every problem of every source.
    """
    reader = _Reader()
    values: dict[str, object] = {}
    if path is not None:
        values.update(reader.file(os.fspath(path)))
    values.update(reader.env(os.environ if env is None else env))
    if overrides is not None:
        values.update(reader.overrides(overrides))
    if reader.problems:
        raise SettingsError(reader.problems)
    return Settings(**cast(dict[str, Any], values))


# --- validation of single values: each raises ValueError with a message that never echoes the value

T = TypeVar("T")
_Parse = Callable[[object], object]


def _int_range(low: int, high: int, *, zero: bool = False) -> _Parse:
    def parse(value: object) -> int:
        if type(value) is not int or not (low <= value <= high or (zero and value == 0)):
            raise ValueError(f"must be {'0 or ' if zero else ''}an integer from {low} to {high}")
        return value
    return parse


def _float_range(low: float, high: float) -> _Parse:
    def parse(value: object) -> float:
        if type(value) not in (int, float) or not low <= cast(float, value) <= high:  # also refuses NaN
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        return float(cast(float, value))
    return parse


def _choice(options: tuple[T, ...]) -> Callable[[object], T]:
    def parse(value: object) -> T:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(map(str, options))}")
        return options[options.index(value)]
    return parse


def _host(value: object) -> str:
    if type(value) is not str or not 1 <= len(value) <= 255 or any(c.isspace() or c == "\0" for c in value):
        raise ValueError("must be a host name or address of 1 to 255 characters without spaces")
    return value


def _data_dir(value: object) -> str:
    if type(value) is not str or not 1 <= len(value) <= 4096 or "\0" in value:
        raise ValueError("must be a directory path of 1 to 4096 characters")
    return value


def _token_secret(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not MIN_SECRET_CHARS <= len(value) <= MAX_SECRET_CHARS:
        raise ValueError(f"must be a string of {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
    return value


def _name(value: object) -> str:
    if type(value) is not str or not NAME_PATTERN.fullmatch(value):
        raise ValueError("must be 1-64 characters of letters, digits and . _ : @ -")
    return value


def _sha256(value: object) -> str:
    if type(value) is not str or not SHA256_PATTERN.fullmatch(value):
        raise ValueError("must be a SHA-256 digest: 64 lowercase hexadecimal characters")
    return value


def _plaintext_key(value: object) -> str:
    if (type(value) is not str or not MIN_KEY_CHARS <= len(value) <= MAX_KEY_CHARS
            or any(c.isspace() or not c.isprintable() for c in value)):
        raise ValueError(f"must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} printable characters without spaces")
    return value


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: Literal["int", "float", "str"]  # how an environment string is converted
    parse: _Parse


_SPECS: dict[str, _Spec] = {  # every field but api_keys
    "host": _Spec("str", _host),
    "port": _Spec("int", _int_range(0, 65535)),
    "data_dir": _Spec("str", _data_dir),
    "durability": _Spec("str", _choice(DURABILITIES)),
    "sync_in": _Spec("str", _choice(SYNC_INS)),
    "segment_size": _Spec("int", _int_range(1 * MiB, 4 * GiB)),
    "max_batch": _Spec("int", _int_range(1, 1_000_000)),
    "max_delay_ms": _Spec("float", _float_range(0, 1000)),
    "checkpoint_every": _Spec("int", _int_range(0, 1_000_000_000)),
    "token_secret": _Spec("str", _token_secret),
    "token_ttl_s": _Spec("int", _int_range(60, 30 * DAY)),
    "max_message_bytes": _Spec("int", _int_range(256, 1 * MiB)),
    "bid_rate": _Spec("float", _float_range(0.1, 10_000)),
    "bid_burst": _Spec("int", _int_range(1, 100_000)),
    "handshake_timeout_s": _Spec("float", _float_range(0.1, 300)),
    "outbound_queue": _Spec("int", _int_range(8, 100_000)),
    "send_timeout_s": _Spec("float", _float_range(0.1, 600)),
    "send_buffer_bytes": _Spec("int", _int_range(4 * KiB, 64 * MiB, zero=True)),
    "max_connections": _Spec("int", _int_range(1, 1_000_000)),
    "log_level": _Spec("str", _choice(LOG_LEVELS)),
    "feed_wait_max_s": _Spec("float", _float_range(0, 300)),
}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Settings))
_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def _duplicates(entries: list[tuple[str, str]], base: str) -> list[tuple[str, str]]:
    """Problems for repeated names or repeated keys among ``(name, key_sha256)`` entries."""
    problems = []
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for i, (name, digest) in enumerate(entries):
        if name in names:
            problems.append((f"{base}[{i}].name", f"duplicate api key name {name!r} (also {base}[{names[name]}])"))
        if digest in hashes:
            problems.append((f"{base}[{i}]", f"the same key as {base}[{hashes[digest]}]"))
        names.setdefault(name, i)
        hashes.setdefault(digest, i)
    return problems


class _Reader:
    """Reads each source into checked field values, collecting problems instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def check(self, name: str, value: object, path: str, out: dict[str, object]) -> None:
        try:
            out[name] = _SPECS[name].parse(value)
        except ValueError as exc:
            self.fail(path, str(exc))

    def file(self, path: str) -> dict[str, object]:
        data = self.parse_file(path)
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.fail(path, "must hold an object of settings")
            return {}
        out: dict[str, object] = {}
        for key, value in data.items():
            if key == "api_keys":
                out[key] = self.api_keys(value, "api_keys")
            elif key in _SPECS:
                self.check(key, value, key, out)
            else:
                self.fail(str(key), "unknown setting")
        return out

    def parse_file(self, path: str) -> object:
        """The file's content as data, or None after recording why it cannot be had."""
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".toml", ".json"):
            self.fail(path, "a settings file must end in .toml or .json")
            return None
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8")
        except OSError as exc:
            self.fail(path, f"cannot read the settings file: {exc.strerror or exc}")
            return None
        except UnicodeDecodeError as exc:
            self.fail(path, f"the settings file is not UTF-8 (byte {exc.start})")
            return None
        try:
            return tomllib.loads(text) if suffix == ".toml" else json.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.fail(path, f"invalid TOML: {exc}")
        except json.JSONDecodeError as exc:
            self.fail(path, f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})")
        except RecursionError:
            self.fail(path, "the settings file is nested too deeply")
        return None

    def env(self, env: Mapping[str, str]) -> dict[str, object]:
        out: dict[str, object] = {}
        for var in sorted(env):
            if not var.startswith(ENV_PREFIX):
                continue
            name, text, path = var[len(ENV_PREFIX):].lower(), env[var], f"env:{var}"
            if var != ENV_PREFIX + name.upper() or name not in FIELD_NAMES:
                self.fail(path, "unknown setting")
            elif name == "api_keys":
                out[name] = self.key_triples(text, path)
            else:
                self.check(name, _from_text(_SPECS[name].kind, text), path, out)
        return out

    def overrides(self, overrides: Mapping[str, object]) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, value in overrides.items():
            path = f"override:{name}"
            if value is None:
                continue
            if name == "api_keys":
                out[name] = self.key_triples(value, path) if isinstance(value, str) else self.api_keys(value, path)
            elif name in _SPECS:
                self.check(name, value, path, out)
            else:
                self.fail(path, "unknown setting")
        return out

    def api_keys(self, value: object, base: str) -> tuple[ApiKey, ...]:
        """A list of ApiKey or of {"name", "role", "key" | "key_sha256"} objects."""
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            self.fail(base, "must be a list of {name, role, key or key_sha256} objects")
            return ()
        entries: list[tuple[str, str, str] | None] = [self.api_key(item, f"{base}[{i}]")
                                                     for i, item in enumerate(value)]
        return self.keys(entries, base)

    def api_key(self, item: object, path: str) -> tuple[str, str, str] | None:
        """``(name, role, key_sha256)`` of one entry, or None after recording its problems."""
        if isinstance(item, ApiKey):
            return item.name, item.role, item.key_sha256
        if not isinstance(item, Mapping):
            self.fail(path, "must be an object with name, role and key (or key_sha256)")
            return None
        for key in item:
            if key not in ("name", "role", "key", "key_sha256"):
                self.fail(f"{path}.{key}", "unknown field")
        if ("key" in item) == ("key_sha256" in item):
            self.fail(path, "needs exactly one of key (plaintext) and key_sha256")
        digest = item.get("key_sha256")
        if "key" in item:
            digest = self.one(_plaintext_key, item["key"], f"{path}.key")
            digest = None if digest is None else hash_key(digest)
        elif "key_sha256" in item:
            digest = self.one(_sha256, digest, f"{path}.key_sha256")
        name = self.one(_name, item.get("name"), f"{path}.name")
        role = self.one(_choice(ROLES), item.get("role"), f"{path}.role")
        if name is None or role is None or digest is None:
            return None
        return name, role, digest

    def key_triples(self, text: object, base: str) -> tuple[ApiKey, ...]:
        """Comma-separated ``role:name:key`` (the key after the last colon; names may hold colons)."""
        if not isinstance(text, str):
            self.fail(base, "must be comma-separated role:name:key triples")
            return ()
        entries: list[tuple[str, str, str] | None] = []
        for i, triple in enumerate(t.strip() for t in text.split(",")):
            if not triple:
                continue
            path = f"{base}[{i}]"
            role, _, rest = triple.partition(":")
            name, _, key = rest.rpartition(":")
            if not name:
                self.fail(path, "must be role:name:key")
                entries.append(None)
                continue
            entries.append(self.api_key({"name": name, "role": role, "key": key}, path))
        return self.keys(entries, base)

    def keys(self, entries: list[tuple[str, str, str] | None], base: str) -> tuple[ApiKey, ...]:
        if any(e is None for e in entries):
            return ()
        checked = [e for e in entries if e is not None]
        duplicates = _duplicates([(name, digest) for name, _, digest in checked], base)
        self.problems.extend(duplicates)
        if duplicates:
            return ()
        return tuple(ApiKey(name, cast(Role, role), digest) for name, role, digest in checked)

    def one(self, parse: Callable[[object], T], value: object, path: str) -> T | None:
        try:
            return parse(value)
        except ValueError as exc:
            self.fail(path, str(exc))
            return None


def _from_text(kind: Literal["int", "float", "str"], text: str) -> object:
    """An environment string as the field's type; left as text (then refused) if it does not convert."""
    stripped = text.strip()
    if kind == "int" and _INT_TEXT.fullmatch(stripped):
        return int(stripped)
    if kind == "float":
        try:
            return float(stripped)
        except ValueError:
            return text
    return text
