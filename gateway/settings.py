"""Service settings: a pydantic-settings model, loaded as defaults < file < environment < flags.

`load_settings` merges a TOML or JSON file, `AUCTION_ENGINE_*` variables and the flags (init
kwargs) with pydantic-settings sources, validates once, and raises one `SettingsError` that
lists every problem with its source and path (``port``, ``env:AUCTION_ENGINE_PORT``,
``override:api_keys[1].name``). API keys are hashed at load; `describe()` has no secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import annotated_types
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
# Strict: a file's `true` is no port and `80.0` no count; an int is still a float. (The
# environment's text is converted first, by pydantic-settings' env source: "9000" is a port.)
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


def _unique(keys: tuple[ApiKey, ...]) -> tuple[ApiKey, ...]:
    """Refuses repeated names or keys; each repeat is one problem at its own path (`_problems`)."""
    repeats: list[tuple[int, str | None, str]] = []  # (index, field, "{base}" message)
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key.name in names:
            repeats.append((i, "name", f"duplicate api key name {key.name!r} (also {{base}}[{names[key.name]}])"))
        if key.key_sha256 in hashes:
            repeats.append((i, None, f"the same key as {{base}}[{hashes[key.key_sha256]}]"))
        names.setdefault(key.name, i)
        hashes.setdefault(key.key_sha256, i)
    if repeats:
        raise PydanticCustomError("api_keys_repeated", "repeated api keys", {"repeats": repeats})
    return keys


def _float(default: float, low: float, high: float) -> Any:
    """A bounded float; NaN and infinities are refused (NaN would pass any bound)."""
    return Field(default, ge=low, le=high, allow_inf_nan=False)


class ApiKey(BaseModel):
    """One API key: a unique `name`, its `role`, and the SHA-256 (hex) of the plaintext key.

    Read from ``{name, role, key | key_sha256}``: a plaintext `key` is hashed and dropped.
    Built in code with `from_digest` or `from_plaintext`. The repr shows only the name and role.
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

    @model_validator(mode="after")
    def _hash_plaintext(self) -> ApiKey:
        if (self.key is None) == (self.key_sha256 == ""):
            raise PydanticCustomError("api_key", "needs exactly one of key (plaintext) and key_sha256")
        if self.key is not None:  # frozen: set once, here, before anyone sees the instance
            object.__setattr__(self, "key_sha256", hash_key(self.key))
            object.__setattr__(self, "key", None)
        return self

    @classmethod
    def from_digest(cls, name: str, role: Role, key_sha256: str) -> ApiKey:
        """An ApiKey for the key whose SHA-256 (lowercase hex) is `key_sha256`; else `SettingsError`."""
        return cls._checked({"name": name, "role": role, "key_sha256": key_sha256})

    @classmethod
    def from_plaintext(cls, name: str, role: Role, key: str) -> ApiKey:
        """An ApiKey for the plaintext `key` (which is hashed, not kept); else `SettingsError`."""
        return cls._checked({"name": name, "role": role, "key": key})

    @classmethod
    def _checked(cls, fields: dict[str, str]) -> ApiKey:
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise SettingsError(_problems(exc, _Origin())) from None

    def matches(self, key: str) -> bool:
        """Whether the plaintext `key` is this key (constant-time comparison of the hashes)."""
        return hmac.compare_digest(hash_key(key), self.key_sha256)


class Settings(BaseSettings):
    """The service configuration; the defaults need nothing external. docs/operations.md
    describes each setting. Built directly, it takes only its arguments (validated, or
    `SettingsError`); `load_settings` adds the file, the environment and the flags.
    """

    model_config = SettingsConfigDict(strict=True, extra="forbid", frozen=True, env_prefix=ENV_PREFIX)

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
    api_keys: Annotated[tuple[ApiKey, ...], BeforeValidator(_list_as_tuple), AfterValidator(_unique)] = Field(
        (), description="must be a list of {name, role, key or key_sha256} objects")
    token_secret: str | None = Field(
        None, repr=False, min_length=MIN_SECRET_CHARS, max_length=MAX_SECRET_CHARS,
        description=f"must be a string of {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters")
    token_ttl_s: int = _int(12 * 3600, 60, 30 * DAY)
    receipt_key_file: str | None = Field(None, pattern=r"^[^\x00]{1,4096}$",
                                         description="must be a file path of 1 to 4096 characters")
    max_message_bytes: int = _int(16 * KiB, 256, 1 * MiB)
    bid_rate: float = _float(20.0, 0.1, 10_000)
    bid_burst: int = _int(40, 1, 100_000)
    handshake_timeout_s: float = _float(10.0, 0.1, 300)
    outbound_queue: int = _int(256, 8, 100_000)
    send_timeout_s: float = _float(10.0, 0.1, 600)
    send_buffer_bytes: Annotated[int, _zero_or_at_least(4 * KiB)] = _int(
        256 * KiB, 0, 64 * MiB, f"must be 0 or an integer from {4 * KiB} to {64 * MiB}")
    max_connections: int = _int(10_000, 1, 1_000_000)
    direct_writes: bool = Field(True, description="must be true or false")
    log_level: LogLevel = "info"
    feed_wait_max_s: float = _float(30.0, 0, 300)
    redis_url: str | None = Field(
        None, pattern=r"^(redis|rediss|unix)://[^\s\x00]{1,4096}$",
        description="must be a redis://, rediss:// or unix:// URL (none: the file journal)")
    redis_namespace: str = Field("ae", pattern=r"^[^:{}*?\[\]\s\x00]{1,64}$",
                                 description="must be 1 to 64 characters without ':', braces, glob characters "
                                             "or spaces")
    redis_lease_ms: int = _int(5000, 100, 600_000)
    redis_engine_id: str = Field("", pattern=r"^[^|\s\x00]{0,128}$",
                                 description="must be at most 128 characters without '|' or spaces "
                                             "(empty: host name and process id)")
    redis_unsafe: bool = Field(False, description="must be true or false")
    redis_replicas: int = _int(0, 0, 16)
    redis_wait_ms: int = _int(1000, 1, 60_000)
    redis_role: Literal["both", "engine", "gateway"] = Field(
        "both", description="must be both, engine or gateway")
    redis_forward_timeout_ms: int = _int(1000, 10, 600_000)
    redis_follow: Literal["all", "served"] = Field("all", description="must be all or served")

    def __init__(self, **values: Any) -> None:
        sources = values.get("_build_sources")
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_problems(exc, _Origin(sources[0] if sources else ()))) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Built in code, settings take their arguments only (a test never reads the environment)."""
        return (init_settings,)

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

    Each source replaces whole settings (a list too). Raises `SettingsError` listing every
    problem: the file's if it cannot be read, and every refused value with its source.
    """
    problems: list[tuple[str, str]] = []
    flags = {name: value for name, value in (overrides or {}).items() if value is not None}
    if isinstance(flags.get("api_keys"), str):
        flags["api_keys"] = _key_triples(str(flags["api_keys"]))
    sources: list[PydanticBaseSettingsSource] = [_Flags(Settings, flags), _Environment(Settings, env)]
    if path is not None:
        try:
            sources.append(_file_source(os.fspath(path)))
        except _FileProblem as exc:
            problems.append((exc.args[0], exc.args[1]))
    try:
        settings = Settings(_build_sources=(tuple(sources), {}))
        if settings.redis_role != "both" and settings.redis_url is None:
            problems.append(("redis_role", f"{settings.redis_role}: a role other than both needs redis_url"))
        if settings.redis_follow != "all" and settings.redis_role != "gateway":
            problems.append(("redis_follow", "served: only a gateway (redis_role gateway) follows only its cases"))
    except SettingsError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    return settings


# --- the sources: pydantic-settings' own, each remembering what it gave (errors name their source)


class _Flags(InitSettingsSource):
    prefix = "override:"

    def __call__(self) -> dict[str, Any]:
        self.given = super().__call__()
        return self.given


class _Environment(EnvSettingsSource):
    """`AUCTION_ENGINE_` + a field's name in upper case; any other such variable is given
    under its own name, which the model refuses as unknown. API keys are ``role:name:key``."""

    prefix = "env:"

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str] | None) -> None:
        self.environ = os.environ if env is None else env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        known = {ENV_PREFIX + name.upper() for name in FIELD_NAMES}
        mine = {var: value for var, value in self.environ.items() if var.startswith(ENV_PREFIX)}
        self.unknown = {var: value for var, value in mine.items() if var not in known}
        return {var.lower(): value for var, value in mine.items() if var in known}  # as case_sensitive=False

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        if field_name == "api_keys":
            return None if value is None else _key_triples(value)
        return super().prepare_field_value(field_name, field, value, value_is_complex)

    def __call__(self) -> dict[str, Any]:
        self.given = {**super().__call__(), **self.unknown}
        return self.given


class _FileProblem(Exception):
    """``(path, message)``: the settings file cannot be had."""


class _FileReading:
    """Reads exactly the one file named, refusing what pydantic-settings' readers let pass
    (a missing file, one that is not an object) with a message a user can act on."""

    prefix = ""

    def _read_files(self, files: Any, deep_merge: bool = False) -> dict[str, Any]:
        return self._read_file(Path(files))  # missing or unreadable: an error, never skipped

    def _read_file(self, path: Any) -> dict[str, Any]:
        try:
            data: object = super()._read_file(path)  # type: ignore[misc]
        except OSError as exc:
            raise _FileProblem(str(path), f"cannot read the settings file: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise _FileProblem(str(path), f"the settings file is not UTF-8 (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise _FileProblem(str(path), f"invalid TOML: {exc}") from None
        except json.JSONDecodeError as exc:
            raise _FileProblem(str(path), f"invalid JSON: {exc.msg} (at line {exc.lineno}, column {exc.colno})") \
                from None
        except RecursionError:
            raise _FileProblem(str(path), "the settings file is nested too deeply") from None
        if not isinstance(data, dict):
            raise _FileProblem(str(path), "must hold an object of settings")
        return data

    def __call__(self) -> dict[str, Any]:
        given: dict[str, Any] = super().__call__()  # type: ignore[misc]
        self.given = given
        return given


class _TomlFile(_FileReading, TomlConfigSettingsSource):
    pass


class _JsonFile(_FileReading, JsonConfigSettingsSource):
    pass


def _file_source(path: str) -> PydanticBaseSettingsSource:
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".toml":
        return _TomlFile(Settings, toml_file=path)
    if suffix == ".json":
        return _JsonFile(Settings, json_file=path)
    raise _FileProblem(path, "a settings file must end in .toml or .json")


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


class _Origin:
    """Which source gave each top-level setting: the first, by precedence, that holds it."""

    def __init__(self, sources: Sequence[PydanticBaseSettingsSource] = ()) -> None:
        self.sources = sources

    def __call__(self, key: int | str) -> str:
        for source in self.sources:
            if key in getattr(source, "given", {}):
                return str(getattr(source, "prefix", ""))
        return ""


# --- pydantic's errors as (path, rule): one message per field, stating its whole rule, never its value


def _problems(exc: ValidationError, origin: _Origin) -> list[tuple[str, str]]:
    """One ``(path, rule)`` per error, sorted by source then path (the order of the sources)."""
    model: type[BaseModel] = ApiKey if exc.title == ApiKey.__name__ else Settings
    out: list[tuple[int, str, str]] = []
    for e in exc.errors():
        source = origin(e["loc"][0]) if e["loc"] else ""
        rank = ("", "env:", "override:").index(source)
        if e["type"] == "api_keys_repeated":
            base = _path(source, e["loc"])
            for index, field, message in e["ctx"]["repeats"]:
                out.append((rank, base + f"[{index}]" + (f".{field}" if field else ""), message.format(base=base)))
        else:
            out.append((rank, _path(source, e["loc"]), _message(e, source, model)))
    return [(path, message) for _, path, message in sorted(out)]


def _path(source: str, loc: tuple[int | str, ...]) -> str:
    """``port``, ``env:AUCTION_ENGINE_PORT``, ``override:api_keys[1].name``."""
    head = f"{source}{loc[0]}"
    if source == "env:" and loc[0] in FIELD_NAMES:
        head = f"{source}{ENV_PREFIX}{str(loc[0]).upper()}"
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
