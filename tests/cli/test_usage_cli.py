"""`byok usage` as a person or a script runs it: a real process reading a
ledger filled through UsageBook, as a table, CSV and JSON, grouped and
filtered, found through --db, BYOK_USAGE_DB or the config."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from byok.telemetry.usage_book import UsageBook

HOUR = 3600
DAY = 24 * HOUR
MARCH_10 = datetime(2025, 3, 10, tzinfo=timezone.utc).timestamp()


def byok_usage(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`byok usage ARGS` with no ambient ledger or config: the default path
    is under `home` (XDG_DATA_HOME)."""
    ambient = ("BYOK_USAGE_DB", "BYOK_CONFIG")
    base = {k: v for k, v in os.environ.items() if k not in ambient}
    return subprocess.run(
        [sys.executable, "-m", "byok", "usage", *args],
        env={**base, "XDG_DATA_HOME": str(home), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def fill(path: Path, rows: list[dict[str, object]]) -> None:
    """A ledger at `path` holding `rows` (UsageBook.add's arguments)."""
    book = UsageBook(path, flush_every=3600)
    try:
        for row in rows:
            book.add(**row)
    finally:
        book.close()


def row(
    at: float,
    client: str = "alice",
    model: str = "gpt-4o",
    key: str = "team-a",
    provider: str = "openai",
    **counts: object,
) -> dict[str, object]:
    return {"at": at, "client": client, "model": model, "key": key, "provider": provider, **counts}


@pytest.fixture
def march(tmp_path: Path) -> Path:
    """A ledger of March 2025: two days, two clients, two keys, two models."""
    path = tmp_path / "usage.sqlite3"
    fill(
        path,
        [
            row(MARCH_10 + 10.5 * HOUR, input_tokens=1000, output_tokens=100, cost=0.0125),
            row(MARCH_10 + 10.9 * HOUR, input_tokens=3000, output_tokens=300, cost=0.0375),
            row(MARCH_10 + 11.2 * HOUR, key="team-b", input_tokens=500, errors=1),
            row(MARCH_10 + 12 * HOUR, client="bob", model="o3", input_tokens=2_000_000, cost=4.0),
            row(MARCH_10 + DAY + HOUR, provider="anthropic", model="claude", output_tokens=7),
        ],
    )
    return path


def test_table_sums_by_day_client_model_and_key_with_a_totals_line(march, tmp_path):
    result = byok_usage("--db", str(march), "--since", "2025-03-01", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"usage from 2025-03-01 00:00 to now (UTC), {march}"
    assert lines[1].split() == [
        "day",
        "client",
        "model",
        "provider",
        "key",
        "requests",
        "input",
        "tokens",
        "output",
        "tokens",
        "errors",
        "cost",
        "(USD)",
    ]
    assert [line.split() for line in lines[2:]] == [
        ["2025-03-10", "alice", "gpt-4o", "openai", "team-a", "2", "4,000", "400", "0", "0.0500"],
        ["2025-03-10", "alice", "gpt-4o", "openai", "team-b", "1", "500", "0", "1", "0.0000"],
        ["2025-03-10", "bob", "o3", "openai", "team-a", "1", "2,000,000", "0", "0", "4.0000"],
        ["2025-03-11", "alice", "claude", "anthropic", "team-a", "1", "0", "7", "0", "0.0000"],
        ["total", "5", "2,004,500", "407", "1", "4.0500"],
    ]


def test_csv_and_json_parse_back_to_the_same_rows(march, tmp_path):
    options = ("--db", str(march), "--since", "2025-03-01", "--by", "month,client")
    expected = [
        {
            "month": "2025-03",
            "client": "alice",
            "requests": 4,
            "input_tokens": 4500,
            "output_tokens": 407,
            "errors": 1,
            "cost": 0.05,
        },
        {
            "month": "2025-03",
            "client": "bob",
            "requests": 1,
            "input_tokens": 2_000_000,
            "output_tokens": 0,
            "errors": 0,
            "cost": 4.0,
        },
    ]
    as_json = byok_usage(*options, "--format", "json", home=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == expected
    as_csv = byok_usage(*options, "--format", "csv", home=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[0] == (
        "month,client,requests,input_tokens,output_tokens,errors,cost"
    )
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert parsed == [{name: str(value) for name, value in r.items()} for r in expected]


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        ("client", [("alice", 4), ("bob", 1)]),
        ("provider", [("anthropic", 1), ("openai", 4)]),
        ("key", [("anthropic", "team-a", 1), ("openai", "team-a", 3), ("openai", "team-b", 1)]),
        ("model,client", [("claude", "alice", 1), ("gpt-4o", "alice", 3), ("o3", "bob", 1)]),
        (
            "hour",
            [
                ("2025-03-10T10:00", 2),
                ("2025-03-10T11:00", 1),
                ("2025-03-10T12:00", 1),
                ("2025-03-11T01:00", 1),
            ],
        ),
        (
            "day, day ,client",
            [("2025-03-10", "alice", 3), ("2025-03-10", "bob", 1), ("2025-03-11", "alice", 1)],
        ),
    ],
)
def test_by_groups_by_the_columns_given_in_their_order(march, tmp_path, by, expected):
    result = byok_usage(
        "--db", str(march), "--since", "2025-03-01", "--by", by, "--format", "json", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    measures = {"requests", "input_tokens", "output_tokens", "errors", "cost"}
    assert [(*(v for k, v in r.items() if k not in measures), r["requests"]) for r in rows] == (
        expected
    )


@pytest.mark.parametrize(
    ("since", "until", "requests"),
    [
        ("2025-03-11", None, 1),
        ("2025-03-10T11:00", None, 3),  # the 10:00 hour is out
        ("2025-03-10T10:59", None, 5),  # the hour that holds since counts whole
        ("2025-03-10T11:00+01:00", None, 5),  # 10:00 UTC
        ("2025-03-10", "2025-03-10T12:00Z", 3),  # until: the hours that start before it
        ("2025-03-10", "2025-03-10T11:01", 3),
        ("2025-04-01", None, 0),
    ],
)
def test_since_and_until_take_dates_and_times(march, tmp_path, since, until, requests):
    options = ["--since", since, *(["--until", until] if until else [])]
    result = byok_usage(
        "--db", str(march), *options, "--by", "month", "--format", "json", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert sum(r["requests"] for r in json.loads(result.stdout)) == requests


def test_since_takes_ages_and_defaults_to_the_start_of_this_month(tmp_path):
    now = time.time()
    month = datetime.fromtimestamp(now, timezone.utc).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    path = tmp_path / "usage.sqlite3"
    fill(
        path,
        [
            row(now - 60, input_tokens=1),
            row(now - 5 * HOUR, input_tokens=10),
            row(now - 10 * DAY, input_tokens=100),
            row(month.timestamp() - 20 * DAY, input_tokens=1000),  # last month
        ],
    )

    def tokens(*options: str) -> int:
        result = byok_usage(
            "--db", str(path), "--by", "client", "--format", "json", *options, home=tmp_path
        )
        assert result.returncode == 0, result.stderr
        return sum(r["input_tokens"] for r in json.loads(result.stdout))

    assert tokens("--since", "30m") == 1  # the hour that holds now - 30m, and on
    assert tokens("--since", "6h", "--until", "3h") == 10
    assert tokens("--since", "7d") == 11
    assert tokens("--since", "400d") == 1111
    this_month = sum(
        t for t, age in ((1, 60), (10, 5 * HOUR), (100, 10 * DAY)) if now - age >= month.timestamp()
    )
    assert tokens() == this_month
    table = byok_usage("--db", str(path), home=tmp_path)
    assert table.stdout.startswith(f"usage from {month:%Y-%m-%d} 00:00 to now (UTC)")


def test_a_missing_ledger_is_said_in_one_line_and_is_not_an_error(tmp_path):
    path = tmp_path / "nothing-yet.sqlite3"
    for form, stdout in (("table", ""), ("json", "[]\n")):
        result = byok_usage("--db", str(path), "--format", form, home=tmp_path)
        assert result.returncode == 0
        assert result.stderr == f"byok usage: no usage recorded yet at {path}\n"
        assert result.stdout == stdout
    as_csv = byok_usage("--db", str(path), "--format", "csv", "--by", "day,key", home=tmp_path)
    assert as_csv.stdout == "day,provider,key,requests,input_tokens,output_tokens,errors,cost\n"
    assert not path.exists()  # reading never creates it
    # the default path: under XDG_DATA_HOME
    default = byok_usage(home=tmp_path / "data")
    assert default.returncode == 0
    expected = tmp_path / "data" / "byok" / "usage.sqlite3"
    assert default.stderr == f"byok usage: no usage recorded yet at {expected}\n"


def test_the_ledger_comes_from_db_then_the_environment_then_the_config(march, tmp_path):
    other = tmp_path / "other.sqlite3"
    fill(other, [row(MARCH_10, client="carol")])
    config = tmp_path / "conf" / "byok.toml"
    config.parent.mkdir()
    # only [usage] is read: the key's variable need not be set here
    config.write_text(
        '[providers.openai]\nkeys = ["env:UNSET_IN_THIS_SHELL"]\n'
        '[usage]\npath = "../usage.sqlite3"\n'  # from the file's directory
    )

    def clients(*options: str, env: dict[str, str] | None = None) -> list[str]:
        result = byok_usage(
            *options,
            "--since",
            "2025-01-01",
            "--by",
            "client",
            "--format",
            "json",
            home=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        return [r["client"] for r in json.loads(result.stdout)]

    assert clients("--config", str(config)) == ["alice", "bob"]
    assert clients(env={"BYOK_CONFIG": str(config)}) == ["alice", "bob"]
    assert clients("--config", str(config), env={"BYOK_USAGE_DB": str(other)}) == ["carol"]
    assert clients(env={"BYOK_USAGE_DB": str(other)}) == ["carol"]
    assert clients("--db", str(march), env={"BYOK_USAGE_DB": str(other)}) == ["alice", "bob"]
    both = byok_usage("--db", str(march), "--config", str(config), home=tmp_path)
    assert both.returncode == 2
    assert both.stderr == "byok usage: --db and --config both name the ledger: give one\n"


def test_a_ledger_in_use_by_a_running_proxy_is_read(tmp_path):
    path = tmp_path / "usage.sqlite3"
    book = UsageBook(path, flush_every=3600)
    try:
        book.add(client="alice", provider="p", key="k", model="m", at=MARCH_10, input_tokens=5)
        book.flush()
        result = byok_usage(
            "--db", str(path), "--since", "2025-03-01", "--format", "json", home=tmp_path
        )
        assert result.returncode == 0, result.stderr
        assert [r["input_tokens"] for r in json.loads(result.stdout)] == [5]
        book.add(client="alice", provider="p", key="k", model="m", at=MARCH_10, input_tokens=1)
    finally:
        book.close()  # the proxy goes on writing after a read
    assert book.path == path
    reopened = UsageBook(path, flush_every=3600, wall=lambda: MARCH_10)
    try:
        assert reopened.spent("alice", MARCH_10).input_tokens == 6
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--since", "yesterday"], "byok usage: --since 'yesterday': expected a date"),
        (["--until", "7 days"], "byok usage: --until '7 days': expected a date"),
        (["--by", "day,week"], "byok usage: --by: 'week' is not one; give some of hour, day"),
        (["--by", ","], "byok usage: --by: nothing given; give some of"),
        (["--since", "1d", "--until", "2d"], "byok usage: --until 2d is not after --since"),
    ],
)
def test_options_that_cannot_be_read_are_said_in_one_line(march, tmp_path, options, message):
    result = byok_usage("--db", str(march), *options, home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_a_file_that_is_not_a_ledger_is_said_in_one_line(tmp_path):
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not an SQLite file at all, only some bytes" * 100)
    directory = tmp_path / "a-directory"
    directory.mkdir()
    for path, says in (
        (garbage, "file is not a database"),
        (directory, "is a directory: name the usage file in it"),
    ):
        result = byok_usage("--db", str(path), home=tmp_path)
        assert result.returncode == 2
        assert result.stderr.startswith(f"byok usage: {path}")
        assert says in result.stderr
        assert result.stderr.count("\n") == 1
