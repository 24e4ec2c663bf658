"""How byok judges keys on real fault shapes: the figures of the key-health issue.

    python benchmarks/fault_scenarios.py             # every scenario, in real time (~3 min)
    python benchmarks/fault_scenarios.py --virtual   # the timing scenarios in virtual time
    python benchmarks/fault_scenarios.py --only outage,streams

Everything runs on loopback in this process: byok's simulated upstream (real
HTTP) and the proxy, with byok's own HTTP client as the load (and the official
openai SDK in one scenario).  Default settings throughout (cooldown 1 s,
max_cooldown 15 s, failure_threshold 3, failure_rate 50% over 30 s with at
least 10 attempts), except where a scenario names one.  Nothing is asserted:
each scenario prints what it measured beside the figure it must reach.

With --virtual, the scenarios whose subject is time (cooldowns, probes,
windows) run under trio's MockClock: the proxy hands trio's clock to the
engine, so the same decisions happen in a fraction of the time.  The stream
scenarios, the 1,000 concurrent streams and the SDK run in real time always.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio
import trio.testing

from byok.app import App
from byok.cli.simulator import SimulatedUpstream
from byok.config import from_dict
from byok.http.server import bound_port, serve_http
from byok.http.upstream import Upstream, UpstreamError

KEYS = {"sk-scenario-alpha-000": "alpha", "sk-scenario-bravo-000": "bravo"}
KEYS3 = {**KEYS, "sk-scenario-charlie-0": "charlie"}
ADMIN_KEY = "adm-scenario-0123456789"
ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def tables(upstream: str, keys: dict[str, str], **model: Any) -> dict[str, Any]:
    return {
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": v} for k, v in keys.items()],
            }
        },
        "models": {"m": {"targets": ["sim/up"], **model}},
    }


class Running:
    """The simulator and the proxy on loopback, and a client for them."""

    def __init__(self, simulator: SimulatedUpstream, app: App, url: str) -> None:
        self.simulator, self.app, self.url = simulator, app, url
        self.client = Upstream()

    def view(self, label: str) -> dict[str, Any]:
        views = self.app.live.runtime.router.pool("sim", "up").selector.snapshot(
            now=trio.current_time()
        )
        return next(v for v in views if v["id"] == label)

    async def ask(self, stream: bool = False) -> tuple[int, str, bytes]:
        """(status, x-byok-key, body) of one request through the proxy."""
        body = msgspec.json.encode({**ASK, "stream": stream})
        try:
            answer = await self.client.send(
                self.url, "POST", f"{self.url}/v1/chat/completions", [], body
            )
            data = await answer.read()
        except UpstreamError as error:
            return 0, "-", str(error).encode()
        return answer.status, answer.header("x-byok-key") or "-", data


async def running(
    keys: dict[str, str], scenario: Callable[[Running], Awaitable[None]], **model: Any
) -> None:
    simulator = SimulatedUpstream()
    for secret, name in keys.items():
        simulator.add_key(secret, name)
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
        config = from_dict(tables(f"http://127.0.0.1:{bound_port(upstream)}", keys, **model))
        app = App(config)
        listeners = await nursery.start(serve_http, app, "127.0.0.1", 0)
        nursery.start_soon(app.maintain)
        stack = Running(simulator, app, f"http://127.0.0.1:{bound_port(listeners)}")
        try:
            await scenario(stack)
        finally:
            await stack.client.aclose()
            await app.aclose()
            nursery.cancel_scope.cancel()


def run(main: Callable[[], Awaitable[None]], virtual: bool) -> None:
    if virtual:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.01))
    else:
        trio.run(main)


def report(name: str, measured: str, target: str) -> None:
    print(f"{name}\n    measured: {measured}\n    must:     {target}\n", flush=True)


# ---- the scenarios ----------------------------------------------------------------------


async def explained_429s() -> None:
    async def scenario(s: Running) -> None:
        alpha = "sk-scenario-alpha-000"
        for _ in range(10):
            s.simulator.set(alpha, mode="429", retry_after=1)
            await s.ask()
            s.simulator.set(alpha)
            await trio.sleep(1.0)
        s.simulator.set(alpha, mode="429", retry_after=None)
        await s.ask()
        cooled = trio.current_time()
        s.simulator.set(alpha)
        while True:
            _, key, _ = await s.ask()
            if key == "alpha":
                break
            await trio.sleep(0.05)
        back = trio.current_time() - cooled
        level = s.view("alpha")["backoff_level"]
        report(
            "429 Retry-After: 1 ten times, then a 429 without a delay",
            f"back in {back:.2f}s (backoff level after: {level})",
            "back within 2 s",
        )

    await running(KEYS, scenario, strategy="priority")


async def outage() -> None:
    async def scenario(s: Running) -> None:
        alpha = "sk-scenario-alpha-000"
        s.simulator.set(alpha, mode="500")
        started = trio.current_time()
        hits: list[float] = []
        failures = 0
        while trio.current_time() - started < 60:
            before = s.simulator.requests_for(alpha)
            status, _, _ = await s.ask()
            failures += status != 200
            if s.simulator.requests_for(alpha) > before:
                hits.append(trio.current_time() - started)
            await trio.sleep(0.2)
        s.simulator.set(alpha)
        ended = trio.current_time()
        while (await s.ask())[1] != "alpha":
            await trio.sleep(0.2)
        back = trio.current_time() - ended
        gaps = [b - a for a, b in itertools.pairwise(hits)]
        shown = ", ".join(f"{g:.1f}" for g in gaps)
        report(
            "a 60 s 5xx outage on one of two keys, 5 requests a second",
            f"serves again {back:.1f}s after the outage ends; {len(hits)} requests reached it "
            f"during the outage, gaps between them (s): {shown}; client-visible failures: "
            f"{failures}",
            "within 15 s, at most one probe per cooldown step",
        )

    await running(KEYS, scenario, strategy="priority")


async def half_failing() -> None:
    async def scenario(s: Running) -> None:
        charlie = "sk-scenario-charlie-0"
        s.simulator.set(charlie, mode="500", every=2)
        failures = 0
        started = trio.current_time()

        async def one() -> None:
            nonlocal failures
            status, _, _ = await s.ask()
            failures += status != 200

        async with trio.open_nursery() as nursery:
            for n in range(1200):  # 20 a second for 60 s
                await trio.sleep_until(started + n / 20)
                nursery.start_soon(one)
        hits = [seen.at - started for seen in s.simulator.seen if seen.key == charlie]
        first = sum(1 for t in hits if t < 30)
        report(
            "one of three keys failing half its requests, 20 requests a second",
            f"{first} attempts reached it in the first 30 s, {len(hits)} in the whole first "
            f"minute ({len(hits) - first} in its second half); client-visible failures: "
            f"{failures}",
            "at most 25 attempts a minute, zero client-visible failures",
        )

    await running(KEYS3, scenario)


async def streams() -> None:
    async def reset_before_bytes(s: Running) -> None:
        s.simulator.set("sk-scenario-alpha-000", mode="head_then_reset")
        broken = 0
        for _ in range(40):
            status, _, body = await s.ask(stream=True)
            broken += status != 200 or not body.rstrip().endswith(b"data: [DONE]")
        report(
            "a key whose streams reset between head and first byte, beside a healthy key",
            f"{broken} of 40 streams reached the client broken",
            "0 of 40",
        )

    async def break_midway(s: Running) -> None:
        s.simulator.set("sk-scenario-alpha-000", mode="drop", drop_after=2)
        breaks = 0
        while s.view("alpha")["state"] == "ready" and breaks < 50:
            _, key, body = await s.ask(stream=True)
            breaks += key == "alpha" and b'"error"' in body
        report(
            "a key whose streams break midway",
            f"cooled ({s.view('alpha')['state']}) after {breaks} broken streams",
            "cooled after failure_threshold (3) breaks",
        )

    await running(KEYS, reset_before_bytes, strategy="round_robin")
    await running(KEYS, break_midway, strategy="priority")


async def many_streams(count: int = 1000, seconds: float = 10.0) -> None:
    """The proxy in a process of its own (`byok serve`, as users run it), the
    simulator and the clients in this one."""
    simulator = SimulatedUpstream()
    for secret, name in KEYS.items():
        # 9 words, a last event and [DONE]: 11 events, 10 gaps
        simulator.add_key(secret, name, chunks=9, chunk_delay=seconds / 10)
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
        port = _free_port()
        config = _toml(
            tables(
                f"http://127.0.0.1:{bound_port(upstream)}",
                KEYS,
                strategy="round_robin",
                first_byte_timeout=5,
            ),
            port,
        )
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as file:
            file.write(config)
        proxy = await trio.lowlevel.open_process(
            [sys.executable, "-m", "byok", "serve", "--config", file.name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        client = Upstream()
        try:
            for _ in range(200):  # up within 20 s
                try:
                    await (await client.send(url, "GET", f"{url}/health", [], b"")).read()
                    break
                except UpstreamError:
                    await trio.sleep(0.1)
            done: list[float] = []
            bad = 0
            started = trio.current_time()

            async def one() -> None:
                nonlocal bad
                body = msgspec.json.encode({**ASK, "stream": True})
                try:
                    answer = await client.send(url, "POST", f"{url}/v1/chat/completions", [], body)
                    data = await answer.read()
                except UpstreamError:
                    bad += 1
                    return
                if answer.status == 200 and data.rstrip().endswith(b"data: [DONE]"):
                    done.append(trio.current_time() - started)
                else:
                    bad += 1

            async with trio.open_nursery() as streams:
                for _ in range(count):
                    streams.start_soon(one)
            admin = [("authorization", f"Bearer {ADMIN_KEY}")]
            keys = msgspec.json.decode(
                await (await client.send(url, "GET", f"{url}/admin/keys", admin, b"")).read()
            )
        finally:
            proxy.terminate()
            await proxy.wait()
            await client.aclose()
            os.unlink(file.name)
            nursery.cancel_scope.cancel()
    failures = _key_failures(keys)
    report(
        f"{count:,} concurrent {seconds:g} s streams over two healthy keys "
        "(byok serve in its own process, first_byte_timeout 5 s)",
        f"{len(done)} complete, the last after {max(done, default=0):.1f}s "
        f"(median {statistics.median(done or [0]):.1f}s); {bad} failed; "
        f"key failures recorded: {failures}",
        f"all complete within {seconds + 2:g} s, zero key failures",
    )


def _key_failures(keys: Any) -> int | str:
    if "models" not in keys:
        return f"? ({keys})"
    return sum(
        key["failures"]
        for model in keys["models"]
        for target in model["targets"]
        for key in target["keys"]
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml(data: dict[str, Any], port: int) -> str:
    """The few shapes of tables() as TOML (no writer in the standard library)."""
    lines = [f'[server]\nport = {port}\nadmin_keys = ["{ADMIN_KEY}"]\n']
    for name, provider in data["providers"].items():
        keys = ", ".join(
            f'{{ key = "{k["key"]}", label = "{k["label"]}" }}' for k in provider["keys"]
        )
        lines.append(
            f'[providers.{name}]\nkind = "{provider["kind"]}"\n'
            f'base_url = "{provider["base_url"]}"\nkeys = [{keys}]\n'
        )
    for name, model in data["models"].items():
        fields = "\n".join(f"{k} = {json.dumps(v)}" for k, v in model.items())
        lines.append(f'[models."{name}"]\n{fields}\n')
    return "\n".join(lines)


def sdk_waits_for_the_keys() -> None:
    """All keys 429 with Retry-After: 2; the openai SDK with its default retries."""
    from openai import OpenAI  # the official SDK, a test dependency

    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        async def scenario(s: Running) -> None:
            for secret in KEYS:
                s.simulator.set(secret, mode="429", retry_after=2)
            box["stack"], box["token"] = s, trio.lowlevel.current_trio_token()
            box["stop"] = trio.Event()
            ready.set()
            await box["stop"].wait()

        await running(KEYS, scenario)

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    ready.wait(10)
    stack: Running = box["stack"]
    client = OpenAI(base_url=f"{stack.url}/v1", api_key="unused")

    def recover() -> None:
        time.sleep(2)
        for secret in KEYS:
            stack.simulator.set(secret)

    threading.Thread(target=recover, daemon=True).start()
    started = time.monotonic()
    try:
        reply = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        outcome = f"{reply.http_response.status_code} after {time.monotonic() - started:.1f}s"
    except Exception as error:  # the figure is whatever happened
        outcome = f"{type(error).__name__} after {time.monotonic() - started:.1f}s: {error}"
    trio.from_thread.run_sync(box["stop"].set, trio_token=box["token"])
    thread.join(10)
    report(
        "every key 429 with Retry-After: 2, the openai SDK with its default retries",
        outcome,
        "a 200 once a key returns",
    )


async def hedging() -> None:
    async def scenario(s: Running) -> None:
        s.simulator.set("sk-scenario-alpha-000", mode="reset")
        times = []
        for _ in range(20):
            started = trio.current_time()
            await s.ask()
            times.append(trio.current_time() - started)
        report(
            "hedging on (hedge_after 1 s), the first key fails before its head",
            f"answered in a median {statistics.median(times) * 1000:.0f} ms",
            "the next key starts at once, not after hedge_after",
        )

    await running(KEYS, scenario, strategy="priority", hedge_after=1)


SCENARIOS: dict[str, tuple[Callable[[], Awaitable[None]], bool]] = {
    # name: (scenario, may run in virtual time)
    "429s": (explained_429s, True),
    "outage": (outage, True),
    "half-failing": (half_failing, True),
    "streams": (streams, False),
    "hedging": (hedging, False),
    "many-streams": (many_streams, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--virtual", action="store_true", help="timing scenarios in virtual time")
    parser.add_argument(
        "--only", default="", help="comma-separated: " + ", ".join([*SCENARIOS, "sdk"])
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # byok's warnings about keys are expected here
    wanted = [n for n in args.only.split(",") if n] or [*SCENARIOS, "sdk"]
    clock = "virtual time for the timing scenarios" if args.virtual else "real time"
    print(f"byok fault scenarios ({clock}; {time.strftime('%Y-%m-%d %H:%M')})\n")
    for name in wanted:
        if name == "sdk":
            sdk_waits_for_the_keys()
            continue
        scenario, may_be_virtual = SCENARIOS[name]
        run(scenario, args.virtual and may_be_virtual)


if __name__ == "__main__":
    main()
