"""Requests translated both ways: golden pairs, one per mapping of the module
docstrings of messages_via_chat.py and chat_via_messages.py, and the
refusals (each names the field the client must change).

Each pair is the client's JSON and the JSON the target gets (decoded from
``Translation.body``), with the hints the translation dropped."""

from __future__ import annotations

from typing import Any

import pytest

from byok.gateway.translation import Untranslatable

from .wire import (
    COMPATIBLE,
    GPT,
    O4,
    Json,
    chat_to_messages,
    messages_to_chat,
    to_chat,
    to_messages,
)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}

# ---- Anthropic Messages → OpenAI Chat Completions ------------------------------------

MESSAGES_TO_CHAT = [
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
        },
        [],
        id="system-string",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [
                {"type": "text", "text": "Be brief."},
                {
                    "type": "text",
                    "text": "Answer in French.",
                    "cache_control": {"type": "ephemeral"},
                },
            ],
            "messages": [{"role": "user", "content": "Hi"}],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "text", "text": "Be brief."},
                        {"type": "text", "text": "Answer in French."},
                    ],
                },
                {"role": "user", "content": "Hi"},
            ],
        },
        ["cache_control"],
        id="system-blocks",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Hello"},
                        {"type": "text", "text": "there"},
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Hello"},
                        {"type": "text", "text": "there"},
                    ],
                }
            ],
        },
        [],
        id="user-text-blocks",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": "iVBORw0KGgo=",
                            },
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
        },
        [],
        id="image-base64",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                    ],
                }
            ],
        },
        ["cache_control"],
        id="image-url",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0xLjQ=",
                            },
                            "title": "report.pdf",
                        },
                        {"type": "text", "text": "Summarize it."},
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBERi0xLjQ=",
                                "filename": "report.pdf",
                            },
                        },
                        {"type": "text", "text": "Summarize it."},
                    ],
                }
            ],
        },
        [],
        id="document-pdf",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0xLjQ=",
                            },
                            "context": "Q3 figures",
                            "citations": {"enabled": True},
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBERi0xLjQ="},
                        }
                    ],
                }
            ],
        },
        ["cache_control", "citations", "context"],
        id="document-pdf-hints",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "The sky is blue.",
                            },
                            "title": "notes",
                        }
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "The sky is blue."}]}
            ],
        },
        ["title"],
        id="document-text",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_01",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": "18°C, sunny",
                        },
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [{"type": "text", "text": "Let me check."}],
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_01", "content": "18°C, sunny"},
                {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
            ],
        },
        [],
        id="tool-use-and-string-tool-result",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
                        {
                            "type": "tool_use",
                            "id": "toolu_02",
                            "name": "get_weather",
                            "input": {"city": "Rome", "units": ["C", 1.5, None, True]},
                            "cache_control": {"type": "ephemeral"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": [
                                {"type": "text", "text": "18°C"},
                                {"type": "text", "text": "sunny"},
                            ],
                        },
                        {"type": "tool_result", "tool_use_id": "toolu_02"},
                    ],
                },
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "toolu_01",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        },
                        {
                            "id": "toolu_02",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": '{"city":"Rome","units":["C",1.5,null,true]}',
                            },
                        },
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "toolu_01",
                    "content": [
                        {"type": "text", "text": "18°C"},
                        {"type": "text", "text": "sunny"},
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_02", "content": ""},
            ],
        },
        ["cache_control"],
        id="tool-use-only-and-text-block-tool-results",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": "no such city",
                            "is_error": True,
                        }
                    ],
                }
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "tool", "tool_call_id": "toolu_01", "content": "no such city"}],
        },
        ["is_error"],
        id="tool-result-is-error-dropped",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Tell me a joke."},
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Tell me a joke."},
            ],
        },
        [],
        id="assistant-string",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "2+2?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "Simple.", "signature": "EqQBCkgIARAB"},
                        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                        {"type": "text", "text": "4", "citations": []},
                    ],
                },
                {"role": "user", "content": "Thanks"},
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
                {"role": "user", "content": "Thanks"},
            ],
        },
        ["thinking", "citations"],
        id="thinking-blocks-in-history-dropped",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "The current weather",
                    "input_schema": WEATHER_SCHEMA,
                },
                {
                    "type": "custom",
                    "name": "get_time",
                    "input_schema": {"type": "object", "properties": {}},
                    "cache_control": {"type": "ephemeral"},
                },
            ],
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "The current weather",
                        "parameters": WEATHER_SCHEMA,
                    },
                },
                {
                    "type": "function",
                    "function": {
                        "name": "get_time",
                        "parameters": {"type": "object", "properties": {}},
                    },
                },
            ],
        },
        ["cache_control"],
        id="tools",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stop_sequences": ["\n\nHuman:", "END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "user-42"},
            "service_tier": "auto",
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": ["\n\nHuman:", "END"],
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "user-42",
        },
        ["top_k", "service_tier"],
        id="sampling-stop-user",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "metadata": {"user_id": None},
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
        },
        [],
        id="metadata-without-user",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        [],
        id="stream-asks-for-usage",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": False,
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": False,
        },
        [],
        id="stream-false",
    ),
    pytest.param(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "2+2?"}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
        },
        {
            "model": "gpt-4o-mini",
            "max_completion_tokens": 1024,
            "messages": [{"role": "user", "content": "2+2?"}],
        },
        ["thinking"],
        id="thinking-dropped-for-a-model-without-reasoning",
    ),
]


@pytest.mark.parametrize(("client", "target", "dropped"), MESSAGES_TO_CHAT)
def test_messages_request_as_chat(client: Json, target: Json, dropped: list[str]) -> None:
    translated, names = to_chat(client)
    assert translated == target
    assert sorted(names) == sorted(dropped)


TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


@pytest.mark.parametrize(
    ("tool_choice", "tools", "expected"),
    [
        pytest.param({"type": "auto"}, TOOLS, {"tool_choice": "auto"}, id="auto"),
        pytest.param({"type": "any"}, TOOLS, {"tool_choice": "required"}, id="any"),
        pytest.param(
            {"type": "tool", "name": "get_weather"},
            TOOLS,
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            id="tool",
        ),
        pytest.param({"type": "none"}, TOOLS, {"tool_choice": "none"}, id="none"),
        pytest.param(
            {"type": "auto", "disable_parallel_tool_use": True},
            TOOLS,
            {"tool_choice": "auto", "parallel_tool_calls": False},
            id="auto-one-call",
        ),
        pytest.param(
            {"type": "any", "disable_parallel_tool_use": True},
            TOOLS,
            {"tool_choice": "required", "parallel_tool_calls": False},
            id="any-one-call",
        ),
        pytest.param(
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            TOOLS,
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
            },
            id="tool-one-call",
        ),
        pytest.param(
            {"type": "auto", "disable_parallel_tool_use": False},
            TOOLS,
            {"tool_choice": "auto", "parallel_tool_calls": True},
            id="auto-parallel-allowed",
        ),
        # OpenAI refuses tool_choice and parallel_tool_calls without tools:
        # without them, they say nothing
        pytest.param(
            {"type": "auto", "disable_parallel_tool_use": True},
            None,
            {},
            id="auto-one-call-without-tools",
        ),
    ],
)
def test_tool_choice_as_chat(tool_choice: Json, tools: Any, expected: Json) -> None:
    client: Json = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tool_choice": tool_choice,
    }
    if tools is not None:
        client["tools"] = tools
    translated, names = to_chat(client)
    assert names == ([] if tools else ["tool_choice"])
    for field in ("model", "max_completion_tokens", "messages", "tools"):
        translated.pop(field, None)
    assert translated == expected


@pytest.mark.parametrize(
    ("target", "max_field", "top_k"),
    [
        pytest.param(GPT, "max_completion_tokens", None, id="openai"),
        pytest.param(COMPATIBLE, "max_tokens", 40, id="openai-compatible"),
    ],
)
def test_max_tokens_and_top_k_per_target(target: Any, max_field: str, top_k: Any) -> None:
    client = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 777,
        "messages": [{"role": "user", "content": "Hi"}],
        "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e"][: 4 if target is GPT else 5],
    }
    translated, dropped = to_chat(client, target, model="upstream")
    expected: Json = {
        "model": "upstream",
        max_field: 777,
        "messages": [{"role": "user", "content": "Hi"}],
        "stop": client["stop_sequences"],
    }
    if top_k is not None:
        expected["top_k"] = top_k
    assert translated == expected
    assert dropped == ([] if top_k else ["top_k"])


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        pytest.param({"type": "enabled", "budget_tokens": 1024}, "low", id="1024-low"),
        pytest.param({"type": "enabled", "budget_tokens": 4095}, "low", id="4095-low"),
        pytest.param({"type": "enabled", "budget_tokens": 4096}, "medium", id="4096-medium"),
        pytest.param({"type": "enabled", "budget_tokens": 16383}, "medium", id="16383-medium"),
        pytest.param({"type": "enabled", "budget_tokens": 16384}, "high", id="16384-high"),
        pytest.param({"type": "enabled", "budget_tokens": 60000}, "high", id="60000-high"),
        pytest.param({"type": "enabled"}, "low", id="no-budget-low"),
        pytest.param({"type": "disabled"}, None, id="disabled"),
    ],
)
def test_thinking_as_reasoning_effort(thinking: Json, effort: str | None) -> None:
    client = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64000,
        "messages": [{"role": "user", "content": "Prove it."}],
        "thinking": thinking,
    }
    translated, dropped = to_chat(client, O4, model="o4-mini")
    expected: Json = {
        "model": "o4-mini",
        "max_completion_tokens": 64000,
        "messages": [{"role": "user", "content": "Prove it."}],
    }
    if effort is not None:
        expected["reasoning_effort"] = effort
    assert translated == expected
    assert dropped == []


@pytest.mark.parametrize(
    ("client", "field", "says"),
    [
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}]},
            "max_tokens",
            "needs max_tokens",
            id="max-tokens-missing",
        ),
        pytest.param(
            {"max_tokens": 10, "messages": [], "container": "c-1"},
            "request body",
            "unknown field `container`",
            id="unknown-top-level-field",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi", "sparkle": 1}]}
                ],
            },
            "request body",
            "unknown field `sparkle` - at `$.messages[0].content[0]`",
            id="unknown-block-field",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Hi"}],
                "tool_choice": {"type": "none", "disable_parallel_tool_use": True},
            },
            "request body",
            "unknown field `disable_parallel_tool_use`",
            id="unknown-field-of-tool-choice-none",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {
                                        "type": "image",
                                        "source": {"type": "url", "url": "https://x.test/a.png"},
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            "messages[0].content[0].content[0]",
            "tool message holds text only",
            id="image-in-tool-result",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Read this"},
                            {
                                "type": "document",
                                "source": {"type": "url", "url": "https://x.test/a.pdf"},
                            },
                        ],
                    }
                ],
            },
            "messages[0].content[1].source",
            "a document source of type 'url'",
            id="document-from-url",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "iVBOR",
                                },
                            }
                        ],
                    }
                ],
            },
            "messages[0].content[0].source",
            "a base64 document of type 'image/png'",
            id="document-not-a-pdf",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Search the news"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
            },
            "tools[0]",
            "server tool 'web_search_20250305'",
            id="server-tool-with-its-options",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Search the news"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            },
            "tools[0]",
            "server tool 'web_search_20250305'",
            id="server-tool",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": [{"name": "get_weather"}],
            },
            "tools[0].input_schema",
            "needs its input_schema",
            id="tool-without-schema",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                    }
                ],
            },
            "messages[0].content[0]",
            "a tool_use block belongs to an assistant turn",
            id="tool-use-in-user-turn",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "text", "text": "ok"},
                            {"type": "tool_result", "tool_use_id": "t", "content": "x"},
                        ],
                    },
                ],
            },
            "messages[1].content[1]",
            "a tool_result block belongs to a user turn",
            id="tool-result-in-assistant-turn",
        ),
        pytest.param(
            {
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "Hi"}],
                "stop_sequences": ["a", "b", "c", "d", "e"],
            },
            "stop_sequences",
            "at most 4 stop sequences",
            id="five-stop-sequences-on-openai",
        ),
    ],
)
def test_messages_requests_refused(client: Json, field: str, says: str) -> None:
    with pytest.raises(Untranslatable) as refused:
        messages_to_chat({"model": "claude-sonnet-4-5", **client})
    assert refused.value.field == field
    assert says in str(refused.value)


# ---- OpenAI Chat Completions → Anthropic Messages ------------------------------------

CHAT_TO_MESSAGES = [
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
            ],
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
        },
        [],
        id="system-string-and-default-max-tokens",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief.", "name": "ops"},
                {"role": "user", "content": "Hi"},
            ],
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
        },
        ["name"],
        id="developer-message",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "developer",
                    "content": [
                        {"type": "text", "text": "Answer in French."},
                        {"type": "text", "text": "No emoji."},
                    ],
                },
                {"role": "user", "content": "Hi"},
            ],
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": [
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Answer in French."},
                {"type": "text", "text": "No emoji."},
            ],
            "messages": [{"role": "user", "content": "Hi"}],
        },
        [],
        id="system-and-developer-as-blocks",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare these."},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:image/jpeg;base64,/9j/4AAQ",
                                "detail": "high",
                            },
                        },
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                        {
                            "type": "file",
                            "file": {
                                "file_data": "data:application/pdf;base64,JVBERi0x",
                                "filename": "report.pdf",
                            },
                        },
                        {
                            "type": "file",
                            "file": {"file_data": "data:application/pdf;base64,JVBERi0y"},
                        },
                    ],
                }
            ],
            "max_tokens": 300,
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Compare these."},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "/9j/4AAQ",
                            },
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0x",
                            },
                            "title": "report.pdf",
                        },
                        {
                            "type": "document",
                            "source": {
                                "type": "base64",
                                "media_type": "application/pdf",
                                "data": "JVBERi0y",
                            },
                        },
                    ],
                }
            ],
        },
        ["detail"],
        id="user-parts-image-data-url-image-url-pdf",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
                {
                    "role": "tool",
                    "tool_call_id": "call_2",
                    "content": [{"type": "text", "text": "21°C"}],
                },
                {"role": "user", "content": "Which is warmer?"},
            ],
            "max_completion_tokens": 500,
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "call_2",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "call_2",
                            "content": [{"type": "text", "text": "21°C"}],
                        },
                        {"type": "text", "text": "Which is warmer?"},
                    ],
                },
            ],
        },
        [],
        id="tool-calls-and-tool-messages-merged-with-next-user-message",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": "Let me check.",
                    "reasoning_content": "The user wants weather.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "And"},
                        {"type": "text", "text": "tomorrow?"},
                    ],
                },
                {"role": "assistant", "content": "I cannot tell.", "refusal": None},
            ],
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C"},
                        {"type": "text", "text": "And"},
                        {"type": "text", "text": "tomorrow?"},
                    ],
                },
                {"role": "assistant", "content": "I cannot tell."},
            ],
        },
        ["reasoning_content"],
        id="assistant-text-with-tool-call-and-reasoning-sent-back",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "The current weather",
                        "parameters": WEATHER_SCHEMA,
                        "strict": True,
                    },
                },
                {"type": "function", "function": {"name": "get_time"}},
            ],
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "The current weather",
                    "input_schema": WEATHER_SCHEMA,
                },
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
            ],
        },
        ["strict"],
        id="tools-strict-dropped",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": "END",
            "temperature": 0.7,
            "top_p": 0.95,
            "top_k": 50,
            "user": "user-42",
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
            "stop_sequences": ["END"],
            "temperature": 0.7,
            "top_p": 0.95,
            "top_k": 50,
            "metadata": {"user_id": "user-42"},
            "stream": True,
        },
        [],
        id="stop-string-sampling-user-stream",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": ["END", "\n\n"],
            "temperature": 1,
            "safety_identifier": "hash-9f86d08",
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
            "stop_sequences": ["END", "\n\n"],
            "temperature": 1.0,
            "metadata": {"user_id": "hash-9f86d08"},
        },
        [],
        id="stop-list-and-safety-identifier",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "stop": None,
            "temperature": None,
            "n": 1,
            "tools": None,
            "tool_choice": None,
            "response_format": {"type": "text"},
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
        },
        [],
        id="nulls-and-defaults-as-absent",
    ),
    pytest.param(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi", "name": "alice"}],
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
            "metadata": {"team": "red"},
            "store": True,
            "service_tier": "auto",
            "prediction": {"type": "content", "content": "Hello"},
            "prompt_cache_key": "k-1",
            "verbosity": "low",
            "stream": True,
            "stream_options": {"include_usage": False, "include_obfuscation": False},
        },
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
        },
        [
            "name",
            "include_obfuscation",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "metadata",
            "store",
            "service_tier",
            "prediction",
            "prompt_cache_key",
            "verbosity",
        ],
        id="hints-dropped",
    ),
]


@pytest.mark.parametrize(("client", "target", "dropped"), CHAT_TO_MESSAGES)
def test_chat_request_as_messages(client: Json, target: Json, dropped: list[str]) -> None:
    translated, names = to_messages(client)
    assert translated == target
    assert sorted(names) == sorted(dropped)


CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
]
ANTHROPIC_TOOLS = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"tool_choice": "none"}, {"tool_choice": {"type": "none"}}, id="none"),
        pytest.param({"tool_choice": "auto"}, {"tool_choice": {"type": "auto"}}, id="auto"),
        pytest.param({"tool_choice": "required"}, {"tool_choice": {"type": "any"}}, id="required"),
        pytest.param(
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"tool_choice": {"type": "tool", "name": "get_weather"}},
            id="named",
        ),
        pytest.param(
            {"parallel_tool_calls": False},
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}},
            id="parallel-false",
        ),
        pytest.param(
            {"parallel_tool_calls": True},
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": False}},
            id="parallel-true",
        ),
        pytest.param(
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
            id="required-parallel-false",
        ),
        pytest.param(
            {
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "parallel_tool_calls": False,
            },
            {
                "tool_choice": {
                    "type": "tool",
                    "name": "get_weather",
                    "disable_parallel_tool_use": True,
                }
            },
            id="named-parallel-false",
        ),
        # Anthropic's tool_choice none takes no disable_parallel_tool_use
        pytest.param(
            {"tool_choice": "none", "parallel_tool_calls": False},
            {"tool_choice": {"type": "none"}},
            id="none-parallel-false",
        ),
    ],
)
def test_tool_choice_as_messages(fields: Json, expected: Json) -> None:
    client = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": CHAT_TOOLS,
        **fields,
    }
    translated, names = to_messages(client)
    # with tool_choice none no tool may be called: parallel_tool_calls says nothing
    unsaid = fields.get("tool_choice") == "none" and "parallel_tool_calls" in fields
    assert names == (["parallel_tool_calls"] if unsaid else [])
    assert translated == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": ANTHROPIC_TOOLS,
        **expected,
    }


def test_parallel_tool_calls_without_tools_says_nothing() -> None:
    translated, _ = to_messages(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "parallel_tool_calls": False,
        }
    )
    assert "tool_choice" not in translated


ANSWER_TOOL = {
    "name": "weather",
    "input_schema": WEATHER_SCHEMA,
    "description": "Give your answer as this tool's input, which the JSON schema describes.",
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"response_format": JSON_SCHEMA_FORMAT},
            {"tools": [ANSWER_TOOL], "tool_choice": {"type": "tool", "name": "weather"}},
            id="json-schema-alone-forces-its-tool",
        ),
        pytest.param(
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "weather", "description": "The forecast"},
                }
            },
            {
                "tools": [
                    {
                        "name": "weather",
                        "input_schema": {"type": "object"},
                        "description": "The forecast",
                    }
                ],
                "tool_choice": {"type": "tool", "name": "weather"},
            },
            id="json-schema-without-schema",
        ),
        pytest.param(
            {"response_format": JSON_SCHEMA_FORMAT, "tools": CHAT_TOOLS},
            {"tools": [*ANTHROPIC_TOOLS, ANSWER_TOOL], "tool_choice": {"type": "any"}},
            id="json-schema-with-tools-calls-any",
        ),
        pytest.param(
            {
                "response_format": JSON_SCHEMA_FORMAT,
                "tools": CHAT_TOOLS,
                "parallel_tool_calls": False,
            },
            {
                "tools": [*ANTHROPIC_TOOLS, ANSWER_TOOL],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            },
            id="json-schema-with-tools-one-call",
        ),
        pytest.param(
            {"response_format": JSON_SCHEMA_FORMAT, "tools": CHAT_TOOLS, "tool_choice": "none"},
            {"tools": [ANSWER_TOOL], "tool_choice": {"type": "tool", "name": "weather"}},
            id="json-schema-with-tools-not-to-call",
        ),
        pytest.param(
            {
                "response_format": {"type": "json_object"},
                "reasoning_effort": "minimal",
            },
            {
                "tools": [
                    {
                        "name": "json_answer",
                        "input_schema": {"type": "object"},
                        "description": "Give your answer as this tool's input: a JSON object.",
                    }
                ],
                "tool_choice": {"type": "tool", "name": "json_answer"},
            },
            id="json-object",
        ),
    ],
)
def test_response_format_as_answer_tool(fields: Json, expected: Json) -> None:
    client = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather?"}], **fields}
    translated, _ = to_messages(client)
    assert translated == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Weather?"}],
        **expected,
    }


@pytest.mark.parametrize(
    ("fields", "max_tokens", "thinking", "dropped"),
    [
        pytest.param({"reasoning_effort": "low"}, 4096, 2048, [], id="low"),
        pytest.param(
            {"reasoning_effort": "medium", "max_completion_tokens": 16000},
            16000,
            8192,
            [],
            id="medium",
        ),
        pytest.param(
            {"reasoning_effort": "high", "max_tokens": 32000}, 32000, 24576, [], id="high"
        ),
        pytest.param(
            {"reasoning_effort": "high", "max_tokens": 5000}, 5000, 4999, [], id="high-below-max"
        ),
        pytest.param(
            {"reasoning_effort": "low", "max_tokens": 1025}, 1025, 1024, [], id="least-budget"
        ),
        pytest.param(
            {"reasoning_effort": "low", "max_tokens": 1024},
            1024,
            None,
            ["reasoning_effort"],
            id="no-room-to-think",
        ),
        pytest.param({"reasoning_effort": "minimal"}, 4096, None, [], id="minimal"),
        pytest.param({"reasoning_effort": None}, 4096, None, [], id="null"),
    ],
)
def test_reasoning_effort_as_thinking(
    fields: Json, max_tokens: int, thinking: int | None, dropped: list[str]
) -> None:
    client = {"model": "o3", "messages": [{"role": "user", "content": "Prove it."}], **fields}
    translated, names = to_messages(client)
    expected: Json = {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Prove it."}],
    }
    if thinking is not None:
        expected["thinking"] = {"type": "enabled", "budget_tokens": thinking}
    assert translated == expected
    assert names == dropped


def test_reasoning_without_room_to_think_beside_a_forced_tool() -> None:
    # dropped for want of room, it conflicts with nothing: no refusal
    translated, names = to_messages(
        {
            "model": "o3",
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": CHAT_TOOLS,
            "tool_choice": "required",
            "reasoning_effort": "low",
            "max_tokens": 900,
        }
    )
    assert translated["tool_choice"] == {"type": "any"}
    assert "thinking" not in translated
    assert names == ["reasoning_effort"]


def test_reasoning_beside_tool_choice_auto_thinks() -> None:
    translated, _ = to_messages(
        {
            "model": "o3",
            "messages": [{"role": "user", "content": "Weather?"}],
            "tools": CHAT_TOOLS,
            "tool_choice": "auto",
            "reasoning_effort": "medium",
        }
    )
    assert translated["tool_choice"] == {"type": "auto"}
    assert translated["thinking"] == {"type": "enabled", "budget_tokens": 4095}


def test_thinking_outranks_the_sampling_hints_anthropic_refuses_beside_it() -> None:
    translated, names = to_messages(
        {
            "model": "o3",
            "messages": [{"role": "user", "content": "Why?"}],
            "reasoning_effort": "low",
            "max_completion_tokens": 8000,
            "temperature": 0.2,
            "top_p": 0.5,
            "top_k": 40,
        }
    )
    assert translated["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert not {"temperature", "top_p", "top_k"} & set(translated)
    assert names == ["temperature", "top_p", "top_k"]
    # what Anthropic takes beside thinking goes through
    kept, names = to_messages(
        {
            "model": "o3",
            "messages": [{"role": "user", "content": "Why?"}],
            "reasoning_effort": "low",
            "max_completion_tokens": 8000,
            "temperature": 1,
            "top_p": 0.95,
        }
    )
    assert (kept["temperature"], kept["top_p"], names) == (1, 0.95, [])


def test_hints_with_nothing_to_say_are_counted_as_dropped() -> None:
    _, names = to_messages(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "user": "u-1",
            "safety_identifier": "s-1",  # user said it first
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": {"type": "object"}, "strict": True},
            },
        }
    )
    assert names == ["safety_identifier", "strict"]


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "parallel": True},
            "request body",
            "unknown field `parallel`",
            id="unknown-top-level-field",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "Hi", "cache": True}]}
                ]
            },
            "request body",
            "unknown field `cache` - at `$.messages[0].content[0]`",
            id="unknown-part-field",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"},
                    {"role": "system", "content": "Now be rude."},
                ]
            },
            "messages[2]",
            "only before the conversation",
            id="system-in-mid-conversation",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_audio",
                                "input_audio": {"data": "UklGR", "format": "wav"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0]",
            "no audio input",
            id="audio",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}
                ]
            },
            "messages[0].content[0].file",
            "files uploaded to OpenAI",
            id="file-id",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "file", "file": {"file_data": "data:text/csv;base64,YSxi"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].file.file_data",
            "takes a PDF",
            id="file-not-a-pdf",
        ),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,%89PNG"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "must be base64",
            id="data-url-not-base64",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "not a JSON object",
            id="arguments-not-json",
        ),
        pytest.param(
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1, 2]"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "not a JSON object",
            id="arguments-not-an-object",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "temperature": 1.3},
            "temperature",
            "takes 0 to 1",
            id="temperature-above-1",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "n": 2},
            "n",
            "one choice per request",
            id="n-above-1",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "logprobs": True},
            "logprobs",
            "no log probabilities",
            id="logprobs",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "top_logprobs": 3},
            "top_logprobs",
            "no log probabilities",
            id="top-logprobs",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "modalities": ["text", "audio"]},
            "modalities",
            "text only",
            id="audio-out",
        ),
        pytest.param(
            {"messages": [{"role": "user", "content": "Hi"}], "reasoning_effort": "extreme"},
            "reasoning_effort",
            "minimal, low, medium or high",
            id="unknown-effort",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "response_format": JSON_SCHEMA_FORMAT,
                "reasoning_effort": "low",
            },
            "response_format",
            "not both",
            id="json-schema-with-reasoning",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "get_weather"}},
                "tools": CHAT_TOOLS,
            },
            "response_format.json_schema.name",
            "'get_weather' is also a tool's name",
            id="json-schema-name-clash",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": CHAT_TOOLS,
                "tool_choice": "required",
                "reasoning_effort": "low",
            },
            "reasoning_effort",
            "cannot think while tool_choice forces a tool call",
            id="reasoning-with-a-required-tool",
        ),
        pytest.param(
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "tools": CHAT_TOOLS,
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
                "reasoning_effort": "high",
            },
            "reasoning_effort",
            "cannot think while tool_choice forces a tool call",
            id="reasoning-with-a-named-tool",
        ),
    ],
)
def test_chat_requests_refused(fields: Json, field: str, says: str) -> None:
    with pytest.raises(Untranslatable) as refused:
        chat_to_messages({"model": "gpt-4o", **fields})
    assert refused.value.field == field
    assert says in str(refused.value)
    assert str(refused.value).startswith(f"{field}: ")
