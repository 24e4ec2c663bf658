"""Logging: human-readable lines or JSON lines, each with its request id.

The proxy sets ``REQUEST_ID`` when a request comes in; every record logged
while that request is served (by the proxy, the upstream client, the server)
carries it, because trio runs a request in one task and each task has its own
context.  Structured fields ride on a record as ``extra={"fields": {...}}``:
the JSON format puts them at the top level, the text format has them in the
message already.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import re
import sys
import time
from typing import Any, TextIO

import trio

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("byok_request_id", default="-")
FORMATS = ("text", "json")
# True once JSON lines are on: only then are a record's structured fields
# worth building (the text line has them in its message already).
structured = False

# An id a client may choose: short, and safe to put in a log line or a header.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(offered: str) -> str:
    """The client's x-request-id if it is a sane one, else a new id.

    A new id is 64 random bits from the process's PRNG: ids need to be
    distinct, not unguessable, and os.urandom costs a system call each."""
    if offered and _CLIENT_ID.fullmatch(offered):
        return offered
    return f"{random.getrandbits(64):016x}"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the task that logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message,
    then the record's structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class _Direct:
    """The request's one INFO line, written as `setup`'s handler would write
    it, without the logging module's record, filter and formatter: that path
    costs several microseconds a line and this line is written once per
    request.  `write` says False whenever anything else might want the
    record (another handler on the root or on the logger), and the caller
    logs it the usual way."""

    def __init__(self, handler: _LineHandler, json_lines: bool) -> None:
        self.handler, self.json_lines = handler, json_lines
        self.root = logging.getLogger()
        self._second = -1  # the wall-clock second _stamp was made for
        self._stamp = ""

    def write(self, logger: logging.Logger, message: str, fields: dict[str, Any] | None) -> bool:
        handlers = self.root.handlers
        if logger.handlers or len(handlers) != 1 or handlers[0] is not self.handler:
            return False
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second, not once a line
            self._second = second
            if self.json_lines:
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            else:
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        millis = int((now - second) * 1000)
        if self.json_lines:
            entry: dict[str, Any] = {
                "time": f"{self._stamp}.{millis:03d}Z",
                "level": "info",
                "logger": logger.name,
                "request_id": REQUEST_ID.get(),
                "message": message,
            }
            if fields:
                entry.update(fields)
            line = json.dumps(entry, ensure_ascii=False, default=str)
        else:
            line = f"{self._stamp},{millis:03d} INFO {logger.name} [{REQUEST_ID.get()}] {message}"
        handler = self.handler
        with handler.lock or _NO_LOCK:  # as Handler.handle does, for threads that log too
            pending = handler.pending
            pending.append(line + handler.terminator)
            if len(pending) < BATCH_LINES:
                return True
        handler.flush()
        return True


# Request lines wait in memory for at most this many lines or FLUSH_SECONDS
# (flush_lines), whichever comes first, then go out in one write: a write
# per line was a system call per request.  Any other record goes out after
# the lines before it, at once.
BATCH_LINES = 128
FLUSH_SECONDS = 0.1


class _LineHandler(logging.StreamHandler[TextIO]):
    """setup()'s handler; it also holds the request lines written directly
    (_Direct) that are not out yet, and writes them before anything else."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.pending: list[str] = []

    def drain(self) -> None:
        """Write the pending lines (under the handler's lock)."""
        if self.pending:
            text = "".join(self.pending)
            self.pending.clear()
            self.stream.write(text)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.drain()  # in order: the lines logged before this record first
        except Exception:  # as emit() does with its own write
            self.handleError(record)
        super().emit(record)

    def flush(self) -> None:
        with self.lock or _NO_LOCK:
            try:
                self.drain()
            except Exception:  # a broken stream costs the lines, not a request
                self.pending.clear()
        super().flush()


async def flush_lines() -> None:
    """Write the request lines that wait (_LineHandler.pending) every
    FLUSH_SECONDS, until cancelled; byok serve runs it while it serves."""
    while True:
        await trio.sleep(FLUSH_SECONDS)
        if direct is not None and direct.handler.pending:
            direct.handler.flush()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()
# set by setup(): byok serve's own handler, for the request's line
direct: _Direct | None = None


def setup(
    log_format: str = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send byok's logs (and its libraries') to `stream`, default stderr."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    global structured, direct
    if direct is not None:
        direct.handler.flush()  # the lines of the setup before
    handler = _LineHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    structured = log_format == "json"
    direct = _Direct(handler, structured)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # One line per request is on the hot path: skip the caller lookup and the
    # thread and process names that no byok format shows (the logging HOWTO's
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # byok logs one line per request itself; httpx's own line per call is noise
    for noisy in ("httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
