"""The request's log line written directly is the line the logging module writes."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import trio

from byok.telemetry import logs


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structured, direct = logs.structured, logs.direct
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logs.structured, logs.direct = structured, direct


def both_ways(log_format: str) -> tuple[str, str]:
    """The same message through the logging module, then directly."""
    out = io.StringIO()
    logs.setup(log_format, stream=out)
    log = logging.getLogger("byok.test")
    fields = {"status": 200, "model": "m"} if log_format == "json" else None
    token = logs.REQUEST_ID.set("req-1")
    try:
        log.info("%s", "POST /v1/x status=200", extra={"fields": fields} if fields else None)
        assert logs.direct is not None
        assert logs.direct.write(log, "POST /v1/x status=200", fields)
    finally:
        logs.REQUEST_ID.reset(token)
    logs.direct.handler.flush()
    first, second = out.getvalue().splitlines()
    return first, second


@pytest.mark.usefixtures("restored")
def test_a_direct_text_line_is_the_formatters_line() -> None:
    via_logging, direct = both_ways("text")
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    for line in (via_logging, direct):
        assert re.fullmatch(stamp + r" INFO byok\.test \[req-1\] POST /v1/x status=200", line)


@pytest.mark.usefixtures("restored")
def test_a_direct_json_line_is_the_formatters_line() -> None:
    via_logging, direct = (json.loads(line) for line in both_ways("json"))
    times = [
        datetime.strptime(each.pop("time"), "%Y-%m-%dT%H:%M:%S.%fZ")
        for each in (via_logging, direct)
    ]
    assert abs(times[1] - times[0]) < timedelta(seconds=5)  # written together, in one format
    assert (
        via_logging
        == direct
        == {
            "level": "info",
            "logger": "byok.test",
            "request_id": "req-1",
            "message": "POST /v1/x status=200",
            "status": 200,
            "model": "m",
        }
    )


@pytest.mark.usefixtures("restored")
def test_another_handler_gets_the_record_the_usual_way() -> None:
    logs.setup("text", stream=io.StringIO())
    assert logs.direct is not None
    log = logging.getLogger("byok.test")
    extra = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(extra)
    assert not logs.direct.write(log, "line", None)  # the caller logs it through logging
    logging.getLogger().removeHandler(extra)
    log.addHandler(extra)
    try:
        assert not logs.direct.write(log, "line", None)
    finally:
        log.removeHandler(extra)
    assert logs.direct.write(log, "line", None)


@pytest.mark.usefixtures("restored")
def test_request_lines_go_out_in_batches_and_before_any_other_record() -> None:
    out = io.StringIO()
    logs.setup("text", stream=out)
    direct = logs.direct
    assert direct is not None
    log = logging.getLogger("byok.test")
    for n in range(logs.BATCH_LINES - 1):
        assert direct.write(log, f"request {n}", None)
    assert out.getvalue() == ""  # waiting for the batch (or flush_lines)
    log.warning("something else")  # the lines before it go out first, in order
    lines = out.getvalue().splitlines()
    assert [line.rsplit("] ", 1)[1] for line in lines] == [
        *(f"request {n}" for n in range(logs.BATCH_LINES - 1)),
        "something else",
    ]
    for n in range(logs.BATCH_LINES):
        direct.write(log, f"more {n}", None)
    assert out.getvalue().splitlines()[-1].endswith(f"more {logs.BATCH_LINES - 1}")  # full batch


@pytest.mark.usefixtures("restored")
async def test_flush_lines_writes_what_waits_within_its_period(autojump_clock: object) -> None:
    out = io.StringIO()
    logs.setup("text", stream=out)
    direct = logs.direct
    assert direct is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(logs.flush_lines)
        direct.write(logging.getLogger("byok.test"), "one request", None)
        started = trio.current_time()
        while not out.getvalue():
            await trio.sleep(0.01)
        assert trio.current_time() - started <= logs.FLUSH_SECONDS + 0.01
        nursery.cancel_scope.cancel()
    assert out.getvalue().endswith("one request\n")


def test_new_request_ids_are_distinct_and_client_ids_kept() -> None:
    made = {logs.request_id("") for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{16}", each) for each in made)
    assert logs.request_id("trace-me.42") == "trace-me.42"
    assert logs.request_id("bad id") != "bad id"
