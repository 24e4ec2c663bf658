"""The config's schema: msgspec decodes each table, and its errors come out
located ([table] field), in words, and without a string that might be a key."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from byok.config import (
    ClientKey,
    Config,
    ConfigError,
    Key,
    Model,
    Provider,
    RetryPolicy,
    Server,
    Target,
    from_dict,
    load,
)


def base() -> dict:
    """A small valid config, as tomllib would give it."""
    return {
        "server": {"client_keys": ["client-secret"]},
        "providers": {
            "oai": {
                "kind": "openai",
                "keys": ["sk-one", "sk-two", {"key": "sk-three", "label": "team"}],
            }
        },
        "models": {"m": {"targets": ["oai/gpt-4o-mini"]}},
    }


def changed(path: tuple, value: object) -> dict:
    """base() with the value at `path` (table names, fields, list indexes) set."""
    data = base()
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


def error(data: dict, environ: dict | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        from_dict(data, "byok.toml", environ=environ or {})
    return str(caught.value)


# ---- unknown fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            ("server", "prot"),
            "byok.toml: [server] prot: unknown field; expected one of: admin_keys, client_keys, "
            "cooldown, failure_rate, failure_rate_min_attempts, failure_rate_window, "
            "failure_threshold, headroom, host, idle_timeout, max_body_bytes, max_cooldown, "
            "max_header_bytes, max_headers, metrics_keys, metrics_public, port, read_timeout, "
            "revalidate_blocked, shutdown_grace",
        ),
        (
            ("providers", "oai", "base"),
            "byok.toml: [providers.oai] base: unknown field; expected one of: "
            "anthropic_version, base_url, ca_file, client_cert, client_key, connect_timeout, "
            "keys, kind, max_connections, oauth, passthrough, proxy, reasoning, verify",
        ),
        (
            ("models", "m", "atempts"),
            "byok.toml: [models.m] atempts: unknown field; expected one of: attempt_timeout, "
            "attempts, deadline, fallbacks, first_byte_timeout, hedge_after, max_inflight, rpm, "
            "strategy, stream_idle_timeout, targets, tpm, wait_for_cooldown",
        ),
        (
            ("providers", "oai", "keys", 2, "lable"),
            "byok.toml: [providers.oai] keys[2].lable: unknown field; "
            "expected one of: command, daily_tokens, headers, key, label, max_inflight, oauth, "
            "rpm, timeout, tpm, ttl, weight",
        ),
        (
            ("modles",),
            "byok.toml: modles: unknown table; expected one of: cluster, models, prices, "
            "providers, server, usage",
        ),
    ],
)
def test_an_unknown_field_is_located_and_the_known_ones_listed(path, expected):
    assert error(changed(path, 1)) == expected


# ---- wrong types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("server", "port"),
            "80",
            "[server] port: expected int (a port from 0 to 65535), got a string",
        ),
        (
            ("providers", "oai", "keys", 2, "weight"),
            "3",
            "[providers.oai] keys[2].weight: expected int (an integer of at least 1), got a string",
        ),
        (
            ("providers", "oai", "keys", 1),
            7,
            "[providers.oai] keys[1]: expected str or table "
            "(a key: a literal, env:NAME or file:PATH), got 7",
        ),
        (
            ("models", "m", "targets"),
            "oai/gpt",
            '[models.m] targets: expected list (at least one target, like "openai/gpt-4o-mini"), '
            "got a string",
        ),
        (
            ("models", "m", "targets", 0),
            ["oai/gpt"],
            '[models.m] targets[0]: expected str ("provider/upstream-model"), got a list',
        ),
        (("models", "m", "fallbacks"), ["m", 3], "[models.m] fallbacks[1]: expected str, got 3"),
        (("providers", "oai"), "sk-x", "[providers.oai]: expected table, got a string"),
        (("server",), [], "[server]: expected table, got an empty list"),
        (
            ("providers", "oai", "passthrough"),
            "yes",
            "[providers.oai] passthrough: expected bool, got a string",
        ),
    ],
)
def test_a_wrong_type_is_located_at_its_path(path, value, expected):
    assert error(changed(path, value)) == f"byok.toml: {expected}"


@pytest.mark.parametrize(
    "path",
    [
        ("server", "port"),
        ("server", "cooldown"),
        ("server", "failure_rate"),
        ("providers", "oai", "base_url"),
        ("providers", "oai", "passthrough"),
        ("providers", "oai", "keys", 2, "weight"),
        ("models", "m", "targets", 0),
        ("models", "m", "hedge_after"),
        ("models", "m", "attempts"),
    ],
)
@pytest.mark.parametrize("secret", ["sk-secret-123", ["sk-secret-123"], {"k": "sk-secret-123"}])
def test_a_secret_in_the_wrong_place_is_never_shown(path, secret):
    """A string, or a list or table holding one, where a number, a URL or a
    target goes: the error says what it is, not what it holds."""
    text = error(changed(path, secret))
    assert text.startswith("byok.toml: [")  # located
    assert "secret-123" not in text


def test_a_bool_is_not_a_number_and_an_int_is_a_float():
    assert error(changed(("server", "port"), True)).endswith(
        "expected int (a port from 0 to 65535), got true"
    )
    assert "expected int or float" in error(changed(("server", "cooldown"), False))
    assert "got true" in error(changed(("providers", "oai", "keys", 2, "weight"), True))
    config = from_dict(changed(("server", "cooldown"), 2), environ={})
    assert config.server.cooldown == 2.0
    assert type(config.server.cooldown) is float
    assert "expected int" in error(changed(("server", "port"), 80.0))


def test_a_toml_file_reports_the_same_way(tmp_path):
    path = tmp_path / "byok.toml"
    path.write_text(
        '[server]\nport = "sk-secret-123"\n[providers.oai]\nkeys = ["sk-a"]\n'
        '[models.m]\ntargets = ["oai/x"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}: [server] port: expected int (a port from 0 to 65535), got a string"
    )
    assert (caught.value.table, caught.value.field) == ("server", "port")


# ---- ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("server", "port"), -1, "[server] port: expected a port from 0 to 65535, got -1"),
        (("server", "port"), 65536, "[server] port: expected a port from 0 to 65535, got 65536"),
        (("server", "cooldown"), 0, "[server] cooldown: expected seconds above 0 to 1e8, got 0"),
        (
            ("server", "max_cooldown"),
            1e9,
            "[server] max_cooldown: expected seconds above 0 to 1e8, got 1000000000.0",
        ),
        (
            ("server", "shutdown_grace"),
            -1,
            "[server] shutdown_grace: expected seconds from 0 to 1e8, got -1",
        ),
        (
            ("server", "failure_rate"),
            1.5,
            "[server] failure_rate: expected a share from 0 to 1 (0: off), got 1.5",
        ),
        (
            ("server", "max_headers"),
            0,
            "[server] max_headers: expected an integer of at least 1, got 0",
        ),
        (
            ("providers", "oai", "keys", 2, "max_inflight"),
            -1,
            "[providers.oai] keys[2].max_inflight: expected an integer of at least 0, got -1",
        ),
        (
            ("providers", "oai", "keys", 2, "label"),
            "",
            "[providers.oai] keys[2].label: expected a non-empty label, got an empty string",
        ),
        (
            ("providers", "oai", "base_url"),
            "ftp://sk-secret-123@example.com",
            "[providers.oai] base_url: expected an http:// or https:// URL, got a string",
        ),
        (
            ("providers", "oai", "keys"),
            [],
            "[providers.oai] keys: expected at least one key, got an empty list",
        ),
        (
            ("models", "m", "hedge_after"),
            0,
            "[models.m] hedge_after: expected seconds above 0 to 1e8, got 0",
        ),
        (
            ("models", "m", "deadline"),
            math.nan,
            "[models.m] deadline: expected seconds above 0 to 1e8, got nan",
        ),
        (
            ("models", "m", "wait_for_cooldown"),
            -0.5,
            "[models.m] wait_for_cooldown: expected seconds from 0 to 1e8, got -0.5",
        ),
        (
            ("models", "m", "attempts"),
            0,
            "[models.m] attempts: expected an integer of at least 1, got 0",
        ),
        (
            ("models", "m", "targets", 0),
            "gpt-4o",
            '[models.m] targets[0]: expected "provider/upstream-model", got a string',
        ),
        (("providers",), {}, "[providers]: expected at least one provider, got an empty table"),
    ],
)
def test_a_value_out_of_range_says_the_range(path, value, expected):
    assert error(changed(path, value)) == f"byok.toml: {expected}"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("providers", "oai", "keys"), "[providers.oai] keys: missing; expected at least one key"),
        (
            ("models", "m", "targets"),
            '[models.m] targets: missing; expected at least one target, like "openai/gpt-4o-mini"',
        ),
        (
            ("providers", "oai", "keys", 2, "key"),
            "[providers.oai] keys[2].key: missing; expected a key: a literal, env:NAME or "
            "file:PATH (or oauth = a credential file, or command = a program that prints a "
            "token)",
        ),
        (("providers",), "[providers]: missing; expected at least one provider"),
    ],
)
def test_a_missing_field_is_located(path, expected):
    data = base()
    node = data
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    assert error(data) == f"byok.toml: {expected}"


def test_zero_is_allowed_where_it_means_off_or_never():
    data = base()
    data["server"].update(shutdown_grace=0, revalidate_blocked=0, failure_rate=0, port=0)
    data["models"]["m"].update(wait_for_cooldown=0)
    config = from_dict(data, environ={})
    assert (config.server.shutdown_grace, config.server.revalidate_blocked) == (0.0, 0.0)
    assert (config.server.failure_rate, config.server.port) == (0.0, 0)
    assert config.models["m"].retry.wait_for_cooldown == 0.0
    assert config.models["m"].retry.hedge_after is None  # absent: off


# ---- what stays by hand ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("providers", "oai", "kind"),
            "gemini",
            "[providers.oai] kind: expected one of openai, anthropic, openai_compatible, "
            "got 'gemini'",
        ),
        (
            ("models", "m", "strategy"),
            "fastest",
            "[models.m] strategy: expected one of ",
        ),
        (
            ("models", "m", "targets", 0),
            "nope/gpt",
            "[models.m] targets[0]: no provider 'nope'; known: oai",
        ),
        (
            ("models", "m", "fallbacks"),
            ["m2"],
            "[models.m] fallbacks: 'm2' is not a model in this file; known: m",
        ),
        (
            ("providers", "oai", "keys", 2, "label"),
            "oai-1",
            "[providers.oai] keys: label 'oai-1' is used twice: a label names one key in logs",
        ),
        (
            ("providers", "oai", "keys", 1),
            "sk-one",
            "[providers.oai] keys: the same key is listed twice",
        ),
        (
            ("server", "admin_keys"),
            ["client-secret"],
            "[server] admin_keys[0]: an admin key must differ from every client key",
        ),
        (
            ("server", "client_keys"),
            [],
            "[server] client_keys: no client keys while listening on",
        ),
        (
            ("providers", "oai", "keys", 0),
            "   ",
            "[providers.oai] keys[0]: expected a key: a literal, env:NAME or file:PATH",
        ),
        (
            ("providers", "oai", "keys", 0),
            "env:BYOK_SCHEMA_UNSET",
            "[providers.oai] keys[0]: environment variable BYOK_SCHEMA_UNSET is not set or empty",
        ),
    ],
)
def test_cross_references_and_safety_rules_are_located(path, value, expected):
    data = changed(path, value)
    data["server"]["host"] = "0.0.0.0"  # the safety rule needs an open listener
    assert error(data).startswith(f"byok.toml: {expected}")


def test_the_kind_and_the_base_url_follow_the_table_of_kinds():
    data = base()
    data["providers"] = {
        "anthropic": {"keys": ["sk-ant"]},  # the name is a kind
        "local": {
            "kind": "openai_compatible",
            "base_url": "http://127.0.0.1:8000/v1/",
            "keys": ["x"],
        },
    }
    data["models"] = {}
    config = from_dict(data, environ={})
    assert config.providers["anthropic"].kind == "anthropic"
    assert config.providers["anthropic"].base_url == "https://api.anthropic.com"
    assert config.providers["local"].base_url == "http://127.0.0.1:8000/v1"
    assert config.providers["local"].dialect == "openai"

    del data["providers"]["local"]["base_url"]
    assert error(data) == (
        "byok.toml: [providers.local] base_url: required for openai_compatible providers: "
        "the API root with its version, e.g. https://host/v1"
    )
    del data["providers"]["local"]
    data["providers"]["mine"] = {"keys": ["y"]}
    assert error(data) == (
        "byok.toml: [providers.mine] kind: expected one of openai, anthropic, "
        "openai_compatible, got nothing (the table's name is not a kind)"
    )


def test_env_and_file_secrets_resolve(tmp_path):
    keyfile = tmp_path / "admin.key"
    keyfile.write_text("admin-from-file\n")
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    data = base()
    data["server"]["client_keys"] = ["env:BYOK_CLIENT", " literal-client "]
    data["server"]["admin_keys"] = [f"file:{keyfile.as_posix()}"]
    data["providers"]["oai"]["keys"] = ["env:BYOK_UP", {"key": f"file:{keyfile.as_posix()}x"}]
    environ = {"BYOK_CLIENT": " client-from-env\n", "BYOK_UP": "sk-from-env"}
    assert "cannot read key file" in error(data, environ)
    data["providers"]["oai"]["keys"][1] = {"key": f"file:{empty.as_posix()}", "label": "b"}
    assert error(data, environ).startswith("byok.toml: [providers.oai] keys[1].key: key file")
    assert error(data, environ).endswith("is empty")
    data["providers"]["oai"]["keys"][1] = {"key": "sk-literal", "weight": 2}
    config = from_dict(data, environ=environ)
    assert [(k.label, k.secret) for k in config.server.client_keys] == [
        ("client-1", "client-from-env"),
        ("client-2", "literal-client"),
    ]
    assert [(k.label, k.secret) for k in config.server.admin_keys] == [
        ("admin-1", "admin-from-file")
    ]
    assert [(k.label, k.secret, k.weight) for k in config.providers["oai"].keys] == [
        ("oai-1", "sk-from-env", 1),
        ("oai-2", "sk-literal", 2),
    ]
    for key in (*config.server.client_keys, *config.providers["oai"].keys):
        assert key.secret not in repr(key)
        assert repr(key) == f"Key({key.label!r}, {key.fingerprint})"


def test_a_rich_config_decodes_to_the_same_objects_as_before(tmp_path):
    keyfile = tmp_path / "b.key"
    keyfile.write_text("sk-b\n")
    data = {
        "server": {
            "host": "0.0.0.0",
            "port": 9000,
            "client_keys": ["env:BYOK_C"],
            "admin_keys": ["admin-1-secret"],
            "max_body_bytes": 1024,
            "max_header_bytes": 2048,
            "max_headers": 20,
            "read_timeout": 5,
            "idle_timeout": 6.5,
            "shutdown_grace": 0,
            "cooldown": 2,
            "max_cooldown": 30,
            "failure_threshold": 5,
            "failure_rate": 0.25,
            "failure_rate_window": 60,
            "failure_rate_min_attempts": 4,
            "revalidate_blocked": 0,
        },
        "providers": {
            "openai": {
                "keys": [
                    "sk-a",
                    {"key": f"file:{keyfile.as_posix()}", "label": "team-b", "weight": 3},
                    {"key": "sk-c", "max_inflight": 2},
                ],
                "passthrough": True,
            },
            "claude": {
                "kind": "anthropic",
                "base_url": "https://proxy.example/anthropic/",
                "keys": ["sk-ant"],
                "anthropic_version": "2024-01-01",
            },
            "local": {
                "kind": "openai_compatible",
                "base_url": "http://127.0.0.1:8000/v1",
                "keys": ["sk-local"],
            },
        },
        "models": {
            "gpt": {
                "targets": ["openai/gpt-4o-mini", "local/llama/3"],
                "strategy": "round_robin",
                "fallbacks": ["haiku"],
                "attempts": 2,
                "attempt_timeout": 30,
                "first_byte_timeout": 5.5,
                "deadline": 40,
                "stream_idle_timeout": 10,
                "hedge_after": 1,
                "wait_for_cooldown": 3,
            },
            "haiku": {"targets": ["claude/claude-3-5-haiku-latest"]},
        },
    }
    original = copy.deepcopy(data)
    config = from_dict(data, "rich.toml", environ={"BYOK_C": "client-c"})
    assert data == original  # the input is not changed
    expected = Config(
        source="rich.toml",
        server=Server(
            host="0.0.0.0",
            port=9000,
            client_keys=(ClientKey("client-1", "client-c"),),
            admin_keys=(Key("admin-1", "admin-1-secret"),),
            max_body_bytes=1024,
            max_header_bytes=2048,
            max_headers=20,
            read_timeout=5.0,
            idle_timeout=6.5,
            shutdown_grace=0.0,
            cooldown=2.0,
            max_cooldown=30.0,
            failure_threshold=5,
            failure_rate=0.25,
            failure_rate_window=60.0,
            failure_rate_min_attempts=4,
            revalidate_blocked=0.0,
        ),
        providers={
            "openai": Provider(
                name="openai",
                kind="openai",
                base_url="https://api.openai.com/v1",
                keys=(
                    Key("openai-1", "sk-a"),
                    Key("team-b", "sk-b", weight=3),
                    Key("openai-3", "sk-c", max_inflight=2),
                ),
                passthrough=True,
            ),
            "claude": Provider(
                name="claude",
                kind="anthropic",
                base_url="https://proxy.example/anthropic",
                keys=(Key("claude-1", "sk-ant"),),
                anthropic_version="2024-01-01",
            ),
            "local": Provider(
                name="local",
                kind="openai_compatible",
                base_url="http://127.0.0.1:8000/v1",
                keys=(Key("local-1", "sk-local"),),
            ),
        },
        models={
            "gpt": Model(
                name="gpt",
                targets=(Target("openai", "gpt-4o-mini"), Target("local", "llama/3")),
                strategy="round_robin",
                fallbacks=("haiku",),
                retry=RetryPolicy(
                    attempts=2,
                    attempt_timeout=30.0,
                    first_byte_timeout=5.5,
                    deadline=40.0,
                    stream_idle_timeout=10.0,
                    hedge_after=1.0,
                    wait_for_cooldown=3.0,
                ),
            ),
            "haiku": Model(name="haiku", targets=(Target("claude", "claude-3-5-haiku-latest"),)),
        },
    )
    assert config == expected
    assert list(config.providers) == ["openai", "claude", "local"]  # the file's order
    assert hash(config.server) == hash(expected.server)
    assert config.models["haiku"].retry == RetryPolicy()
    assert config.models["haiku"].strategy == "weighted_round_robin"
    for secret in config.secrets():
        assert secret not in repr(config)
        assert secret not in config.describe()


def test_a_top_level_that_is_not_a_table_is_refused():
    with pytest.raises(ConfigError, match="expected table, got a list"):
        from_dict(["sk-secret-123"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("where", "field"),
    [("providers", "kind"), ("models", "strategy"), ("models", "targets"), ("models", "fallbacks")],
)
def test_a_key_pasted_into_a_name_is_not_repeated(where: str, field: str) -> None:
    """Names are quoted back to help (a misspelt kind); a key is not."""
    pasted = "sk-proj-PASTEDKEY1234567890"
    data: dict[str, Any] = {
        "providers": {"oai": {"kind": "openai", "keys": ["sk-real-key-123456"]}},
        "models": {"m": {"targets": ["oai/gpt"]}},
    }
    if where == "providers":
        data["providers"]["oai"][field] = pasted
    elif field == "targets":
        data["models"]["m"]["targets"] = [f"{pasted}/gpt"]
    else:
        data["models"]["m"][field] = [pasted] if field == "fallbacks" else pasted
    with pytest.raises(ConfigError) as caught:
        from_dict(data, "t.toml")
    assert "PASTEDKEY" not in str(caught.value)
    assert "looks like a key (not shown)" in str(caught.value)
