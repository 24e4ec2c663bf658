"""The simulated upstream's per-key limits (rpm, tpm): enforced as providers
enforce them (token buckets refilled continuously), told in the headers of
the endpoint's provider, and read back by byok's own parser of those headers.

The simulator serves on a real loopback socket in the test's trio run, under
MockClock: a minute of refill passes in virtual time."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from byok.cli.simulator import DEFAULT_MAX_TOKENS, Behaviour, SimulatedUpstream
from byok.gateway.ratelimits import Headroom, headroom
from byok.http.server import bound_port, serve_http

GPT = "sk-sim-limits-GPT-0001"
OTHER = "sk-sim-limits-OTHER-0002"
CLAUDE = "sk-ant-sim-limits-CLAUDE-0003"
PROMPT = "x" * 40  # 10 tokens, as charged: characters / 4


@asynccontextmanager
async def served(simulator: SimulatedUpstream) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `simulator`, served on loopback until the block ends."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}"
        async with httpx.AsyncClient(base_url=url, timeout=3600) as client:
            yield client
        nursery.cancel_scope.cancel()


async def chat(
    client: httpx.AsyncClient, secret: str = GPT, prompt: str = PROMPT, **extra: Any
) -> httpx.Response:
    body = {"model": "gpt-sim", "messages": [{"role": "user", "content": prompt}], **extra}
    return await client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}
    )


async def message(
    client: httpx.AsyncClient, prompt: str = PROMPT, max_tokens: int = 10, **extra: Any
) -> httpx.Response:
    body = {
        "model": "claude-sim",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        **extra,
    }
    headers = {"x-api-key": CLAUDE, "anthropic-version": "2023-06-01"}
    return await client.post("/v1/messages", json=body, headers=headers)


def headers_of(response: httpx.Response) -> list[tuple[str, str]]:
    """The answer's headers as byok's upstream client hands them on."""
    return [(name.lower(), value) for name, value in response.headers.multi_items()]


def said(response: httpx.Response) -> Headroom:
    found = headroom(headers_of(response), time.time())
    assert found is not None, "the answer carries no rate-limit header"
    return found


def limit_header_names(response: httpx.Response) -> list[str]:
    return [n for n, _ in headers_of(response) if "ratelimit" in n]


async def test_rpm_lets_a_minutes_worth_through_at_once_then_refills_one_a_second(
    autojump_clock,
):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, rpm=60)
    simulator.add_key(OTHER, rpm=60)
    async with served(simulator) as client:
        start = trio.current_time()
        for _ in range(60):
            assert (await chat(client)).status_code == 200
        refused = await chat(client)
        assert trio.current_time() == start  # all of it at one instant
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert error["type"] == "requests"
        assert "requests per min (RPM): Limit 60" in error["message"]
        assert simulator.rate_limited_count(GPT) == 1
        assert (await chat(client, OTHER)).status_code == 200  # limits are per key
        for _ in range(4):  # refused requests take nothing from the bucket
            assert (await chat(client)).status_code == 429
        await trio.sleep(1)
        assert (await chat(client)).status_code == 200
        again = await chat(client)
        assert again.status_code == 429
        assert again.headers["retry-after"] == "1"
    assert simulator.rate_limited_count(GPT) == 6
    assert simulator.rate_limited_count(OTHER) == 0
    assert simulator.rate_limited == 6
    assert simulator.requests_for(GPT) == 67  # the refused ones were seen too


async def test_tpm_charges_the_prompt_and_max_tokens_at_admission(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, tpm=1000)
    async with served(simulator) as client:
        first = await chat(client, max_tokens=400)
        assert first.status_code == 200
        assert first.headers["x-sim-charged-tokens"] == "410"  # 40 characters / 4 + 400
        # the usage the answer reports is the simulator's usual one, not the charge
        assert first.json()["usage"]["prompt_tokens"] == 5
        newer = await chat(client, max_completion_tokens=400)
        assert newer.headers["x-sim-charged-tokens"] == "410"
        refused = await chat(client, max_tokens=400)  # 180 left, 410 asked
        assert refused.status_code == 429
        # (410 - 180) tokens at 1000/60 a second: 13.8 s, in whole seconds rounded up
        assert refused.headers["retry-after"] == "14"
        assert (
            "tokens per min (TPM): Limit 1000, Requested 410" in refused.json()["error"]["message"]
        )
        assert said(refused).tokens_remaining == 180  # the 429 took nothing
        await trio.sleep(13)
        assert (await chat(client, max_tokens=400)).status_code == 429
        await trio.sleep(1)
        assert (await chat(client, max_tokens=400)).status_code == 200
    assert simulator.rate_limited_count(GPT) == 2


async def test_a_request_larger_than_the_bucket_never_fits(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, tpm=1000)
    async with served(simulator) as client:
        refused = await chat(client, max_tokens=5000)
        assert refused.status_code == 429
        assert "retry-after" not in refused.headers  # no wait would do
        assert "Request too large" in refused.json()["error"]["message"]
        assert said(refused).tokens_remaining == 1000
        assert (await chat(client, max_tokens=990)).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "charged"),
    [
        # no max_tokens: the fixed allowance
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "abcde"}]},
            2 + DEFAULT_MAX_TOKENS,
        ),
        ("/v1/completions", {"prompt": "a" * 8, "max_tokens": 7}, 2 + 7),
        (  # text parts count, an image does not
            "/v1/chat/completions",
            {
                "messages": [
                    {"role": "system", "content": "s" * 12},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "t" * 8},
                            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        ],
                    },
                ],
                "max_tokens": 1,
            },
            5 + 1,
        ),
        ("/v1/embeddings", {"input": ["a" * 4, "b" * 5]}, 3),  # no answer tokens
        (
            "/v1/responses",
            {"input": "q" * 9, "instructions": "i" * 3, "max_output_tokens": 20},
            3 + 20,
        ),
    ],
)
async def test_what_a_request_is_charged(autojump_clock, path, body, charged):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, tpm=100_000)
    async with served(simulator) as client:
        answer = await client.post(
            path, json={"model": "m", **body}, headers={"authorization": f"Bearer {GPT}"}
        )
    assert answer.status_code == 200
    assert int(answer.headers["x-sim-charged-tokens"]) == charged


async def test_openai_headers_tell_what_is_left_after_each_request(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, rpm=60, tpm=10_000)
    async with served(simulator) as client:
        used = 0
        for n in range(1, 4):
            answer = await chat(client, max_tokens=10 * n, stream=n == 3)
            assert answer.status_code == 200
            charged = int(answer.headers["x-sim-charged-tokens"])
            assert charged == 10 + 10 * n
            used += charged
            assert limit_header_names(answer) == [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ]
            assert answer.headers["x-ratelimit-reset-requests"] == f"{n}s"
            # full again once the used tokens have refilled, 10000/60 a second
            tokens_full_in = used * 60 / 10_000
            assert said(answer) == Headroom(
                requests_remaining=60 - n,
                requests_limit=60,
                requests_reset=float(n),
                tokens_remaining=10_000 - used,
                tokens_limit=10_000,
                tokens_reset=pytest.approx(tokens_full_in, abs=0.001),
            )


async def test_anthropic_headers_tell_what_is_left_with_wall_clock_resets(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(CLAUDE, rpm=50, tpm=20_000)
    async with served(simulator) as client:
        await trio.sleep(1000)  # virtual time: far from the wall clock's
        used = 0
        for n in range(1, 4):
            before = time.time()
            answer = await message(client, max_tokens=100, system="s" * 20)
            after = time.time()
            assert answer.status_code == 200
            charged = int(answer.headers["x-sim-charged-tokens"])
            assert charged == (20 + 40) // 4 + 100
            used += charged
            families = ["requests", "tokens", "input-tokens", "output-tokens"]
            assert limit_header_names(answer) == [
                f"anthropic-ratelimit-{family}-{part}"
                for family in families
                for part in ("limit", "remaining", "reset")
            ]
            found = headroom(headers_of(answer), after)
            assert found is not None
            assert found.requests_remaining == 50 - n
            assert found.requests_limit == 50
            assert found.tokens_remaining == 20_000 - used
            assert found.tokens_limit == 20_000
            # a wall-clock time in whole seconds, rounded up, made between
            # `before` and `after`, of a reset `full_in` seconds ahead
            for reset, full_in in (
                (found.requests_reset, n * 60 / 50),
                (found.tokens_reset, used * 60 / 20_000),
            ):
                assert reset is not None
                assert full_in - (after - before) <= reset <= full_in + 1
            for part in ("limit", "remaining", "reset"):  # one token bucket behind all three
                tokens = answer.headers[f"anthropic-ratelimit-tokens-{part}"]
                assert answer.headers[f"anthropic-ratelimit-input-tokens-{part}"] == tokens
                assert answer.headers[f"anthropic-ratelimit-output-tokens-{part}"] == tokens


async def test_anthropic_429_is_in_anthropics_shape(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(CLAUDE, rpm=1)
    async with served(simulator) as client:
        assert (await message(client)).status_code == 200
        refused = await message(client)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"  # one request a minute
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_limit_headers_none_enforces_but_does_not_advertise(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, rpm=1, limit_headers=None)
    simulator.add_key(CLAUDE, rpm=1, limit_headers=None)
    simulator.add_key(OTHER)  # no limits at all: nothing to tell either
    async with served(simulator) as client:
        pairs = [(await chat(client), await chat(client))]
        pairs.append((await message(client), await message(client)))
        for answer, refused in pairs:
            assert answer.status_code == 200
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "60"
            for response in (answer, refused):
                assert limit_header_names(response) == []
                assert headroom(headers_of(response), time.time()) is None
        plain = await chat(client, OTHER)
    assert plain.status_code == 200
    assert limit_header_names(plain) == []
    assert "x-sim-charged-tokens" not in plain.headers


async def test_the_buckets_refill_over_virtual_time(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, rpm=60, tpm=6000)
    async with served(simulator) as client:
        for _ in range(60):
            assert (await chat(client, max_tokens=90)).status_code == 200  # 100 tokens each
        assert (await chat(client, max_tokens=90)).status_code == 429
        await trio.sleep(30)  # half refilled: 30 requests, 3000 tokens
        half = await chat(client, max_tokens=90)
        assert said(half) == Headroom(29, 60, 31.0, 2900, 6000, 31.0)
        await trio.sleep(3600)  # never more than full
        full = await chat(client, max_tokens=90)
        assert said(full) == Headroom(59, 60, 1.0, 5900, 6000, 1.0)
        for _ in range(59):
            assert (await chat(client, max_tokens=90)).status_code == 200
        assert (await chat(client, max_tokens=90)).status_code == 429


async def test_a_lower_limit_set_while_running_keeps_no_more_than_it_holds(autojump_clock):
    simulator = SimulatedUpstream()
    simulator.add_key(GPT, rpm=60)
    async with served(simulator) as client:
        for _ in range(10):
            await chat(client)
        simulator.set(GPT, rpm=5)
        lowered = await chat(client)
        assert said(lowered).requests_remaining == 4
        assert said(lowered).requests_limit == 5


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ({"rpm": 0}, "rpm must be a whole number of at least 1, or None"),
        ({"tpm": 1.5}, "tpm must be a whole number of at least 1, or None"),
        ({"limit_headers": "openai"}, 'limit_headers must be "auto" or None'),
    ],
)
def test_a_limit_that_cannot_be_is_refused(behaviour, message):
    with pytest.raises(ValueError, match=re.escape(message)) as refused:
        Behaviour(**behaviour)
    assert str(refused.value) == message  # the whole message, nothing more
