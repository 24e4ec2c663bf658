"""The byok command as a person runs it: real processes, real sockets."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


def byok(*args: str, env: dict[str, str] | None = None, timeout: float = 30):
    # no ambient keys: a test gives byok exactly the keys it means to
    ambient = ("_API_KEY", "_API_KEYS", "BYOK_ADMIN_KEY")
    base = {k: v for k, v in os.environ.items() if not k.endswith(ambient)}
    return subprocess.run(
        [sys.executable, "-m", "byok", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    """`byok serve ARGS` as a child process, its stderr captured; killed if
    the test leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "byok", "serve", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then the stderr of the exit that follows."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=15)[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_without_keys_says_what_to_set():
    result = byok("serve")
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr
    assert "byok demo" in result.stderr


def test_check_config_prints_routes_and_locates_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(
        '[providers.openai]\nkeys = ["sk-secret-value"]\n[models.m]\ntargets = ["openai/gpt-4o"]\n'
    )
    result = byok("check-config", str(good))
    assert result.returncode == 0, result.stderr
    assert "model m: weighted_round_robin over openai/gpt-4o" in result.stdout
    assert "sk-secret-value" not in result.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.openai]\nkeys = ["sk-x"]\n[models.m]\ntargets = ["openai"]\n')
    result = byok("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: [models.m] targets[0]" in result.stderr


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows has no SIGTERM to send: Popen.send_signal(SIGTERM) is TerminateProcess, "
    "which kills byok before it can drain",
)
def test_serve_answers_and_drains_on_sigterm(tmp_path):
    """A real `byok serve`: it answers (both keys point at a closed port: 504
    after two attempts, no secret in the answer or the log), and SIGTERM ends
    it cleanly."""
    port = free_port()
    dead = free_port()  # nothing listens there
    config = tmp_path / "byok.toml"
    config.write_text(
        f"[server]\nport = {port}\nshutdown_grace = 2\n"
        f'[providers.openai]\nbase_url = "http://127.0.0.1:{dead}/v1"\nkeys = ["sk-a", "sk-b"]\n'
        '[models.m]\ntargets = ["openai/gpt"]\nattempts = 2\n'
    )
    with serving("--config", str(config)) as process:
        deadline = time.monotonic() + 20
        while True:
            try:
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "m", "messages": []},
                    timeout=5,
                )
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, "byok serve did not start"
                time.sleep(0.1)
        assert reply.status_code == 502  # both keys: connection refused (not a timeout)
        assert reply.headers["x-byok-attempts"] == "2"
        assert reply.headers["x-should-retry"] == "false"
        assert "sk-a" not in reply.text
        stderr = stop(process)
    assert process.returncode == 0
    assert "draining" in stderr
    assert "sk-a" not in stderr
    assert "sk-b" not in stderr


def test_demo_runs_and_shows_the_table():
    """Piped, as CI runs it: the snippets, then the table once at the end,
    plain (no colour, no cursor code, even where FORCE_COLOR is set)."""
    result = byok("demo", "--port", "0", "--duration", "4", env={"FORCE_COLOR": "1"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^  curl .* http://127\.0\.0\.1:\d+/v1/chat/completions ", result.stdout, re.M
    )
    assert re.search(r"^    openai-revoked +blocked ", result.stdout, re.M)
    assert len(re.findall(r"^    openai-revoked ", result.stdout, re.M)) == 1  # one table
    assert "claude-steady" in result.stdout
    assert "\x1b" not in result.stdout
    assert "sk-demo" not in result.stdout + result.stderr
