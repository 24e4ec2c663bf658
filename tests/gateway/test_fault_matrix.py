"""Every fault shape an upstream key shows, with a healthy key beside it and
alone: what the client gets, how often the faulty key is hit, and its state
over time.  The whole gateway runs on loopback under trio's MockClock, so the
seconds below are virtual: cooldowns and timeouts pass at once, and nothing
depends on how busy the machine is."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio

from ..stack import LiveStack, open_stack

FAULTY, HEALTHY = "sk-fault-0123456789", "sk-good-0123456789"
SECRETS = {FAULTY: "faulty", HEALTHY: "healthy"}
ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
POLICY = {
    "attempts": 4,
    "first_byte_timeout": 5,
    "stream_idle_timeout": 5,
    "attempt_timeout": 20,
    "deadline": 60,
}


@dataclass(frozen=True)
class Expect:
    status: int
    key: str | None = None  # x-byok-key
    says: str = ""  # in the body (an error message, or the answer's text)
    broken: bool = False  # a stream that ends with an error event
    retry_after: str | None = None  # the Retry-After header, exactly ("" if absent)
    faulty_state: str = "ready"  # right after the request
    later: tuple[tuple[float, str], ...] = ()  # (seconds after, state) of the faulty key


@dataclass(frozen=True)
class Case:
    name: str
    behaviour: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    provider: str = "sim"  # "sim" (the simulator), or a raw server of this test
    with_healthy: Expect = Expect(200)
    alone: Expect = Expect(502)
    faulty_hits: int = 1


def rate_limited(delay_header: str, retry_after: str | None) -> Case:
    return Case(
        f"429 {delay_header}",
        {"mode": "429", "retry_after": 2, "delay_header": delay_header},
        with_healthy=Expect(200, "healthy", faulty_state="cooldown", later=((2.1, "half_open"),)),
        alone=Expect(
            429,
            "faulty",
            "rate-limited",
            retry_after=retry_after,
            faulty_state="cooldown",
            later=((2.1, "half_open"),),
        ),
    )


CASES = [
    rate_limited("retry-after", "2"),
    rate_limited("retry-after-ms", "2"),
    rate_limited("http-date", None),  # a date has whole seconds: 1 or 2
    rate_limited("openai-reset", "2"),
    rate_limited("anthropic-reset", None),
    Case(
        "429 without a delay",
        {"mode": "429", "retry_after": None},
        with_healthy=Expect(200, "healthy", faulty_state="cooldown", later=((1.0, "half_open"),)),
        alone=Expect(429, "faulty", "rate-limited", retry_after="1", faulty_state="cooldown"),
    ),
    Case(
        "401",
        {"mode": "401"},
        with_healthy=Expect(200, "healthy", faulty_state="blocked", later=((60, "blocked"),)),
        alone=Expect(502, "faulty", "401 (key revoked)", retry_after="", faulty_state="blocked"),
    ),
    Case(
        "403",
        {"mode": "403"},
        with_healthy=Expect(200, "healthy", faulty_state="blocked"),
        alone=Expect(502, "faulty", "403", retry_after="", faulty_state="blocked"),
    ),
    Case(
        "500",
        {"mode": "500"},
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "500 (simulated server error)", retry_after=""),
    ),
    Case(
        "529",
        {"mode": "529"},
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "529 (Overloaded)", retry_after=""),
    ),
    Case(
        "refused",
        provider="refusing",
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "cannot connect", retry_after=""),
    ),
    Case(
        "reset before the head",
        {"mode": "reset"},
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "closed the connection", retry_after=""),
    ),
    Case(
        "reset between head and body",
        {"mode": "head_then_reset"},
        stream=True,
        with_healthy=Expect(200, "healthy", "data: [DONE]"),
        alone=Expect(502, "faulty", "stream", retry_after=""),
    ),
    Case(
        "reset mid-stream",
        {"mode": "drop", "drop_after": 2},
        stream=True,
        with_healthy=Expect(200, "faulty", "upstream stream failed", broken=True),
        alone=Expect(200, "faulty", "upstream stream failed", broken=True),
    ),
    Case(
        "hang",
        {"mode": "hang"},
        with_healthy=Expect(200, "healthy"),
        alone=Expect(504, "faulty", "no response head within 5s", retry_after=""),
    ),
    Case(
        "trickle",
        {"mode": "trickle", "chunk_delay": 1},
        stream=True,
        with_healthy=Expect(200, "faulty", "attempt_timeout of 20s reached", broken=True),
        alone=Expect(200, "faulty", "attempt_timeout of 20s reached", broken=True),
    ),
    Case(
        "silent mid-stream",
        {"mode": "trickle", "chunk_delay": 10},  # past stream_idle_timeout
        stream=True,
        with_healthy=Expect(200, "faulty", "the stream went silent for 5s", broken=True),
        alone=Expect(200, "faulty", "the stream went silent for 5s", broken=True),
    ),
    Case(
        "garbage",
        provider="garbage",
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "malformed", retry_after=""),
    ),
    Case(
        "huge headers",
        {"mode": "huge_headers"},
        with_healthy=Expect(200, "healthy"),
        alone=Expect(502, "faulty", "head over 65536 bytes", retry_after=""),
    ),
]


async def _garbage(stream: trio.SocketStream) -> None:
    try:
        await stream.receive_some(65536)
        await stream.send_all(b"SMTP ready, not HTTP\r\n\r\n\x00\x01garbage")
    except trio.BrokenResourceError:
        pass
    finally:
        await stream.aclose()


async def raw_server(nursery: trio.Nursery, handler: Callable[[Any], Any]) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once closed


def tables_for(case: Case, alone: bool, raw_url: str) -> Callable[[str], dict[str, Any]]:
    def tables(upstream: str) -> dict[str, Any]:
        sim = {
            "kind": "openai",
            "base_url": f"{upstream}/v1",
            "keys": [{"key": FAULTY, "label": "faulty"}, {"key": HEALTHY, "label": "healthy"}],
        }
        providers: dict[str, Any] = {"sim": sim}
        targets = ["sim/up"]
        if case.provider != "sim":
            # the fault is the endpoint's: the faulty key lives on a provider of its own
            providers["bad"] = {
                "kind": "openai",
                "base_url": f"{raw_url}/v1",
                "keys": [{"key": FAULTY, "label": "faulty"}],
            }
            sim["keys"] = sim["keys"][1:]
            targets = ["bad/up"] if alone else ["bad/up", "sim/up"]
        elif alone:
            sim["keys"] = sim["keys"][:1]
        return {
            "server": {"cooldown": 1, "max_cooldown": 15, "failure_threshold": 3},
            "providers": providers,
            "models": {"m": {"targets": targets, "strategy": "priority", **POLICY}},
        }

    return tables


async def read(stack: LiveStack, stream: bool) -> tuple[int, dict[str, str], str]:
    async with stack.client.stream(
        "POST", "/v1/chat/completions", json={**ASK, "stream": stream}
    ) as response:
        body = (await response.aread()).decode()
        return response.status_code, dict(response.headers), body


@pytest.mark.parametrize("alone", [False, True], ids=["with a healthy key", "alone"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fault(case: Case, alone: bool, autojump_clock: Any) -> None:
    expect = case.alone if alone else case.with_healthy
    async with trio.open_nursery() as servers:
        raw_url = ""
        if case.provider == "garbage":
            raw_url = f"http://127.0.0.1:{await raw_server(servers, _garbage)}"
        elif case.provider == "refusing":
            raw_url = f"http://127.0.0.1:{closed_port()}"
        async with open_stack(tables_for(case, alone, raw_url), SECRETS) as stack:
            stack.simulator.set(FAULTY, **case.behaviour)
            target = ("sim", "up") if case.provider == "sim" else ("bad", "up")
            started = trio.current_time()
            status, headers, body = await read(stack, case.stream)
            assert status == expect.status, body
            if expect.key is not None:
                assert headers["x-byok-key"] == expect.key
            assert expect.says in body
            if case.stream and status == 200:
                assert body.rstrip().endswith("data: [DONE]") is not expect.broken
                assert ('"error"' in body) is expect.broken
            if expect.retry_after is not None:
                assert headers.get("retry-after", "") == expect.retry_after
            elif status == 429:
                assert headers["retry-after"] in ("1", "2")
            if status in (429, 503) and "retry-after" in headers:
                assert headers["x-should-retry"] == "true"
            elif status >= 400:
                assert headers["x-should-retry"] == "false"
            if case.provider == "sim":
                assert stack.simulator.requests_for(FAULTY) == case.faulty_hits
            assert stack.state(*target, "faulty") == expect.faulty_state
            for after, wanted in expect.later:
                await trio.sleep_until(started + after)
                assert stack.state(*target, "faulty") == wanted, f"{after}s after"
        servers.cancel_scope.cancel()


# ---- over time -----------------------------------------------------------------------


def one_key(**model: Any) -> Callable[[str], dict[str, Any]]:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {"cooldown": 1, "max_cooldown": 15, "failure_threshold": 3},
            "providers": {
                "sim": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [
                        {"key": FAULTY, "label": "faulty"},
                        {"key": HEALTHY, "label": "healthy"},
                    ],
                }
            },
            "models": {"m": {"targets": ["sim/up"], "strategy": "round_robin", **model}},
        }

    return tables


async def test_intermittent_failures_open_the_circuit_by_rate(autojump_clock: Any) -> None:
    async with open_stack(one_key(), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="500", every=2)  # half of its requests fail
        statuses = []
        for _ in range(200):  # 20 s at 10 requests a second
            statuses.append((await read(stack, False))[0])
            await trio.sleep(0.1)
        assert set(statuses) == {200}  # every failure retried on the healthy key
        view = stack.view("sim", "up", "faulty")
        hits = stack.simulator.requests_for(FAULTY)
        assert hits <= 25, f"{hits} attempts reached the failing key in 20 s"
        assert view["backoff_level"] >= 2  # on probation, not forgiven


async def test_a_breaking_stream_cools_its_key_after_failure_threshold(autojump_clock: Any) -> None:
    async with open_stack(one_key(strategy="priority"), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="drop", drop_after=2)
        for _ in range(3):
            status, headers, body = await read(stack, True)
            assert (status, headers["x-byok-key"]) == (200, "faulty")
            assert '"error"' in body
        assert stack.state("sim", "up", "faulty") == "cooldown"
        status, headers, body = await read(stack, True)
        assert headers["x-byok-key"] == "healthy"
        assert body.rstrip().endswith("data: [DONE]")


async def test_a_stream_reset_before_its_bytes_never_reaches_the_client(
    autojump_clock: Any,
) -> None:
    async with open_stack(one_key(), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="head_then_reset")
        bodies = [await read(stack, True) for _ in range(40)]
        assert all(status == 200 for status, _, _ in bodies)
        assert all(body.rstrip().endswith("data: [DONE]") for _, _, body in bodies)
        assert all(headers["x-byok-key"] == "healthy" for _, headers, _ in bodies)


async def test_explained_429s_never_raise_the_backoff(autojump_clock: Any) -> None:
    async with open_stack(one_key(strategy="priority"), SECRETS) as stack:
        for _ in range(10):
            stack.simulator.set(FAULTY, mode="429", retry_after=1)
            assert (await read(stack, False))[0] == 200
            await trio.sleep(1.01)  # honoured: back after exactly 1 s
            assert stack.state("sim", "up", "faulty") == "half_open"
        stack.simulator.set(FAULTY, mode="429", retry_after=None)
        assert (await read(stack, False))[0] == 200
        cooled = trio.current_time()
        stack.simulator.set(FAULTY)
        while stack.state("sim", "up", "faulty") == "cooldown":
            await trio.sleep(0.1)
        assert trio.current_time() - cooled <= 2
        _, headers, _ = await read(stack, False)
        assert headers["x-byok-key"] == "faulty"  # the probe
        assert stack.state("sim", "up", "faulty") == "ready"


async def test_after_an_outage_the_key_serves_within_15s(autojump_clock: Any) -> None:
    async with open_stack(one_key(strategy="priority"), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="500")
        probes = []
        outage_ends = trio.current_time() + 60
        while trio.current_time() < outage_ends:
            before = stack.simulator.requests_for(FAULTY)
            assert (await read(stack, False))[0] == 200
            if stack.simulator.requests_for(FAULTY) > before:
                probes.append(trio.current_time())
            await trio.sleep(0.5)
        stack.simulator.set(FAULTY)
        while True:
            _, headers, _ = await read(stack, False)
            if headers["x-byok-key"] == "faulty":
                break
            await trio.sleep(0.5)
        assert trio.current_time() - outage_ends <= 15
        gaps = [b - a for a, b in itertools.pairwise(probes[3:])]  # after the circuit opened
        assert all(gap >= 0.99 for gap in gaps)  # one probe per cooldown step, at most
        assert max(gaps) <= 15.5


async def test_a_blocked_key_is_revalidated_and_restored(autojump_clock: Any) -> None:
    def tables(upstream: str) -> dict[str, Any]:
        data = one_key(strategy="priority")(upstream)
        data["server"]["revalidate_blocked"] = 30
        return data

    async with open_stack(tables, SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="401")
        assert (await read(stack, False))[0] == 200
        assert stack.state("sim", "up", "faulty") == "blocked"
        await trio.sleep(31)
        assert stack.state("sim", "up", "faulty") == "blocked"  # still refused
        stack.simulator.set(FAULTY)  # the refusal was transient
        await trio.sleep(30)
        assert stack.state("sim", "up", "faulty") == "ready"
        _, headers, _ = await read(stack, False)
        assert headers["x-byok-key"] == "faulty"


async def test_a_hedge_starts_at_once_when_the_first_key_fails(autojump_clock: Any) -> None:
    async with open_stack(one_key(strategy="priority", hedge_after=2), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="reset")
        started = trio.current_time()
        status, headers, _ = await read(stack, False)
        assert (status, headers["x-byok-key"]) == (200, "healthy")
        assert trio.current_time() - started < 0.5  # not after hedge_after
        stack.simulator.set(FAULTY, mode="hang")
        started = trio.current_time()
        status, headers, _ = await read(stack, False)
        assert (status, headers["x-byok-key"], headers["x-byok-attempts"]) == (200, "healthy", "2")
        assert 2 <= trio.current_time() - started < 2.5  # the hedge after 2 s won
        assert stack.view("sim", "up", "faulty")["failures"] == 1  # the lost race is no fault


async def test_waiting_for_a_connection_is_never_a_keys_fault(autojump_clock: Any) -> None:
    def tables(upstream: str) -> dict[str, Any]:
        config = one_key(first_byte_timeout=5)(upstream)
        config["providers"]["sim"]["max_connections"] = 20  # the provider's cap is the one
        return config

    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, chunk_delay=1, chunks=10)  # 10 s streams
        results: list[str] = []

        async def one() -> None:
            status, _, body = await read(stack, True)
            results.append(body if status == 200 else f"status {status}")

        async with trio.open_nursery() as nursery:
            for _ in range(100):  # five times the connections there are
                nursery.start_soon(one)
        assert len(results) == 100
        assert all(body.rstrip().endswith("data: [DONE]") for body in results)
        for label in ("faulty", "healthy"):
            assert stack.view("sim", "up", label)["failures"] == 0


async def test_a_wait_for_a_connection_past_the_deadline_times_out_and_blames_no_key(
    autojump_clock: Any,
) -> None:
    def tables(upstream: str) -> dict[str, Any]:
        config = one_key(first_byte_timeout=30, deadline=10)(upstream)
        config["models"]["long"] = {"targets": ["sim/up"], "deadline": 60}
        config["providers"]["sim"]["max_connections"] = 1
        return config

    async with open_stack(tables, SECRETS) as stack:
        for secret in SECRETS:
            stack.simulator.set(secret, chunk_delay=1, chunks=20)  # 20 s streams
        held: list[int] = []

        async def holder() -> None:  # the one connection, for 20 s
            async with stack.client.stream(
                "POST", "/v1/chat/completions", json={**ASK, "model": "long", "stream": True}
            ) as response:
                await response.aread()
                held.append(response.status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await trio.sleep(1)
            started = trio.current_time()
            status, _, body = await read(stack, False)
            waited = trio.current_time() - started
        assert held == [200]
        assert status == 504
        assert "deadline of 10s passed" in body
        assert 10 <= waited <= 10.5  # the request's deadline, not first_byte_timeout
        for label in ("faulty", "healthy"):
            assert stack.view("sim", "up", label)["failures"] == 0


async def test_every_state_change_of_a_key_is_one_log_line(
    caplog: Any, autojump_clock: Any
) -> None:
    caplog.set_level(logging.INFO, logger="byok.proxy")

    def tables(upstream: str) -> dict[str, Any]:
        data = one_key(strategy="priority")(upstream)
        data["server"]["revalidate_blocked"] = 10
        return data

    async with open_stack(tables, SECRETS) as stack:

        def lines(fragment: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]

        stack.simulator.set(FAULTY, mode="429", retry_after=2)
        await read(stack, False)
        assert len(lines("cooling for 2.0s: rate-limited, the upstream asked for 2s")) == 1
        stack.simulator.set(FAULTY)
        await trio.sleep(2)
        await read(stack, False)
        assert len(lines("is half-open: one request probes it")) == 1
        assert len(lines("the probe succeeded, back to ready")) == 1
        stack.simulator.set(FAULTY, mode="500")
        for _ in range(3):
            await read(stack, False)
        assert len(lines("circuit opened after 3 failures in a row")) == 1
        await trio.sleep(1)
        await read(stack, False)
        assert len(lines("probe failed (500 simulated server error); out for 2.0s")) == 1
        stack.simulator.set(FAULTY, mode="401")
        await trio.sleep(2)
        await read(stack, False)
        assert (
            len(lines("blocked: the upstream answered 401 (key revoked); re-validated in 10s")) == 1
        )
        stack.simulator.set(FAULTY)
        await trio.sleep(10.5)
        assert len(lines("re-validated: the models listing answered 200; back to ready")) == 1
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert FAULTY not in text
        assert "fp-" in text  # keys are named by label and fingerprint


async def test_a_failure_share_opening_the_circuit_says_so(
    caplog: Any, autojump_clock: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="byok.proxy")
    async with open_stack(one_key(), SECRETS) as stack:
        stack.simulator.set(FAULTY, mode="500", every=2)
        for _ in range(30):
            await read(stack, False)
        opened = [r.getMessage() for r in caplog.records if "circuit opened:" in r.getMessage()]
        assert opened
        assert "recent attempts failed" in opened[0]
