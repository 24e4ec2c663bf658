"""`byok demo`: simulated OpenAI and Anthropic upstreams on loopback, the proxy
in front, and a live table of key states.

The simulated keys misbehave on purpose: one is rate-limited every few
requests (429 with Retry-After), one was revoked (401), one is slow.  The demo
sends a little traffic of its own (``--no-traffic`` turns that off) so that
routing, cooldown and recovery show in the table without any typing; the
printed curl and SDK snippets work against it too, pasted as they are into a
shell (the SDK ones name this very interpreter, and say what to install
first when an SDK is missing).

On a terminal the table is redrawn in place (rich's Live) and log lines are
printed above it; anywhere else (a pipe, a file) the table is printed every
ten seconds and once at the end, as plain text.  SIGINT (Ctrl-C) and SIGTERM
stop it: the exit status is then 128 plus the signal's number, as a shell
reports a command that a signal ended.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import math
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, TextIO

import httpx2 as httpx
import trio
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler

from ..app import App, Stopped, listening
from ..config import from_dict
from ..http.server import bound_port, serve_http
from .simulator import SimulatedUpstream
from .tables import format_table, key_table

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
SDKS = ("openai", "anthropic")  # the packages the SDK snippets import
REDRAW_EVERY = 1.0  # seconds between redraws of the live table
PRINT_EVERY = 10.0  # seconds between tables printed to a pipe or a file


def run(
    port: int = 8787, duration: float | None = None, traffic: bool = True, out: TextIO | None = None
) -> int:
    """`byok demo`: 0 when `duration` is up; SIGINT or SIGTERM raises
    Stopped (in trio's exception group) once the demo has wound down."""
    trio.run(_demo, port, duration, traffic, out or sys.stdout)
    return 0


def _tables(upstream: str, usage: str) -> dict[str, Any]:
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
        # the demo's usage goes to a file of its own, gone with it: not into
        # the usage ledger of a byok this user may run for real
        "usage": {"path": usage},
    }


async def _demo(port: int, duration: float | None, traffic: bool, out: TextIO) -> None:
    """The demo until `duration` is up, or until a signal raises Stopped."""
    simulator = SimulatedUpstream()
    for secret, label, behaviour in OPENAI_KEYS + ANTHROPIC_KEYS:
        simulator.add_key(secret, label, **behaviour)
    with (
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        trio.move_on_after(duration or math.inf),
        contextlib.ExitStack() as stack,
    ):
        async with trio.open_nursery() as nursery:

            async def until_signal() -> None:
                async for signum in signals:
                    raise Stopped(signum)  # the nursery winds the rest down

            nursery.start_soon(until_signal)
            upstream = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="byok-demo-"))
            usage = os.path.join(scratch, "usage.sqlite3")
            config = from_dict(_tables(f"http://127.0.0.1:{bound_port(upstream)}", usage), "demo")
            app = App(config)
            nursery.start_soon(app.maintain)
            try:
                with listening("127.0.0.1", port):
                    listeners = await nursery.start(serve_http, app, "127.0.0.1", port)
                url = f"http://127.0.0.1:{bound_port(listeners)}"
                out.write(_snippets(url, _python(), _missing(SDKS)))
                out.flush()
                if traffic:
                    nursery.start_soon(_traffic, url)
                await _show_table(app, out)
            finally:
                with trio.CancelScope(shield=True):
                    await app.aclose()


def _python() -> str:
    """This interpreter as a shell here can name it: `python` (or `python3`)
    when that is the one on PATH, else its path."""
    for name in ("python", "python3"):
        found = shutil.which(name)
        if found and os.path.abspath(found) == os.path.abspath(sys.executable):
            return name
    return shlex.quote(sys.executable or "python3")


def _missing(packages: tuple[str, ...]) -> list[str]:
    """The packages that this interpreter cannot import."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


def _snippets(url: str, python: str, missing: list[str]) -> str:
    """The demo's introduction: what runs, and commands to paste into a shell.

    Each command is a block of lines indented by two spaces, blocks apart by
    blank lines; inside `python -c '...'` every statement is on the first
    line, so that the indented lines that follow (inside the parentheses of
    print) are no IndentationError."""
    install = ""
    if missing:
        install = (
            f"The SDK snippets need {' and '.join(missing)}, which this Python lacks; first:\n\n"
            f"  {python} -m pip install {' '.join(missing)}\n\n"
        )
    openai = f"""\
  {python} -c 'import openai; c = openai.OpenAI(base_url="{url}/v1", api_key="demo"); print(
    c.chat.completions.create(model="gpt-4o-mini",
      messages=[{{"role": "user", "content": "hi"}}]).choices[0].message.content)'
"""
    anthropic = f"""\
  {python} -c 'import anthropic; c = anthropic.Anthropic(base_url="{url}", api_key="demo"); print(
    c.messages.create(model="claude-haiku", max_tokens=50,
      messages=[{{"role": "user", "content": "hi"}}]).content[0].text)'
"""
    return f"""byok demo: a proxy on {url} in front of simulated OpenAI and Anthropic keys
(openai-busy answers 429 every 3rd request, openai-revoked answers 401,
openai-slow takes 0.6 s; claude-busy answers 429 every 4th request).

Try it from another terminal (any API key works: the demo needs no client key on loopback):

  curl -sS -i {url}/v1/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "hi"}}]}}'

{install}{openai}
{anthropic}
The demo also sends two requests a second itself; Ctrl-C stops it.

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
    """The key table until cancelled: live on a terminal, printed elsewhere."""
    console = Console(file=out)
    # the stream itself decides: FORCE_COLOR makes rich call a pipe a terminal
    if _isatty(out) and not console.is_dumb_terminal:
        await _live_table(app, console)
    else:
        await _printed_table(app, out)


async def _live_table(app: App, console: Console) -> None:
    with (
        _no_echo(),
        Live(key_table(app.admin.keys_view()), console=console, auto_refresh=False) as live,
        _logs_above(console),
    ):
        try:
            while True:
                await trio.sleep(REDRAW_EVERY)
                live.update(key_table(app.admin.keys_view()), refresh=True)
        finally:
            live.update(key_table(app.admin.keys_view()))  # Live draws it once more as it stops


async def _printed_table(app: App, out: TextIO) -> None:
    try:
        while True:
            await trio.sleep(PRINT_EVERY)
            out.write(format_table(app.admin.keys_view()) + "\n\n")
            out.flush()
    finally:
        out.write(format_table(app.admin.keys_view()) + "\n")
        out.flush()


@contextlib.contextmanager
def _logs_above(console: Console) -> Iterator[None]:
    """While the live table is up, log lines bound for the terminal go
    through its console, which prints them above the table (written to the
    terminal directly, they would land inside the redraw)."""
    root = logging.getLogger()
    replaced = [
        handler
        for handler in root.handlers
        if isinstance(handler, logging.StreamHandler) and _isatty(handler.stream)
    ]
    if not replaced:
        yield
        return
    above = RichHandler(console=console, show_path=False, markup=False)
    for handler in replaced:
        root.removeHandler(handler)
    root.addHandler(above)
    try:
        yield
    finally:
        root.removeHandler(above)
        for handler in replaced:
            root.addHandler(handler)


@contextlib.contextmanager
def _no_echo() -> Iterator[None]:
    """While the table is live, keys typed at the terminal are not echoed: an
    echoed Enter or ^C moves the cursor (and may scroll the screen) under
    rich's feet, and the redraw that follows would leave lines behind."""
    try:
        import termios
    except ImportError:  # Windows: no such terminal settings
        yield
        return
    stdin = sys.stdin
    fd = stdin.fileno() if stdin is not None and _isatty(stdin) else -1
    # a background job that changed them would be stopped (SIGTTOU)
    if fd < 0 or os.tcgetpgrp(fd) != os.getpgrp():
        yield
        return
    saved = termios.tcgetattr(fd)
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO  # the local modes
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or closed
        return False
