"""`byok demo`: simulated OpenAI and Anthropic upstreams on loopback, the proxy
in front, and a live table of key states.

The simulated keys misbehave on purpose: one is rate-limited every few
requests (429 with Retry-After), one was revoked (401), one is slow.  The demo
sends a little traffic of its own (``--no-traffic`` turns that off) so that
routing, cooldown and recovery show in the table without any typing; the
printed curl and SDK snippets work against it too.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import httpx2 as httpx
import trio

from ..app import App
from ..config import from_dict
from ..http.server import bound_port, serve_http
from .simulator import SimulatedUpstream
from .tables import format_table

KeySpec = tuple[str, str, dict[str, Any]]  # secret, label, simulated behaviour

OPENAI_KEYS: list[KeySpec] = [
    ("sk-demo-openai-steady", "openai-steady", {}),
    ("sk-demo-openai-busy", "openai-busy", {"mode": "429", "every": 3, "retry_after": 6}),
    ("sk-demo-openai-revoked", "openai-revoked", {"mode": "401"}),
    ("sk-demo-openai-slow", "openai-slow", {"delay": 0.6}),
]
ANTHROPIC_KEYS: list[KeySpec] = [
    ("sk-ant-demo-steady", "claude-steady", {}),
    ("sk-ant-demo-busy", "claude-busy", {"mode": "429", "every": 4, "retry_after": 5}),
]


def run(port: int = 8787, duration: float | None = None, traffic: bool = True) -> int:
    try:
        trio.run(_demo, port, duration, traffic, sys.stdout)
    except KeyboardInterrupt:
        print("\nbyok demo stopped.")
    return 0


def _tables(upstream: str) -> dict[str, Any]:
    def keys(entries: list[KeySpec]) -> list[dict[str, str]]:
        return [{"key": secret, "label": label} for secret, label, _ in entries]

    return {
        "server": {"cooldown": 2, "max_cooldown": 30, "failure_threshold": 2},
        "providers": {
            "openai": {"kind": "openai", "base_url": f"{upstream}/v1", "keys": keys(OPENAI_KEYS)},
            "anthropic": {"kind": "anthropic", "base_url": upstream, "keys": keys(ANTHROPIC_KEYS)},
        },
        "models": {
            "gpt-4o-mini": {
                "targets": ["openai/gpt-4o-mini"],
                "strategy": "round_robin",
                "fallbacks": ["claude-haiku"],
            },
            "claude-haiku": {"targets": ["anthropic/claude-3-5-haiku"], "strategy": "round_robin"},
        },
    }


async def _demo(port: int, duration: float | None, traffic: bool, out: TextIO) -> None:
    simulator = SimulatedUpstream()
    for secret, label, behaviour in OPENAI_KEYS + ANTHROPIC_KEYS:
        simulator.add_key(secret, label, **behaviour)
    with trio.move_on_after(duration if duration else float("inf")):
        async with trio.open_nursery() as nursery:
            upstream = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
            config = from_dict(_tables(f"http://127.0.0.1:{bound_port(upstream)}"), "demo")
            app = App(config)
            nursery.start_soon(app.maintain)
            try:
                listeners = await nursery.start(serve_http, app, "127.0.0.1", port)
                url = f"http://127.0.0.1:{bound_port(listeners)}"
                print(_snippets(url), file=out, flush=True)
                if traffic:
                    nursery.start_soon(_traffic, url)
                await _show_table(app, out)
            finally:
                with trio.CancelScope(shield=True):
                    await app.aclose()


def _snippets(url: str) -> str:
    return f"""byok demo: a proxy on {url} in front of simulated OpenAI and Anthropic keys
(openai-busy answers 429 every 3rd request, openai-revoked answers 401,
openai-slow takes 0.6 s; claude-busy answers 429 every 4th request).

Try it (any API key works: the demo needs no client key on loopback):

  curl {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "hi"}}]}}' -i

  python -c 'import openai; c = openai.OpenAI(base_url="{url}/v1", api_key="demo");
  print(c.chat.completions.create(model="gpt-4o-mini",
        messages=[{{"role": "user", "content": "hi"}}]).choices[0].message.content)'

  python -c 'import anthropic; c = anthropic.Anthropic(base_url="{url}", api_key="demo");
  print(c.messages.create(model="claude-haiku", max_tokens=50,
        messages=[{{"role": "user", "content": "hi"}}]).content[0].text)'

The demo also sends two requests a second itself; the table below updates live.
"""


async def _traffic(url: str) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        n = 0
        while True:
            n += 1
            if n % 3:
                await client.post("/v1/chat/completions", json={**body, "model": "gpt-4o-mini"})
            else:
                await client.post("/v1/messages", json={**body, "model": "claude-haiku"})
            await trio.sleep(0.5)


async def _show_table(app: App, out: TextIO) -> None:
    redraw = out.isatty() and os.environ.get("TERM") != "dumb"
    lines = 0
    while True:
        table = _table(app)
        if redraw and lines:
            out.write(f"\x1b[{lines}F\x1b[J")  # back up over the last table
        out.write(table + "\n")
        out.flush()
        lines = table.count("\n") + 1
        await trio.sleep(1.0)


def _table(app: App) -> str:
    return format_table(app.admin.keys_view())
