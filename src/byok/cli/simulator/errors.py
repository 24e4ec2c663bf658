"""Error answers in each dialect's shape, and the failures a key can be set
to answer with (rate limits, revocation, server errors).

OpenAI says ``{"error": {"message", "type", "param", "code"}}``; Anthropic
``{"type": "error", "error": {"type", "message"}}``, with the type names
their SDKs map to exception classes.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import formatdate
from typing import TYPE_CHECKING

import msgspec

from ...http.server import Response

if TYPE_CHECKING:
    from .behaviour import Behaviour

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}


def error_body(
    dialect: str, status: int, message: str, param: str | None = None, code: str | None = None
) -> bytes:
    if dialect == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})
    kind = _OPENAI_TYPES.get(status, "server_error")
    return msgspec.json.encode(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def error(
    dialect: str, status: int, message: str, param: str | None = None, code: str | None = None
) -> Response:
    return Response(status, list(JSON), error_body(dialect, status, message, param, code))


def not_found(dialect: str, method: str, path: str) -> Response:
    """What a server that has no such route answers: OpenAI's words for an
    unknown URL, or Anthropic's."""
    if dialect == "anthropic":
        return error(dialect, 404, "Not Found")
    return error(dialect, 404, f"Invalid URL ({method} {path})")


def failure(dialect: str, behaviour: Behaviour, failing: bool) -> Response | None:
    """The error answer of a key that rate-limits, was revoked or fails; else None."""
    if behaviour.mode == "429" and failing:
        headers = list(JSON)
        if behaviour.retry_after is not None:
            headers += delay_headers(behaviour.delay_header, behaviour.retry_after)
        return Response(429, headers, error_body(dialect, 429, "Rate limit reached"))
    if behaviour.mode == "401":
        return error(dialect, 401, "key revoked")
    if behaviour.mode == "403":
        return error(dialect, 403, "this key may not use this model")
    if behaviour.mode in ("500", "529") and failing:
        status = int(behaviour.mode)
        return error(dialect, status, "simulated server error" if status == 500 else "Overloaded")
    return None


def delay_headers(where: str, seconds: float) -> list[tuple[str, str]]:
    """A 429's delay, the way one provider or another says it."""
    if where == "retry-after-ms":
        return [("retry-after-ms", f"{seconds * 1000:g}")]
    if where == "http-date":
        return [("retry-after", formatdate(time.time() + seconds, usegmt=True))]
    if where == "openai-reset":
        return [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", f"{seconds:g}s"),
            ("x-ratelimit-remaining-tokens", "9000"),
            ("x-ratelimit-reset-tokens", "1ms"),
        ]
    if where == "anthropic-reset":
        when = datetime.fromtimestamp(time.time() + seconds, timezone.utc)
        return [
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", when.isoformat().replace("+00:00", "Z")),
        ]
    if where == "anthropic-window":  # a Claude subscription's spent 5-hour window
        reset = f"{time.time() + seconds:.0f}"
        return [
            ("retry-after", "60"),  # shorter than the window: every retry before it fails
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-reset", reset),
            ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", reset),
            ("anthropic-ratelimit-unified-7d-status", "allowed"),
            ("anthropic-ratelimit-unified-7d-reset", f"{time.time() + 5 * 86400:.0f}"),
        ]
    if where == "codex-window":  # a ChatGPT subscription's spent weekly window (Codex)
        return [
            ("x-codex-primary-used-percent", "42"),
            ("x-codex-primary-window-minutes", "300"),
            ("x-codex-primary-reset-after-seconds", "3600"),
            ("x-codex-secondary-used-percent", "100"),
            ("x-codex-secondary-window-minutes", "10080"),
            ("x-codex-secondary-reset-after-seconds", f"{seconds:g}"),
        ]
    return [("retry-after", f"{seconds:g}")]
