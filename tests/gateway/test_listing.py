"""GET /v1/models in passthrough mode: what the provider lists, fetched with a
ready key, kept five minutes, one fetch for concurrent requests, and the
configured names whatever happens upstream.

The upstream is the simulator behind a thin wrapper that gives its models
listing some ids (the simulator lists none) and records each listing asked
for.  The cache runs under MockClock: its minutes are virtual."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import openai
import pytest
import trio

from byok.cli.simulator import SimulatedUpstream
from byok.http.server import Request, Response, bound_port, serve_http

from ..stack import LiveStack, Stack, open_stack

ALPHA, BRAVO, CHARLIE = "sk-lst-ALPHA-0001", "sk-lst-BRAVO-0002", "sk-lst-CHARLIE-0003"
CLAUDE = "sk-ant-lst-CLAUDE-0004"
STRANGER = "sk-lst-STRANGER-0005"  # not a key of the upstream until a test adds it
LABELS = {
    ALPHA: "alpha",
    BRAVO: "bravo",
    CHARLIE: "charlie",
    CLAUDE: "claude",
    STRANGER: "stranger",
}
ADMIN_KEY = "adm-lst-ADMINKEY-0001"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
OPENAI_IDS = ["gpt-a", "gpt-b", "mine"]
ANTHROPIC_IDS = ["claude-a", "claude-b"]


class ListingUpstream:
    """The simulated upstream, whose models listing names `ids[dialect]` when
    the key may list (the simulator decides: 401, 429, delays ...)."""

    def __init__(self) -> None:
        self.simulator = SimulatedUpstream()
        self.ids = {"openai": list(OPENAI_IDS), "anthropic": list(ANTHROPIC_IDS)}
        self.asked: list[Request] = []

    async def __call__(self, request: Request) -> Response:
        answer = await self.simulator(request)
        if request.method == "GET" and request.path.endswith("/models"):
            self.asked.append(request)
            if answer.status == 200:
                anthropic = bool(request.header("anthropic-version"))
                ids = self.ids["anthropic" if anthropic else "openai"]
                if anthropic:
                    data = [{"type": "model", "id": i, "display_name": i} for i in ids]
                    body = {"data": data, "has_more": False, "first_id": ids[0]}
                else:
                    data = [{"id": i, "object": "model", "owned_by": "sim"} for i in ids]
                    body = {"object": "list", "data": data}
                answer.body = msgspec.json.encode(body)
        return answer

    def credentials(self) -> list[str]:
        """The labels of the keys the listings were asked with, in order."""
        return [
            LABELS[r.header("x-api-key") or r.header("authorization").removeprefix("Bearer ")]
            for r in self.asked
        ]


def passthrough(url: str, secrets: list[str], **extra: Any) -> dict[str, Any]:
    """A provider table as `OPENAI_API_KEYS=... byok serve` builds it."""
    return {
        "kind": "openai",
        "base_url": f"{url}/v1",
        "keys": [{"key": s, "label": LABELS[s]} for s in secrets],
        "passthrough": True,
        **extra,
    }


@asynccontextmanager
async def listing_stack(
    providers: Any, models: dict[str, Any] | None = None
) -> AsyncIterator[tuple[LiveStack, ListingUpstream]]:
    """byok in front of a ListingUpstream; `providers(url)` gives the provider
    tables; every secret of LABELS but STRANGER is a key the upstream takes."""
    upstream = ListingUpstream()
    for secret, label in LABELS.items():
        if secret != STRANGER:
            upstream.simulator.add_key(secret, label)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve_http, upstream, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}"

        def tables(_: str) -> dict[str, Any]:
            server = {"admin_keys": [ADMIN_KEY], "revalidate_blocked": 0}
            return {"server": server, "providers": providers(url), "models": models or {}}

        async with open_stack(tables) as stack:
            yield stack, upstream
        nursery.cancel_scope.cancel()


async def listed(stack: LiveStack, **headers: str) -> list[str]:
    reply = await stack.client.get("/v1/models", headers=headers)
    assert reply.status_code == 200
    return [m["id"] for m in reply.json()["data"]]


def openai_only(*secrets: str) -> Any:
    return lambda url: {"openai": passthrough(url, list(secrets))}


async def test_passthrough_lists_the_providers_models_after_the_configured_ones(autojump_clock):
    models = {"mine": {"targets": ["openai/gpt-a"]}, "other": {"targets": ["openai/gpt-b"]}}
    async with listing_stack(openai_only(ALPHA), models) as (stack, upstream):
        # configured first; "mine" is both, and listed once
        assert await listed(stack) == ["mine", "other", "gpt-a", "gpt-b"]
        (asked,) = upstream.asked
        assert asked.target == "/v1/models"
        assert asked.header("authorization") == f"Bearer {ALPHA}"


async def test_the_listing_is_kept_five_minutes_then_fetched_again(autojump_clock):
    async with listing_stack(openai_only(ALPHA)) as (stack, upstream):
        assert await listed(stack) == OPENAI_IDS
        upstream.ids["openai"].append("gpt-new")
        await trio.sleep(299)
        assert await listed(stack) == OPENAI_IDS
        assert len(upstream.asked) == 1
        await trio.sleep(2)
        assert await listed(stack) == [*OPENAI_IDS, "gpt-new"]
        assert len(upstream.asked) == 2


async def test_concurrent_requests_share_one_fetch(autojump_clock):
    async with listing_stack(openai_only(ALPHA)) as (stack, upstream):
        upstream.simulator.set(ALPHA, delay=3)  # the listing takes 3 s
        answers = []

        async def one() -> None:
            answers.append(await listed(stack))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(one)
        assert answers == [OPENAI_IDS] * 10
        assert len(upstream.asked) == 1


async def test_a_failed_fetch_still_answers_with_the_configured_names_and_logs_once(
    autojump_clock, caplog
):
    caplog.set_level(logging.INFO, logger="byok.proxy")
    # the upstream refuses STRANGER with a 401 whose message repeats the key
    models = {"mine": {"targets": ["openai/gpt-a"]}}
    async with listing_stack(openai_only(STRANGER), models) as (stack, upstream):
        reply = await stack.client.get("/v1/models")
        assert [m["id"] for m in reply.json()["data"]] == ["mine"]
        await trio.sleep(30)
        assert await listed(stack) == ["mine"]
        assert len(upstream.asked) == 1  # a failure is not asked again at once
        await trio.sleep(31)
        assert await listed(stack) == ["mine"]
        assert len(upstream.asked) == 2
        upstream.simulator.add_key(STRANGER, "stranger")  # the provider takes it now
        await trio.sleep(61)
        assert await listed(stack) == ["mine", "gpt-a", "gpt-b"]
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if "could not fetch the models listing" in m]
    assert len(failed) == 1
    assert "provider openai" in failed[0]
    assert "key stranger" in failed[0]
    assert "got 401" in failed[0]
    assert any("the models listing of provider openai answers again" in m for m in messages)
    assert not any(STRANGER in m for m in messages)
    assert STRANGER not in reply.text


async def test_a_failed_refresh_keeps_the_last_listing(autojump_clock):
    async with listing_stack(openai_only(ALPHA)) as (stack, upstream):
        assert await listed(stack) == OPENAI_IDS
        upstream.simulator.set(ALPHA, mode="500")
        await trio.sleep(301)
        assert await listed(stack) == OPENAI_IDS
        assert len(upstream.asked) == 2


async def test_an_unreachable_provider_is_given_up_within_the_deadline(autojump_clock):
    async with listing_stack(openai_only(ALPHA), {"mine": {"targets": ["openai/gpt-a"]}}) as (
        stack,
        upstream,
    ):
        upstream.simulator.set(ALPHA, mode="hang")
        started = trio.current_time()
        assert await listed(stack) == ["mine"]
        assert trio.current_time() - started == pytest.approx(10)


async def test_never_a_disabled_cooling_or_blocked_key(autojump_clock):
    """alpha is disabled by an operator, bravo cools after a 429, charlie was
    refused (401): none of them asks, so nothing is fetched.  Once alpha is
    enabled, the next try asks with alpha, and only alpha."""
    providers = openai_only(ALPHA, BRAVO, CHARLIE)
    async with listing_stack(providers, {"mine": {"targets": ["openai/gpt-a"]}}) as (
        stack,
        upstream,
    ):
        c = stack.client
        assert (await c.post("/admin/keys/alpha/disable", headers=ADMIN)).status_code == 200
        upstream.simulator.set(BRAVO, mode="429", retry_after=600)
        upstream.simulator.set(CHARLIE, mode="401")
        asked = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
        assert (await c.post("/v1/chat/completions", json=asked)).status_code == 429
        states = {k["label"]: k["state"] for k in await keys(stack)}
        assert states == {"alpha": "disabled", "bravo": "cooldown", "charlie": "blocked"}
        assert await listed(stack) == ["mine"]
        assert upstream.asked == []
        await c.post("/admin/keys/alpha/enable", headers=ADMIN)
        await trio.sleep(61)
        assert await listed(stack) == ["mine", "gpt-a", "gpt-b"]
        assert upstream.credentials() == ["alpha"]


async def test_a_refused_key_hands_the_listing_to_the_next_and_three_refusals_end_it(
    autojump_clock,
):
    async with listing_stack(openai_only(ALPHA, BRAVO)) as (stack, upstream):
        upstream.simulator.set(ALPHA, mode="403")
        assert await listed(stack) == OPENAI_IDS
        assert upstream.credentials() == ["alpha", "bravo"]
    # a pool of four keys that the provider all refuses: three asks, not four
    async with listing_stack(openai_only(STRANGER, ALPHA, BRAVO, CHARLIE)) as (stack, upstream):
        for secret in (ALPHA, BRAVO, CHARLIE):
            upstream.simulator.set(secret, mode="401")
        assert await listed(stack) == []
        assert upstream.credentials() == ["stranger", "alpha", "bravo"]


async def keys(stack: LiveStack) -> list[dict[str, Any]]:
    view = (await stack.client.get("/admin/keys", headers=ADMIN)).json()
    return [k for m in view["models"] if m["name"] == "*" for t in m["targets"] for k in t["keys"]]


async def test_each_dialect_lists_its_own_passthrough_provider(autojump_clock):
    def both(url: str) -> dict[str, Any]:
        anthropic = {
            "kind": "anthropic",
            "base_url": url,
            "keys": [{"key": CLAUDE, "label": "claude"}],
            "passthrough": True,
        }
        return {"openai": passthrough(url, [ALPHA]), "anthropic": anthropic}

    async with listing_stack(both) as (stack, upstream):
        reply = await stack.client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})
        body = reply.json()
        assert [m["id"] for m in body["data"]] == ANTHROPIC_IDS
        assert body["data"][0]["type"] == "model"  # in the Anthropic shape
        assert body["has_more"] is False
        (asked,) = upstream.asked
        assert asked.target == "/v1/models?limit=1000"  # one page holds them all
        assert asked.header("x-api-key") == CLAUDE
        assert asked.header("anthropic-version") == "2023-06-01"
        assert await listed(stack) == OPENAI_IDS
        assert upstream.credentials() == ["claude", "alpha"]


def test_byok_serve_from_the_environment_lists_the_models_to_the_openai_sdk():
    """`OPENAI_API_KEY=... byok serve`, as the README runs it; the openai SDK
    discovers its models."""
    upstream = ListingUpstream()
    upstream.simulator.add_key(ALPHA, "alpha")
    sim = Stack(lambda _: {"providers": {"x": {"kind": "openai", "keys": ["k"]}}})
    sim.simulator = upstream  # type: ignore[assignment]  # served in the simulator's place
    with sim:
        port = free_port()
        ambient = ("_API_KEY", "_API_KEYS", "_BASE_URL", "BYOK_ADMIN_KEY")
        env = {k: v for k, v in os.environ.items() if not k.endswith(ambient)}
        env.update(OPENAI_API_KEY=ALPHA, OPENAI_BASE_URL=f"{sim.upstream_url}/v1")
        process = subprocess.Popen(
            [sys.executable, "-m", "byok", "serve", "--port", str(port)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, process)
            with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
                assert [m.id for m in client.models.list()] == OPENAI_IDS
            process.send_signal(signal.SIGTERM)
            stderr = process.communicate(timeout=15)[1]
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert upstream.credentials() == ["alpha"]
    assert ALPHA not in stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"byok serve did not answer on {url} within 20 s")
