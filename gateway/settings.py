"""Service settings: typed pydantic models, loaded as defaults < file < environment < flags.

`load_settings` reads a TOML or JSON file, `AUCTION_ENGINE_*` variables and flag overrides;
each source is validated on its own, so one `SettingsError` lists every problem of every
source with its path (``port``, ``env:AUCTION_ENGINE_PORT``, ``override:api_keys[1].name``).
Plaintext API keys are hashed at load and never kept; `Settings.describe()` has no secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

Role = Literal["portal", "buyer", "auditor"]
Durability = Literal["fsync", "none"]
SyncIn = Literal["process", "thread"]
LogLevel = Literal["debug", "info", "warning", "error"]
ROLES: tuple[Role, ...] = get_args(Role)

ENV_PREFIX = "AUCTION_ENGINE_"  # environment variables are ENV_PREFIX + the field name in upper case
KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
DAY = 86400  # seconds
MIN_KEY_CHARS = 24  # plaintext API keys
MAX_KEY_CHARS = 1024
MIN_SECRET_CHARS = 32  # token_secret
MAX_SECRET_CHARS = 4096
# Strict: a file's `true` is no port and `80.0` no count; an int is still a float.
_MODEL = ConfigDict(strict=True, extra="forbid", frozen=True)


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


def _printable(key: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in key):
        raise ValueError("not printable")
    return key


def _zero_or_at_least(low: int) -> AfterValidator:
    def check(value: int) -> int:
        if 0 < value < low:
            raise ValueError("too small")
        return value
    return AfterValidator(check)


def _list_as_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value  # files and flags give lists


def _int(default: int, low: int, high: int, rule: str | None = None) -> Any:
    return Field(default, ge=low, le=high, description=rule)


def _float(default: float, low: float, high: float) -> Any:
    """A bounded float; NaN and infinities are refused (NaN would pass any bound)."""
    return Field(default, ge=low, le=high, allow_inf_nan=False)


class ApiKey(BaseModel):
    """One API key: a unique `name`, its `role`, and the SHA-256 (hex) of the plaintext key.

    Read from ``{name, role, key | key_sha256}``: a plaintext `key` is hashed and dropped.
    The repr shows only the name and role.
    """

    model_config = _MODEL

    name: str = Field(pattern=r"^[A-Za-z0-9._:@-]{1,64}$",
                      description="must be 1-64 characters of letters, digits and . _ : @ -")
    role: Role
    key_sha256: str = Field("", repr=False, pattern=r"^([0-9a-f]{64})?$",
                            description="must be a SHA-256 digest: 64 lowercase hexadecimal characters")
    key: Annotated[str, AfterValidator(_printable)] | None = Field(
        None, repr=False, exclude=True, min_length=MIN_KEY_CHARS, max_length=MAX_KEY_CHARS,
        description=f"must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} printable characters without spaces")

    def __init__(self, name: str, role: Role, key_sha256: str) -> None:
        try:
            super().__init__(name=name, role=role, key_sha256=key_sha256)
        except ValidationError as exc:
            raise SettingsError(_problems(exc, "")) from None

    # Validation (of a file's entries) builds instances without this __init__ (as RootModel's does).
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _hash_plaintext(self) -> ApiKey:
        if (self.key is None) == (self.key_sha256 == ""):
            raise PydanticCustomError("api_key", "needs exactly one of key (plaintext) and key_sha256")
        if self.key is not None:  # frozen: set once, here, before anyone sees the instance
            object.__setattr__(self, "key_sha256", hash_key(self.key))
            object.__setattr__(self, "key", None)
        return self

    @classmethod
    def from_plaintext(cls, name: str, role: Role, key: str) -> ApiKey:
        """An ApiKey for the plaintext `key` (which is hashed, not kept)."""
        try:
            return cls.model_validate({"name": name, "role": role, "key": key})
        except ValidationError as exc:
            raise SettingsError(_problems(exc, "")) from None

    def matches(self, key: str) -> bool:
        """Whether the plaintext `key` is this key (constant-time comparison of the hashes)."""
        return hmac.compare_digest(hash_key(key), self.key_sha256)


class Settings(BaseModel):
    """The service configuration; the defaults need nothing external. docs/operations.md
    describes each setting; direct construction is validated like a source.
    """

    model_config = _MODEL

    host: str = Field("127.0.0.1", pattern=r"^[^\s\x00]{1,255}$",
                      description="must be a host name or address of 1 to 255 characters without spaces")
    port: int = _int(8080, 0, 65535)
    data_dir: str = Field("data", pattern=r"^[^\x00]{1,4096}$",
                          description="must be a directory path of 1 to 4096 characters")
    durability: Durability = "fsync"
    sync_in: SyncIn = "process"
    segment_size: int = _int(64 * MiB, 1 * MiB, 4 * GiB)
    max_batch: int = _int(8192, 1, 1_000_000)
    max_delay_ms: float = _float(0.0, 0, 1000)
    checkpoint_every: int = _int(1_000_000, 0, 1_000_000_000)
    api_keys: Annotated[tuple[ApiKey, ...], BeforeValidator(_list_as_tuple)] = Field(
        (), description="must be a list of {name, role, key or key_sha256} objects")
    token_secret: str | None = Field(
        None, repr=False, min_length=MIN_SECRET_CHARS, max_length=MAX_SECRET_CHARS,
        description=f"must be a string of {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
    token_ttl_s: int = _int(12 * 3600, 60, 30 * DAY)
    max_message_bytes: int = _int(16 * KiB, 256, 1 * MiB)
    bid_rate: float = _float(20.0, 0.1, 10_000)
    bid_burst: int = _int(40, 1, 100_000)
    handshake_timeout_s: float = _float(10.0, 0.1, 300)
    outbound_queue: int = _int(256, 8, 100_000)
    send_timeout_s: float = _float(10.0, 0.1, 600)
    send_buffer_bytes: Annotated[int, _zero_or_at_least(4 * KiB)] = _int(
        256 * KiB, 0, 64 * MiB, f"must be 0 or an integer from {4 * KiB} to {64 * MiB}")
    max_connections: int = _int(10_000, 1, 1_000_000)
    log_level: LogLevel = "info"
    feed_wait_max_s: float = _float(30.0, 0, 300)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            keys = values.get("api_keys", ())
            valid = isinstance(keys, tuple) and all(isinstance(k, ApiKey) for k in keys)
            duplicates = _duplicates(keys, "api_keys") if valid else []
            raise SettingsError(_problems(exc, "") + duplicates) from None
        if duplicates := _duplicates(self.api_keys, "api_keys"):
            raise SettingsError(duplicates)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]  # sources validate without it

    def describe(self) -> dict[str, Any]:
        """The effective settings, JSON-ready, without secrets or key hashes (for the startup log)."""
        out = self.model_dump(mode="json")
        out["api_keys"] = [{"name": k.name, "role": k.role} for k in self.api_keys]
        out["token_secret"] = "generated" if self.token_secret is None else "set"
        return out


FIELD_NAMES: tuple[str, ...] = tuple(Settings.model_fields)


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, object] | None = None) -> Settings:
    """Defaults < the TOML/JSON file at `path` < `AUCTION_ENGINE_*` in `env` (None: os.environ)
    < `overrides` (the command-line flags: field name -> typed value; None values ignored).

    Each source replaces whole settings. Raises `SettingsError` listing every problem of every source.
    """
    problems: list[tuple[str, str]] = []
    values: dict[str, object] = {}
    if path is not None:
        data = _read_file(os.fspath(path), problems)
        values.update(_checked(data, "", problems) if data is not None else {})
    variables = _from_env(os.environ if env is None else env, problems)
    keys = {"api_keys": variables.pop("api_keys")} if "api_keys" in variables else {}
    values.update(_checked(variables, "env:", problems, strings=True))
    values.update(_checked(keys, "env:", problems))
    if overrides is not None:
        flags = {name: value for name, value in overrides.items() if value is not None}
        if isinstance(flags.get("api_keys"), str):
            flags["api_keys"] = _key_triples(str(flags["api_keys"]))
        values.update(_checked(flags, "override:", problems))
    if problems:
        raise SettingsError(problems)
    return Settings(**values)


def _checked(data: dict[str, Any], source: str, problems: list[tuple[str, str]], *,
             strings: bool = False) -> dict[str, object]:
    """The settings `data` holds, validated against the model; else `problems` grows.

    `strings`: the values are environment text ("9000" is a port), else typed (strict).
    """
    try:
        given = Settings.model_validate_strings(data) if strings else Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(sorted(_problems(exc, source)) if strings else _problems(exc, source))
        return {}
    duplicates = _duplicates(given.api_keys, _path(source, ("api_keys",)))
    problems.extend(duplicates)
    return {} if duplicates else {name: getattr(given, name) for name in given.model_fields_set}


def _read_file(path: str, problems: list[tuple[str, str]]) -> dict[str, Any] | None:
    """The file's object of settings, or None after recording why it cannot be had."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".toml", ".json"):
        problems.append((path, "a settings file must end in .toml or .json"))
        return None
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
        data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except OSError as exc:
        problems.append((path, f"cannot read the settings file: {exc.strerror or exc}"))
    except UnicodeDecodeError as exc:
        problems.append((path, f"the settings file is not UTF-8 (byte {exc.start})"))
    except tomllib.TOMLDecodeError as exc:
        problems.append((path, f"invalid TOML: {exc}"))
    except json.JSONDecodeError as exc:
        problems.append((path, f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})"))
    except RecursionError:
        problems.append((path, "the settings file is nested too deeply"))
    else:
        if isinstance(data, dict):
            return data
        problems.append((path, "must hold an object of settings"))
    return None


def _from_env(env: Mapping[str, str], problems: list[tuple[str, str]]) -> dict[str, Any]:
    """The `AUCTION_ENGINE_*` variables by field name; any other such variable is a problem."""
    out: dict[str, Any] = {}
    for var in sorted(env):
        name = var[len(ENV_PREFIX):].lower()
        if not var.startswith(ENV_PREFIX):
            continue
        if var != ENV_PREFIX + name.upper() or name not in FIELD_NAMES:
            problems.append((f"env:{var}", "unknown setting"))
        else:
            out[name] = _key_triples(env[var]) if name == "api_keys" else env[var]
    return out


def _key_triples(text: str) -> list[dict[str, str] | str]:
    """Comma-separated ``role:name:key`` (the key after the last colon: names may hold colons).

    A malformed triple stays a string, which the model refuses at its index.
    """
    entries: list[dict[str, str] | str] = []
    for triple in (t.strip() for t in text.split(",")):
        role, _, rest = triple.partition(":")
        name, _, key = rest.rpartition(":")
        if triple:
            entries.append({"name": name, "role": role, "key": key} if name else triple)
    return entries


def _duplicates(keys: Sequence[ApiKey], base: str) -> list[tuple[str, str]]:
    """Problems for repeated names or repeated keys."""
    problems = []
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key.name in names:
            first = names[key.name]
            problems.append((f"{base}[{i}].name", f"duplicate api key name {key.name!r} (also {base}[{first}])"))
        if key.key_sha256 in hashes:
            problems.append((f"{base}[{i}]", f"the same key as {base}[{hashes[key.key_sha256]}]"))
        names.setdefault(key.name, i)
        hashes.setdefault(key.key_sha256, i)
    return problems


# --- pydantic's errors as (path, rule): one message per field, stating its whole rule, never its value


def _problems(exc: ValidationError, source: str) -> list[tuple[str, str]]:
    model: type[BaseModel] = ApiKey if exc.title == ApiKey.__name__ else Settings
    return [(_path(source, e["loc"]), _message(e, source, model)) for e in exc.errors()]


def _path(source: str, loc: tuple[int | str, ...]) -> str:
    """``port``, ``env:AUCTION_ENGINE_PORT``, ``override:api_keys[1].name``."""
    head = f"{source}{ENV_PREFIX}{str(loc[0]).upper()}" if source == "env:" and loc else f"{source}{loc[0]}"
    return head + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])


def _message(error: ErrorDetails, source: str, model: type[BaseModel]) -> str:
    loc = error["loc"]
    if error["type"] == "api_key":
        return error["msg"]
    if error["type"] == "extra_forbidden":
        return "unknown setting" if len(loc) == 1 else "unknown field"
    if model is Settings and len(loc) == 2:  # an api_keys entry as a whole
        if source == "env:":
            return "must be role:name:key"
        return "must be an object with name, role and key (or key_sha256)"
    return _rule((ApiKey if len(loc) == 3 else model).model_fields[str(loc[-1])])


def _rule(field: FieldInfo) -> str:
    """What a value of `field` must be, from its declaration (bounds, choices) or its description."""
    if field.description:
        return field.description
    if get_args(field.annotation):
        return f"must be one of {', '.join(get_args(field.annotation))}"
    low = next(m.ge for m in field.metadata if isinstance(m, annotated_types.Ge))
    high = next(m.le for m in field.metadata if isinstance(m, annotated_types.Le))
    if field.annotation is float:
        return f"must be a number from {low:g} to {high:g}"
    return f"must be an integer from {low} to {high}"
