"""Errors across the two APIs: an upstream's error body told in the client's
dialect (``error_body``), and the refusals of bodies that do not decode,
each naming what the client must change."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from byok.gateway.translation import Translation, Untranslatable, error_body

from .wire import GPT, chat_to_messages, messages_to_chat

OPENAI_RATE_LIMIT = (
    b'{"error": {"message": "Rate limit reached for gpt-4o-mini", '
    b'"type": "requests", "param": null, "code": "rate_limit_exceeded"}}'
)
ANTHROPIC_OVERLOADED = (
    b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'
)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(
            429,
            OPENAI_RATE_LIMIT,
            {
                "type": "error",
                "error": {
                    "type": "rate_limit_error",
                    "message": "Rate limit reached for gpt-4o-mini",
                },
            },
            id="openai-429",
        ),
        pytest.param(
            400,
            b'{"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", '
            b'"param": null, "code": 400}',
            {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens is too large"},
            },
            id="vllm-400",
        ),
        pytest.param(
            404,
            b'{"detail": "Not Found"}',
            {"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}},
            id="fastapi-404",
        ),
        pytest.param(
            500,
            b'{"error": "model crashed"}',
            {"type": "error", "error": {"type": "api_error", "message": "model crashed"}},
            id="error-as-a-string",
        ),
        pytest.param(
            503,
            b"upstream connect error or disconnect/reset before headers\n",
            {
                "type": "error",
                "error": {
                    "type": "overloaded_error",
                    "message": "upstream connect error or disconnect/reset before headers",
                },
            },
            id="plain-text-503",
        ),
        pytest.param(
            502,
            b"",
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "the upstream answered 502 with no message",
                },
            },
            id="empty",
        ),
        pytest.param(
            500,
            b"[1, 2]",
            {
                "type": "error",
                "error": {
                    "type": "api_error",
                    "message": "the upstream answered 500 with no message",
                },
            },
            id="json-without-message",
        ),
    ],
)
def test_openai_errors_for_an_anthropic_client(status: int, body: bytes, expected: Any) -> None:
    assert msgspec.json.decode(error_body("anthropic", status, body)) == expected


@pytest.mark.parametrize(
    ("status", "body", "expected_type", "message"),
    [
        pytest.param(529, ANTHROPIC_OVERLOADED, "api_error", "Overloaded", id="anthropic-529"),
        pytest.param(
            401,
            b'{"type": "error", "error": {"type": "authentication_error", '
            b'"message": "invalid x-api-key"}}',
            "authentication_error",
            "invalid x-api-key",
            id="anthropic-401",
        ),
        pytest.param(
            413,
            b'{"type": "error", "error": {"type": "request_too_large", "message": "Too big"}}',
            "invalid_request_error",
            "Too big",
            id="anthropic-413",
        ),
    ],
)
def test_anthropic_errors_for_an_openai_client(
    status: int, body: bytes, expected_type: str, message: str
) -> None:
    assert msgspec.json.decode(error_body("openai", status, body)) == {
        "error": {"message": message, "type": expected_type, "param": None, "code": None}
    }


def test_a_long_plain_text_error_is_cut() -> None:
    told = msgspec.json.decode(error_body("openai", 500, b"x" * 10_000))
    assert told["error"]["message"] == "x" * 2000


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(b"{not json", "JSON is malformed", id="not-json"),
        pytest.param(b"[]", "expected `object`, got `array`", id="not-an-object"),
        pytest.param(
            b'{"model": "m", "max_tokens": "ten", "messages": []}',
            "expected `int`, got `str` - at `$.max_tokens`",
            id="wrong-type",
        ),
        pytest.param(
            b'{"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}',
            "at `$.messages[0].role`",
            id="system-role-in-messages",
        ),
        pytest.param(
            b'{"model": "m", "max_tokens": 5, "messages": [], "betas": ["x"]}',
            "unknown field `betas`; byok knows no faithful translation of it for an OpenAI target",
            id="unknown-field",
        ),
    ],
)
def test_messages_bodies_that_do_not_decode(body: bytes, says: str) -> None:
    with pytest.raises(Untranslatable) as refused:
        Translation.of(body, "/v1/messages", "messages→chat", GPT, 0)
    assert refused.value.field == "request body"
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("request_", "says"),
    [
        pytest.param(
            {"model": "m", "messages": [{"role": "function", "name": "f", "content": "x"}]},
            "at `$.messages[0].role`",
            id="function-role",
        ),
        pytest.param(
            {"model": "m", "messages": [], "functions": [{"name": "f"}]},
            "unknown field `functions`; byok knows no faithful translation of it for an "
            "Anthropic target",
            id="legacy-functions",
        ),
        pytest.param(
            {"model": "m", "messages": [], "tool_choice": "any"},
            "at `$.tool_choice`",
            id="anthropic-word-in-tool-choice",
        ),
    ],
)
def test_chat_bodies_that_do_not_decode(request_: Any, says: str) -> None:
    with pytest.raises(Untranslatable) as refused:
        chat_to_messages(request_)
    assert refused.value.field == "request body"
    assert says in str(refused.value)


def test_a_refusal_names_its_field_first() -> None:
    with pytest.raises(Untranslatable) as refused:
        messages_to_chat(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
                ],
            }
        )
    assert refused.value.field == "messages[1].content[0]"
    assert str(refused.value) == (
        "messages[1].content[0]: a tool_result block belongs to a user turn"
    )
    assert isinstance(refused.value, ValueError)
