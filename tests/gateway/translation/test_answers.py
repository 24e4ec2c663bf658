"""Whole answers translated back to the client's API (``Translation.answer``):
golden pairs both ways, every finish_reason and stop_reason, the usage with
cached tokens (Anthropic's input_tokens leaves cache reads out, OpenAI's
prompt_tokens counts them), the answer tool of response_format, and answers
that cannot be told (BadAnswer)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from byok.gateway.translation import BadAnswer

from .wire import CREATED, Json, chat_to_messages, messages_to_chat

MESSAGES_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}
CHAT_REQUEST = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Paris?"}]}


def as_message(completion: Json) -> Json:
    """An OpenAI answer as the Anthropic client gets it."""
    answer = messages_to_chat(MESSAGES_REQUEST).answer(msgspec.json.encode(completion))
    decoded: Json = msgspec.json.decode(answer)
    return decoded


def as_completion(message: Json, request: Json = CHAT_REQUEST) -> Json:
    """An Anthropic answer as the OpenAI client gets it."""
    decoded: Json = msgspec.json.decode(
        chat_to_messages(request).answer(msgspec.json.encode(message))
    )
    return decoded


def completion(message: Json, finish: Any = "stop", usage: Any = None, **choice: Any) -> Json:
    """A chat.completion as OpenAI sends it, fields byok does not read included."""
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_712_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish,
                **choice,
            }
        ],
        "usage": usage
        or {
            "prompt_tokens": 9,
            "completion_tokens": 3,
            "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
    }


def message(content: list[Json], stop_reason: Any = "end_turn", usage: Any = None) -> Json:
    """A Messages answer as Anthropic sends it."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage
        or {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 6,
            "service_tier": "standard",
        },
    }


USAGE_9_3 = {
    "input_tokens": 9,
    "output_tokens": 3,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

# ---- OpenAI answers → Anthropic ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            completion({"content": "Hello!"}),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [{"type": "text", "text": "Hello!"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": USAGE_9_3,
            },
            id="text",
        ),
        pytest.param(
            completion(
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_def",
                            "type": "function",
                            "function": {"name": "get_time", "arguments": ""},
                        },
                    ],
                },
                "tool_calls",
            ),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "call_abc",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "call_def", "name": "get_time", "input": {}},
                ],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": USAGE_9_3,
            },
            id="tool-calls",
        ),
        pytest.param(
            completion(
                {
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"days":[1,2]}'},
                        }
                    ],
                },
                "tool_calls",
            ),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "call_abc",
                        "name": "get_weather",
                        "input": {"days": [1, 2]},
                    },
                ],
                "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": USAGE_9_3,
            },
            id="text-and-tool-call",
        ),
        pytest.param(
            completion({"content": "4", "reasoning_content": "2 and 2 make 4."}),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [
                    {"type": "thinking", "thinking": "2 and 2 make 4.", "signature": ""},
                    {"type": "text", "text": "4"},
                ],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": USAGE_9_3,
            },
            id="reasoning-content-as-thinking",
        ),
        pytest.param(
            completion({"content": None, "refusal": "I can't help with that."}),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [{"type": "text", "text": "I can't help with that."}],
                "stop_reason": "refusal",
                "stop_sequence": None,
                "usage": USAGE_9_3,
            },
            id="refusal",
        ),
        pytest.param(
            completion(
                {"content": "Sure"},
                usage={
                    "prompt_tokens": 2006,
                    "completion_tokens": 300,
                    "total_tokens": 2306,
                    "prompt_tokens_details": {"cached_tokens": 1920},
                },
            ),
            {
                "id": "chatcmpl-AbC123",
                "type": "message",
                "role": "assistant",
                "model": "gpt-4o-mini-2024-07-18",
                "content": [{"type": "text", "text": "Sure"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                # Anthropic's input_tokens leave out what was read from the cache
                "usage": {
                    "input_tokens": 86,
                    "output_tokens": 300,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 1920,
                },
            },
            id="usage-with-cached-tokens",
        ),
        pytest.param(
            {
                "id": "cmpl-vllm-1",
                "object": "chat.completion",
                "created": 1,
                "model": "llama",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            },
            {
                "id": "cmpl-vllm-1",
                "type": "message",
                "role": "assistant",
                "model": "llama",
                "content": [{"type": "text", "text": "Hi"}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
            id="usage-without-cache-details",
        ),
        pytest.param(
            {
                "id": "x",
                "model": "m",
                "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "stop"}],
            },
            {
                "id": "x",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            },
            id="empty-answer-no-usage",
        ),
    ],
)
def test_chat_answer_as_message(answer: Json, expected: Json) -> None:
    assert as_message(answer) == expected


@pytest.mark.parametrize(
    ("finish", "vllm_stop", "stop_reason", "stop_sequence"),
    [
        pytest.param("stop", None, "end_turn", None, id="stop"),
        pytest.param("length", None, "max_tokens", None, id="length"),
        pytest.param("tool_calls", None, "tool_use", None, id="tool_calls"),
        pytest.param("function_call", None, "tool_use", None, id="function_call"),
        pytest.param("content_filter", None, "refusal", None, id="content_filter"),
        pytest.param(None, None, "end_turn", None, id="null"),
        pytest.param("eos_token", None, "end_turn", None, id="unknown"),
        # vLLM says which stop string matched
        pytest.param("stop", "\n\nUser:", "stop_sequence", "\n\nUser:", id="vllm-stop-string"),
        pytest.param("stop", 128009, "end_turn", None, id="vllm-stop-token-id"),
        pytest.param("length", "END", "max_tokens", None, id="vllm-length"),
    ],
)
def test_finish_reason_as_stop_reason(
    finish: Any, vllm_stop: Any, stop_reason: str, stop_sequence: Any
) -> None:
    answer = as_message(completion({"content": "Hi"}, finish, stop_reason=vllm_stop))
    assert (answer["stop_reason"], answer["stop_sequence"]) == (stop_reason, stop_sequence)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(b"<html>502 Bad Gateway</html>", "cannot be read", id="not-json"),
        pytest.param(b"[]", "cannot be read", id="not-an-object"),
        pytest.param(b'{"choices": "none"}', "cannot be read", id="choices-not-a-list"),
        pytest.param(b'{"id": "x", "choices": []}', "no choices", id="no-choices"),
        pytest.param(
            msgspec.json.encode(
                completion(
                    {
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ]
                    },
                    "tool_calls",
                )
            ),
            "tool 'f' with arguments that are not a JSON object",
            id="arguments-a-list",
        ),
        pytest.param(
            msgspec.json.encode(
                completion(
                    {
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": '{"city": "Par'},
                            }
                        ]
                    },
                    "tool_calls",
                )
            ),
            "tool 'f' with arguments that are not a JSON object",
            id="arguments-cut-short",
        ),
    ],
)
def test_bad_chat_answers(body: bytes, says: str) -> None:
    with pytest.raises(BadAnswer, match=says):
        messages_to_chat(MESSAGES_REQUEST).answer(body)


# ---- Anthropic answers → OpenAI ------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            message([{"type": "text", "text": "Hello"}, {"type": "text", "text": " world"}]),
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello world", "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 6,
                    "total_tokens": 18,
                    "prompt_tokens_details": {"cached_tokens": 0},
                },
            },
            id="text-blocks-joined",
        ),
        pytest.param(
            message(
                [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris", "days": [1, 2]},
                    },
                    {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}},
                ],
                "tool_use",
            ),
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Let me check.",
                            "refusal": None,
                            "tool_calls": [
                                {
                                    "id": "toolu_01",
                                    "type": "function",
                                    "function": {
                                        "name": "get_weather",
                                        "arguments": '{"city":"Paris","days":[1,2]}',
                                    },
                                },
                                {
                                    "id": "toolu_02",
                                    "type": "function",
                                    "function": {"name": "get_time", "arguments": "{}"},
                                },
                            ],
                        },
                        "finish_reason": "tool_calls",
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 6,
                    "total_tokens": 18,
                    "prompt_tokens_details": {"cached_tokens": 0},
                },
            },
            id="tool-use-as-tool-calls",
        ),
        pytest.param(
            message(
                [
                    {"type": "thinking", "thinking": "2 and 2", "signature": "EqQBCkgIARAB"},
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                    {"type": "thinking", "thinking": " make 4.", "signature": "EqQBCkgIARAC"},
                    {"type": "text", "text": "4"},
                ],
                usage={"input_tokens": 50, "output_tokens": 30},
            ),
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "4",
                            "refusal": None,
                            "reasoning_content": "2 and 2 make 4.",
                        },
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80},
            },
            id="thinking-as-reasoning-content",
        ),
        pytest.param(
            message(
                [{"type": "text", "text": "Sure"}],
                usage={
                    "input_tokens": 50,
                    "cache_creation_input_tokens": 200,
                    "cache_read_input_tokens": 1000,
                    "output_tokens": 30,
                },
            ),
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Sure", "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                # OpenAI's prompt_tokens count the cache's reads and writes
                "usage": {
                    "prompt_tokens": 1250,
                    "completion_tokens": 30,
                    "total_tokens": 1280,
                    "prompt_tokens_details": {"cached_tokens": 1000},
                },
            },
            id="usage-with-cache-reads-and-writes",
        ),
        pytest.param(
            message([], "end_turn", usage={"input_tokens": 3, "output_tokens": 0}),
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "refusal": None},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3},
            },
            id="empty-answer",
        ),
    ],
)
def test_message_answer_as_chat(answer: Json, expected: Json) -> None:
    assert as_completion(answer) == expected


@pytest.mark.parametrize(
    ("stop_reason", "content", "finish"),
    [
        pytest.param("end_turn", [], "stop", id="end_turn"),
        pytest.param("stop_sequence", [], "stop", id="stop_sequence"),
        pytest.param("max_tokens", [], "length", id="max_tokens"),
        pytest.param(
            "model_context_window_exceeded", [], "length", id="model_context_window_exceeded"
        ),
        pytest.param(
            "tool_use",
            [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}],
            "tool_calls",
            id="tool_use",
        ),
        pytest.param("refusal", [], "content_filter", id="refusal"),
        pytest.param("pause_turn", [], "stop", id="pause_turn"),
        pytest.param(None, [], "stop", id="null"),
        pytest.param("some_new_reason", [], "stop", id="unknown"),
    ],
)
def test_stop_reason_as_finish_reason(stop_reason: Any, content: list[Json], finish: str) -> None:
    answer = as_completion(message([{"type": "text", "text": "x"}, *content], stop_reason))
    assert answer["choices"][0]["finish_reason"] == finish


SCHEMA_REQUEST = {
    **CHAT_REQUEST,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": {"type": "object"}},
    },
}


def test_answer_tool_input_becomes_content() -> None:
    answer = as_completion(
        message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "weather",
                    "input": {"city": "Paris", "celsius": 18.5},
                }
            ],
            "tool_use",
        ),
        SCHEMA_REQUEST,
    )
    (choice,) = answer["choices"]
    assert choice["message"] == {
        "role": "assistant",
        "content": '{"city":"Paris","celsius":18.5}',
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"  # an answer, not a call to make


def test_other_tools_stay_calls_beside_the_answer_tool() -> None:
    request = {
        **SCHEMA_REQUEST,
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
    }
    answer = as_completion(
        message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
            "tool_use",
        ),
        request,
    )
    (choice,) = answer["choices"]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "toolu_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        }
    ]
    assert choice["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{", id="cut-short"),
        pytest.param(b'{"type": "message", "id": "x"}', id="missing-content-and-usage"),
        pytest.param(
            b'{"id": "x", "model": "m", "content": "hi", "usage": {}}', id="content-a-string"
        ),
    ],
)
def test_bad_message_answers(body: bytes) -> None:
    with pytest.raises(BadAnswer, match="cannot be read"):
        chat_to_messages(CHAT_REQUEST).answer(body)
