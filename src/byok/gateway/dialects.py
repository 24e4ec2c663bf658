"""The two API dialects byok speaks: endpoints, error bodies, stream errors.

Every error byok itself produces goes through here, so that an OpenAI client
gets ``{"error": {...}}`` and an Anthropic client ``{"type": "error", ...}``
with the type name its SDK maps to an exception class.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..providers import ANTHROPIC_ENDPOINTS, OPENAI_ENDPOINTS

# path -> dialect of the client side
ENDPOINTS = {
    **{path: "openai" for path in OPENAI_ENDPOINTS},
    **{path: "anthropic" for path in ANTHROPIC_ENDPOINTS},
}

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}

JSON = [("content-type", "application/json")]


def error_body(dialect: str, status: int, message: str, code: str | None = None) -> bytes:
    if dialect == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})
    kind = _OPENAI_TYPES.get(status, "api_error")
    error: dict[str, Any] = {"message": message, "type": kind, "param": None, "code": code}
    return msgspec.json.encode({"error": error})


def stream_error_event(dialect: str, message: str) -> bytes:
    """The SSE event that ends a stream that broke after its first byte."""
    if dialect == "anthropic":
        data = msgspec.json.encode(
            {"type": "error", "error": {"type": "api_error", "message": message}}
        )
        return b"event: error\ndata: " + data + b"\n\n"
    data = msgspec.json.encode({"error": {"message": message, "type": "api_error", "code": None}})
    return b"data: " + data + b"\n\n"


def model_listing(dialect: str, names: list[str]) -> bytes:
    """GET /v1/models in the client's dialect (an Anthropic client sends
    anthropic-version): the public model names."""
    body: dict[str, Any]
    if dialect == "anthropic":
        data = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        body = {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    else:
        listing = [{"id": n, "object": "model", "created": 0, "owned_by": "byok"} for n in names]
        body = {"object": "list", "data": listing}
    return msgspec.json.encode(body)
