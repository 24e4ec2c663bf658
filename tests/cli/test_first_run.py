"""The first minutes of a newcomer: `byok demo`'s snippets pasted into a
shell, its live table in a real terminal (tmux), and the key table's
layout."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from rich.console import Console

from byok.cli import demo
from byok.cli.tables import HEADER, format_table, key_table

from .running import environment, running
from .test_cli import byok
from .test_keys_cli import VIEW

LABELS = [label for _, label, _ in demo.OPENAI_KEYS + demo.ANTHROPIC_KEYS]
STATES = "ready|cooldown|half_open|blocked|disabled"


def snippets(intro: str) -> list[str]:
    """The commands of the demo's introduction: blocks of lines indented by
    two spaces, blank lines apart, after "Try it"."""
    text = intro[intro.index("Try it") :]
    blocks = [block.strip("\n") for block in re.split(r"\n\s*\n", text)]
    return [b for b in blocks if b and all(line.startswith("  ") for line in b.splitlines())]


@pytest.mark.skipif(
    sys.platform == "win32", reason="the snippets are for a POSIX shell (single quotes)"
)
def test_every_snippet_the_demo_prints_works_pasted_into_a_shell():
    with running("demo", "--port", "0") as (process, out, _):
        intro = "".join(out.until(lambda line: "Ctrl-C stops it" in line, "the introduction"))
        commands = snippets(intro)
        assert [c.split()[0] for c in commands] == ["curl", demo._python(), demo._python()]
        answers = []
        for command in commands:
            # verbatim, with the indentation a mouse selection keeps
            result = subprocess.run(
                ["bash", "-c", command],
                capture_output=True,
                text=True,
                timeout=60,
                env=environment(),
            )
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            answers.append(result.stdout)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    curl, openai, anthropic = answers
    assert curl.startswith("HTTP/1.1 200")
    assert re.search(r'"content":\s*"Hello from (openai|claude)-', curl)
    # the SDKs print the answer's text and nothing else; the demo's failover
    # keeps the rate-limited and revoked keys out of it
    assert re.fullmatch(r"Hello from openai-(steady|busy|slow)( word)*\n", openai)
    assert re.fullmatch(r"Hello from claude-(steady|busy)( word)*\n", anthropic)
    assert process.returncode == 128 + signal.SIGINT


def test_the_snippets_say_what_to_install_first_when_an_sdk_is_missing():
    url = "http://127.0.0.1:9"
    complete = snippets(demo._snippets(url, "python3", []))
    assert not any("pip install" in c for c in complete)
    lacking = demo._snippets(url, "/opt/py/bin/python", ["anthropic"])
    assert "The SDK snippets need anthropic, which this Python lacks; first:" in lacking
    commands = snippets(lacking)
    assert commands[1] == "  /opt/py/bin/python -m pip install anthropic"
    assert commands[2].startswith("  /opt/py/bin/python -c 'import openai;")
    assert commands[3].startswith("  /opt/py/bin/python -c 'import anthropic;")
    assert demo._missing(("openai", "byok_no_such_sdk")) == ["byok_no_such_sdk"]


def test_the_snippets_name_this_interpreter():
    """`python` only where the shell's python is this one; else its path."""
    python = demo._python()
    if python in ("python", "python3"):
        found = shutil.which(python)
        assert found is not None
        assert os.path.abspath(found) == os.path.abspath(sys.executable)
    else:
        assert shlex.split(python) == [sys.executable]


def tmux(*args: str) -> str:
    # a server of the test's own (-L), without the user's configuration (-f)
    found = shutil.which("tmux")
    assert found, "this test needs tmux (Debian's package tmux; .ci/run installs it)"
    command = [found, "-L", f"byok-test-{os.getpid()}", "-f", "/dev/null", *args]
    # the pane's size is the terminal's: not COLUMNS and LINES, which GNU
    # readline exports in the test process once something imports it
    env = {k: v for k, v in environment().items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=30, env=env
    ).stdout


def screen() -> list[str]:
    """The pane's lines, its scrollback first: whatever ever scrolled off."""
    return tmux("capture-pane", "-p", "-t", "demo", "-S", "-").rstrip("\n").splitlines()


def wait_for_screen(check, what: str, seconds: float = 30) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        lines = screen()
        if check(lines):
            return lines
        assert time.monotonic() < deadline, f"{what}:\n" + "\n".join(lines)
        time.sleep(0.2)


def loaded(lines: list[str]) -> int:
    """The table's "loaded Ns ago": it grows with each redraw."""
    found = [re.search(r"^config: demo, generation 1, loaded (\d+)s ago", line) for line in lines]
    return max((int(m.group(1)) for m in found if m), default=0)


HEADER_LINE = re.compile(r"^ {4}key +state +back in ")
LOG_LINE = re.compile(r"^(\[[^\]]+\])? +(INFO|WARNING|ERROR) +\S")  # rich's: time, level, message
# a model, a target, a key row, or a row's reason wrapped onto the next line
TABLE_LINE = re.compile(rf"^(model \S+( \(.*\))?|  \S+/\S+| {{4}}\S+ +({STATES}) .*| {{40,}}\S.*)$")


def layout_is_clean(lines: list[str]) -> None:
    """One introduction, then log lines only, then one table, then nothing."""
    intro_end = next(n for n, line in enumerate(lines) if "Ctrl-C stops it" in line)
    config = [n for n, line in enumerate(lines) if line.startswith("config: demo")]
    assert len(config) == 1, "\n".join(lines)
    assert sum(1 for line in lines if HEADER_LINE.match(line)) == 1, "\n".join(lines)
    logs = lines[intro_end + 1 : config[0]]
    assert all(LOG_LINE.match(line) for line in logs if line), "\n".join(logs)
    table = lines[config[0] + 2 :]
    while table and not table[-1].strip():
        table.pop()
    assert all(TABLE_LINE.match(line) for line in table), "\n".join(table)
    for label in LABELS:
        rows = [line for line in table if re.match(rf"^ {{4}}{label} +({STATES}) ", line)]
        assert len(rows) == 1, (label, table)


@pytest.mark.skipif(sys.platform == "win32", reason="tmux is a POSIX program")
def test_the_live_table_redraws_in_place_in_a_terminal():
    """In a real terminal (tmux) the table is redrawn in place: after
    several redraws, with log lines printed above and keys pressed, the
    screen (scrollback included) holds one header, one table, no leftover;
    Ctrl-C leaves it whole and says so below it."""
    demo_command = shlex.join([sys.executable, "-m", "byok", "demo", "--port", "0"])
    # bash stays to say how byok exited (it outlives a child that handled
    # Ctrl-C); the pane stays once bash is done, for the last screen
    command = f'{demo_command}; echo "byok exited with $?"'
    try:
        # one invocation: a server without a session would exit in between
        tmux(
            *("start-server", ";", "set-option", "-g", "remain-on-exit", "on", ";"),
            *("new-session", "-d", "-s", "demo", "-x", "200", "-y", "60", "bash", "-c", command),
        )

        def redrawn(after: int) -> Callable[[list[str]], bool]:
            def check(lines: list[str]) -> bool:
                blocked = any(re.match(r"^ {4}openai-revoked +blocked ", line) for line in lines)
                logged = sum(1 for line in lines if LOG_LINE.match(line))
                return loaded(lines) > after and blocked and logged >= 6

            return check

        lines = wait_for_screen(redrawn(3), "no table redrawn with log lines above it")
        tmux("send-keys", "-t", "demo", "Enter", "x", "Enter")  # echoes nothing while live
        wait_for_screen(redrawn(loaded(lines) + 1), "no redraw after the keys")
        layout_is_clean(screen())
        tmux("send-keys", "-t", "demo", "C-c")
        lines = wait_for_screen(
            lambda lines: any(line.startswith("byok exited with ") for line in lines),
            "Ctrl-C did not stop the demo",
        )
        said = [line for line in lines if line.strip() and not line.startswith("Pane is dead")]
        assert said[-2:] == ["byok demo: stopped by SIGINT", f"byok exited with {128 + 2}"]
        assert not any("Traceback" in line for line in lines)
        layout_is_clean(lines[: lines.index(said[-2])])
    finally:
        with contextlib.suppress(subprocess.CalledProcessError, AssertionError):
            tmux("kill-server")


def rendered(width: int) -> str:
    """The key table as a terminal of `width` columns shows it, without colour."""
    with open(os.devnull, "w") as nowhere:
        console = Console(width=width, record=True, color_system=None, file=nowhere)
        console.print(key_table(VIEW))
    return console.export_text()


def test_the_key_table_fits_a_narrow_terminal():
    """80 columns: the least telling columns go, each row stays one line up
    to its reason, and the label, state and reason read whole."""
    text = rendered(80)
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    header = next(line for line in lines if HEADER_LINE.match(line))
    assert header.split() == ["key", "state", "back", "in", "picks", "ok", "failed", "reason"]
    assert re.search(r"^ {4}openai-1 +cooldown +12\.5s +10 +9 +1  429 Rate limit", text, re.M)
    # wide: every column, as the plain text that a pipe gets
    wide = [line.rstrip() for line in rendered(300).splitlines()]
    assert wide == format_table(VIEW).splitlines()
    full = next(line for line in wide if HEADER_LINE.match(line))
    assert re.split(r"\s{2,}", full.strip()) == list(HEADER)


def test_states_are_coloured_on_a_terminal_only():
    colour = Console(width=300, force_terminal=True, color_system="standard", record=True)
    with colour.capture() as captured:
        colour.print(key_table(VIEW))
    assert "\x1b[1;31mblocked" in captured.get()  # bold red
    assert "\x1b" not in format_table(VIEW)


def test_ages_round_to_whole_seconds():
    view = {
        "now": 1000.0,
        "config": {"source": "x", "loaded_at": 1000.0 - 899.6},
        "models": [],
    }
    assert format_table(view).splitlines()[0] == "config: x, loaded 15m00s ago"


def test_the_tour_shows_the_engine_at_work():
    result = byok("tour")
    assert result.returncode == 0, result.stderr
    assert re.match(r"byok engine tour \((compiled|pure-Python) engine", result.stdout)
    assert re.search(r"^key +state +picks +ok +failed +cooldown$", result.stdout, re.M)
    assert re.search(r"^revoked +blocked +1 +0 +0  -$", result.stdout, re.M)
    assert "next milestone" not in result.stdout
