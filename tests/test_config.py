"""Configuration: the environment default, TOML files, and errors that say
where and what."""

from __future__ import annotations

import pytest

from byok.config import ConfigError, from_dict, from_environment, load


def write(tmp_path, text: str):
    path = tmp_path / "byok.toml"
    path.write_text(text)
    return path


GOOD = """
[server]
port = 9999
client_keys = ["env:BYOK_TEST_CLIENT"]

[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
keys = ["env:BYOK_TEST_A", { key = "file:KEYFILE", label = "team-b", weight = 3 }]

[providers.claude]
kind = "anthropic"
keys = ["sk-ant-literal-key"]

[models."gpt-4o-mini"]
targets = ["openai/gpt-4o-mini"]
strategy = "weighted_round_robin"
fallbacks = ["claude-haiku"]
attempts = 3

[models.claude-haiku]
targets = ["claude/claude-3-5-haiku-latest"]
"""


def test_a_good_file_resolves_every_key_source(tmp_path, monkeypatch):
    keyfile = tmp_path / "b.key"
    keyfile.write_text("sk-from-file\n")
    monkeypatch.setenv("BYOK_TEST_A", "sk-from-env")
    monkeypatch.setenv("BYOK_TEST_CLIENT", "client-secret")
    # as_posix(): in a TOML string the backslashes of a Windows path would be escapes
    config = load(write(tmp_path, GOOD.replace("KEYFILE", keyfile.as_posix())))
    keys = config.providers["openai"].keys
    assert [(k.label, k.secret, k.weight) for k in keys] == [
        ("openai-1", "sk-from-env", 1),
        ("team-b", "sk-from-file", 3),
    ]
    assert config.providers["claude"].base_url == "https://api.anthropic.com"
    assert config.models["gpt-4o-mini"].retry.attempts == 3
    described = config.describe()
    assert "model gpt-4o-mini: weighted_round_robin over openai/gpt-4o-mini" in described
    for secret in ("sk-from-env", "sk-from-file", "sk-ant-literal-key", "client-secret"):
        assert secret not in described
        assert secret not in repr(config)


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            ('strategy = "weighted_round_robin"', 'strategy = "fastest"'),
            "[models.gpt-4o-mini] strategy",
            "expected one of round_robin",
        ),
        (
            ('targets = ["openai/gpt-4o-mini"]', 'targets = ["nope/gpt"]'),
            "[models.gpt-4o-mini] targets[0]",
            "no provider 'nope'",
        ),
        (
            ('targets = ["openai/gpt-4o-mini"]', 'targets = ["gpt"]'),
            "[models.gpt-4o-mini] targets[0]",
            "provider/upstream-model",
        ),
        (
            ('fallbacks = ["claude-haiku"]', 'fallbacks = ["claude-opus"]'),
            "[models.gpt-4o-mini] fallbacks",
            "'claude-opus' is not a model",
        ),
        (("weight = 3", "weight = 0"), "[providers.openai] keys[1].weight", "at least 1"),
        (('kind = "anthropic"', 'kind = "gemini"'), "[providers.claude] kind", "expected one of"),
        (("port = 9999", "port = 99999"), "[server] port", "0 to 65535"),
        (("port = 9999", 'port = "80"'), "[server] port", "expected int"),
        (("attempts = 3", "atempts = 3"), "[models.gpt-4o-mini] atempts", "unknown field"),
        (
            ('kind = "openai"', 'kind = "openai"\nreasoning = "yes"'),
            "[providers.openai] reasoning",
            "expected bool",
        ),
        (
            ('keys = ["sk-ant-literal-key"]', "keys = []"),
            "[providers.claude] keys",
            "at least one key",
        ),
        (
            ('"env:BYOK_TEST_A"', '"env:BYOK_UNSET_VARIABLE"'),
            "[providers.openai] keys[0]",
            "BYOK_UNSET_VARIABLE is not set",
        ),
        (
            ("file:KEYFILE", "file:/nonexistent/key"),
            "[providers.openai] keys[1].key",
            "cannot read key file",
        ),
    ],
)
def test_errors_name_the_file_table_and_field(tmp_path, monkeypatch, change, where, message):
    keyfile = tmp_path / "b.key"
    keyfile.write_text("sk-from-file")
    monkeypatch.setenv("BYOK_TEST_A", "sk-from-env")
    monkeypatch.setenv("BYOK_TEST_CLIENT", "client-secret")
    text = GOOD.replace(*change).replace("KEYFILE", keyfile.as_posix())
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: {where}: ")
    assert message in str(caught.value)
    assert "sk-from-env" not in str(caught.value)


def test_a_provider_says_whether_its_models_take_reasoning_effort():
    def provider(**options):
        tables = {
            "providers": {"local": {"kind": "openai_compatible", "keys": ["k"], **options}},
            "models": {"m": {"targets": ["local/qwen"]}},
        }
        tables["providers"]["local"]["base_url"] = "http://127.0.0.1:8000/v1"
        return from_dict(tables, "test").providers["local"]

    assert provider().reasoning is None  # by the model's name (translation.chat_target)
    assert provider(reasoning=True).reasoning is True
    assert provider(reasoning=False).reasoning is False


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[server\nport = 1"))
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "missing.toml")


def test_open_listener_without_client_keys_is_refused():
    with pytest.raises(ConfigError, match="client_keys"):
        from_dict(
            {
                "server": {"host": "0.0.0.0"},
                "providers": {"openai": {"keys": ["sk-x"]}},
            }
        )


def test_environment_default(monkeypatch):
    env = {"OPENAI_API_KEYS": "sk-a, sk-b,sk-a", "ANTHROPIC_API_KEY": "sk-ant-1"}
    config = from_environment(env)
    assert [k.secret for k in config.providers["openai"].keys] == ["sk-a", "sk-b"]
    assert config.providers["anthropic"].passthrough
    assert config.models == {}


def test_environment_without_keys_says_what_to_set():
    with pytest.raises(ConfigError) as caught:
        from_environment({})
    text = str(caught.value)
    for needed in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "--config", "byok demo"):
        assert needed in text


def test_a_file_that_is_not_utf8_is_a_located_config_error(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[providers.openai]\nkeys = ["caf\xe9"]\n')
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(bad)


def test_describe_shows_limits_budgets_and_the_ledger():
    from byok.config import from_dict

    config = from_dict(
        {
            "server": {
                "client_keys": [
                    "sk-plain-client-01",
                    {
                        "key": "sk-team-client-01",
                        "label": "team",
                        "models": ["m"],
                        "rpm": 60,
                        "monthly_cost": 5.0,
                    },
                ]
            },
            "providers": {"openai": {"keys": [{"key": "sk-up-000001", "tpm": 200000}]}},
            "models": {"m": {"targets": ["openai/x"], "rpm": 1000, "max_inflight": 8}},
            "usage": {"path": "/srv/byok/usage.sqlite3"},
        },
        "t.toml",
    )
    text = config.describe()
    assert "client key team: rpm 60, monthly_cost $5.00, models m" in text
    assert "client key client-1" not in text  # a plain key has nothing to say
    assert "weight 1, tpm 200,000)" in text
    assert (
        "model m: weighted_round_robin over openai/x; each target: rpm 1000, max_inflight 8" in text
    )
    assert text.endswith("usage ledger: /srv/byok/usage.sqlite3")
    assert "sk-" not in text
