"""Service settings: defaults, TOML/JSON files, precedence, every problem with its path, API keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import FIELD_NAMES, ROLES, ApiKey, Settings, SettingsError, hash_key, load_settings

KEY = "k" * 24 + "-plaintext-portal"
OTHER_KEY = "b" * 30


def problems(**kwargs: object) -> dict[str, str]:
    with pytest.raises(SettingsError) as exc:
        load_settings(**kwargs)  # type: ignore[arg-type]
    assert exc.value.code == "invalid_settings"
    return dict(exc.value.problems)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults_are_valid_and_need_nothing_external() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert (s.host, s.port, s.data_dir, s.durability) == ("127.0.0.1", 8080, "data", "fsync")
    assert s.segment_size == 64 * 1024 * 1024 and s.send_buffer_bytes == 262144
    assert s.api_keys == () and s.token_secret is None and s.log_level == "info"
    assert ROLES == ("portal", "buyer", "auditor")


def test_every_field_has_a_check() -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env={}, overrides=dict.fromkeys(FIELD_NAMES, object()))
    assert {path for path, _ in exc.value.problems} == {f"override:{name}" for name in FIELD_NAMES}


def test_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", f"""
port = 9001
durability = "none"
sync_in = "thread"
max_delay_ms = 2          # an int where a float is expected
token_secret = "{"s" * 40}"

[[api_keys]]
name = "portal-1"
role = "portal"
key = "{KEY}"
""")
    s = load_settings(path, env={})
    assert (s.port, s.durability, s.sync_in, s.max_delay_ms) == (9001, "none", "thread", 2.0)
    assert load_settings(env={}).sync_in == "process"
    assert isinstance(s.max_delay_ms, float)
    assert s.api_keys == (ApiKey.from_digest("portal-1", "portal", hash_key(KEY)),)
    assert s.api_keys[0].matches(KEY) and not s.api_keys[0].matches(OTHER_KEY)


def test_json_file(tmp_path: Path) -> None:
    digest = hash_key(OTHER_KEY)
    path = write(tmp_path, "s.json", json.dumps({
        "host": "0.0.0.0", "bid_rate": 5.5, "send_buffer_bytes": 0,
        "api_keys": [{"name": "buyer@x", "role": "buyer", "key_sha256": digest}],
    }))
    s = load_settings(Path(path), env={})
    assert (s.host, s.bid_rate, s.send_buffer_bytes) == ("0.0.0.0", 5.5, 0)
    assert s.api_keys[0].key_sha256 == digest and s.api_keys[0].role == "buyer"


def test_precedence_defaults_file_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", 'port = 1000\nbid_burst = 7\nhost = "10.0.0.1"\nlog_level = "debug"\n')
    env = {"AUCTION_ENGINE_PORT": "2000", "AUCTION_ENGINE_BID_BURST": "8", "PATH": "/bin"}
    s = load_settings(path, env=env, overrides={"port": 3000, "host": None})
    assert s.port == 3000  # override beats env and file
    assert s.bid_burst == 8  # env beats file
    assert s.host == "10.0.0.1"  # None override is "flag not given"
    assert s.log_level == "debug"  # file beats default
    assert s.max_batch == 8192  # default


def test_env_values_are_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"AUCTION_ENGINE_PORT": "9000", "AUCTION_ENGINE_DURABILITY": "none",
           "AUCTION_ENGINE_SEND_TIMEOUT_S": "2.5", "AUCTION_ENGINE_FEED_WAIT_MAX_S": "0"}
    s = load_settings(env=env)
    assert (s.port, s.durability, s.send_timeout_s, s.feed_wait_max_s) == (9000, "none", 2.5, 0.0)
    monkeypatch.setenv("AUCTION_ENGINE_MAX_CONNECTIONS", "12")
    assert load_settings().max_connections == 12  # env=None reads os.environ


def test_every_problem_listed_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", 'port = 70000\ndurability = "sometimes"\nmax_batch = 0\n')
    found = problems(path=path, env={})
    assert set(found) == {"port", "durability", "max_batch"}
    assert "65535" in found["port"] and "fsync" in found["durability"]


def test_problems_of_every_source_at_once(tmp_path: Path) -> None:
    # The sources are merged, then validated once: the file's bid_rate, replaced by the
    # environment's, is not used and not checked; the value that would be used is named.
    path = write(tmp_path, "s.json", json.dumps({"colour": "red", "bid_rate": 0, "token_secret": "short"}))
    env = {"AUCTION_ENGINE_PORT": "eighty", "AUCTION_ENGINE_BID_RATE": "nan", "AUCTION_ENGINE_NOPE": "1",
           "AUCTION_ENGINE_port": "1"}
    found = problems(path=path, env=env, overrides={"max_connections": 0, "verbose": True})
    assert found == {
        "colour": "unknown setting",
        "token_secret": "must be a string of 32 to 4096 characters",
        "env:AUCTION_ENGINE_PORT": "must be an integer from 0 to 65535",
        "env:AUCTION_ENGINE_BID_RATE": "must be a number from 0.1 to 10000",
        "env:AUCTION_ENGINE_NOPE": "unknown setting",
        "env:AUCTION_ENGINE_port": "unknown setting",
        "override:max_connections": "must be an integer from 1 to 1000000",
        "override:verbose": "unknown setting",
    }


def test_error_text_lists_one_problem_per_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(env={"AUCTION_ENGINE_PORT": "-1", "AUCTION_ENGINE_LOG_LEVEL": "loud"})
    lines = str(exc.value).splitlines()
    assert lines[0] == "2 problem(s) in the settings:"
    assert lines[1].strip() == "env:AUCTION_ENGINE_LOG_LEVEL: must be one of debug, info, warning, error"
    assert lines[2].strip() == "env:AUCTION_ENGINE_PORT: must be an integer from 0 to 65535"


def test_bool_is_not_an_int_but_an_int_is_a_float(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", '{"port": true, "bid_burst": false, "bid_rate": true, "max_delay_ms": 1}')
    assert set(problems(path=path, env={})) == {"port", "bid_burst", "bid_rate"}
    assert set(problems(env={}, overrides={"port": 80.0, "data_dir": 3})) == {"override:port", "override:data_dir"}


def test_ranges_and_special_values() -> None:
    assert load_settings(env={}, overrides={"port": 0, "send_buffer_bytes": 0}).port == 0
    found = problems(env={}, overrides={"send_buffer_bytes": 100, "segment_size": 4 * 1024**3 + 1,
                                        "token_ttl_s": 59, "max_message_bytes": 2 * 1024**2, "host": "a b",
                                        "data_dir": "", "feed_wait_max_s": 301.0})
    assert found["override:send_buffer_bytes"].startswith("must be 0 or an integer from 4096")
    assert len(found) == 7


def test_api_keys_hashed_and_plaintext_kept_nowhere() -> None:
    s = load_settings(env={}, overrides={"api_keys": [{"name": "p", "role": "portal", "key": KEY}],
                                         "token_secret": "t" * 32})
    digest = hash_key(KEY)
    assert s.api_keys == (ApiKey.from_digest("p", "portal", digest),)
    text = repr(s) + str(s) + json.dumps(s.describe())
    for secret in (KEY, digest, digest[:16], "t" * 32):
        assert secret not in text
    assert repr(s.api_keys[0]) == "ApiKey(name='p', role='portal')"
    assert KEY not in [getattr(s, name) for name in FIELD_NAMES]


def test_describe_is_json_ready_and_secret_free() -> None:
    described = Settings(token_secret="x" * 40, api_keys=(ApiKey.from_plaintext("a", "auditor", KEY),)).describe()
    assert json.loads(json.dumps(described)) == described
    assert described["token_secret"] == "set" and described["api_keys"] == [{"name": "a", "role": "auditor"}]
    assert Settings().describe()["token_secret"] == "generated"
    assert set(described) == set(FIELD_NAMES)


def test_api_key_problems() -> None:
    found = problems(env={}, overrides={"api_keys": [
        {"name": "dup", "role": "portal", "key": KEY},
        {"name": "dup", "role": "buyer", "key": OTHER_KEY},
    ]})
    assert found == {"override:api_keys[1].name": "duplicate api key name 'dup' (also override:api_keys[0])"}
    found = problems(env={}, overrides={"api_keys": [
        {"name": "a", "role": "portal", "key": "too-short"},
        {"name": "bad name!", "role": "king", "key_sha256": "ABC", "extra": 1},
        {"name": "c", "role": "buyer"},
        {"name": "d", "role": "buyer", "key": KEY, "key_sha256": hash_key(KEY)},
        "not an object",
    ]})
    assert set(found) == {
        "override:api_keys[0].key", "override:api_keys[1].name", "override:api_keys[1].role",
        "override:api_keys[1].key_sha256", "override:api_keys[1].extra", "override:api_keys[2]",
        "override:api_keys[3]", "override:api_keys[4]",
    }
    assert "too-short" not in str(found)


def test_same_key_twice_refused() -> None:
    found = problems(env={}, overrides={"api_keys": [
        {"name": "a", "role": "portal", "key": KEY}, {"name": "b", "role": "buyer", "key_sha256": hash_key(KEY)},
    ]})
    assert found == {"override:api_keys[1]": "the same key as override:api_keys[0]"}


def test_env_api_keys() -> None:
    env = {"AUCTION_ENGINE_API_KEYS": f"portal:portal-1:{KEY}, buyer:ministry:x:{OTHER_KEY},"}
    s = load_settings(env=env)
    assert [(k.name, k.role) for k in s.api_keys] == [("portal-1", "portal"), ("ministry:x", "buyer")]
    assert s.api_keys[1].key_sha256 == hash_key(OTHER_KEY)
    assert load_settings(env={"AUCTION_ENGINE_API_KEYS": ""}).api_keys == ()


def test_env_api_keys_malformed() -> None:
    env = {"AUCTION_ENGINE_API_KEYS": f"portal:ok:{KEY},just-a-key,owner:x:{OTHER_KEY},buyer:y:short"}
    found = problems(env=env)
    assert found == {
        "env:AUCTION_ENGINE_API_KEYS[1]": "must be role:name:key",
        "env:AUCTION_ENGINE_API_KEYS[2].role": "must be one of portal, buyer, auditor",
        "env:AUCTION_ENGINE_API_KEYS[3].key": "must be 24 to 1024 printable characters without spaces",
    }


def test_env_api_keys_replace_the_file_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", json.dumps({"api_keys": [{"name": "f", "role": "portal", "key": KEY}]}))
    s = load_settings(path, env={"AUCTION_ENGINE_API_KEYS": f"auditor:e:{OTHER_KEY}"})
    assert [k.name for k in s.api_keys] == ["e"]


def test_unreadable_or_unparsable_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.toml")
    assert list(problems(path=missing, env={})) == [missing]
    bad_toml = write(tmp_path, "bad.toml", "port = 1\nhost = \n")
    (message,) = problems(path=bad_toml, env={}).values()
    assert message.startswith("invalid TOML:") and "line 2" in message
    bad_json = write(tmp_path, "bad.json", '{\n  "port": 1,\n}')
    (message,) = problems(path=bad_json, env={}).values()
    assert message.startswith("invalid JSON:") and message.endswith("(at line 3, column 1)")
    (tmp_path / "bin.json").write_bytes(b'{"host": "\xff"}')
    assert "not UTF-8" in problems(path=str(tmp_path / "bin.json"), env={})[str(tmp_path / "bin.json")]
    yaml = write(tmp_path, "s.yaml", "port: 1")
    assert "must end in .toml or .json" in problems(path=yaml, env={})[yaml]
    array = write(tmp_path, "array.json", "[1, 2]")
    assert problems(path=array, env={}) == {array: "must hold an object of settings"}


def test_file_problems_and_env_problems_together(tmp_path: Path) -> None:
    found = problems(path=str(tmp_path / "nope.json"), env={"AUCTION_ENGINE_PORT": "x"})
    assert set(found) == {str(tmp_path / "nope.json"), "env:AUCTION_ENGINE_PORT"}


def test_direct_construction_is_validated() -> None:
    with pytest.raises(SettingsError) as exc:
        Settings(port=-1, durability="maybe", api_keys=(ApiKey.from_plaintext("a", "buyer", KEY),) * 2)  # type: ignore[arg-type]
    assert {path for path, _ in exc.value.problems} == {"port", "durability", "api_keys[1].name", "api_keys[1]"}
    with pytest.raises(SettingsError):
        ApiKey.from_digest("a", "buyer", "0" * 63)
    with pytest.raises(SettingsError):
        ApiKey.from_plaintext("a", "buyer", "short")


def test_built_in_code_settings_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUCTION_ENGINE_PORT", "9")
    assert Settings().port == 8080 and Settings(port=1).port == 1
    assert load_settings().port == 9
    monkeypatch.setenv("AUCTION_ENGINE_TYPO", "1")
    assert Settings().port == 8080 and problems() == {"env:AUCTION_ENGINE_TYPO": "unknown setting"}


def test_a_files_key_objects_validate_as_api_keys() -> None:
    s = Settings.model_validate({"api_keys": [{"name": "a", "role": "buyer", "key": KEY}]})
    assert s.api_keys == (ApiKey.from_digest("a", "buyer", hash_key(KEY)),)
    with pytest.raises(ValidationError):
        Settings.model_validate({"port": -1})


def test_the_pydantic_settings_hooks_overridden_still_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gateway/settings.py relies on pydantic-settings' BaseSettings(_build_sources=...),
    # EnvSettingsSource._load_env_vars and the file sources' _read_files/_read_file. If a
    # release renames one, the environment is read from os.environ, or a missing file is
    # skipped: each assertion below then fails, naming the hook.
    monkeypatch.setenv("AUCTION_ENGINE_PORT", "1")
    assert load_settings(env={"AUCTION_ENGINE_PORT": "2"}).port == 2, "_load_env_vars not called"
    missing = str(tmp_path / "none.json")
    assert problems(path=missing, env={}) == {missing: "cannot read the settings file: No such file or directory"}, \
        "_read_files not called"
    assert load_settings(write(tmp_path, "s.json", '{"port": 3}'), env={}).port == 3, "_build_sources not used"


def test_the_redis_roles_are_checked_together() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert problems(env={}, overrides={"redis_role": "engine"}) == {
        "redis_role": "engine: a role other than both needs redis_url"}
    assert problems(env={}, overrides={"redis_url": url, "redis_role": "engine", "redis_follow": "served"}) == {
        "redis_follow": "served: only a gateway (redis_role gateway) follows only its cases"}
    assert set(problems(env={"AUCTION_ENGINE_REDIS_ROLE": "leader"}, overrides={"redis_url": url})) == {
        "env:AUCTION_ENGINE_REDIS_ROLE"}
    s = load_settings(env={}, overrides={"redis_url": url, "redis_role": "gateway", "redis_follow": "served"})
    assert (s.redis_role, s.redis_follow, s.redis_forward_timeout_ms) == ("gateway", "served", 1000)
