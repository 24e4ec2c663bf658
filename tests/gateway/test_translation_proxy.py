"""Translation end to end: the official SDKs as clients, byok in between, and
a simulated upstream that speaks only the other API and refuses, as the real
one would, a request it does not take (cli/simulator's strict shapes)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pydantic
import pytest

from ..stack import Stack

OPENAI_KEYS = {"sk-sim-alpha": "alpha", "sk-sim-bravo": "bravo"}
ANTHROPIC_KEYS = {"sk-ant-sim-one": "one", "sk-ant-sim-two": "two"}
MESSAGES = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
CLOCK = {
    "name": "get_time",
    "description": "The time in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def as_openai_tool(tool: dict) -> dict:
    function = {k: tool[k] for k in ("name", "description")}
    return {"type": "function", "function": {**function, "parameters": tool["input_schema"]}}


def tables(upstream: str) -> dict:
    return {
        "server": {"cooldown": 30, "metrics_public": True},
        "providers": {
            "oai": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": label} for k, label in OPENAI_KEYS.items()],
            },
            "ant": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [{"key": k, "label": label} for k, label in ANTHROPIC_KEYS.items()],
            },
        },
        "models": {
            "gpt": {"targets": ["oai/gpt-up"], "strategy": "round_robin"},
            "claude": {"targets": ["ant/claude-up"], "strategy": "round_robin"},
            "gpt-then-claude": {
                "targets": ["oai/gpt-up"],
                "strategy": "round_robin",
                "fallbacks": ["claude"],
            },
            "claude-then-gpt": {
                "targets": ["ant/claude-up"],
                "strategy": "round_robin",
                "fallbacks": ["gpt"],
            },
        },
    }


@pytest.fixture
def stack():
    with Stack(tables) as running:
        for secret, name in {**OPENAI_KEYS, **ANTHROPIC_KEYS}.items():
            running.simulator.add_key(secret, name)
        yield running


@pytest.fixture
def openai_only(stack):
    stack.simulator.speaks = ("openai",)
    return stack


@pytest.fixture
def anthropic_only(stack):
    stack.simulator.speaks = ("anthropic",)
    return stack


@pytest.fixture
def claude_sdk(stack):
    with anthropic.Anthropic(base_url=stack.url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
def openai_sdk(stack):
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


# ---- an Anthropic client on OpenAI keys ------------------------------------------------


def test_anthropic_sdk_message_on_openai_keys(openai_only, claude_sdk):
    reply = claude_sdk.messages.with_raw_response.create(
        model="gpt", max_tokens=50, system="Be brief.", messages=MESSAGES
    )
    message = reply.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text.startswith("Hello from alpha")
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 5)
    assert reply.headers["x-byok-key"] == "alpha"
    seen = openai_only.simulator.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body == {
        "model": "gpt-up",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "max_completion_tokens": 50,
    }
    assert "anthropic-version" not in seen.headers


def test_anthropic_sdk_stream_on_openai_keys(openai_only, claude_sdk):
    with claude_sdk.messages.stream(model="gpt", max_tokens=50, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello from alpha")
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 5)
    assert openai_only.simulator.seen[-1].body["stream_options"] == {"include_usage": True}


def test_anthropic_sdk_tool_use_streamed_then_answered(openai_only, claude_sdk):
    ask = [{"role": "user", "content": "Weather in Paris for 3 days?"}]
    with claude_sdk.messages.stream(
        model="gpt", max_tokens=200, messages=ask, tools=[WEATHER]
    ) as stream:
        called = stream.get_final_message()
    assert called.stop_reason == "tool_use"
    (use,) = [block for block in called.content if block.type == "tool_use"]
    assert use.name == "get_weather"
    assert use.input == {"city": "sim", "days": 1}  # the simulator fills in the schema
    sent = openai_only.simulator.seen[-1].body
    assert sent["tools"] == [as_openai_tool(WEATHER)]
    # the call's result goes back: an OpenAI tool message answering the call's id
    turns = [
        *ask,
        {"role": "assistant", "content": called.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
        },
    ]
    answer = claude_sdk.messages.create(
        model="gpt", max_tokens=200, messages=turns, tools=[WEATHER]
    )
    assert answer.content[0].text == "Result: sunny"
    sent = openai_only.simulator.seen[-1].body
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}


def test_interleaved_parallel_tool_calls_stream_as_well_formed_blocks(openai_only, claude_sdk):
    for secret in OPENAI_KEYS:
        openai_only.simulator.set(secret, tool_calls=2, interleave_tool_calls=True)
    ask = [{"role": "user", "content": "Weather and time in Paris?"}]
    events = []
    with claude_sdk.messages.stream(
        model="gpt", max_tokens=200, messages=ask, tools=[WEATHER, CLOCK]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", {"city": "sim", "days": 1}),
        ("get_time", {"city": "sim"}),
    ]
    # each block begins, gets its deltas and stops before the next begins
    order = [(e.type, e.index) for e in events if e.type.startswith("content_block")]
    starts = [i for kind, i in order if kind == "content_block_start"]
    assert starts == sorted(starts) == list(range(len(starts)))
    for index in starts:
        mine = [n for n, (_, i) in enumerate(order) if i == index]
        assert mine == list(range(mine[0], mine[-1] + 1))


def test_anthropic_count_tokens_on_an_openai_only_model_is_an_estimate(openai_only, claude_sdk):
    reply = claude_sdk.messages.with_raw_response.count_tokens(
        model="gpt", messages=[{"role": "user", "content": "x" * 400}]
    )
    assert reply.parse().input_tokens == 100
    assert reply.headers["x-byok-token-count"] == "estimate"
    assert openai_only.simulator.seen == []  # no OpenAI endpoint counts a Messages request


def test_an_upstream_error_comes_back_in_the_clients_dialect_redacted(openai_only, claude_sdk):
    openai_only.simulator.set("sk-sim-alpha", mode="echo_400")
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude_sdk.messages.create(model="gpt", max_tokens=50, messages=MESSAGES)
    body = raised.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("bad request sent with")
    assert "sk-sim-alpha" not in raised.value.response.text


def test_what_cannot_be_translated_is_refused_naming_the_field(openai_only, claude_sdk):
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude_sdk.messages.create(
            model="gpt", max_tokens=50, messages=MESSAGES, tools=[server_tool]
        )
    message = raised.value.body["error"]["message"]
    assert "tools[0]" in message
    assert "web_search_20250305" in message
    assert openai_only.simulator.seen == []


def test_dropped_hints_are_counted(openai_only, claude_sdk):
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    claude_sdk.messages.create(model="gpt", max_tokens=50, system=system, messages=MESSAGES)
    metrics = httpx.get(f"{openai_only.url}/metrics").text
    assert (
        'byok_translation_dropped_hints_total{crossing="messages→chat",field="cache_control"} 1.0'
        in metrics
    )
    assert 'byok_translated_attempts_total{crossing="messages→chat"} 1.0' in metrics


# ---- an OpenAI client on Anthropic keys ------------------------------------------------


def test_openai_sdk_chat_on_anthropic_keys(anthropic_only, openai_sdk):
    reply = openai_sdk.chat.completions.with_raw_response.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        max_completion_tokens=60,
    )
    completion = reply.parse()
    assert completion.choices[0].message.content.startswith("Hello from one")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 5
    seen = anthropic_only.simulator.seen[-1]
    assert seen.path == "/v1/messages"
    assert seen.body == {
        "model": "claude-up",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 60,
        "system": "Be brief.",
    }
    assert seen.headers["x-api-key"] == "sk-ant-sim-one"
    assert seen.headers["anthropic-version"] == "2023-06-01"


def test_openai_sdk_stream_on_anthropic_keys(anthropic_only, openai_sdk):
    chunks = list(
        openai_sdk.chat.completions.create(
            model="claude", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from one")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5


def test_openai_sdk_tools_streamed_on_anthropic_keys(anthropic_only, openai_sdk):
    for secret in ANTHROPIC_KEYS:
        anthropic_only.simulator.set(secret, tool_calls=2)
    tools = [as_openai_tool(WEATHER), as_openai_tool(CLOCK)]
    ask = [{"role": "user", "content": "Weather and time in Paris?"}]
    with openai_sdk.chat.completions.stream(model="claude", messages=ask, tools=tools) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls]
    assert calls == [("get_weather", {"city": "sim", "days": 1}), ("get_time", {"city": "sim"})]
    sent = anthropic_only.simulator.seen[-1].body
    assert [tool["name"] for tool in sent["tools"]] == ["get_weather", "get_time"]


class Forecast(pydantic.BaseModel):
    city: str
    days: int


def test_openai_sdk_structured_output_on_anthropic_keys(anthropic_only, openai_sdk):
    parsed = openai_sdk.chat.completions.parse(
        model="claude", messages=MESSAGES, response_format=Forecast
    )
    assert parsed.choices[0].message.parsed == Forecast(city="sim", days=1)
    assert parsed.choices[0].finish_reason == "stop"
    sent = anthropic_only.simulator.seen[-1].body
    assert sent["tool_choice"] == {"type": "tool", "name": "Forecast"}


def test_n_above_one_is_refused_for_an_anthropic_target(anthropic_only, openai_sdk):
    with pytest.raises(openai.BadRequestError) as raised:
        openai_sdk.chat.completions.create(model="claude", messages=MESSAGES, n=2)
    assert raised.value.body["message"].startswith("n: an Anthropic target gives one choice")
    assert anthropic_only.simulator.seen == []


# ---- fallbacks across the APIs ---------------------------------------------------------


def test_openai_to_anthropic_fallback_when_every_openai_key_is_rate_limited(stack, openai_sdk):
    for secret in OPENAI_KEYS:
        stack.simulator.set(secret, mode="429", retry_after=30)
    reply = openai_sdk.chat.completions.with_raw_response.create(
        model="gpt-then-claude", messages=MESSAGES
    )
    assert reply.parse().choices[0].message.content.startswith("Hello from one")
    assert reply.headers["x-byok-key"] == "one"
    assert reply.headers["x-byok-attempts"] == "3"
    assert [(s.key, s.path) for s in stack.simulator.seen] == [
        ("sk-sim-alpha", "/v1/chat/completions"),
        ("sk-sim-bravo", "/v1/chat/completions"),
        ("sk-ant-sim-one", "/v1/messages"),
    ]
    # the keys' health works unchanged: both OpenAI keys cool for the 30 s they were told
    selector = stack.selector("oai", "gpt-up")
    assert {selector.state(label) for label in ("alpha", "bravo")} == {"cooldown"}
    # and the next request goes straight to the fallback
    again = openai_sdk.chat.completions.with_raw_response.create(
        model="gpt-then-claude", messages=MESSAGES
    )
    assert (again.headers["x-byok-key"], again.headers["x-byok-attempts"]) == ("two", "1")


def test_anthropic_to_openai_fallback_streams(stack, claude_sdk):
    for secret in ANTHROPIC_KEYS:
        stack.simulator.set(secret, mode="529")
    with claude_sdk.messages.stream(
        model="claude-then-gpt", max_tokens=50, messages=MESSAGES
    ) as stream:
        text = "".join(stream.text_stream)
    assert text.startswith("Hello from alpha")
    assert stack.simulator.seen[-1].path == "/v1/chat/completions"
