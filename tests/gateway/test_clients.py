"""Client keys as virtual keys, over real sockets: allowed models, rpm and
tpm with a correct Retry-After, budgets counted in the usage ledger (and
surviving a restart), and the ledger's totals against the upstream's usage.

Under MockClock (autojump): the minutes of a rate are virtual; a budget's
day and month are the wall clock's, which the tests never wait on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from byok.config import from_dict
from byok.telemetry.usage_book import read_rows

from ..stack import LiveStack, open_stack

SECRETS = {"sk-cli-alpha-000": "alpha", "sk-cli-bravo-000": "bravo"}
TEAM = {"authorization": "Bearer team-key-0001"}
BOT = {"authorization": "Bearer bot-key-0002"}
ASK = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


def tables_with(ledger: Path, team: dict[str, Any], bot: dict[str, Any] | None = None) -> Any:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {
                "client_keys": [
                    {"key": "team-key-0001", "label": "team", **team},
                    {"key": "bot-key-0002", "label": "bot", **(bot or {})},
                ]
            },
            "providers": {
                "sim": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
                }
            },
            "models": {"m": {"targets": ["sim/up"]}, "other": {"targets": ["sim/up2"]}},
            "prices": {"up": {"input": 1.0, "output": 2.0}},
            "usage": {"path": str(ledger)},
        }

    return tables


async def ask(
    stack: LiveStack, who: dict[str, str], model: str = "m", **extra: Any
) -> httpx.Response:
    return await stack.client.post(
        "/v1/chat/completions", json={"model": model, **ASK, **extra}, headers=who
    )


async def test_a_client_over_its_rpm_gets_429_with_a_correct_retry_after(autojump_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db", {"rpm": 3}), SECRETS) as stack:
        for _ in range(3):
            assert (await ask(stack, TEAM)).status_code == 200
        refused = await ask(stack, TEAM)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "20"  # a minute's 3 requests: one per 20 s
        assert refused.headers["x-should-retry"] == "true"
        assert (
            "client key 'team' is over its rpm (3 requests a minute)"
            in (refused.json()["error"]["message"])
        )
        assert (await ask(stack, BOT)).status_code == 200  # another client is not held back
        await trio.sleep(19.5)
        assert (await ask(stack, TEAM)).status_code == 429
        await trio.sleep(0.5)
        assert (await ask(stack, TEAM)).status_code == 200
        assert (
            stack.simulator.requests_for(next(iter(SECRETS)))
            + stack.simulator.requests_for(list(SECRETS)[1])
            == 5
        )  # the refused requests never went upstream


async def test_a_clients_tpm_counts_the_estimate_then_the_real_tokens(autojump_clock, tmp_path):
    async with open_stack(tables_with(tmp_path / "u.db", {"tpm": 2000}), SECRETS) as stack:
        first = await ask(stack, TEAM, max_tokens=1500)  # an estimate of ~1,520
        assert first.status_code == 200
        # the answer used far fewer: given back, so a second one fits at once
        assert (await ask(stack, TEAM, max_tokens=1500)).status_code == 200
        huge = await ask(stack, TEAM, max_tokens=1990)
        assert huge.status_code == 429
        assert "over its tpm (2000 tokens a minute)" in huge.json()["error"]["message"]


async def test_a_client_may_use_only_its_models(autojump_clock, tmp_path):
    tables = tables_with(tmp_path / "u.db", {"models": ["m"]})
    async with open_stack(tables, SECRETS) as stack:
        assert (await ask(stack, TEAM, "m")).status_code == 200
        refused = await ask(stack, TEAM, "other")
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == (
            "client key 'team' may not use model 'other'; allowed: m"
        )
        assert (await ask(stack, BOT, "other")).status_code == 200
        assert refused.json()["error"]["type"]  # OpenAI's error shape


async def test_a_monthly_token_budget_survives_a_restart(autojump_clock, tmp_path):
    ledger = tmp_path / "u.db"
    tables = tables_with(ledger, {"monthly_tokens": 40})
    async with open_stack(tables, SECRETS) as stack:
        used = 0
        while used < 40:
            reply = await ask(stack, TEAM)
            assert reply.status_code == 200
            used += reply.json()["usage"]["total_tokens"]
        refused = await ask(stack, TEAM)
        assert refused.status_code == 429
        assert refused.headers["x-should-retry"] == "false"
        assert int(refused.headers["retry-after"]) > 0  # until the next month
        assert (
            "has spent its monthly token budget (40 tokens; used"
            in (refused.json()["error"]["message"])
        )
    # a new process on the same ledger: the month is still spent
    async with open_stack(tables, SECRETS) as stack:
        again = await ask(stack, TEAM)
        assert again.status_code == 429
        assert "monthly token budget" in again.json()["error"]["message"]
        assert (await ask(stack, BOT)).status_code == 200


async def test_a_monthly_cost_budget_at_the_operators_prices(autojump_clock, tmp_path):
    tables = tables_with(tmp_path / "u.db", {"monthly_cost": 0.00001})
    async with open_stack(tables, SECRETS) as stack:
        first = await ask(stack, TEAM)
        assert first.status_code == 200
        usage = first.json()["usage"]
        cost = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
        assert cost >= 0.00001  # one answer spends it
        refused = await ask(stack, TEAM)
        assert refused.status_code == 429
        assert "monthly cost budget ($0.00; spent $0.00)" in refused.json()["error"]["message"]


async def test_the_ledger_totals_equal_the_usage_the_upstream_returned(autojump_clock, tmp_path):
    ledger = tmp_path / "u.db"
    expected = {"team": [0, 0, 0], "bot": [0, 0, 0]}
    async with open_stack(tables_with(ledger, {}), SECRETS) as stack:
        for n in range(12):
            who, name = (TEAM, "team") if n % 3 else (BOT, "bot")
            if n % 4 == 0:  # a stream that asks for its usage: the last event tells it
                async with stack.client.stream(
                    "POST",
                    "/v1/chat/completions",
                    json={
                        "model": "m",
                        **ASK,
                        "stream": True,
                        "stream_options": {"include_usage": True},
                    },
                    headers=who,
                ) as reply:
                    events = [
                        json.loads(line[6:])
                        async for line in reply.aiter_lines()
                        if line.startswith("data: {")
                    ]
                usage = next(e["usage"] for e in events if e.get("usage"))
            else:
                usage = (await ask(stack, who)).json()["usage"]
            expected[name][0] += 1
            expected[name][1] += usage["prompt_tokens"]
            expected[name][2] += usage["completion_tokens"]
        await ask(stack, TEAM, "nope")  # a 404: refused before any key, not in the ledger
    rows = read_rows(ledger, by=("client",))
    got = {r["client"]: [r["requests"], r["input_tokens"], r["output_tokens"]] for r in rows}
    assert got == expected
    assert sum(r["cost"] for r in read_rows(ledger, by=("client",))) > 0
    # and `byok usage` prints the same totals
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "byok",
            "usage",
            "--db",
            str(ledger),
            "--by",
            "client",
            "--format",
            "json",
            "--since",
            "30d",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert {r["client"]: r["requests"] for r in json.loads(printed.stdout)} == {
        "team": expected["team"][0],
        "bot": expected["bot"][0],
    }


def test_a_budget_without_the_usage_ledger_is_refused():
    from byok.config import ConfigError

    tables = tables_with(Path("unused"), {"daily_tokens": 10})("http://127.0.0.1:9")
    tables["usage"] = {"enabled": False}
    with pytest.raises(
        ConfigError, match=r"client_keys\[0\]: a budget .* is counted in the usage ledger"
    ):
        from_dict(tables, "test")


def test_the_readmes_capacity_example_is_a_valid_config():
    """The README's capacity block loads as written (its env: keys given),
    and its `byok usage` lines are accepted by the parser."""
    from byok.cli import _parser
    from byok.config import tomllib

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Capacity", 1)[1].split("\n### ", 1)[0]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    names = ("BYOK_CLIENT_KEY", "TEAM_A_KEY", "TEAM_B_KEY")
    environ = {name: f"sk-{name.lower()}-0001" for name in names}
    environ["OPENAI_KEY_A"] = "sk-openai-a-0001"
    config = from_dict(tomllib.loads(block), "README", environ=environ)
    team, other = config.server.client_keys[1:]
    assert (team.label, team.models, team.rpm) == ("team-a", ("gpt-4o-mini",), 60)
    assert (other.label, other.models, other.monthly_cost) == ("team-b", None, 50.0)
    assert config.models["gpt-4o-mini"].limits.max_inflight == 64
    assert config.prices["gpt-4o-mini"].cost(1_000_000, 0) == 0.15
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line for line in commands.splitlines() if line.strip()]
    assert len(lines) == 3
    for line in lines:
        words = line.split("#")[0].split(">")[0].split()  # the indented block's lines
        assert words[:2] == ["byok", "usage"], line
        assert _parser().parse_args(words[1:]).command == "usage"


async def test_a_reload_that_moves_the_ledger_says_a_restart_is_needed(autojump_clock, tmp_path):
    first = tables_with(tmp_path / "u.db", {"rpm": 3})
    async with open_stack(first, SECRETS) as stack:
        assert (await ask(stack, TEAM)).status_code == 200
        moved = tables_with(tmp_path / "elsewhere.db", {"rpm": 3})(stack.upstream_url)
        # swap() is what a reload does once the file is read: here without the
        # reading thread, during which MockClock's autojump could run out the
        # client's keep-alive connection in virtual time
        summary = stack.app.live.swap(from_dict(moved, "test"))
        assert summary["restart_needed"] == ["[usage]"]
        assert stack.app.live.usage_book is not None
        assert stack.app.live.usage_book.path == tmp_path / "u.db"  # still the one of the start
        # the client's minute carried over the reload: 2 of its 3 left
        assert [(await ask(stack, TEAM)).status_code for _ in range(3)] == [200, 200, 429]
