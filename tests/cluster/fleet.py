"""Replicas of byok in the test's trio run, as hosts behind a load balancer
would run them: each its own App, listener, cluster connection and admin
API, all of them in front of one simulated upstream, sharing one Redis.

Real Redis means real time: these run on trio's own clock, with cooldowns of
minutes so that no assertion depends on the machine's speed, and every wait
for another replica is bounded (``eventually``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import coredis
import httpx
import trio
from coredis.retry import NoRetryPolicy

from byok.app import App
from byok.cli.simulator import SimulatedUpstream
from byok.cluster import Replica, serve_cluster
from byok.config import from_dict
from byok.http.server import bound_port, serve_http

SECRETS = {"sk-fleet-ALPHA-0001": "alpha", "sk-fleet-BRAVO-0002": "bravo"}
SECRETS["sk-fleet-CHARLIE-0003"] = "charlie"
ALPHA, BRAVO, CHARLIE = SECRETS
ADMIN_KEY = "adm-fleet-ADMINKEY-0001"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
WAIT = 10.0  # seconds any replica gets to hear of another's news


def tables(upstream: str, redis: str, prefix: str, replica: str, **server: Any) -> dict[str, Any]:
    return {
        "server": {"admin_keys": [ADMIN_KEY], "cooldown": 60, "max_cooldown": 300, **server},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
            }
        },
        # priority: alpha serves while it can, so a test knows which key a request takes
        "models": {"m": {"targets": ["sim/up"], "strategy": "priority"}},
        "cluster": {"redis": redis, "prefix": prefix, "replica": replica},
    }


@dataclass
class Node:
    """One replica: its app, its cluster side, and a client for its listener."""

    name: str
    app: App
    replica: Replica
    client: httpx.AsyncClient

    def state(self, label: str) -> str:
        selector = self.app.live.runtime.router.pool("sim", "up").selector
        return str(selector.state(label, now=trio.current_time()))

    def remaining(self, label: str) -> float:
        selector = self.app.live.runtime.router.pool("sim", "up").selector
        view = next(v for v in selector.snapshot(now=trio.current_time()) if v["id"] == label)
        return float(view["cooldown_remaining"])

    async def ask(self) -> httpx.Response:
        return await self.client.post("/v1/chat/completions", json=ASK)

    async def act(self, label: str, action: str) -> None:
        reply = await self.client.post(f"/admin/keys/{label}/{action}", headers=ADMIN)
        assert reply.status_code == 200, reply.text

    async def metric(self, name: str) -> float:
        page = (await self.client.get("/metrics", headers=ADMIN)).text
        line = next(line for line in page.splitlines() if line.startswith(name + " "))
        return float(line.split()[1])


class Fleet:
    def __init__(self, nursery: trio.Nursery, redis: str, prefix: str) -> None:
        self.nursery = nursery
        self.redis = redis
        self.prefix = prefix
        self.simulator = SimulatedUpstream()
        for secret, name in SECRETS.items():
            self.simulator.add_key(secret, name)
        self.upstream_url = ""
        self.nodes: list[Node] = []

    async def start(self, name: str, more: dict[str, Any] | None = None, **server: Any) -> Node:
        """A replica that has synced (or given up on Redis) and then listens;
        `more`: tables to add to its config ([usage], ...)."""
        config = from_dict(
            {**tables(self.upstream_url, self.redis, self.prefix, name, **server), **(more or {})},
            f"replica {name}",
        )
        assert config.cluster is not None
        app = App(config)
        replica = await self.nursery.start(serve_cluster, app.live, config.cluster)
        listeners = await self.nursery.start(serve_http, app, "127.0.0.1", 0)
        self.nursery.start_soon(app.maintain)
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound_port(listeners)}")
        node = Node(name, app, replica, client)
        self.nodes.append(node)
        return node


@asynccontextmanager
async def open_fleet(redis: str, prefix: str) -> AsyncIterator[Fleet]:
    async with trio.open_nursery() as nursery:
        fleet = Fleet(nursery, redis, prefix)
        upstream = await nursery.start(serve_http, fleet.simulator, "127.0.0.1", 0)
        fleet.upstream_url = f"http://127.0.0.1:{bound_port(upstream)}"
        try:
            yield fleet
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True):
                for node in fleet.nodes:
                    await node.client.aclose()
                    await node.app.aclose()


async def eventually(check: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    """Wait until `check()` holds, at most `seconds` (real time: Redis is real)."""
    with trio.move_on_after(seconds):
        while not check():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"not within {seconds:g}s: {what}")


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[coredis.Redis[str]]:
    """A Redis client of the test's own, as a replica has one."""
    client: coredis.Redis[str] = coredis.Redis.from_url(
        url, decode_responses=True, retry_policy=NoRetryPolicy()
    )
    async with client:
        yield client
