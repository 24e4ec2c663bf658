"""byok's own log lines, captured for a test that reads every one of them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from byok.telemetry import logs


@contextmanager
def captured_logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Everything byok's loggers say (DEBUG and up) while the block runs, in
    the text format and in the JSON one; the test's clients' loggers apart."""
    text_log, json_log = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in [
        (text_log, logging.Formatter(logs.TEXT_FORMAT)),
        (json_log, logs.JsonFormatter()),
    ]:
        handler = logging.StreamHandler(stream)
        handler.addFilter(logs.RequestIdFilter())
        handler.setFormatter(formatter)
        handlers.append(handler)
    root = logging.getLogger("byok")
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield text_log, json_log
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(old_level)
