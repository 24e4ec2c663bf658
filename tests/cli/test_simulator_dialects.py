"""The simulated upstream as a strict speaker of each dialect: the routes it
serves, the bodies it refuses (in the real API's words), and the answers
shaped by the request (tool calls whole and streamed, structured output,
stop sequences, max_tokens, n, thinking, cached tokens).

It serves on a real loopback socket in the test's trio run (as in
test_simulator_limits), its clients raw httpx and the official SDKs
(their async clients, in the same run) pointed straight at it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import httpx
import openai
import pydantic
import pytest

from byok.cli.simulator import Behaviour, SimulatedUpstream

from .test_simulator_limits import served

GPT = "sk-sim-dialects-GPT-0001"
CLAUDE = "sk-ant-sim-dialects-CLAUDE-0002"
HI = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-sim", "messages": HI}
MESSAGE = {"model": "claude-sim", "max_tokens": 50, "messages": HI}
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "note": {"type": "string"},  # not required: left out
    },
    "required": ["city", "days", "unit"],
}
WEATHER_ARGUMENTS = {"city": "sim", "days": 1, "unit": "celsius"}
CLOCK_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CLOCK_ARGUMENTS = {"city": "sim"}
WEATHER = {"name": "get_weather", "description": "The weather", "input_schema": WEATHER_SCHEMA}
CLOCK = {"name": "get_time", "input_schema": CLOCK_SCHEMA}


def function(tool: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic tool as OpenAI declares it."""
    return {
        "type": "function",
        "function": {"name": tool["name"], "parameters": tool["input_schema"]},
    }


FUNCTIONS = [function(WEATHER), function(CLOCK)]

# The async openai SDK stops reading its SSE generators (and its HTTP
# client's under them) at [DONE] and leaves them to the garbage collector,
# which trio reports: the client's doing (as in gateway/test_stream_usage).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator '(openai|httpx2|httpcore2)\\.:ResourceWarning"
)


@asynccontextmanager
async def upstream(
    speaks: tuple[str, ...] = ("openai", "anthropic"), **behaviour: Any
) -> AsyncIterator[tuple[SimulatedUpstream, httpx.AsyncClient]]:
    """A simulator with the keys GPT (alpha) and CLAUDE (claude), both set to
    `behaviour`, served on loopback, and a raw client of it."""
    simulator = SimulatedUpstream(speaks=speaks)
    simulator.add_key(GPT, "alpha", **behaviour)
    simulator.add_key(CLAUDE, "claude", **behaviour)
    async with served(simulator) as client:
        yield simulator, client


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`base` changed: a field set to ... is left out."""
    return {key: value for key, value in {**base, **change}.items() if value is not ...}


async def chat(client: httpx.AsyncClient, path: str = "/v1/chat/completions", **change: Any):
    sent = merged(CHAT, change)
    return await client.post(path, json=sent, headers={"authorization": f"Bearer {GPT}"})


async def message(client: httpx.AsyncClient, path: str = "/v1/messages", **change: Any):
    sent = merged(MESSAGE, change)
    headers = {"x-api-key": CLAUDE, "anthropic-version": "2023-06-01"}
    return await client.post(path, json=sent, headers=headers)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    """The data of each event of a stream (OpenAI's [DONE] left out)."""
    found = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            found.append(json.loads(line[6:]))
    return found


def block_deltas(raw: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    """The deltas of an Anthropic stream's content block `index`."""
    return [e["delta"] for e in raw if e["type"] == "content_block_delta" and e["index"] == index]


def openai_sdk(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    url = str(client.base_url).rstrip("/")
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=GPT, max_retries=0)


def anthropic_sdk(client: httpx.AsyncClient) -> anthropic.AsyncAnthropic:
    url = str(client.base_url).rstrip("/")
    return anthropic.AsyncAnthropic(base_url=url, api_key=CLAUDE, max_retries=0)


# ---- the dialects it speaks -------------------------------------------------------------


async def test_an_openai_only_upstream_has_no_messages_routes(autojump_clock):
    async with upstream(speaks=("openai",)) as (simulator, client):
        refused = await message(client)
        counted = await message(client, "/v1/messages/count_tokens", max_tokens=...)
        answered = await chat(client)
    for response, path in ((refused, "/v1/messages"), (counted, "/v1/messages/count_tokens")):
        assert response.status_code == 404
        assert response.json() == {  # as OpenAI answers a URL it does not have
            "error": {
                "message": f"Invalid URL (POST {path})",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    assert answered.status_code == 200
    assert [(s.path, s.status) for s in simulator.seen] == [
        ("/v1/messages", 404),
        ("/v1/messages/count_tokens", 404),
        ("/v1/chat/completions", 200),
    ]
    assert simulator.seen[0].key == CLAUDE
    assert simulator.seen[0].model == "claude-sim"


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
)
async def test_an_anthropic_only_upstream_has_no_openai_routes(autojump_clock, path):
    async with upstream(speaks=("anthropic",)) as (simulator, client):
        refused = await chat(client, path)
        answered = await message(client)
    assert refused.status_code == 404
    assert refused.json() == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "Not Found"},
    }
    assert answered.status_code == 200
    assert [(s.path, s.status) for s in simulator.seen] == [(path, 404), ("/v1/messages", 200)]


def test_it_speaks_only_the_dialects_it_knows():
    with pytest.raises(ValueError, match="speaks must name one or both of"):
        SimulatedUpstream(speaks=("gemini",))
    with pytest.raises(ValueError, match="speaks must name one or both of"):
        SimulatedUpstream(speaks=())


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ({"tool_calls": 0}, "tool_calls must be a whole number of at least 1"),
        ({"cached_tokens": -1}, "cached_tokens must be a whole number, 0 or more"),
    ],
)
def test_a_behaviour_that_cannot_be_is_refused(behaviour, message):
    with pytest.raises(ValueError, match=message):
        Behaviour(**behaviour)


# ---- OpenAI's refusals ------------------------------------------------------------------

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
ASKED = {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}

OPENAI_REFUSALS = [
    # (what the body changes, the message, param, code)
    pytest.param(
        {"temperatur": 1},
        "Unrecognized request argument supplied: temperatur",
        None,
        None,
        id="unknown-argument",
    ),
    pytest.param(
        {"model": 7},
        "Invalid type for 'model': expected a string, but got an integer instead.",
        "model",
        "invalid_type",
        id="model-not-a-string",
    ),
    pytest.param(
        {"model": None},
        "Invalid type for 'model': expected a string, but got null instead.",
        "model",
        "invalid_type",
        id="model-null",
    ),
    pytest.param(
        {"messages": []},
        "Invalid 'messages': empty array. Expected an array with minimum length 1,"
        " but got an empty array instead.",
        "messages",
        "empty_array",
        id="no-messages",
    ),
    pytest.param(
        {"messages": [{"role": "function", "content": "x"}]},
        "Invalid value: 'function'. Supported values are: 'system', 'developer', 'user',"
        " 'assistant', and 'tool'.",
        "messages[0].role",
        "invalid_value",
        id="unknown-role",
    ),
    pytest.param(
        {"messages": [{"content": "x"}]},
        "Missing required parameter: 'messages[0].role'.",
        "messages[0].role",
        "missing_required_parameter",
        id="no-role",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": 3}]},
        "Invalid type for 'messages[0].content': expected one of a string or an array,"
        " but got an integer instead.",
        "messages[0].content",
        "invalid_type",
        id="content-a-number",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "video", "video": "v"}]}]},
        "Invalid value: 'video'. Supported values are: 'text', 'image_url', 'input_audio',"
        " and 'file'.",
        "messages[0].content[0].type",
        "invalid_value",
        id="unknown-part",
    ),
    pytest.param(
        {"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {}}]}]},
        "Invalid value: 'image_url'. Supported values are: 'text'.",
        "messages[0].content[0].type",
        "invalid_value",
        id="image-in-system",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "Missing required parameter: 'messages[0].content[0].image_url.url'.",
        "messages[0].content[0].image_url.url",
        "missing_required_parameter",
        id="image-without-url",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "b": 1}]}]},
        "Unknown parameter: 'messages[0].content[0].b'.",
        "messages[0].content[0].b",
        "unknown_parameter",
        id="unknown-part-field",
    ),
    pytest.param(
        {
            "messages": [
                *HI,
                {"role": "assistant", "tool_calls": [{**TOOL_CALL, "function": {"name": "f"}}]},
            ]
        },
        "Missing required parameter: 'messages[1].tool_calls[0].function.arguments'.",
        "messages[1].tool_calls[0].function.arguments",
        "missing_required_parameter",
        id="call-without-arguments",
    ),
    pytest.param(
        {
            "messages": [
                *HI,
                {
                    "role": "assistant",
                    "tool_calls": [{**TOOL_CALL, "function": {"name": "f", "arguments": {}}}],
                },
            ]
        },
        "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string,"
        " but got an object instead.",
        "messages[1].tool_calls[0].function.arguments",
        "invalid_type",
        id="arguments-an-object",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "assistant", "tool_calls": []}]},
        "Invalid 'messages[1].tool_calls': empty array. Expected an array with minimum length 1,"
        " but got an empty array instead.",
        "messages[1].tool_calls",
        "empty_array",
        id="empty-tool-calls",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "assistant", "content": None}]},
        "Invalid value for 'content': expected a string, got null.",
        "messages.[1].content",
        None,
        id="assistant-says-nothing",
    ),
    pytest.param(
        {"messages": [*HI, ASKED, {"role": "user", "content": "and?"}]},
        "An assistant message with 'tool_calls' must be followed by tool messages responding"
        " to each 'tool_call_id'. The following tool_call_ids did not have response messages:"
        " call_1",
        "messages.[1].role",
        None,
        id="call-unanswered",
    ),
    pytest.param(
        {"messages": [*HI, ASKED]},
        "An assistant message with 'tool_calls' must be followed by tool messages responding"
        " to each 'tool_call_id'. The following tool_call_ids did not have response messages:"
        " call_1",
        "messages.[1].role",
        None,
        id="call-unanswered-at-the-end",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "tool", "tool_call_id": "call_9", "content": "x"}]},
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding"
        " message with 'tool_calls'.",
        "messages.[1].role",
        None,
        id="tool-answers-nothing",
    ),
    pytest.param(
        {"messages": [*HI, ASKED, {"role": "tool", "content": "x"}]},
        "Missing required parameter: 'messages[2].tool_call_id'.",
        "messages[2].tool_call_id",
        "missing_required_parameter",
        id="tool-without-id",
    ),
    pytest.param(
        {"tools": [{"function": {"name": "f"}}]},
        "Missing required parameter: 'tools[0].type'.",
        "tools[0].type",
        "missing_required_parameter",
        id="tool-without-type",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "Invalid 'tools[0].function.name': string does not match pattern. Expected a string"
        " that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
        "tools[0].function.name",
        "invalid_value",
        id="tool-name",
    ),
    pytest.param(
        {"tools": []},
        "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an"
        " empty array instead.",
        "tools",
        "empty_array",
        id="no-tools",
    ),
    pytest.param(
        {"tools": FUNCTIONS, "tool_choice": "always"},
        "Invalid value: 'always'. Supported values are: 'auto', 'none', and 'required'.",
        "tool_choice",
        "invalid_value",
        id="tool-choice-word",
    ),
    pytest.param(
        {"tools": FUNCTIONS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "Invalid value for 'tool_choice': function 'nope' is not among the functions in 'tools'.",
        "tool_choice",
        "invalid_value",
        id="tool-choice-unknown",
    ),
    pytest.param(
        {"tool_choice": "auto"},
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are"
        " specified.",
        "tool_choice",
        None,
        id="tool-choice-without-tools",
    ),
    pytest.param(
        {"parallel_tool_calls": False},
        "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when"
        " 'tools' are specified.",
        "parallel_tool_calls",
        None,
        id="parallel-without-tools",
    ),
    pytest.param(
        {"tools": FUNCTIONS, "parallel_tool_calls": "no"},
        "Invalid type for 'parallel_tool_calls': expected one of a boolean or null, but got a"
        " string instead.",
        "parallel_tool_calls",
        "invalid_type",
        id="parallel-not-a-boolean",
    ),
    pytest.param(
        {"response_format": {"type": "xml"}},
        "Invalid value: 'xml'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        "response_format.type",
        "invalid_value",
        id="response-format",
    ),
    pytest.param(
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "Missing required parameter: 'response_format.json_schema.name'.",
        "response_format.json_schema.name",
        "missing_required_parameter",
        id="json-schema-without-name",
    ),
    pytest.param(
        {"max_tokens": 0},
        "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0"
        " instead.",
        "max_tokens",
        "integer_below_min_value",
        id="max-tokens",
    ),
    pytest.param(
        {"max_completion_tokens": 0},
        "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1,"
        " but got 0 instead.",
        "max_completion_tokens",
        "integer_below_min_value",
        id="max-completion-tokens",
    ),
    pytest.param(
        {"n": 0},
        "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.",
        "n",
        "integer_below_min_value",
        id="n",
    ),
    pytest.param(
        {"stop": ["a", "b", "c", "d", "e"]},
        "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an"
        " array with length 5 instead.",
        "stop",
        "array_above_max_length",
        id="five-stops",
    ),
    pytest.param(
        {"temperature": 2.5},
        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5"
        " instead.",
        "temperature",
        "decimal_above_max_value",
        id="temperature",
    ),
    pytest.param(
        {"top_p": -0.5},
        "Invalid 'top_p': decimal below minimum value. Expected a value >= 0, but got -0.5"
        " instead.",
        "top_p",
        "decimal_below_min_value",
        id="top-p",
    ),
    pytest.param(
        {"stream": "yes"},
        "Invalid type for 'stream': expected one of a boolean or null, but got a string instead.",
        "stream",
        "invalid_type",
        id="stream-not-a-boolean",
    ),
    pytest.param(
        {"stream_options": {"include_usage": True}},
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
        None,
        id="stream-options-without-stream",
    ),
    pytest.param(
        {"stream": True, "stream_options": {"include_usage": True, "every": 1}},
        "Unknown parameter: 'stream_options.every'.",
        "stream_options.every",
        "unknown_parameter",
        id="stream-options-unknown",
    ),
    pytest.param(
        {"user": 42},
        "Invalid type for 'user': expected one of a string or null, but got an integer instead.",
        "user",
        "invalid_type",
        id="user",
    ),
    pytest.param(
        {"metadata": {"team": 7}},
        "Invalid type for 'metadata[...]': expected a string, but got an integer instead.",
        "metadata[...]",
        "invalid_type",
        id="metadata-value",
    ),
    pytest.param(
        {"reasoning_effort": "max"},
        "Invalid value: 'max'. Supported values are: 'high', 'low', 'medium', and 'minimal'.",
        "reasoning_effort",
        "invalid_value",
        id="reasoning-effort",
    ),
]


@pytest.mark.parametrize(("change", "said", "param", "code"), OPENAI_REFUSALS)
async def test_openai_refuses_as_openai_does(autojump_clock, change, said, param, code):
    async with upstream() as (simulator, client):
        refused = await chat(client, **change)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {"message": said, "type": "invalid_request_error", "param": param, "code": code}
    }
    assert simulator.seen[-1].status == 400


async def test_openai_takes_every_shape_it_documents(autojump_clock):
    text = {"type": "text", "text": "look"}
    image = {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    file = {"type": "file", "file": {"file_id": "file-1", "filename": "a.pdf"}}
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}], "name": "s"},
        {"role": "developer", "content": "Really brief."},
        {"role": "user", "content": [text, image, audio, file], "name": "me"},
        {
            "role": "assistant",
            "content": None,
            "refusal": None,
            "tool_calls": [
                {**TOOL_CALL, "id": "call_a"},
                {**TOOL_CALL, "id": "call_b", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "B"}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": "again"},
    ]
    body = {
        "messages": messages,
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "description": "d", "parameters": {}, "strict": True},
            },
            {"type": "function", "function": {"name": "g"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "g"}},
        "parallel_tool_calls": True,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {}, "strict": True, "description": "d"},
        },
        "max_tokens": 10,
        "max_completion_tokens": 10,
        "n": 1,
        "stop": "never",
        "temperature": 2,
        "top_p": 1,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u",
        "metadata": {"team": "a"},
        "reasoning_effort": "minimal",
        "seed": 1,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "logprobs": False,
        "top_logprobs": 0,
        "logit_bias": {"1": 1},
        "service_tier": "auto",
        "store": False,
        "modalities": ["text"],
        "prediction": {"type": "content", "content": "x"},
    }
    async with upstream() as (simulator, client):
        answered = await chat(client, **body)
    assert answered.status_code == 200, answered.text
    assert simulator.seen[-1].status == 200


# ---- Anthropic's refusals ---------------------------------------------------------------

TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {"city": "x"}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"}
THINKING = {"type": "thinking", "thinking": "hm", "signature": "sig"}
TOOL_LOOP = [*HI, {"role": "assistant", "content": [TOOL_USE]}]

ANTHROPIC_REFUSALS = [
    # (what the body changes, the message)
    pytest.param({"temprature": 1}, "temprature: Extra inputs are not permitted", id="unknown"),
    pytest.param({"max_tokens": ...}, "max_tokens: Field required", id="no-max-tokens"),
    pytest.param({"max_tokens": None}, "max_tokens: Input should be a valid integer", id="null"),
    pytest.param(
        {"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1", id="max-tokens"
    ),
    pytest.param({"model": ["m"]}, "model: Input should be a valid string", id="model"),
    pytest.param(
        {"messages": []},
        "messages: List should have at least 1 item after validation, not 0",
        id="no-messages",
    ),
    pytest.param(
        {"messages": [{"role": "system", "content": "Be brief."}, *HI]},
        'messages: Unexpected role "system". The Messages API accepts a top-level `system`'
        ' parameter, not "system" as an input message role.',
        id="system-role",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "x"}]},
        "messages.0.role: Input should be 'assistant' or 'user'",
        id="tool-role",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": 3}]},
        "messages.0.content: Input should be a valid string",
        id="content-a-number",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
        "messages.0.content.0: Input tag 'video' found using 'type' does not match any of the"
        " expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking',"
        " 'redacted_thinking'",
        id="unknown-block",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages.0.content.0.text.text: Field required",
        id="text-without-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
        "messages: text content blocks must be non-empty",
        id="empty-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": []}]},
        "messages.0: all messages must have non-empty content except for the optional final"
        " assistant message",
        id="empty-content",
    ),
    pytest.param(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "A"},
                        }
                    ],
                }
            ]
        },
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/gif',"
        " 'image/jpeg', 'image/png' or 'image/webp'",
        id="image-type",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [TOOL_USE]}]},
        "messages.0.content.0: `tool_use` blocks may only be in `assistant` messages",
        id="tool-use-from-the-user",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "assistant", "content": [THINKING, TOOL_RESULT]}]},
        "messages.1.content.1: `tool_result` blocks may only be in `user` messages",
        id="tool-result-from-the-assistant",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [THINKING]}]},
        "messages.0.content.0: `thinking` blocks may only be in `assistant` messages",
        id="thinking-from-the-user",
    ),
    pytest.param(
        {"messages": [*HI, {"role": "assistant", "content": [{**TOOL_USE, "input": "x"}]}]},
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
        id="tool-input-not-an-object",
    ),
    pytest.param(
        {"messages": [*TOOL_LOOP, {"role": "user", "content": "and?"}]},
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after:"
        " toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the"
        " next message.",
        id="tool-use-unanswered",
    ),
    pytest.param(
        {
            "messages": [
                *TOOL_LOOP,
                {"role": "user", "content": [{"type": "text", "text": "here:"}, TOOL_RESULT]},
            ]
        },
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after:"
        " toolu_1. Each `tool_use` block must have a corresponding `tool_result` block in the"
        " next message.",
        id="tool-result-after-text",
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": [TOOL_RESULT]}]},
        "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_1."
        " Each `tool_result` block must have a corresponding `tool_use` block in the previous"
        " message.",
        id="tool-result-answers-nothing",
    ),
    pytest.param(
        {"system": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]},
        "system.0.type: Input should be 'text'",
        id="image-in-system",
    ),
    pytest.param(
        {"tools": [{"name": "get_time", "description": "d"}]},
        "tools.0.custom.input_schema: Field required",
        id="tool-without-schema",
    ),
    pytest.param(
        {"tools": [{"name": "get time", "input_schema": CLOCK_SCHEMA}]},
        "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        id="tool-name",
    ),
    pytest.param(
        {"tools": [CLOCK], "tool_choice": {"type": "maybe"}},
        "tool_choice: Input tag 'maybe' found using 'type' does not match any of the expected"
        " tags: 'auto', 'any', 'none', 'tool'",
        id="tool-choice-type",
    ),
    pytest.param(
        {"tools": [CLOCK], "tool_choice": {"type": "tool", "name": "get_weather"}},
        "tool_choice.tool.name: Tool 'get_weather' not found in tools",
        id="tool-choice-unknown",
    ),
    pytest.param(
        {"tools": [CLOCK], "tool_choice": {"type": "auto", "parallel": False}},
        "tool_choice.auto.parallel: Extra inputs are not permitted",
        id="tool-choice-field",
    ),
    pytest.param(
        {"stop_sequences": "word"}, "stop_sequences: Input should be a valid list", id="stops"
    ),
    pytest.param(
        {"temperature": 1.5}, "temperature: Input should be less than or equal to 1", id="temp"
    ),
    pytest.param(
        {"metadata": {"user_id": "u", "team": "a"}},
        "metadata.team: Extra inputs are not permitted",
        id="metadata",
    ),
    pytest.param({"stream": "yes"}, "stream: Input should be a valid boolean", id="stream"),
    pytest.param(
        {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1000}},
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        id="thinking-budget",
    ),
    pytest.param(
        {"max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our"
        " documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        "#max-tokens-and-context-window-size",
        id="thinking-over-max-tokens",
    ),
    pytest.param(
        {"thinking": {"type": "sometimes"}},
        "thinking: Input tag 'sometimes' found using 'type' does not match any of the expected"
        " tags: 'enabled', 'disabled'",
        id="thinking-type",
    ),
    pytest.param(
        {
            "max_tokens": 2000,
            "temperature": 0.5,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        "`temperature` may only be set to 1 when thinking is enabled. Please consult our"
        " documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        "#feature-compatibility",
        id="thinking-and-temperature",
    ),
    pytest.param(
        {
            "max_tokens": 2000,
            "tools": [CLOCK],
            "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        "Thinking may not be enabled when tool_choice forces tool use.",
        id="thinking-and-forced-tool",
    ),
    pytest.param(
        {
            "max_tokens": 2000,
            "messages": [*TOOL_LOOP, {"role": "user", "content": [TOOL_RESULT]}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        },
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found"
        " `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a"
        " thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
        " We recommend you include thinking blocks from previous turns. To avoid this"
        " requirement, disable `thinking`. Please consult our documentation at"
        " https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
        id="thinking-lost-in-a-tool-loop",
    ),
    pytest.param(
        {"system": [{"type": "text", "text": "s", "cache_control": {"type": "forever"}}]},
        "system.0.cache_control.type: Input should be 'ephemeral'",
        id="cache-control",
    ),
]


@pytest.mark.parametrize(("change", "said"), ANTHROPIC_REFUSALS)
async def test_anthropic_refuses_as_anthropic_does(autojump_clock, change, said):
    async with upstream() as (simulator, client):
        refused = await message(client, **change)
    assert refused.status_code == 400
    assert refused.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": said},
    }
    assert simulator.seen[-1].status == 400


async def test_count_tokens_takes_the_shape_less_max_tokens_and_stream(autojump_clock):
    async with upstream() as (_, client):
        path = "/v1/messages/count_tokens"
        counted = await message(client, path, max_tokens=...)
        refused = await message(client, path)
        streamed = await message(client, path, max_tokens=..., stream=True)
        long = [{"role": "user", "content": "x" * 400}]
        longer = await message(client, path, max_tokens=..., messages=long)
    assert counted.json() == {"input_tokens": 1}  # "hi": 2 characters / 4, rounded up
    assert longer.json() == {"input_tokens": 100}
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"
    assert streamed.json()["error"]["message"] == "stream: Extra inputs are not permitted"


async def test_anthropic_takes_every_shape_it_documents(autojump_clock):
    cached = {"type": "ephemeral", "ttl": "5m"}
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A"}}
    linked = {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}
    document = {"type": "document", "source": {"type": "text", "data": "d"}, "title": "t"}
    use = {**TOOL_USE, "cache_control": cached}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "noon"}, linked],
        "is_error": False,
    }
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "t", "cache_control": cached}]},
        {"role": "user", "content": [image, linked, document]},
        {"role": "assistant", "content": [THINKING, {"type": "redacted_thinking", "data": "x"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "calling"}, use]},
        {"role": "user", "content": [result, {"type": "text", "text": "and?"}]},
        {"role": "assistant", "content": ""},  # a final assistant turn may be empty
    ]
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    body = {
        "messages": messages,
        "max_tokens": 2000,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": cached}],
        "tools": [{**CLOCK, "cache_control": cached, "type": "custom"}, WEATHER, server_tool],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "stop_sequences": ["never"],
        "temperature": 1,
        "top_p": 1,
        "top_k": 5,
        "metadata": {"user_id": "u"},
        "stream": False,
        "thinking": {"type": "disabled"},
        "service_tier": "auto",
        "container": None,
        "mcp_servers": [],
    }
    async with upstream() as (simulator, client):
        answered = await message(client, **body)
    assert answered.status_code == 200, answered.text
    assert simulator.seen[-1].status == 200


async def test_a_refused_body_takes_no_rate_limit_and_meets_no_failure(autojump_clock):
    async with upstream(rpm=1) as (simulator, client):
        for _ in range(3):
            assert (await chat(client, messages=[])).status_code == 400
        assert (await chat(client)).status_code == 200  # the one request of the minute
        assert (await chat(client)).status_code == 429
        simulator.set(GPT, mode="500")
        assert (await chat(client, messages=[])).status_code == 400  # refused before failing
        assert (await chat(client)).status_code == 500
    assert [s.status for s in simulator.seen] == [400, 400, 400, 200, 429, 400, 500]


# ---- tool calls -------------------------------------------------------------------------


async def test_openai_tool_calls_whole_through_the_sdk(autojump_clock):
    async with upstream(tool_calls=2) as (simulator, client), openai_sdk(client) as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-sim", messages=HI, tools=FUNCTIONS
        )
        number = completion.id.rsplit("-", 1)[1]
        choice = completion.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls
        assert [call.id for call in calls] == [f"call_sim_{number}_0", f"call_sim_{number}_1"]
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
            ("get_weather", WEATHER_ARGUMENTS),
            ("get_time", CLOCK_ARGUMENTS),
        ]
        # the results go back, a tool message for each call: the reply reads the first
        answered = await sdk.chat.completions.create(
            model="gpt-sim",
            messages=[
                *HI,
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
                {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
            ],
            tools=FUNCTIONS,
        )
        assert answered.choices[0].message.content == "Result: sunny"
        assert answered.choices[0].finish_reason == "stop"
    assert [s.status for s in simulator.seen] == [200, 200]


@pytest.mark.parametrize(
    ("options", "called"),
    [
        ({}, ["get_weather", "get_time"]),
        ({"parallel_tool_calls": False}, ["get_weather"]),
        ({"tool_choice": "required"}, ["get_weather", "get_time"]),
        ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, ["get_time"]),
        ({"tool_choice": "none"}, []),
    ],
)
async def test_openai_tool_choice_decides_the_calls(autojump_clock, options, called):
    async with upstream(tool_calls=5) as (_, client):
        answer = (await chat(client, tools=FUNCTIONS, **options)).json()
    message = answer["choices"][0]["message"]
    assert [call["function"]["name"] for call in message.get("tool_calls", [])] == called
    if not called:
        assert message["content"] == "Hello from alpha word word"


def openai_call_deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        call
        for chunk in chunks
        for choice in chunk["choices"]
        for call in choice["delta"].get("tool_calls", [])
    ]


@pytest.mark.parametrize(
    ("interleave", "order"),
    [(False, [0, 0, 0, 0, 0, 0, 1, 1, 1]), (True, [0, 1, 0, 1, 0, 1, 0, 0, 0])],
)
async def test_openai_streamed_tool_calls_reassemble(autojump_clock, interleave, order):
    behaviour = {"tool_calls": 2, "interleave_tool_calls": interleave}
    async with upstream(**behaviour) as (_, client), openai_sdk(client) as sdk:
        raw = events(await chat(client, tools=FUNCTIONS, stream=True))
        deltas = openai_call_deltas(raw)
        # each call: its id, name and empty arguments first, then its arguments in pieces
        assert [delta["index"] for delta in deltas] == order
        starts = [delta for delta in deltas if "id" in delta]
        assert [(s["type"], s["function"]) for s in starts] == [
            ("function", {"name": "get_weather", "arguments": ""}),
            ("function", {"name": "get_time", "arguments": ""}),
        ]
        assert all(0 < len(d["function"]["arguments"]) <= 8 for d in deltas if "id" not in d)
        assert raw[0]["choices"][0]["delta"]["role"] == "assistant"
        assert raw[-1]["choices"][0]["finish_reason"] == "tool_calls"
        # the SDK's chunks, put back together by index, are the calls' JSON
        stream = await sdk.chat.completions.create(
            model="gpt-sim", messages=HI, tools=FUNCTIONS, stream=True
        )
        arguments: dict[int, str] = {}
        async for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or []:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
        assert {i: json.loads(text) for i, text in arguments.items()} == {
            0: WEATHER_ARGUMENTS,
            1: CLOCK_ARGUMENTS,
        }
        # and the SDK's own accumulator agrees
        async with sdk.chat.completions.stream(
            model="gpt-sim", messages=HI, tools=FUNCTIONS
        ) as streamed:
            final = await streamed.get_final_completion()
        calls = final.choices[0].message.tool_calls
        assert [json.loads(call.function.arguments) for call in calls] == [
            WEATHER_ARGUMENTS,
            CLOCK_ARGUMENTS,
        ]
        assert final.choices[0].finish_reason == "tool_calls"


async def test_anthropic_tool_use_whole_and_streamed_through_the_sdk(autojump_clock):
    async with upstream(tool_calls=2) as (_, client), anthropic_sdk(client) as sdk:
        called = await sdk.messages.create(
            model="claude-sim", max_tokens=100, messages=HI, tools=[WEATHER, CLOCK]
        )
        number = called.id.rsplit("_", 1)[1]
        assert called.stop_reason == "tool_use"
        assert [(b.type, b.id, b.name, b.input) for b in called.content] == [
            ("tool_use", f"toolu_sim_{number}_0", "get_weather", WEATHER_ARGUMENTS),
            ("tool_use", f"toolu_sim_{number}_1", "get_time", CLOCK_ARGUMENTS),
        ]
        async with sdk.messages.stream(
            model="claude-sim", max_tokens=100, messages=HI, tools=[WEATHER, CLOCK]
        ) as stream:
            streamed = await stream.get_final_message()
        assert [(b.name, b.input) for b in streamed.content] == [
            ("get_weather", WEATHER_ARGUMENTS),
            ("get_time", CLOCK_ARGUMENTS),
        ]
        assert streamed.stop_reason == "tool_use"
        # the results go back in the next user turn: the reply reads the first
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": text}
            for block, text in zip(called.content, ("sunny", "noon"))
        ]
        answered = await sdk.messages.create(
            model="claude-sim",
            max_tokens=100,
            messages=[
                *HI,
                {"role": "assistant", "content": called.content},
                {"role": "user", "content": results},
            ],
            tools=[WEATHER, CLOCK],
        )
        assert [(b.type, b.text) for b in answered.content] == [("text", "Result: sunny")]
        assert answered.stop_reason == "end_turn"


async def test_anthropic_tool_use_stream_events(autojump_clock):
    async with upstream(text_before_tools=True) as (_, client):
        raw = events(await message(client, tools=[WEATHER], stream=True))
    kinds = [event["type"] for event in raw]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    starts = [event for event in raw if event["type"] == "content_block_start"]
    number = raw[0]["message"]["id"].rsplit("_", 1)[1]
    assert [(s["index"], s["content_block"]) for s in starts] == [
        (0, {"type": "text", "text": ""}),
        (
            1,
            {"type": "tool_use", "id": f"toolu_sim_{number}_0", "name": "get_weather", "input": {}},
        ),
    ]
    written, called = block_deltas(raw, 0), block_deltas(raw, 1)
    assert "".join(delta["text"] for delta in written) == "Let me use a tool."
    assert {delta["type"] for delta in called} == {"input_json_delta"}
    assert len(called) > 1  # in pieces
    assert json.loads("".join(delta["partial_json"] for delta in called)) == WEATHER_ARGUMENTS
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert raw[-2]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert [e["index"] for e in raw if e["type"] == "content_block_stop"] == [0, 1]


async def test_openai_text_before_tool_calls(autojump_clock):
    async with upstream(text_before_tools=True) as (_, client):
        whole = (await chat(client, tools=FUNCTIONS)).json()
        streamed = events(await chat(client, tools=FUNCTIONS, stream=True))
    message = whole["choices"][0]["message"]
    assert message["content"] == "Let me use a tool."
    assert [call["function"]["name"] for call in message["tool_calls"]] == ["get_weather"]
    deltas = [chunk["choices"][0]["delta"] for chunk in streamed]
    kinds = [
        "content" if "content" in d else "tool_calls" if "tool_calls" in d else "" for d in deltas
    ]
    assert kinds[:5] == ["content"] * 5  # "Let", " me", " use", " a", " tool."
    assert set(kinds[5:-1]) == {"tool_calls"}


@pytest.mark.parametrize(
    ("options", "called"),
    [
        ({}, ["get_weather", "get_time"]),
        ({"tool_choice": {"type": "auto", "disable_parallel_tool_use": True}}, ["get_weather"]),
        ({"tool_choice": {"type": "any"}}, ["get_weather", "get_time"]),
        ({"tool_choice": {"type": "tool", "name": "get_time"}}, ["get_time"]),
        ({"tool_choice": {"type": "none"}}, []),
        ({"messages": [*HI, {"role": "assistant", "content": "Hello"}]}, []),  # not the user's
    ],
)
async def test_anthropic_tool_choice_decides_the_calls(autojump_clock, options, called):
    async with upstream(tool_calls=5) as (_, client):
        answer = (await message(client, tools=[WEATHER, CLOCK], **options)).json()
    uses = [block["name"] for block in answer["content"] if block["type"] == "tool_use"]
    assert uses == called
    assert answer["stop_reason"] == ("tool_use" if called else "end_turn")


async def test_tool_arguments_follow_the_schema(autojump_clock):
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "on": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "unit": {"enum": ["c", "f"]},
            "where": {"$ref": "#/$defs/Place"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "kind": {"type": ["null", "string"]},
            "fixed": {"const": 7},
            "optional": {"type": "string"},
        },
        "required": [
            *("name", "count", "ratio", "on", "tags", "unit", "where", "maybe", "kind", "fixed")
        ],
        "$defs": {
            "Place": {
                "type": "object",
                "properties": {"lat": {"type": "number"}},
                "required": ["lat"],
            }
        },
    }
    tool = {"name": "rich", "input_schema": schema}
    async with upstream() as (_, client):
        openai_answer = (await chat(client, tools=[function(tool)])).json()
        anthropic_answer = (await message(client, tools=[tool])).json()
    expected = {
        "name": "sim",
        "count": 1,
        "ratio": 1.5,
        "on": True,
        "tags": [],
        "unit": "c",
        "where": {"lat": 1.5},
        "maybe": 1,
        "kind": "sim",
        "fixed": 7,
    }
    (call,) = openai_answer["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == expected
    assert anthropic_answer["content"][0]["input"] == expected


# ---- structured output, stop sequences, max_tokens, n -----------------------------------


class Forecast(pydantic.BaseModel):
    city: str
    days: int
    windy: bool


async def test_structured_output_parses_into_the_model(autojump_clock):
    async with upstream() as (simulator, client), openai_sdk(client) as sdk:
        parsed = await sdk.chat.completions.parse(
            model="gpt-sim", messages=HI, response_format=Forecast
        )
        assert parsed.choices[0].message.parsed == Forecast(city="sim", days=1, windy=True)
        assert simulator.seen[-1].body["response_format"]["type"] == "json_schema"
        loose = (await chat(client, response_format={"type": "json_object"})).json()
        assert json.loads(loose["choices"][0]["message"]["content"]) == {"sim": True}
        plain = (await chat(client, response_format={"type": "text"})).json()
        assert plain["choices"][0]["message"]["content"] == "Hello from alpha word word"


async def test_a_stop_sequence_cuts_the_text_before_it(autojump_clock):
    async with upstream() as (_, client):
        whole = (await chat(client, stop="word")).json()
        listed = (await chat(client, stop=["zzz", " from"])).json()
        streamed = events(await chat(client, stop=["word"], stream=True))
        anthropic_whole = (await message(client, stop_sequences=["zzz", "word"])).json()
        anthropic_streamed = events(await message(client, stop_sequences=["word"], stream=True))
    assert whole["choices"][0]["message"]["content"] == "Hello from alpha "
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["usage"]["completion_tokens"] == 4  # "Hello", " from", " alpha", " "
    assert listed["choices"][0]["message"]["content"] == "Hello"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in streamed)
    assert text == "Hello from alpha "
    assert streamed[-1]["choices"][0]["finish_reason"] == "stop"
    assert anthropic_whole["content"] == [{"type": "text", "text": "Hello from claude "}]
    assert (anthropic_whole["stop_reason"], anthropic_whole["stop_sequence"]) == (
        "stop_sequence",
        "word",
    )
    end = next(e for e in anthropic_streamed if e["type"] == "message_delta")
    assert end["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "word"}
    assert end["usage"] == {"output_tokens": 4}


async def test_a_stop_sequence_past_max_tokens_is_never_written(autojump_clock):
    async with upstream() as (_, client):
        answer = (await chat(client, stop="word", max_tokens=3)).json()
    assert answer["choices"][0]["message"]["content"] == "Hello from alpha"
    assert answer["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_truncates_openai(autojump_clock, name):
    async with upstream() as (_, client):
        whole = (await chat(client, **{name: 2})).json()
        streamed = events(await chat(client, stream=True, **{name: 2}))
    assert whole["choices"][0]["message"]["content"] == "Hello from"
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["usage"]["completion_tokens"] == 2
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in streamed)
    assert text == "Hello from"
    assert streamed[-1]["choices"][0]["finish_reason"] == "length"


async def test_max_tokens_truncates_anthropic(autojump_clock):
    async with upstream() as (_, client), anthropic_sdk(client) as sdk:
        whole = await sdk.messages.create(model="claude-sim", max_tokens=2, messages=HI)
        async with sdk.messages.stream(model="claude-sim", max_tokens=2, messages=HI) as stream:
            streamed = await stream.get_final_message()
    for answer in (whole, streamed):
        assert answer.content[0].text == "Hello from"
        assert answer.stop_reason == "max_tokens"
        assert answer.usage.output_tokens == 2


async def test_n_choices_whole_and_streamed(autojump_clock):
    async with upstream() as (_, client), openai_sdk(client) as sdk:
        completion = await sdk.chat.completions.create(model="gpt-sim", messages=HI, n=3)
        assert [c.index for c in completion.choices] == [0, 1, 2]
        assert {c.message.content for c in completion.choices} == {"Hello from alpha word word"}
        assert completion.usage.completion_tokens == 15
        stream = await sdk.chat.completions.create(model="gpt-sim", messages=HI, n=3, stream=True)
        texts = ["", "", ""]
        finished = [None, None, None]
        async for chunk in stream:
            (choice,) = chunk.choices
            texts[choice.index] += choice.delta.content or ""
            finished[choice.index] = choice.finish_reason or finished[choice.index]
        assert texts == ["Hello from alpha word word"] * 3
        assert finished == ["stop"] * 3


# ---- thinking, cached tokens, the shape of a stream ---------------------------------------


async def test_anthropic_thinking_comes_first_whole_and_streamed(autojump_clock):
    thinking = {"type": "enabled", "budget_tokens": 1024}
    async with upstream() as (_, client), anthropic_sdk(client) as sdk:
        whole = await sdk.messages.create(
            model="claude-sim", max_tokens=2000, messages=HI, thinking=thinking
        )
        number = whole.id.rsplit("_", 1)[1]
        assert [block.type for block in whole.content] == ["thinking", "text"]
        assert whole.content[0].thinking == "Let me think."
        assert whole.content[0].signature == f"sig_sim_{number}"
        assert whole.usage.output_tokens == 3 + 5
        async with sdk.messages.stream(
            model="claude-sim", max_tokens=2000, messages=HI, thinking=thinking
        ) as stream:
            streamed = await stream.get_final_message()
        assert [block.type for block in streamed.content] == ["thinking", "text"]
        assert streamed.content[0].thinking == "Let me think."
        assert streamed.content[0].signature.startswith("sig_sim_")
        raw = events(await message(client, max_tokens=2000, thinking=thinking, stream=True))
    deltas = [e["delta"]["type"] for e in raw if e["type"] == "content_block_delta"]
    assert deltas == ["thinking_delta"] * 3 + ["signature_delta"] + ["text_delta"] * 5
    assert raw[1]["content_block"] == {"type": "thinking", "thinking": ""}
    assert raw[2] == {"type": "ping"}


async def test_openai_reasoning_is_counted_and_told_when_the_key_says_so(autojump_clock):
    async with upstream() as (simulator, client):
        counted = (await chat(client, reasoning_effort="low")).json()
        simulator.set(GPT, reasoning_content=True)
        told = (await chat(client, reasoning_effort="low")).json()
        streamed = events(await chat(client, reasoning_effort="low", stream=True))
        plain = (await chat(client)).json()
    assert counted["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert counted["usage"]["completion_tokens"] == 3 + 5
    assert "reasoning_content" not in counted["choices"][0]["message"]
    assert told["choices"][0]["message"]["reasoning_content"] == "Let me think."
    deltas = [chunk["choices"][0]["delta"] for chunk in streamed]
    reasoning = [d["reasoning_content"] for d in deltas if "reasoning_content" in d]
    assert "".join(reasoning) == "Let me think."
    first_content = next(n for n, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" in d for d in deltas[:first_content])
    assert "completion_tokens_details" not in plain["usage"]
    assert "reasoning_content" not in plain["choices"][0]["message"]


async def test_cached_tokens_in_each_dialects_usage(autojump_clock):
    async with upstream(cached_tokens=7) as (_, client):
        openai_usage = (await chat(client)).json()["usage"]
        anthropic_usage = (await message(client)).json()["usage"]
        started = events(await message(client, stream=True))[0]["message"]["usage"]
        streamed = events(await chat(client, stream=True, stream_options={"include_usage": True}))
    assert openai_usage == {
        "prompt_tokens": 12,  # the 5 and the 7 cached
        "completion_tokens": 5,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 7},
    }
    assert anthropic_usage == {
        "input_tokens": 5,  # apart from the cached ones, as Anthropic counts
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
    }
    assert started == {**anthropic_usage, "output_tokens": 1}
    assert streamed[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 7}


async def test_a_plain_anthropic_stream_is_shaped_as_anthropic_sends_it(autojump_clock):
    async with upstream() as (_, client):
        raw = events(await message(client, stream=True))
    assert [event["type"] for event in raw] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert raw[0]["message"]["usage"] == {"input_tokens": 5, "output_tokens": 1}
    assert raw[-2]["usage"] == {"output_tokens": 5}
    text = "".join(e["delta"]["text"] for e in raw if e["type"] == "content_block_delta")
    assert text == "Hello from claude word word"
