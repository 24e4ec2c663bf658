"""The request's log line written directly is the line the logging module writes."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

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


def test_new_request_ids_are_distinct_and_client_ids_kept() -> None:
    made = {logs.request_id("") for _ in range(1000)}
    assert len(made) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{16}", each) for each in made)
    assert logs.request_id("trace-me.42") == "trace-me.42"
    assert logs.request_id("bad id") != "bad id"
