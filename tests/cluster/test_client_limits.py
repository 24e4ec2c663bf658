"""A client key's rates and budgets are one for the whole cluster: whatever
replica a request lands on, it draws on the same rpm and the same month.

Each replica keeps its usage ledger in a file of its own here, so that only
Redis can tell one what the other spent.  Real Redis, real time (fleet.py):
the rates are per minute, and nothing waits for one to refill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from .conftest import RedisServer
from .fleet import ASK, Node, eventually, open_fleet

TEAM_KEY = "team-fleet-KEY-0001"
TEAM = {"authorization": f"Bearer {TEAM_KEY}"}


def team(**limits: Any) -> dict[str, Any]:
    return {"client_keys": [{"key": TEAM_KEY, "label": "team", **limits}]}


def ledger(tmp_path: Path, name: str) -> dict[str, Any]:
    return {"usage": {"path": str(tmp_path / f"{name}.db")}}


async def ask(node: Node) -> httpx.Response:
    return await node.client.post("/v1/chat/completions", json=ASK, headers=TEAM)


async def test_a_clients_rpm_holds_over_every_replica(redis_server, prefix, tmp_path):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a = await fleet.start("A", ledger(tmp_path, "a"), **team(rpm=2))
        b = await fleet.start("B", ledger(tmp_path, "b"), **team(rpm=2))
        assert (await ask(a)).status_code == 200
        assert (await ask(b)).status_code == 200
        for node in (a, b):  # each replica alone would still have one left
            refused = await ask(node)
            assert refused.status_code == 429
            assert (
                "client key 'team' is over its rpm (2 requests a minute)"
                in (refused.json()["error"]["message"])
            )
            assert 1 <= int(refused.headers["retry-after"]) <= 30


async def test_a_clients_month_is_spent_for_every_replica(redis_server, prefix, tmp_path):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a = await fleet.start("A", ledger(tmp_path, "a"), **team(monthly_tokens=30))
        b = await fleet.start("B", ledger(tmp_path, "b"), **team(monthly_tokens=30))
        used = 0
        while used < 30:
            reply = await ask(a)
            assert reply.status_code == 200
            used += reply.json()["usage"]["total_tokens"]
        refused: list[httpx.Response] = []

        async def b_refuses() -> bool:
            reply = await ask(b)
            if reply.status_code == 429:
                refused.append(reply)
            return bool(refused)

        # A's spending reaches Redis through a queue: B refuses once it is there
        for _ in range(200):
            if await b_refuses():
                break
        assert refused, "B never learned that the month was spent"
        assert refused[0].headers["x-should-retry"] == "false"
        assert (
            "has spent its monthly token budget (30 tokens; used"
            in (refused[0].json()["error"]["message"])
        )


async def test_without_redis_each_replica_keeps_the_clients_rates_alone(
    own_redis: RedisServer, prefix, tmp_path
):
    own_redis.start()
    async with open_fleet(own_redis.url, prefix) as fleet:
        a = await fleet.start("A", ledger(tmp_path, "a"), **team(rpm=2))
        own_redis.kill()
        await eventually(lambda: not a.replica.connected, "A sees Redis gone")
        statuses = [(await ask(a)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]  # the group's own bucket, not none at all
