"""Failure handling over real sockets: circuit and probe, waiting for a
cooldown, the deadline, hedging, many streams at once, no secret in logs.

The gateway runs in the test's own trio run under MockClock (autojump): every
second here is virtual, so the timings asserted are exact and the machine's
load cannot move them."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import trio

from ..stack import LiveStack, open_stack

SECRETS = {"sk-res-alpha-000": "alpha", "sk-res-bravo-000": "bravo"}
ALPHA, BRAVO = SECRETS
CLIENT = {"authorization": "Bearer anything"}
ASK = {"messages": [{"role": "user", "content": "hi"}]}


def tables_with(**model: Any) -> Any:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {"cooldown": 0.3, "max_cooldown": 5, "failure_threshold": 3},
            "providers": {
                "sim": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
                }
            },
            "models": {"m": {"targets": ["sim/up"], "strategy": "priority", **model}},
        }

    return tables


def stack_with(**model: Any) -> Any:
    return open_stack(tables_with(**model), SECRETS)


async def ask(stack: LiveStack, **extra: Any) -> httpx.Response:
    return await stack.client.post(
        "/v1/chat/completions", json={"model": "m", **ASK, **extra}, headers=CLIENT
    )


async def test_repeated_5xx_opens_the_circuit_and_a_probe_brings_it_back(autojump_clock):
    async with stack_with() as stack:
        stack.simulator.set(ALPHA, mode="500")
        for _ in range(3):
            assert (await ask(stack)).headers["x-byok-key"] == "bravo"
        assert stack.state("sim", "up", "alpha") == "cooldown"  # third error in a row
        tried = stack.simulator.requests_for(ALPHA)
        assert (await ask(stack)).headers["x-byok-key"] == "bravo"
        assert stack.simulator.requests_for(ALPHA) == tried  # not even tried
        stack.simulator.set(ALPHA)  # the upstream recovers
        await trio.sleep(0.3)
        assert stack.state("sim", "up", "alpha") == "half_open"
        reply = await ask(stack)
        assert reply.headers["x-byok-key"] == "alpha"  # the probe
        assert stack.state("sim", "up", "alpha") == "ready"


async def test_wait_for_cooldown_waits_instead_of_failing(autojump_clock):
    async with stack_with(wait_for_cooldown=2, attempts=6) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="429", retry_after=0.5)

        async def recover() -> None:
            await trio.sleep(0.2)
            for secret in SECRETS:
                stack.simulator.set(secret)

        stack.nursery.start_soon(recover)
        started = trio.current_time()
        reply = await ask(stack)
        assert reply.status_code == 200
        assert trio.current_time() - started == pytest.approx(0.5)  # the soonest key's return
        assert reply.headers["x-byok-attempts"] == "3"


async def test_without_wait_for_cooldown_the_answer_is_429_at_once(autojump_clock):
    async with stack_with() as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="429", retry_after=3)
        assert (await ask(stack)).status_code == 429
        started = trio.current_time()
        reply = await ask(stack)
        assert reply.status_code == 429
        assert trio.current_time() == started  # no wait at all
        assert reply.headers["retry-after"] == "3"
        assert reply.headers["x-should-retry"] == "true"


async def test_the_deadline_ends_a_request_and_cancels_its_upstream_call(autojump_clock):
    async with stack_with(deadline=0.5) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="hang")
        started = trio.current_time()
        reply = await ask(stack)
        assert reply.status_code == 504
        assert "deadline of 0.5s passed" in reply.json()["error"]["message"]
        assert trio.current_time() - started == pytest.approx(0.5)
        await trio.sleep(0.1)  # the cancel travels proxy -> upstream
        assert stack.simulator.cancelled == 1


async def test_hedging_takes_the_faster_key_and_cancels_the_other(autojump_clock):
    async with stack_with(hedge_after=0.2) as stack:
        stack.simulator.set(ALPHA, delay=5)
        started = trio.current_time()
        reply = await ask(stack)
        assert reply.status_code == 200
        assert reply.headers["x-byok-key"] == "bravo"
        assert reply.headers["x-byok-attempts"] == "2"
        assert trio.current_time() - started < 0.25
        await trio.sleep(0.1)
        assert stack.simulator.cancelled == 1  # alpha's call was cancelled, not left running
        assert all(view["inflight"] == 0 for view in stack.selector("sim", "up").snapshot())
        assert stack.view("sim", "up", "alpha")["failures"] == 0  # losing a race is no fault


async def test_no_hedge_when_the_first_key_answers_in_time(autojump_clock):
    async with stack_with(hedge_after=1) as stack:
        stack.simulator.set(ALPHA, delay=0.5)
        reply = await ask(stack)
        assert reply.headers["x-byok-attempts"] == "1"
        assert stack.simulator.requests_for(BRAVO) == 0


async def test_two_hundred_concurrent_streams(autojump_clock):
    async with stack_with(strategy="round_robin") as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, chunk_delay=0.02, chunks=8)
        bodies: list[str] = []

        async def one() -> None:
            async with stack.client.stream(
                "POST",
                "/v1/chat/completions",
                json={"model": "m", **ASK, "stream": True},
                headers=CLIENT,
            ) as response:
                assert response.status_code == 200
                bodies.append((await response.aread()).decode())

        async with trio.open_nursery() as nursery:
            for _ in range(200):
                nursery.start_soon(one)
        assert len(bodies) == 200
        assert all(body.rstrip().endswith("data: [DONE]") for body in bodies)
        assert all('"error"' not in body for body in bodies)
        assert {seen.key for seen in stack.simulator.seen} == set(SECRETS)


async def test_no_secret_reaches_the_logs(caplog, autojump_clock):
    caplog.set_level(logging.DEBUG)
    async with stack_with(attempts=3) as stack:
        stack.simulator.set(ALPHA, mode="401")
        await ask(stack)
        stack.simulator.set(BRAVO, mode="drop")
        await ask(stack, stream=True)
        stack.simulator.set(BRAVO, mode="429")
        await ask(stack)
    text = caplog.text
    assert "POST /v1/chat/completions model=m" in text  # the request lines are there
    assert "blocked: the upstream answered 401" in text  # and the key's state changes
    for secret in SECRETS:
        assert secret not in text
    assert "anything" not in text  # nor the client's credential
