"""How byok commands end: Ctrl-C (SIGINT) and SIGTERM with one line and
128 + the signal's number (serve: a drain, then 0), and every expected
failure with one line and exit 2, never a traceback.  Real processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .running import Lines, running
from .test_cli import byok, free_port

posix_signals = pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows has no SIGTERM to send: Popen.send_signal(SIGTERM) is TerminateProcess, "
    "which ends byok before it can do anything",
)


@contextlib.contextmanager
def silent_upstream() -> Iterator[tuple[socket.socket, str]]:
    """A port that takes connections and never answers: a command asking it
    waits until a signal stops it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(30)
        yield listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def finish(process: subprocess.Popen[str], *streams: Lines) -> list[str]:
    process.wait(timeout=30)
    return [stream.rest() for stream in streams]


SIGNALS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm")]


@posix_signals
@pytest.mark.parametrize("signum", SIGNALS)
def test_demo_stops_on_a_signal_with_one_line(signum):
    with running("demo", "--port", "0") as (process, out, err):
        out.until(lambda line: "Ctrl-C stops it" in line, "the introduction")
        process.send_signal(signum)
        stdout, stderr = finish(process, out, err)
    assert process.returncode == 128 + signum
    assert stderr.strip().splitlines()[-1] == f"byok demo: stopped by {signum.name}"
    assert "Traceback" not in stderr
    assert "ExceptionGroup" not in stderr
    # piped: the table once more as it stops
    assert "openai-revoked" in stdout.split("Ctrl-C stops it")[1]


@posix_signals
@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("command", ["keys check", "status"])
def test_a_waiting_command_stops_on_a_signal_with_one_line(tmp_path, command, signum):
    """`keys check` (on trio) and `status` (plain Python) waiting for an
    upstream that never answers."""
    with silent_upstream() as (listener, url):
        config = tmp_path / "byok.toml"
        config.write_text(
            f'[providers.p]\nkind = "openai"\nbase_url = "{url}/v1"\nkeys = ["sk-waiting-1"]\n'
        )
        args = ["--config", str(config)] if command == "keys check" else ["--url", url]
        with running(*command.split(), *args) as (process, out, err):
            connection, _ = listener.accept()  # byok asked, and waits for the answer
            with connection:
                process.send_signal(signum)
                _, stderr = finish(process, out, err)
    assert process.returncode == 128 + signum
    assert one_line(stderr) == f"byok {command}: stopped by {signum.name}"


@posix_signals
@pytest.mark.parametrize("command", ["keys check", "status"])
def test_sigterm_stops_a_command_that_ignores_ctrl_c(tmp_path, command):
    """A background job of a script ignores SIGINT (and trio then takes no
    handler of its own): SIGTERM still ends the command in one line."""
    with silent_upstream() as (listener, url):
        config = tmp_path / "byok.toml"
        config.write_text(
            f'[providers.p]\nkind = "openai"\nbase_url = "{url}/v1"\nkeys = ["sk-bg-1"]\n'
        )
        args = ["--config", str(config)] if command == "keys check" else ["--url", url]
        with running(*command.split(), *args, ignore_ctrl_c=True) as (process, out, err):
            connection, _ = listener.accept()
            with connection:
                process.send_signal(signal.SIGINT)  # ignored
                process.send_signal(signal.SIGTERM)
                _, stderr = finish(process, out, err)
    assert process.returncode == 128 + signal.SIGTERM
    assert one_line(stderr) == f"byok {command}: stopped by SIGTERM"


@posix_signals
@pytest.mark.parametrize("signum", SIGNALS)
def test_serve_drains_on_a_signal_and_exits_0(tmp_path, signum):
    """A shutdown asked for is a success: 0, as systemd and docker expect."""
    port = free_port()
    config = tmp_path / "byok.toml"
    config.write_text(
        f'[server]\nport = {port}\n[providers.p]\nkind = "openai"\nkeys = ["sk-drain-1"]\n'
    )
    with running("serve", "--config", str(config)) as (process, out, err):
        err.until(lambda line: "listening on" in line, "the listening line")
        process.send_signal(signum)
        _, stderr = finish(process, out, err)
    assert process.returncode == 0, stderr
    assert f"{signum.name}: draining requests in flight" in stderr
    assert "Traceback" not in stderr


@posix_signals
def test_a_second_signal_ends_the_drain(tmp_path):
    """SIGTERM starts a drain that would wait 30 s for a request in flight;
    Ctrl-C then ends it at once, in one line."""
    port = free_port()
    with silent_upstream() as (listener, upstream):
        config = tmp_path / "byok.toml"
        config.write_text(
            f"[server]\nport = {port}\nshutdown_grace = 30\n"
            f'[providers.p]\nkind = "openai"\nbase_url = "{upstream}/v1"\nkeys = ["sk-drain-2"]\n'
            '[models.m]\ntargets = ["p/up"]\n'
        )
        with running("serve", "--config", str(config)) as (process, out, err):
            err.until(lambda line: "listening on" in line, "the listening line")
            replies: list[object] = []

            def ask() -> None:
                with contextlib.suppress(httpx.HTTPError):
                    replies.append(
                        httpx.post(
                            f"http://127.0.0.1:{port}/v1/chat/completions",
                            json={"model": "m", "messages": []},
                            timeout=60,
                        )
                    )

            client = threading.Thread(target=ask)
            client.start()
            connection, _ = listener.accept()  # the request is upstream: in flight
            with connection:
                process.send_signal(signal.SIGTERM)
                err.until(lambda line: "draining" in line, "the drain")
                process.send_signal(signal.SIGINT)
                _, stderr = finish(process, out, err)
            client.join(timeout=30)
    assert process.returncode == 128 + signal.SIGINT
    assert stderr.strip().splitlines()[-1] == "byok serve: stopped by SIGINT"
    assert "Traceback" not in stderr
    assert replies == []  # the client saw its connection end, not an answer


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_a_busy_port_is_one_line(busy_port, command):
    result = byok(command, "--port", str(busy_port), env={"OPENAI_API_KEY": "sk-busy-1"})
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"byok: cannot listen on 127.0.0.1:{busy_port}: the address is in use "
        "(another byok?); pick another with --port"
    )


def test_a_port_out_of_range_is_one_line():
    result = byok("serve", "--port", "70000", env={"OPENAI_API_KEY": "sk-range-1"})
    assert result.returncode == 2
    # not 70000 - 65536 = 4464, where the resolver would have put it
    assert one_line(result.stderr) == (
        "byok: cannot listen on 127.0.0.1:70000: a port is 0 to 65535; pick one with --port"
    )


def privileged_port() -> int:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except OSError:
        start = 1024  # elsewhere, the historical rule
    if start <= 1:
        pytest.skip(f"every port is unprivileged here (ip_unprivileged_port_start = {start})")
    return 80 if start > 80 else start - 1


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no privileged ports")
def test_no_permission_to_listen_is_one_line():
    """A privileged port: refused to a user, and to root too once byok runs
    without CAP_NET_BIND_SERVICE (setpriv drops it from root's bounding set;
    the test does not depend on who runs it)."""
    port = privileged_port()
    command = [sys.executable, "-m", "byok", "serve", "--port", str(port)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "this test needs setpriv (Debian's util-linux) to run without the cap"
        command = [setpriv, "--bounding-set", "-net_bind_service", *command]
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_KEYS"))}
    result = subprocess.run(
        command,
        env={**env, "OPENAI_API_KEY": "sk-perm-1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"byok: cannot listen on 127.0.0.1:{port}: permission denied (a port below 1024 "
        "needs root or CAP_NET_BIND_SERVICE); pick another with --port"
    )


def test_an_unreadable_config_is_one_line(tmp_path):
    """A directory where the file should be: unreadable whoever runs it."""
    for command in (["serve"], ["keys", "check"], ["check-config"]):
        result = byok(*command, "--config", str(tmp_path))
        assert result.returncode == 2, command
        assert one_line(result.stderr) == f"byok: {tmp_path}: cannot read the file: Is a directory"


@pytest.mark.parametrize("command", [["serve"], ["keys", "check"]])
def test_missing_keys_are_one_line(command):
    result = byok(*command)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("byok: environment: no upstream keys: set OPENAI_API_KEY")
    assert "byok demo" in line


@posix_signals
def test_a_reader_that_leaves_ends_the_demo_quietly():
    """`byok demo | head`: the pipe closes under the demo, which ends as a
    SIGPIPE would end it (141), without a traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "byok", "demo", "--port", "0", "--duration", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        for line in process.stdout:  # the demo ends by itself: no endless wait
            if "Ctrl-C stops it" in line:
                break
    # the table at the end has nowhere to go
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signal.SIGPIPE
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
