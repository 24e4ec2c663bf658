"""The package's facade: which crossing serves a path on a kind, a Chat
Completions target's traits, the Translation's life in a request (a body per
attempt, drops reported once), and count_tokens estimated by byok."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest

from byok.gateway.translation import ChatTarget, chat_target, crossing, estimate_input_tokens
from byok.gateway.translation import anthropic_shapes as A
from byok.providers import ANTHROPIC, OPENAI, OPENAI_COMPATIBLE, ProviderKind

from .wire import chat_to_messages, messages_to_chat


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("/v1/messages", OPENAI, ("messages→chat", "/v1/chat/completions")),
        ("/v1/messages", OPENAI_COMPATIBLE, ("messages→chat", "/v1/chat/completions")),
        ("/v1/chat/completions", ANTHROPIC, ("chat→messages", "/v1/messages")),
        ("/v1/messages/count_tokens", OPENAI, ("messages→chat", "")),
        ("/v1/messages/count_tokens", OPENAI_COMPATIBLE, ("messages→chat", "")),
        ("/v1/messages", ANTHROPIC, None),
        ("/v1/chat/completions", OPENAI, None),
        ("/v1/embeddings", ANTHROPIC, None),
        ("/v1/completions", ANTHROPIC, None),
    ],
)
def test_crossing(path: str, kind: ProviderKind, expected: Any) -> None:
    assert crossing(path, kind) == expected


@pytest.mark.parametrize(
    ("kind", "model", "reasoning", "expected"),
    [
        (OPENAI, "gpt-4o-mini", None, ChatTarget("max_completion_tokens", False, False, 4)),
        (OPENAI, "o4-mini", None, ChatTarget("max_completion_tokens", True, False, 4)),
        (OPENAI, "o1", None, ChatTarget("max_completion_tokens", True, False, 4)),
        (OPENAI, "gpt-5-mini", None, ChatTarget("max_completion_tokens", True, False, 4)),
        (OPENAI, "gpt-4o-mini", True, ChatTarget("max_completion_tokens", True, False, 4)),
        (OPENAI, "o4-mini", False, ChatTarget("max_completion_tokens", False, False, 4)),
        (
            OPENAI_COMPATIBLE,
            "o4-mini",
            None,
            ChatTarget("max_tokens", False, True, None, "an OpenAI-compatible target"),
        ),
        (
            OPENAI_COMPATIBLE,
            "qwq-32b",
            True,
            ChatTarget("max_tokens", True, True, None, "an OpenAI-compatible target"),
        ),
    ],
)
def test_chat_target(kind: ProviderKind, model: str, reasoning: Any, expected: ChatTarget) -> None:
    assert chat_target(kind, model, reasoning) == expected


def test_a_body_per_attempt_with_its_upstream_model() -> None:
    translation = messages_to_chat(
        {"model": "claude", "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]}
    )
    first = msgspec.json.decode(translation.body("gpt-4o-mini"))
    second = msgspec.json.decode(translation.body("gpt-4.1-mini"))
    assert (first["model"], second["model"]) == ("gpt-4o-mini", "gpt-4.1-mini")
    assert {**first, "model": ""} == {**second, "model": ""}
    assert translation.client_dialect == "anthropic"
    assert translation.upstream_path == "/v1/chat/completions"


def test_drops_are_reported_once() -> None:
    translation = chat_to_messages(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "Hi"}],
            "seed": 1,
            "store": True,
        }
    )
    assert translation.client_dialect == "openai"
    assert translation.upstream_path == "/v1/messages"
    assert translation.unreported_drops() == ["seed", "store"]
    assert translation.unreported_drops() == []
    assert translation.dropped.names == ["seed", "store"]


def test_count_tokens_estimate() -> None:
    tools_json = b'[{"name":"f","input_schema":{"type":"object"}}]'  # tools count as their JSON
    request = {
        "model": "claude",
        "system": [{"type": "text", "text": "You are terse."}],  # 14 bytes
        "messages": [
            {"role": "user", "content": "Héllo"},  # 6 bytes
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "abc"},  # 3
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"},
                    },
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVBERi0x",  # 8
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},  # 3
                    {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},  # {"a":1}: 7
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [
                            {"type": "text", "text": "ok"},  # 2
                            {"type": "image", "source": {"type": "url", "url": "https://x.test/a"}},
                        ],
                    },
                    {"type": "tool_result", "tool_use_id": "u", "content": "fine"},  # 4
                ],
            },
        ],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    # decoded as the proxy decodes it (an image in a tool result, which a
    # translation refuses, is still counted here)
    decoded = msgspec.json.decode(msgspec.json.encode(request), type=A.MessagesRequest)
    text = 14 + 6 + 3 + 8 + 3 + 7 + 2 + 4 + len(tools_json)
    assert estimate_input_tokens(decoded) == math.ceil(text / 4) + 2 * 1600


def test_count_tokens_keeps_the_client_request() -> None:
    request = {"model": "claude", "messages": [{"role": "user", "content": "Hi there!"}]}
    translation = messages_to_chat(request, path="/v1/messages/count_tokens")
    assert translation.upstream_path == ""  # byok answers it
    assert translation.client_request is not None
    assert estimate_input_tokens(translation.client_request) == 3  # 9 bytes / 4, up
