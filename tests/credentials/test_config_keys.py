"""Short-lived keys in the config: an OAuth file (or a directory holding one)
and its provider's [oauth] table, a token command; each mistake a config
error at load, located, that shows no token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from byok.config import ConfigError, from_dict, load
from byok.credentials import OAuthClient, OAuthFile, TokenCommand

CLAUDE = {"claudeAiOauth": {"accessToken": "sk-ant-oat01-SECRET", "refreshToken": "rt-SECRET"}}


def tables(key: dict[str, Any], kind: str = "anthropic", **provider: Any) -> dict[str, Any]:
    extra = {"base_url": "http://127.0.0.1:9/v1"} if kind == "openai_compatible" else {}
    return {"providers": {"p": {"kind": kind, "keys": [key], **extra, **provider}}}


def error(data: dict[str, Any], directory: Path | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        from_dict(data, "byok.toml", environ={}, directory=directory)
    message = str(caught.value)
    assert "SECRET" not in message
    return message


@pytest.fixture
def claude(tmp_path: Path) -> Path:
    path = tmp_path / ".claude" / ".credentials.json"
    path.parent.mkdir()
    path.write_text(json.dumps(CLAUDE))
    return path


def test_an_oauth_file_takes_its_kinds_token_endpoint_and_headers(claude: Path):
    config = from_dict(tables({"oauth": str(claude), "label": "max", "weight": 2}))
    key = config.providers["p"].keys[0]
    assert key.secret == ""
    assert key.weight == 2
    assert key.source == OAuthFile(
        str(claude),
        OAuthClient(
            "https://console.anthropic.com/v1/oauth/token",
            "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
            token_format="json",
        ),
        (("anthropic-beta", "oauth-2025-04-20"),),
    )
    assert key.fingerprint.startswith("fp-")
    assert "SECRET" not in repr(key) + config.describe()
    assert f"oauth {claude}, refreshed by byok" in config.describe()
    assert config.short_lived()[0].label == "max"


def test_a_directory_a_relative_path_and_the_oauth_table(claude: Path, tmp_path: Path):
    data = tables(
        {"oauth": ".claude", "headers": {"X-Account": "team"}},
        kind="openai_compatible",
        oauth={
            "token_url": "https://auth.example/token",
            "client_id": "my-app",
            "client_secret": "env:CLIENT_SECRET",
            "scope": "inference",
            "refresh_margin": 600,
        },
    )
    config = from_dict(data, environ={"CLIENT_SECRET": "cs-SECRET"}, directory=tmp_path)
    source = config.providers["p"].keys[0].source
    assert isinstance(source, OAuthFile)
    assert source.path == str(claude)
    assert source.client == OAuthClient(
        "https://auth.example/token", "my-app", "cs-SECRET", "inference", 600.0, "form"
    )
    assert source.headers == (("x-account", "team"),)
    assert "cs-SECRET" in config.secrets()  # redacted wherever it might show


def test_a_kind_without_a_token_endpoint_reads_the_file_only(claude: Path):
    config = from_dict(tables({"oauth": str(claude)}, kind="openai_compatible"))
    source = config.providers["p"].keys[0].source
    assert isinstance(source, OAuthFile)
    assert source.client is None
    assert "not refreshed by byok" in config.describe()


def test_a_command_key(tmp_path: Path):
    config = from_dict(tables({"command": ["true", "print-token"], "ttl": 3000, "label": "g"}))
    key = config.providers["p"].keys[0]
    assert key.source == TokenCommand(("true", "print-token"), 3000.0, 30.0)
    assert "command true, ttl 3000s" in config.describe()


def test_a_toml_file_with_both_kinds(claude: Path, tmp_path: Path):
    path = tmp_path / "byok.toml"
    path.write_text(
        """
[providers.claude]
kind = "anthropic"
keys = [
  { oauth = ".claude/.credentials.json", label = "max" },
  { command = ["true"], ttl = 600, timeout = 5, label = "cmd" },
  "sk-ant-static-key",
]
[providers.claude.oauth]
refresh_margin = 120
"""
    )
    keys = load(path).providers["claude"].keys
    assert [k.label for k in keys] == ["max", "cmd", "claude-3"]
    assert isinstance(keys[0].source, OAuthFile)
    assert keys[0].source.client is not None
    assert keys[0].source.client.refresh_margin == 120
    assert keys[1].source == TokenCommand(("true",), 600.0, 5.0)
    assert keys[2].source is None


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (
            {"oauth": "missing.json"},
            "[providers.p] keys[0].oauth: credential file {dir}/missing.json not found",
        ),
        ({"oauth": "."}, "[providers.p] keys[0].oauth: directory {dir} holds no credential file"),
        ({"oauth": "bad.json"}, "[providers.p] keys[0].oauth: {dir}/bad.json is not JSON"),
        ({"oauth": "empty.json"}, "holds no access or refresh token"),
        ({"key": "sk-1", "oauth": "x"}, "[providers.p] keys[0].oauth: give one of key, oauth"),
        ({"key": "sk-1", "ttl": 5}, "[providers.p] keys[0].ttl: ttl is for command keys only"),
        ({"key": "sk-1", "headers": {}}, "keys[0].headers: headers is for oauth and command"),
        ({"oauth": "good.json", "command": ["true"]}, "keys[0].command: give one of key, oauth"),
        ({"oauth": "good.json", "timeout": 3}, "keys[0].timeout: timeout is for command keys"),
        ({"command": []}, "keys[0].command: expected a program and its arguments"),
        ({"command": ["no-such-program-byok"]}, "program 'no-such-program-byok' not found"),
        ({"command": ["true"], "ttl": 0}, "keys[0].ttl: expected seconds above 0 to 1e8, got 0"),
        ({"label": "x"}, "[providers.p] keys[0].key: missing; expected a key"),
        ({"command": ["true"], "headers": {"Authorization": "x"}}, "Authorization is byok's"),
        ({"command": ["true"], "headers": {"bad name": "x"}}, "'bad name' is not a header name"),
        ({"command": ["true"], "headers": {"x-a": "1\r\nx-b: 2"}}, "a header value is one line"),
    ],
)
def test_mistakes_are_config_errors_at_load(tmp_path: Path, key, expected):
    (tmp_path / "bad.json").write_text('{"access_token": "SECRET')
    (tmp_path / "empty.json").write_text('{"user": "me"}')
    (tmp_path / "good.json").write_text(json.dumps(CLAUDE))
    message = error(tables(key), tmp_path)
    assert expected.format(dir=tmp_path) in message


def test_a_token_url_needs_a_client_id_where_the_kind_has_none(claude: Path):
    data = tables(
        {"oauth": str(claude)}, kind="openai_compatible", oauth={"token_url": "https://x/token"}
    )
    assert "[providers.p.oauth] client_id: required with token_url" in error(data)


def test_the_same_file_twice_is_one_key_listed_twice(claude: Path):
    data = {"providers": {"p": {"kind": "anthropic", "keys": [{"oauth": str(claude)}] * 2}}}
    assert "the same key is listed twice" in error(data)


@pytest.mark.parametrize(
    ("token_url", "expected"),
    [
        ("http://auth.example/token", "expected an https:// URL (http:// only to this host)"),
        ("https://me:SECRET@auth.example/token", "a token URL holds no user or password"),
    ],
)
def test_a_token_url_that_would_expose_the_refresh_token_is_refused(claude, token_url, expected):
    data = tables({"oauth": str(claude)}, oauth={"token_url": token_url, "client_id": "c"})
    assert f"[providers.p.oauth] token_url: {expected}" in error(data)


def test_a_token_url_on_this_host_may_be_plain_http(claude):
    data = tables({"oauth": str(claude)}, oauth={"token_url": "http://127.0.0.1:9/token"})
    source = from_dict(data).providers["p"].keys[0].source
    assert isinstance(source, OAuthFile)
    assert source.client is not None
    assert source.client.token_url == "http://127.0.0.1:9/token"


def test_a_relative_program_path_is_from_the_configs_directory(tmp_path: Path):
    program = tmp_path / "bin" / "print-token"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho token\n")
    program.chmod(0o755)
    data = tables({"command": ["bin/print-token", "--quiet"]})
    config = from_dict(data, environ={}, directory=tmp_path)
    assert config.providers["p"].keys[0].source == TokenCommand((str(program), "--quiet"))
