"""Failure handling over real sockets: circuit and probe, waiting for a
cooldown, the deadline, hedging, many streams at once, no secret in logs."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import trio

from .stack import Stack

SECRETS = {"sk-res-alpha": "alpha", "sk-res-bravo": "bravo"}
CLIENT = {"authorization": "Bearer anything"}
ASK = {"messages": [{"role": "user", "content": "hi"}]}


def stack_with(**model):
    def tables(upstream: str) -> dict:
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

    stack = Stack(tables)
    for secret, name in SECRETS.items():
        stack.simulator.add_key(secret, name)
    return stack


def ask(stack: Stack, **extra) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": "m", **ASK, **extra},
        headers=CLIENT,
        timeout=30,
    )


def test_repeated_5xx_opens_the_circuit_and_a_probe_brings_it_back():
    with stack_with() as stack:
        stack.simulator.set("sk-res-alpha", mode="500")
        for _ in range(3):
            assert ask(stack).headers["x-byok-key"] == "bravo"
        selector = stack.selector("sim", "up")
        assert selector.state("alpha") == "cooldown"  # third error in a row opened it
        tried = stack.simulator.requests_for("sk-res-alpha")
        assert ask(stack).headers["x-byok-key"] == "bravo"
        assert stack.simulator.requests_for("sk-res-alpha") == tried  # not even tried
        stack.simulator.set("sk-res-alpha")  # the upstream recovers
        time.sleep(0.35)
        assert selector.state("alpha") == "half_open"
        reply = ask(stack)
        assert reply.headers["x-byok-key"] == "alpha"  # the probe
        assert selector.state("alpha") == "ready"


def test_wait_for_cooldown_waits_instead_of_failing():
    with stack_with(wait_for_cooldown=2, attempts=6) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="429", retry_after=0.5)
        threading.Timer(0.2, lambda: [stack.simulator.set(s) for s in SECRETS]).start()
        started = time.monotonic()
        reply = ask(stack)
        assert reply.status_code == 200
        assert time.monotonic() - started >= 0.4
        assert int(reply.headers["x-byok-attempts"]) == 3


def test_without_wait_for_cooldown_the_answer_is_429_at_once():
    with stack_with() as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="429", retry_after=3)
        assert ask(stack).status_code == 429
        started = time.monotonic()
        reply = ask(stack)
        assert reply.status_code == 429
        assert time.monotonic() - started < 1
        assert reply.headers["retry-after"] == "3"


def test_the_deadline_ends_a_request_and_cancels_its_upstream_call():
    with stack_with(deadline=0.5) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="hang")
        started = time.monotonic()
        reply = ask(stack)
        elapsed = time.monotonic() - started
        assert reply.status_code == 504
        assert "deadline of 0.5s passed" in reply.json()["error"]["message"]
        assert 0.4 < elapsed < 3
        for _ in range(40):
            if stack.simulator.cancelled:
                break
            time.sleep(0.05)
        assert stack.simulator.cancelled >= 1


def test_hedging_takes_the_faster_key_and_cancels_the_other():
    with stack_with(hedge_after=0.2) as stack:
        stack.simulator.set("sk-res-alpha", delay=5)
        started = time.monotonic()
        reply = ask(stack)
        assert reply.status_code == 200
        assert reply.headers["x-byok-key"] == "bravo"
        assert reply.headers["x-byok-attempts"] == "2"
        assert time.monotonic() - started < 2
        for _ in range(40):
            if stack.simulator.cancelled:
                break
            time.sleep(0.05)
        assert stack.simulator.cancelled == 1  # alpha's call was cancelled, not left running
        assert all(view["inflight"] == 0 for view in stack.selector("sim", "up").snapshot())


def test_no_hedge_when_the_first_key_answers_in_time():
    with stack_with(hedge_after=1) as stack:
        reply = ask(stack)
        assert reply.headers["x-byok-attempts"] == "1"
        assert stack.simulator.requests_for("sk-res-bravo") == 0


def test_two_hundred_concurrent_streams():
    with stack_with(strategy="round_robin") as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, chunk_delay=0.02, chunks=8)
        bodies: list[str] = []

        async def one(client: httpx.AsyncClient) -> None:
            async with client.stream(
                "POST", "/v1/chat/completions", json={"model": "m", **ASK, "stream": True}
            ) as response:
                assert response.status_code == 200
                bodies.append((await response.aread()).decode())

        async def main() -> None:
            limits = httpx.Limits(max_connections=250)
            async with (
                httpx.AsyncClient(
                    base_url=stack.url, headers=CLIENT, limits=limits, timeout=60
                ) as client,
                trio.open_nursery() as nursery,
            ):
                for _ in range(200):
                    nursery.start_soon(one, client)

        trio.run(main)
        assert len(bodies) == 200
        assert all(body.rstrip().endswith("data: [DONE]") for body in bodies)
        assert all('"error"' not in body for body in bodies)
        served = {stack.simulator.seen[i].key for i in range(200)}
        assert served == set(SECRETS)


def test_no_secret_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    with stack_with(attempts=3) as stack:
        stack.simulator.set("sk-res-alpha", mode="401")
        ask(stack)
        stack.simulator.set("sk-res-bravo", mode="drop")
        ask(stack, stream=True)
        stack.simulator.set("sk-res-bravo", mode="429")
        ask(stack)
    text = caplog.text
    assert "POST /v1/chat/completions model=m" in text  # the request lines are there
    for secret in SECRETS:
        assert secret not in text
    assert "anything" not in text  # nor the client's credential
