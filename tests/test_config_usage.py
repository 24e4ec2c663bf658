"""The [usage] and [prices] tables: where the usage ledger is kept, and what
the operator says a model's tokens cost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from byok.config import (
    Config,
    ConfigError,
    Price,
    Usage,
    default_usage_path,
    from_dict,
    from_environment,
    load,
    read_usage,
)

PROVIDERS = {"openai": {"keys": ["sk-usage-test"]}}


def config(directory: str | None = None, **tables: object) -> Config:
    return from_dict(
        {"providers": PROVIDERS, **tables}, "byok.toml", environ={}, directory=directory
    )


def error(**tables: object) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**tables)
    return str(caught.value)


# ---- [usage] -----------------------------------------------------------------------


def test_without_a_usage_table_the_ledger_is_on_at_the_default_path():
    # the process's own default (XDG_DATA_HOME and so on), whatever `environ`
    # gives secrets from: a Config built by hand has the same
    default = default_usage_path()
    assert config().usage == Usage(default, enabled=True)
    assert config(usage={}).usage == Usage(default, enabled=True)
    assert config(usage={"enabled": False}).usage == Usage(default, enabled=False)
    environment = from_environment({"OPENAI_API_KEY": "sk-x", "XDG_DATA_HOME": "/elsewhere"})
    assert environment.usage == Usage(default)
    by_hand = Config(source="x", server=config().server, providers={}, models={})
    assert by_hand.usage == config().usage


def test_the_default_path_follows_each_platform():
    home = Path.home()
    linux = {"XDG_DATA_HOME": "/srv/data"}
    assert default_usage_path(linux, "linux") == "/srv/data/byok/usage.sqlite3"
    fallback = str(home / ".local" / "share" / "byok" / "usage.sqlite3")
    assert default_usage_path({}, "linux") == fallback
    assert default_usage_path({"XDG_DATA_HOME": ""}, "linux") == fallback
    assert default_usage_path({"XDG_DATA_HOME": "relative/dir"}, "linux") == fallback  # invalid
    assert default_usage_path(linux, "darwin") == str(
        home / "Library" / "Application Support" / "byok" / "usage.sqlite3"
    )
    windows = {"LOCALAPPDATA": r"C:\Users\ada\AppData\Local"}
    assert default_usage_path(windows, "win32") == r"C:\Users\ada\AppData\Local\byok\usage.sqlite3"


def test_a_relative_path_is_from_the_config_files_directory(tmp_path):
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "byok.toml"
    path.write_text(
        '[providers.openai]\nkeys = ["sk-usage-test"]\n'
        '[usage]\npath = "../var/usage.sqlite3"\nenabled = false\n'
    )
    expected = Usage(str(tmp_path / "var" / "usage.sqlite3"), enabled=False)
    assert load(path).usage == expected
    assert read_usage(path) == expected
    # from_dict without a file: from `directory`, else the working directory
    assert config("/srv", usage={"path": "u.db"}).usage.path == "/srv/u.db"
    assert config(usage={"path": "u.db"}).usage.path == os.path.join(os.getcwd(), "u.db")


def test_an_absolute_path_stays_and_tilde_is_the_home_directory():
    assert config("/srv", usage={"path": "/var/lib/byok/u.db"}).usage.path == "/var/lib/byok/u.db"
    assert config("/srv", usage={"path": "~/u.db"}).usage.path == str(Path.home() / "u.db")


def test_read_usage_reads_that_table_alone(tmp_path):
    # a file the proxy would refuse (its key's variable is not set here) still says
    # where its ledger is: `byok usage` needs nothing else of it
    path = tmp_path / "byok.toml"
    path.write_text('[providers.openai]\nkeys = ["env:BYOK_TEST_UNSET"]\n[usage]\npath = "u.db"\n')
    assert read_usage(path) == Usage(str(tmp_path / "u.db"))
    with pytest.raises(ConfigError, match="BYOK_TEST_UNSET is not set"):
        load(path)
    bare = tmp_path / "bare.toml"
    bare.write_text("[server]\nport = 1\n")
    assert read_usage(bare) == Usage(default_usage_path())
    with pytest.raises(ConfigError, match=r"missing\.toml: file not found"):
        read_usage(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text('[usage]\npath = "u.db"\nsize = 3\n')
    with pytest.raises(ConfigError, match=r"\[usage\] size: unknown field"):
        read_usage(broken)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"path": "u.db", "enabeld": False},
            "byok.toml: [usage] enabeld: unknown field; expected one of: enabled, path",
        ),
        ({"enabled": "yes"}, "byok.toml: [usage] enabled: expected bool, got a string"),
        ({"path": ""}, "byok.toml: [usage] path: expected a file path, got an empty string"),
        ({"path": 3}, "byok.toml: [usage] path: expected str (a file path), got 3"),
        ("on", "byok.toml: [usage]: expected table, got a string"),
    ],
)
def test_a_wrong_usage_table_is_located(usage, expected):
    assert error(usage=usage) == expected


def test_a_directory_is_not_a_ledger_path(tmp_path):
    message = error(usage={"path": str(tmp_path)})
    assert message == (
        f"byok.toml: [usage] path: {tmp_path} is a directory: name a file in it, "
        f"such as {tmp_path / 'usage.sqlite3'}"
    )


# ---- [prices] ----------------------------------------------------------------------


def test_prices_are_per_million_tokens_and_price_a_request():
    prices = config(
        prices={"gpt-4o": {"input": 2.5, "output": 10}, "free": {"input": 0, "output": 0}}
    ).prices
    assert prices == {"gpt-4o": Price(input=2.5, output=10.0), "free": Price(0.0, 0.0)}
    assert prices["gpt-4o"].cost(1_000_000, 0) == 2.5
    assert prices["gpt-4o"].cost(1000, 500) == pytest.approx(0.0075)
    assert prices["free"].cost(10**9, 10**9) == 0
    assert config().prices == {}


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        (
            {"gpt-4o": {"input": 2.5, "ouput": 10}},
            "byok.toml: [prices.gpt-4o] ouput: unknown field; expected one of: input, output",
        ),
        (
            {"gpt-4o": {"input": 2.5}},
            "byok.toml: [prices.gpt-4o] output: missing; expected a price in USD per "
            "million tokens, from 0 to 1e6",
        ),
        (
            {"gpt-4o": {"input": -1, "output": 10}},
            "byok.toml: [prices.gpt-4o] input: expected a price in USD per million tokens, "
            "from 0 to 1e6, got -1",
        ),
        (
            {"gpt-4o": {"input": float("inf"), "output": 10}},
            "byok.toml: [prices.gpt-4o] input: expected a price in USD per million tokens, "
            "from 0 to 1e6, got inf",
        ),
        (
            {"gpt-4o": {"input": "2.5", "output": 10}},
            "byok.toml: [prices.gpt-4o] input: expected int or float (a price in USD per "
            "million tokens, from 0 to 1e6), got a string",
        ),
        ({"gpt-4o": 2.5}, "byok.toml: [prices.gpt-4o]: expected table, got 2.5"),
        ([1], "byok.toml: [prices]: expected table, got a list"),
    ],
)
def test_a_wrong_price_is_located(prices, expected):
    assert error(prices=prices) == expected


def test_unknown_tables_name_usage_and_prices_among_the_known():
    assert error(usgae={}) == (
        "byok.toml: usgae: unknown table; expected one of: "
        "cluster, models, prices, providers, server, usage"
    )
