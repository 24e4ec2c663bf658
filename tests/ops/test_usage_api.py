"""GET /admin/usage over real sockets: the usage ledger's rows and totals
equal the usage the answers reported (this process's latest requests
included: they are written before the answer is read), grouped by `by`
over the period of `since` and `until`; who may ask; bad parameters; the
ledger turned off.

Under a MockClock that never moves (mock_clock, no autojump): nothing here
waits on the proxy's clock, and an answer waits on a thread (the ledger's
writer, SQLite), during which an autojump clock would leap ahead.  The
ledger's hours, days and months are the wall clock's."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..stack import LiveStack, open_stack

ADMIN_KEY = "adm-usage-ADMINKEY-0001"
SECRETS = {"sk-use-alpha-0001": "alpha", "sk-use-bravo-0002": "bravo"}
TEAM = {"authorization": "Bearer team-usage-key-0001"}
BOT = {"authorization": "Bearer bot-usage-key-0002"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
PRICES = {"up": {"input": 1.0, "output": 2.0}, "up2": {"input": 3.0, "output": 4.0}}
MEASURES = ("requests", "input_tokens", "output_tokens", "errors", "cost")


def tables_with(ledger: Path, usage: dict[str, Any] | None = None, prices: bool = True) -> Any:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {
                "admin_keys": [ADMIN_KEY],
                "client_keys": [
                    {"key": "team-usage-key-0001", "label": "team"},
                    {"key": "bot-usage-key-0002", "label": "bot"},
                ],
            },
            "providers": {
                "sim": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
                }
            },
            "models": {
                "m": {"targets": ["sim/up"], "strategy": "round_robin"},
                "other": {"targets": ["sim/up2"], "strategy": "round_robin"},
            },
            "prices": PRICES if prices else {},
            "usage": {"path": str(ledger), **(usage or {})},
        }

    return tables


class Expected:
    """What the answers' usage said, summed per (client, model, key)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Counter[str]] = {}

    def add(self, client: str, model: str, reply: httpx.Response) -> None:
        assert reply.status_code == 200, reply.text
        usage = reply.json()["usage"]
        upstream = {"m": "up", "other": "up2"}[model]
        price = PRICES[upstream]
        row = self.rows.setdefault((client, model, reply.headers["x-byok-key"]), Counter())
        row["requests"] += 1
        row["input_tokens"] += usage["prompt_tokens"]
        row["output_tokens"] += usage["completion_tokens"]
        row["cost"] += (
            usage["prompt_tokens"] * price["input"] + usage["completion_tokens"] * price["output"]
        ) / 1e6

    def grouped(self, *names: str) -> dict[tuple[str, ...], Counter[str]]:
        """The rows summed by some of client (0), model (1), key (2)."""
        out: dict[tuple[str, ...], Counter[str]] = {}
        for (client, model, key), counts in self.rows.items():
            named = {"client": client, "model": model, "key": key}
            out.setdefault(tuple(named[n] for n in names), Counter()).update(counts)
        return out


async def traffic(stack: LiveStack) -> Expected:
    """Requests of two clients for two models (round robin: both keys)."""
    expected = Expected()
    plan = [(TEAM, "team", "m")] * 3 + [(BOT, "bot", "m")] * 2 + [(TEAM, "team", "other")] * 2
    for who, name, model in plan:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        expected.add(
            name, model, await stack.client.post("/v1/chat/completions", json=body, headers=who)
        )
    return expected


async def usage(stack: LiveStack, **params: str) -> dict[str, Any]:
    reply = await stack.client.get("/admin/usage", params=params, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    return reply.json()


def measures(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in MEASURES}


def counted(counts: Counter[str]) -> dict[str, Any]:
    return {
        "requests": counts["requests"],
        "input_tokens": counts["input_tokens"],
        "output_tokens": counts["output_tokens"],
        "errors": 0,
        "cost": pytest.approx(counts["cost"], abs=1e-6),
    }


def start_of_this_month() -> float:
    now = datetime.now(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


async def test_the_rows_and_totals_are_the_answers_usage(mock_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db"), SECRETS) as stack:
        expected = await traffic(stack)
        # at once: this process's rows are written before the file is read
        answer = await usage(stack)
    assert answer["enabled"] is True
    assert answer["by"] == ["day", "client", "model", "key"]
    assert answer["columns"] == ["day", "client", "model", "provider", "key"]
    assert answer["since"] == start_of_this_month()  # the default: this UTC month
    assert answer["until"] is None
    assert answer["priced"] is True
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows = answer["rows"]
    assert {row["day"] for row in rows} == {today}
    assert {row["provider"] for row in rows} == {"sim"}
    got = {(row["client"], row["model"], row["key"]): measures(row) for row in rows}
    assert got == {
        group: counted(counts)
        for group, counts in expected.grouped("client", "model", "key").items()
    }
    assert len(rows) == 6  # team and bot on m, team on other: each with both keys
    everything = sum(expected.rows.values(), Counter())
    assert answer["totals"] == counted(everything)
    assert answer["totals"]["requests"] == 7
    assert answer["totals"]["cost"] > 0


async def test_by_groups_and_since_and_until_pick_the_hours(mock_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db"), SECRETS) as stack:
        expected = await traffic(stack)
        by_client = await usage(stack, by="client")
        assert by_client["by"] == ["client"]
        assert by_client["columns"] == ["client"]
        assert [row["client"] for row in by_client["rows"]] == ["bot", "team"]  # sorted
        assert {row["client"]: measures(row) for row in by_client["rows"]} == {
            client: counted(counts) for (client,), counts in expected.grouped("client").items()
        }

        # the order given is the columns' order; key brings its provider
        by_key = await usage(stack, by="key, model")
        assert by_key["by"] == ["key", "model"]
        assert by_key["columns"] == ["provider", "key", "model"]
        assert {(r["key"], r["model"]): measures(r) for r in by_key["rows"]} == {
            group: counted(counts) for group, counts in expected.grouped("key", "model").items()
        }

        month = await usage(stack, by="month")
        assert [r["month"] for r in month["rows"]] == [datetime.now(timezone.utc).strftime("%Y-%m")]
        assert month["rows"][0]["requests"] == 7

        # an age, a date, a period in the past, one in the future
        assert (await usage(stack, by="client", since="2h"))["totals"]["requests"] == 7
        # the answer's since is the start of the first hour counted
        before = time.time() - 3600
        since = (await usage(stack, since="1h"))["since"]
        after = time.time() - 3600
        assert since in {before - before % 3600, after - after % 3600}
        past = await usage(stack, since="2020-01-01", until="2020-02-01T00:00Z")
        assert past["rows"] == []
        assert past["totals"]["requests"] == 0
        assert past["since"] == datetime(2020, 1, 1, tzinfo=timezone.utc).timestamp()
        assert past["until"] == datetime(2020, 2, 1, tzinfo=timezone.utc).timestamp()
        future = await usage(stack, since="2999-01-01")
        assert future["rows"] == []


async def test_the_period_must_hold_something_and_the_groups_exist(mock_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db"), SECRETS) as stack:
        cases = [
            (
                {"by": "week"},
                "by: 'week' is not one; give some of hour, day, month, client, provider, key, "
                "model, comma-separated",
            ),
            ({"by": ","}, "by: nothing given; give some of"),
            ({"since": "yesterday"}, "since 'yesterday': expected a date (2026-12-01)"),
            ({"until": "3 days"}, "until '3 days': expected a date"),
            ({"since": "2h", "until": "3h"}, "until '3h' is not after since: nothing between"),
        ]
        for params, message in cases:
            reply = await stack.client.get("/admin/usage", params=params, headers=ADMIN)
            assert reply.status_code == 400, params
            error = reply.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert error["message"].startswith(message), error["message"]
            assert "\n" not in error["message"]


async def test_only_an_admin_key_opens_it(mock_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db"), SECRETS) as stack:
        anonymous = await stack.client.get("/admin/usage")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"] == "authentication_error"
        assert "an admin key is needed" in anonymous.json()["error"]["message"]
        # a client key is not an admin key
        assert (await stack.client.get("/admin/usage", headers=TEAM)).status_code == 401
        posted = await stack.client.post("/admin/usage", headers=ADMIN)
        assert posted.status_code == 405
        assert (await usage(stack))["enabled"] is True


async def test_with_the_ledger_off_it_says_so(mock_clock, tmp_path):
    tables = tables_with(tmp_path / "u.db", {"enabled": False}, prices=False)
    async with open_stack(tables, SECRETS) as stack:
        await traffic(stack)
        answer = await usage(stack, by="client")
    assert answer["enabled"] is False
    assert answer["rows"] == []
    assert answer["totals"] == dict.fromkeys(MEASURES, 0)
    assert answer["by"] == ["client"]
    assert answer["priced"] is False
    assert "[usage] enabled = false" in answer["message"]
    assert not (tmp_path / "u.db").exists()


async def test_without_prices_the_cost_is_zero_and_unpriced(mock_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db", prices=False), SECRETS) as stack:
        expected = await traffic(stack)
        answer = await usage(stack, by="client")
    assert answer["priced"] is False
    assert answer["totals"]["requests"] == sum(c["requests"] for c in expected.rows.values())
    assert answer["totals"]["cost"] == 0
    assert all(row["cost"] == 0 for row in answer["rows"])
