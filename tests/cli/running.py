"""A byok command as a child process whose output a test reads as it comes."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO


class Lines:
    """A child's stdout or stderr, read line by line in a thread, so that a
    test can wait for a line with a deadline instead of blocking forever."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def until(self, found: Callable[[str], bool], what: str, seconds: float = 30) -> list[str]:
        """The lines up to and with the first that `found` accepts."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {what} in {seconds}s: {''.join(self.seen)}") from None
            if line is None:
                raise AssertionError(f"the output ended before {what}: {''.join(self.seen)}")
            self.seen.append(line)
            if found(line):
                return self.seen

    def rest(self) -> str:
        """Everything it printed, once the child has exited."""
        self._thread.join(timeout=30)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.seen.append(line)
        return "".join(self.seen)

    def close(self) -> None:
        """Once the child has exited: the thread done, the pipe closed."""
        self._thread.join(timeout=30)
        self.stream.close()


def environment(**extra: str) -> dict[str, str]:
    """This environment without ambient keys: a test gives byok the keys it means to."""
    ambient = ("_API_KEY", "_API_KEYS", "BYOK_ADMIN_KEY", "BYOK_CONFIG")
    return {**{k: v for k, v in os.environ.items() if not k.endswith(ambient)}, **extra}


@contextlib.contextmanager
def running(
    *args: str, ignore_ctrl_c: bool = False, **env: str
) -> Iterator[tuple[subprocess.Popen[str], Lines, Lines]]:
    """`byok ARGS` as a child with SIGINT at its default, as a terminal's
    Ctrl-C finds it (a test run from a script's background job ignores it,
    and a child would inherit that), or ignored, as a script's background
    job has it; killed if the test leaves it running."""
    interrupt = signal.SIG_IGN if ignore_ctrl_c else signal.default_int_handler
    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "byok", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(**env),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        yield process, out, err
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        out.close()
        err.close()
