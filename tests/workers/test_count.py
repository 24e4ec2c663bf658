"""How many workers, and on which clock: in-process, on every platform."""

from __future__ import annotations

import logging
import os
import socket
import time

import trio

from byok import app, supervisor


def test_auto_is_one_worker_per_core_and_the_default_is_byok_alone():
    assert supervisor.worker_count("auto") == (os.cpu_count() or 1)
    assert supervisor.worker_count("3") == 3
    assert supervisor.worker_count(None) == 1


def test_without_so_reuseport_it_is_one_process_and_a_line_why(monkeypatch, caplog):
    """Windows: the port cannot be shared, so one byok serves it."""
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with caplog.at_level(logging.WARNING, logger="byok"):
        assert supervisor.worker_count("4") == 1
    assert caplog.messages == [
        "--workers 4: this system cannot share a port between processes (no SO_REUSEPORT): "
        "serving in one process"
    ]


def test_serve_runs_on_the_machines_monotonic_clock():
    """Deadlines in one worker mean the same in another: trio's time in
    serve() is time.monotonic(), without trio's random offset per run."""

    async def now() -> float:
        return trio.current_time()

    before = time.monotonic()
    during = trio.run(now, clock=app.MonotonicClock())
    after = time.monotonic()
    assert before <= during <= after
    assert app.MonotonicClock().deadline_to_sleep_time(after + 5) <= 5
