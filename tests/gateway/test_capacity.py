"""Capacity over real sockets: the provider's headroom keeps keys under their
limits, configured limits of a key and of a pool, the token estimate and its
correction, and the 429 that names the limit.

The simulated upstream enforces per-key rpm/tpm as providers do and
advertises what is left in their headers; everything runs under MockClock
(autojump), so the minutes that pass here are virtual and exact."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from ..stack import LiveStack, open_stack

SECRETS = {"sk-cap-alpha-000": "alpha", "sk-cap-bravo-000": "bravo"}
ALPHA, BRAVO = SECRETS
CLIENT = {"authorization": "Bearer anything"}
ASK = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}


def tables_with(
    server: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    keys: dict[str, dict[str, Any]] | None = None,
    kind: str = "openai",
) -> Any:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {"cooldown": 0.5, "max_cooldown": 5, **(server or {})},
            "providers": {
                "sim": {
                    "kind": kind,
                    "base_url": f"{upstream}/v1" if kind == "openai" else upstream,
                    "keys": [
                        {"key": k, "label": v, **(keys or {}).get(v, {})}
                        for k, v in SECRETS.items()
                    ],
                }
            },
            "models": {"m": {"targets": ["sim/up"], **(model or {})}},
        }

    return tables


async def ask(stack: LiveStack, **extra: Any) -> httpx.Response:
    return await stack.client.post(
        "/v1/chat/completions", json={"model": "m", **ASK, **extra}, headers=CLIENT
    )


async def test_headroom_keeps_keys_under_the_providers_limits(autojump_clock):
    tables = tables_with(model={"wait_for_cooldown": 30})
    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, rpm=10)
        started = trio.current_time()
        statuses = [(await ask(stack)).status_code for _ in range(20)]
        assert statuses == [200] * 20
        assert trio.current_time() - started < 1  # the 20 fit in the two keys' minute
        reply = await ask(stack)  # the 21st waits for a key to refill, unasked
        assert reply.status_code == 200
        assert trio.current_time() - started == pytest.approx(6, abs=0.5)  # 60 s / 10
        assert stack.simulator.rate_limited == 0  # not one 429 from the upstream
        view = stack.view("sim", "up", "alpha")
        assert view["limits"]["provider_requests"]["limit"] == 10
        assert (view["rate_limits"], view["failures"]) == (0, 0)


async def test_without_headroom_byok_learns_from_429s_as_before(autojump_clock):
    tables = tables_with(server={"headroom": False}, model={"wait_for_cooldown": 30})
    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, rpm=10)
        for _ in range(21):
            assert (await ask(stack)).status_code == 200
        assert stack.simulator.rate_limited > 0
        assert stack.view("sim", "up", "alpha")["limits"] == {}


async def test_concurrent_requests_draw_on_what_the_last_answer_said(autojump_clock):
    tables = tables_with(model={"wait_for_cooldown": 60, "attempts": 2})
    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, rpm=20, delay=0.5)
        assert (await ask(stack)).status_code == 200  # each key's figures are known ...
        assert (await ask(stack)).status_code == 200
        replies: list[int] = []

        async def one() -> None:
            replies.append((await ask(stack)).status_code)

        async with trio.open_nursery() as nursery:  # ... then 38 at once
            for _ in range(38):
                nursery.start_soon(one)
        assert replies == [200] * 38
        assert stack.simulator.rate_limited == 0


async def test_a_keys_own_rpm_passes_it_by_and_the_429_names_it(autojump_clock):
    keys = {"alpha": {"rpm": 2}, "bravo": {"rpm": 1}}
    async with open_stack(tables_with(keys=keys), SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, limit_headers=None)
        used = [(await ask(stack)).headers["x-byok-key"] for _ in range(3)]
        assert sorted(used) == ["alpha", "alpha", "bravo"]
        reply = await ask(stack)
        assert reply.status_code == 429
        assert reply.headers["retry-after"] == "30"  # alpha's next request: 60 s / 2
        message = reply.json()["error"]["message"]
        assert "over a limit" in message
        assert "the rpm of key alpha (sim)" in message
        assert reply.json()["error"]["type"]  # OpenAI's error shape
        assert stack.simulator.requests_for(ALPHA) == 2  # nothing went upstream
        await trio.sleep(30)
        assert (await ask(stack)).headers["x-byok-key"] == "alpha"


async def test_a_keys_own_limits_hold_over_all_its_models(autojump_clock):
    def tables(upstream: str) -> dict[str, Any]:
        config = tables_with(keys={"alpha": {"rpm": 1}, "bravo": {"rpm": 1}})(upstream)
        config["models"]["n"] = {"targets": ["sim/other"]}
        return config

    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, limit_headers=None)
        body = {"messages": [{"role": "user", "content": "x"}]}
        first = await stack.client.post(
            "/v1/chat/completions", json={"model": "m", **body}, headers=CLIENT
        )
        second = await stack.client.post(
            "/v1/chat/completions", json={"model": "n", **body}, headers=CLIENT
        )
        assert {first.headers["x-byok-key"], second.headers["x-byok-key"]} == {"alpha", "bravo"}


async def test_the_estimate_is_corrected_by_the_answers_usage(autojump_clock):
    async with open_stack(tables_with(keys={"alpha": {"tpm": 10_000}}), SECRETS) as stack:
        stack.simulator.set(ALPHA, limit_headers=None)
        stack.simulator.set(BRAVO, mode="500")
        reply = await ask(stack, max_tokens=5000)
        assert reply.headers["x-byok-key"] == "alpha"
        used = reply.json()["usage"]["total_tokens"]
        accounts = stack.app.live.runtime.router.pool("sim", "up").accounts
        left = accounts.snapshot(now=trio.current_time())[0]["limits"]["tpm"]["remaining"]
        assert left == 10_000 - used  # the 5,000 estimate given back but what was used


async def test_a_pool_limit_holds_over_its_keys(autojump_clock):
    async with open_stack(tables_with(model={"rpm": 3}), SECRETS) as stack:
        statuses = [(await ask(stack)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        reply = await ask(stack)
        assert "the rpm of sim/up" in reply.json()["error"]["message"]
        assert reply.headers["retry-after"] == "20"


async def test_anthropic_headroom_from_its_own_headers(autojump_clock):
    tables = tables_with(kind="anthropic", model={"wait_for_cooldown": 30})
    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, rpm=5, tpm=100_000)
        for _ in range(10):
            reply = await stack.client.post(
                "/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 50,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                headers={**CLIENT, "anthropic-version": "2023-06-01"},
            )
            assert reply.status_code == 200
        assert stack.simulator.rate_limited == 0
        limits = stack.view("sim", "up", "bravo")["limits"]
        assert limits["provider_requests"]["limit"] == 5
        assert limits["provider_tokens"]["remaining"] > 0


async def test_keys_with_own_limits_at_max_inflight_say_so(autojump_clock):
    keys = {name: {"rpm": 100, "max_inflight": 1} for name in SECRETS.values()}
    async with open_stack(tables_with(keys=keys), SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, delay=5)
        replies: list[httpx.Response] = []

        async def one() -> None:
            replies.append(await ask(stack))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [200, 200, 429]
        refused = next(r for r in replies if r.status_code == 429)
        assert "max_inflight" in refused.json()["error"]["message"]


async def test_a_refused_key_does_not_count_toward_the_soonest_limit(autojump_clock):
    keys = {"alpha": {"rpm": 6}, "bravo": {"rpm": 1}}
    async with open_stack(tables_with(keys=keys, model={"strategy": "priority"}), SECRETS) as st:
        st.simulator.set(ALPHA, mode="401")
        assert (await ask(st)).headers["x-byok-key"] == "bravo"  # alpha refused, then blocked
        assert st.state("sim", "up", "alpha") == "blocked"
        reply = await ask(st)
        assert reply.status_code == 429
        # bravo's next request in 60 s; blocked alpha, with 5 of its 6 left, is not counted
        assert reply.headers["retry-after"] == "60"
        assert "the rpm of key bravo" in reply.json()["error"]["message"]


async def test_a_waiting_request_waits_for_probes_not_for_their_timeout(autojump_clock):
    tables = tables_with(model={"wait_for_cooldown": 5, "attempts": 4})
    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, mode="429", retry_after=1)
        assert (await ask(stack)).status_code == 429  # both keys cool for 1 s
        for secret in SECRETS:
            stack.simulator.set(secret, delay=0.5)  # back, answering in 0.5 s
        await trio.sleep(1)  # both half-open now
        replies: list[httpx.Response] = []

        async def one() -> None:
            replies.append(await ask(stack))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one)  # claims alpha's probe
            nursery.start_soon(one)  # claims bravo's
            await trio.sleep(0.01)
            started = trio.current_time()
            third = await ask(stack)  # no key free: both probes are out for 30 s at most
        assert [r.status_code for r in replies] == [200, 200]
        assert third.status_code == 200  # not a 429 that counted the probes' timeout
        assert trio.current_time() - started < 1.5
