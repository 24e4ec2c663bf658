"""A `byok serve --workers N` group as a child process, and requests that
say which worker answered them."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ..cli.running import Lines, running

# the tests of groups run where the port is shared for real
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="Linux spreads the connections to a port over its SO_REUSEPORT listeners; "
    "macOS and the BSDs share the port without spreading, Windows cannot share it "
    "(tests/workers/test_count.py runs there)",
)

ADMIN_KEY = "adm-workers-ADMIN-5150"
KEYS = {"sk-workers-ONE-1111": "one", "sk-workers-TWO-2222": "two", "sk-workers-3-3333": "three"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


def config_text(
    upstream: str, labels: list[str], strategy: str = "round_robin", **server: Any
) -> str:
    """A config with the keys named `labels`, all at the simulated upstream."""
    keys = ", ".join(
        f'{{ key = "{secret}", label = "{label}" }}'
        for secret, label in KEYS.items()
        if label in labels
    )
    settings = {"shutdown_grace": 10, **server}
    table = "".join(f"{name} = {value}\n" for name, value in settings.items())
    return (
        f'[server]\n{table}admin_keys = ["{ADMIN_KEY}"]\n'
        f'[providers.sim]\nkind = "openai"\nbase_url = "{upstream}/v1"\nkeys = [{keys}]\n'
        f'[models.m]\ntargets = ["sim/up"]\nstrategy = "{strategy}"\n'
    )


@dataclass
class Group:
    process: subprocess.Popen[str]
    err: Lines
    url: str
    port: int
    pids: dict[int, int] = field(default_factory=dict)  # worker index -> its latest pid

    def line(self, pattern: str, what: str, seconds: float = 20) -> re.Match[str]:
        """The next line of the supervisor's stderr that `pattern` finds."""
        self.err.until(lambda line: re.search(pattern, line) is not None, what, seconds)
        found = re.search(pattern, self.err.seen[-1])
        assert found is not None
        return found

    def started(self, index: int, seconds: float = 20) -> int:
        """The pid of worker `index`, once the supervisor says it started."""
        found = self.line(rf"worker {index} started \(pid (\d+)\)", f"worker {index}", seconds)
        self.pids[index] = int(found[1])
        return self.pids[index]


@contextlib.contextmanager
def group(config: Path, workers: int = 2) -> Iterator[Group]:
    """`byok serve --workers N` on a free port, once it says it listens."""
    args = ("--config", str(config), "--port", "0", "--workers", str(workers))
    with running("serve", *args) as (process, _, err):
        pids: dict[int, int] = {}
        lines = err.until(lambda line: "listening on" in line, "the listening line")
        for line in lines:
            started = re.search(r"worker (\d+) started \(pid (\d+)\)", line)
            if started:
                pids[int(started[1])] = int(started[2])
        listening = re.search(
            r"listening on http://127\.0\.0\.1:(\d+) .*; (\d+) workers\)", lines[-1]
        )
        assert listening, lines[-1]
        assert int(listening[2]) == workers
        assert sorted(pids) == list(range(workers)), lines
        port = int(listening[1])
        try:
            yield Group(process, err, f"http://127.0.0.1:{port}", port, pids)
        finally:
            # stopped as an operator stops it: a killed supervisor leaves
            # its workers to drain on their own, and its health segment
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=30)


def segment_of(pid: int) -> str:
    """The name of the health segment that worker `pid` attached."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(v[20:].decode() for v in environ if v.startswith(b"BYOK_HEALTH_SEGMENT="))


def answered(reply: httpx.Response) -> int:
    """The worker that answered `reply`."""
    return int(reply.headers["x-byok-worker"])


def from_each(
    ask: Callable[[], httpx.Response],
    wanted: Callable[[httpx.Response], bool],
    workers: int = 2,
    seconds: float = 20,
) -> dict[int, httpx.Response]:
    """`ask()` (a new connection each time, which the kernel hands to any
    worker) until every worker gave an answer that `wanted` accepts."""
    deadline = time.monotonic() + seconds
    found: dict[int, httpx.Response] = {}
    while len(found) < workers:
        assert time.monotonic() < deadline, f"only workers {sorted(found)} answered as wanted"
        reply = ask()
        if wanted(reply):
            found[answered(reply)] = reply
    return found


def generation(reply: httpx.Response) -> int:
    return int(reply.json()["config"]["generation"])


def client(url: str) -> openai.OpenAI:
    """The SDK with no retries of its own, and a new connection for each
    request: the kernel hands each connection to one worker or another."""
    return openai.OpenAI(
        base_url=f"{url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=20,
        http_client=httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)),
    )


def chat(oai: openai.OpenAI) -> Any:
    return oai.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)


def keys(url: str) -> httpx.Response:
    return httpx.get(f"{url}/admin/keys", headers=ADMIN, timeout=20)


def wait_until(check: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
