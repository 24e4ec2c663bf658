"""Streams translated as they come (``Translation.stream``): upstream bytes
written as OpenAI and Anthropic write them go in, and the client's stream
comes out.  Each test asserts the exact event sequence, then assembles it
as a client would (strictly, and with the official SDK's accumulator) into
the final message.  A stream cut anywhere reads the same."""

from __future__ import annotations

from typing import Any

import pytest

from byok.gateway.translation.chat_via_messages import ChunksFromEvents
from byok.gateway.translation.messages_via_chat import EventsFromChunks

from .wire import (
    CREATED,
    Json,
    anthropic_events,
    anthropic_stream,
    assemble_completion,
    assemble_message,
    call_piece,
    call_start,
    chat_to_messages,
    chunk,
    kinds,
    messages_to_chat,
    openai_chunks,
    openai_stream,
    sdk_completion,
    sdk_message,
)

STREAMING_MESSAGES: Json = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}
ROLE = {"role": "assistant", "content": "", "refusal": None}
USAGE = {
    "prompt_tokens": 9,
    "completion_tokens": 12,
    "total_tokens": 21,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def events_from_chunks() -> EventsFromChunks:
    translator = messages_to_chat(STREAMING_MESSAGES).stream()
    assert isinstance(translator, EventsFromChunks)
    return translator


def translate_chunks(stream: bytes) -> tuple[list[Json], EventsFromChunks]:
    """An OpenAI stream fed whole, as the Anthropic client's events."""
    translator = events_from_chunks()
    out = translator.feed(stream) + translator.finish()
    return anthropic_events(out), translator


def message_start(id: str = "chatcmpl-AbC123", model: str = "gpt-4o-mini-2024-07-18") -> Json:
    return {
        "type": "message_start",
        "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    }


def block_start(index: int, block: Json) -> Json:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: Json) -> Json:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> Json:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, usage: Json, stop_sequence: Any = None) -> Json:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage,
    }


PING = {"type": "ping"}
STOP = {"type": "message_stop"}
ANTHROPIC_USAGE = {
    "input_tokens": 9,
    "output_tokens": 12,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


# ---- OpenAI chunks → Anthropic events ------------------------------------------------


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"], ids=["lf", "crlf"])
def test_plain_text(separator: bytes) -> None:
    stream = openai_stream(
        [
            chunk(ROLE),
            chunk({"content": "Hello"}),
            chunk({"content": ", Zoë 👋"}),
            chunk({}, "stop"),
            chunk(usage=USAGE),
        ],
        separator=separator,
    )
    events, translator = translate_chunks(stream)
    assert events == [
        message_start(),
        PING,
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Hello"}),
        block_delta(0, {"type": "text_delta", "text": ", Zoë 👋"}),
        block_stop(0),
        message_delta("end_turn", ANTHROPIC_USAGE),
        STOP,
    ]
    final = assemble_message(events)
    assert final["content"] == [{"type": "text", "text": "Hello, Zoë 👋"}]
    assert sdk_message(events) == final
    assert (translator.input, translator.output) == (9, 12)


def test_text_then_two_tool_calls_in_turn() -> None:
    stream = openai_stream(
        [
            chunk(ROLE),
            chunk({"content": "Let me check both."}),
            chunk(call_start(0, "call_a", "get_weather")),
            chunk(call_piece(0, '{"city":')),
            chunk(call_piece(0, ' "Paris"}')),
            chunk(call_start(1, "call_b", "get_time")),
            chunk(call_piece(1, '{"tz": "Europe/Paris"}')),
            chunk({}, "tool_calls"),
            chunk(usage=USAGE),
        ]
    )
    events, _ = translate_chunks(stream)
    tool_a = {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}}
    tool_b = {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}
    assert events == [
        message_start(),
        PING,
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Let me check both."}),
        block_stop(0),
        block_start(1, tool_a),
        block_delta(1, {"type": "input_json_delta", "partial_json": '{"city":'}),
        block_delta(1, {"type": "input_json_delta", "partial_json": ' "Paris"}'}),
        # the second call began while the first was open: held, then sent whole
        block_stop(1),
        block_start(2, tool_b),
        block_delta(2, {"type": "input_json_delta", "partial_json": '{"tz": "Europe/Paris"}'}),
        block_stop(2),
        message_delta("tool_use", ANTHROPIC_USAGE),
        STOP,
    ]
    final = assemble_message(events)
    assert final["content"] == [
        {"type": "text", "text": "Let me check both."},
        {**tool_a, "input": {"city": "Paris"}},
        {**tool_b, "input": {"tz": "Europe/Paris"}},
    ]
    assert final["stop_reason"] == "tool_use"
    assert sdk_message(events) == final


INTERLEAVED = [
    chunk(ROLE),
    chunk(call_start(0, "call_a", "get_weather")),
    chunk(call_start(1, "call_b", "get_weather")),
    chunk(call_piece(0, '{"ci')),
    chunk(call_piece(1, '{"ci')),
    chunk(call_piece(0, 'ty": "Pa')),
    chunk(call_piece(1, 'ty": "Ro')),
    # some servers put several calls' pieces in one delta
    chunk(
        {
            "tool_calls": [
                {"index": 0, "function": {"arguments": 'ris"}'}},
                {"index": 1, "function": {"arguments": 'me"}'}},
            ]
        }
    ),
    chunk({}, "tool_calls"),
    chunk(usage=USAGE),
]


def test_interleaved_tool_calls_become_whole_blocks() -> None:
    events, _ = translate_chunks(openai_stream(INTERLEAVED))
    assert kinds(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta:input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # assemble_message checks each block's start, deltas and stop are contiguous,
    # its index the next, and its pieces a JSON object
    final = assemble_message(events)
    assert final["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Rome"}},
    ]
    assert sdk_message(events) == final


def test_reasoning_content_becomes_a_thinking_block() -> None:
    stream = openai_stream(
        [
            chunk(ROLE),
            chunk({"reasoning_content": "Two and two"}),
            chunk({"reasoning_content": " make four."}),
            chunk({"content": "4"}),
            chunk({}, "stop"),
            chunk(usage=USAGE),
        ]
    )
    events, _ = translate_chunks(stream)
    assert events[2:8] == [
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Two and two"}),
        block_delta(0, {"type": "thinking_delta", "thinking": " make four."}),
        block_stop(0),
        block_start(1, {"type": "text", "text": ""}),
        block_delta(1, {"type": "text_delta", "text": "4"}),
    ]
    final = assemble_message(events)
    assert final["content"] == [
        {"type": "thinking", "thinking": "Two and two make four.", "signature": ""},
        {"type": "text", "text": "4"},
    ]
    assert sdk_message(events) == final


def test_refusal_streams_as_text_with_stop_reason_refusal() -> None:
    stream = openai_stream(
        [
            chunk(ROLE),
            chunk({"refusal": "I can't"}),
            chunk({"refusal": " help."}),
            chunk({}, "stop"),
        ]
    )
    events, _ = translate_chunks(stream)
    final = assemble_message(events)
    assert final["content"] == [{"type": "text", "text": "I can't help."}]
    assert final["stop_reason"] == "refusal"


def test_vllm_stop_string_becomes_stop_sequence() -> None:
    finish = chunk({}, "stop")
    finish["choices"][0]["stop_reason"] = "\nUser:"
    events, _ = translate_chunks(openai_stream([chunk(ROLE), chunk({"content": "Hi"}), finish]))
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "\nUser:"}


def test_usage_chunk_after_finish_reason_fills_message_delta() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920},
    }
    stream = openai_stream(
        [chunk(ROLE), chunk({"content": "Hi"}), chunk({}, "length"), chunk(usage=usage)]
    )
    events, translator = translate_chunks(stream)
    assert events[-2] == message_delta(
        "max_tokens",
        {
            "input_tokens": 86,
            "output_tokens": 300,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1920,
        },
    )
    # the ledger counts as gateway.usage does: the prompt with its cache reads
    assert (translator.input, translator.output) == (2006, 300)


def test_stream_without_done_is_ended_by_finish() -> None:
    # the last event lacks even its blank line: the connection closed after it
    stream = openai_stream([chunk(ROLE), chunk({"content": "Hi"}), chunk({}, "stop")], done=False)
    translator = events_from_chunks()
    fed = translator.feed(stream[:-2])
    assert b"message_stop" not in fed
    rest = translator.finish()
    events = anthropic_events(fed + rest)
    assert kinds(events)[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert assemble_message(events)["content"] == [{"type": "text", "text": "Hi"}]
    assert translator.finish() == b""  # once only


@pytest.mark.parametrize("stream", [b"", b"data: [DONE]\n\n", b": keep-alive\n\n"])
def test_stream_with_no_chunks(stream: bytes) -> None:
    events, translator = translate_chunks(stream)
    assert events == [
        message_start(id="", model=""),
        PING,
        message_delta("end_turn", {"input_tokens": 0, "output_tokens": 0}),
        STOP,
    ]
    assert assemble_message(events)["content"] == []
    assert (translator.input, translator.output) == (0, 0)


def test_error_chunk_mid_stream_ends_it_with_an_error_event() -> None:
    stream = openai_stream(
        [
            chunk(ROLE),
            chunk({"content": "Hel"}),
            # vLLM's error in a stream
            {
                "error": {
                    "object": "error",
                    "message": "upstream overloaded",
                    "type": "ServiceUnavailableError",
                    "code": 503,
                }
            },
            chunk({"content": "lo"}),
            chunk({}, "stop"),
        ]
    )
    translator = events_from_chunks()
    events = anthropic_events(translator.feed(stream))
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream overloaded"},
    }
    assert kinds(events)[:-1] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta:text_delta",
    ]
    assert translator.feed(openai_stream([chunk({"content": "more"})])) == b""
    assert translator.finish() == b""


RICH_CHUNKS = openai_stream(
    [
        chunk(ROLE),
        chunk({"reasoning_content": "Paris → Rome"}),
        chunk({"content": "Checking 两个 cities 🌍"}),
        *INTERLEAVED[1:-1],
        chunk(usage=USAGE),
    ],
    separator=b"\r\n\r\n",
)


def test_chunks_cut_at_every_byte_read_the_same() -> None:
    translator = events_from_chunks()
    whole = translator.feed(RICH_CHUNKS) + translator.finish()
    assert assemble_message(anthropic_events(whole))["stop_reason"] == "tool_use"
    for cut in range(len(RICH_CHUNKS) + 1):
        translator = events_from_chunks()
        out = translator.feed(RICH_CHUNKS[:cut]) + translator.feed(RICH_CHUNKS[cut:])
        assert out + translator.finish() == whole, cut


# ---- Anthropic events → OpenAI chunks ------------------------------------------------

STREAMING_CHAT: Json = {
    "model": "gpt-4o",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
}
MESSAGE_ID = "msg_01XFDUDYJgAACzvnptvVoYEL"
CLAUDE = "claude-sonnet-4-5-20250929"


def chunks_from_events(request: Json = STREAMING_CHAT) -> ChunksFromEvents:
    translator = chat_to_messages(request).stream()
    assert isinstance(translator, ChunksFromEvents)
    return translator


def translate_events(
    stream: bytes, request: Json = STREAMING_CHAT
) -> tuple[list[Any], ChunksFromEvents]:
    translator = chunks_from_events(request)
    out = translator.feed(stream) + translator.finish()
    return openai_chunks(out), translator


def anthropic_start(usage: Json | None = None) -> Json:
    return {
        "type": "message_start",
        "message": {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": CLAUDE,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage
            or {
                "input_tokens": 25,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 1,
                "service_tier": "standard",
            },
        },
    }


def text_block(index: int, *pieces: str) -> list[Json]:
    return [
        block_start(index, {"type": "text", "text": ""}),
        *(block_delta(index, {"type": "text_delta", "text": p}) for p in pieces),
        block_stop(index),
    ]


def tool_block(index: int, id: str, name: str, *pieces: str) -> list[Json]:
    return [
        block_start(index, {"type": "tool_use", "id": id, "name": name, "input": {}}),
        *(block_delta(index, {"type": "input_json_delta", "partial_json": p}) for p in pieces),
        block_stop(index),
    ]


def openai_chunk(delta: Json, finish: Any = None) -> Json:
    return {
        "id": MESSAGE_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": CLAUDE,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def text_events(stop_reason: str = "end_turn", output: int = 15) -> list[Json]:
    return [
        anthropic_start(),
        block_start(0, {"type": "text", "text": ""}),
        PING,  # where Anthropic sends it
        block_delta(0, {"type": "text_delta", "text": "Hello"}),
        block_delta(0, {"type": "text_delta", "text": " world"}),
        block_stop(0),
        message_delta(stop_reason, {"output_tokens": output}),
        STOP,
    ]


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n"], ids=["lf", "crlf"])
def test_text_events_with_usage(separator: bytes) -> None:
    chunks, translator = translate_events(anthropic_stream(text_events(), separator=separator))
    assert chunks == [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Hello"}),
        openai_chunk({"content": " world"}),
        openai_chunk({}, "stop"),
        {
            "id": MESSAGE_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": CLAUDE,
            "choices": [],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": 15,
                "total_tokens": 40,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
        },
        "[DONE]",
    ]
    final = assemble_completion(chunks)
    assert final["message"] == {"role": "assistant", "content": "Hello world"}
    sdk = sdk_completion(chunks)
    assert sdk["choices"][0]["message"]["content"] == "Hello world"
    assert sdk["usage"]["total_tokens"] == 40
    assert (translator.input, translator.output) == (25, 15)


@pytest.mark.parametrize(
    "options", [None, {"include_usage": False}], ids=["no-stream-options", "include-usage-false"]
)
def test_usage_chunk_only_when_asked(options: Any) -> None:
    request = {**STREAMING_CHAT, "stream_options": options}
    chunks, translator = translate_events(anthropic_stream(text_events()), request)
    assert all(c == "[DONE]" or c["choices"] for c in chunks)
    assert "usage" not in assemble_completion(chunks)
    assert (translator.input, translator.output) == (25, 15)  # the ledger still counts


def test_tool_use_events_as_tool_call_deltas() -> None:
    events = [
        anthropic_start(),
        *text_block(0, "Let me check."),
        # Anthropic's first input_json_delta is often empty
        *tool_block(1, "toolu_01", "get_weather", "", '{"city": "Pa', 'ris"}'),
        *tool_block(2, "toolu_02", "get_time", '{"tz": "Europe/Paris"}'),
        message_delta("tool_use", {"output_tokens": 40}),
        STOP,
    ]
    chunks, _ = translate_events(anthropic_stream(events))
    first_a = {
        "index": 0,
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    first_b = {
        "index": 1,
        "id": "toolu_02",
        "type": "function",
        "function": {"name": "get_time", "arguments": ""},
    }
    assert chunks[1:9] == [
        openai_chunk({"content": "Let me check."}),
        openai_chunk({"tool_calls": [first_a]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]}),
        openai_chunk({"tool_calls": [first_b]}),
        openai_chunk(
            {"tool_calls": [{"index": 1, "function": {"arguments": '{"tz": "Europe/Paris"}'}}]}
        ),
        openai_chunk({}, "tool_calls"),
    ]
    calls: list[Json] = [
        {
            "id": "toolu_01",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "toolu_02",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"tz": "Europe/Paris"}'},
        },
    ]
    final = assemble_completion(chunks)
    assert final["message"] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": calls,
    }
    sdk = sdk_completion(chunks)["choices"][0]
    assert sdk["finish_reason"] == "tool_calls"
    assert [
        (c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
        for c in sdk["message"]["tool_calls"]
    ] == [(c["id"], c["type"], c["function"]["name"], c["function"]["arguments"]) for c in calls]


def test_thinking_events_as_reasoning_content() -> None:
    events = [
        anthropic_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Two and two"}),
        block_delta(0, {"type": "thinking_delta", "thinking": " make four."}),
        block_delta(0, {"type": "signature_delta", "signature": "EqQBCkgIARABGAIiQL"}),
        block_stop(0),
        *text_block(1, "4"),
        message_delta("end_turn", {"output_tokens": 20}),
        STOP,
    ]
    chunks, _ = translate_events(anthropic_stream(events))
    assert chunks[1:4] == [
        openai_chunk({"reasoning_content": "Two and two"}),
        openai_chunk({"reasoning_content": " make four."}),
        openai_chunk({"content": "4"}),
    ]
    final = assemble_completion(chunks)
    assert final["message"] == {
        "role": "assistant",
        "content": "4",
        "reasoning_content": "Two and two make four.",
    }
    assert sdk_completion(chunks)["choices"][0]["message"]["reasoning_content"] == (
        "Two and two make four."
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        # no tool call was streamed: tool_calls would promise calls that never came
        ("tool_use", "stop"),
    ],
)
def test_stop_reason_as_finish_reason(stop_reason: str, finish: str) -> None:
    chunks, _ = translate_events(anthropic_stream(text_events(stop_reason)))
    assert assemble_completion(chunks)["finish_reason"] == finish
    assert sdk_completion(chunks)["choices"][0]["finish_reason"] == finish


def test_cache_tokens_in_the_usage_chunk_and_the_ledger() -> None:
    start = anthropic_start(
        {
            "input_tokens": 50,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 1000,
            "output_tokens": 1,
        }
    )
    events = [start, *text_events()[1:]]
    chunks, translator = translate_events(anthropic_stream(events))
    assert assemble_completion(chunks)["usage"] == {
        "prompt_tokens": 1250,
        "completion_tokens": 15,
        "total_tokens": 1265,
        "prompt_tokens_details": {"cached_tokens": 1000},
    }
    assert (translator.input, translator.output) == (1250, 15)


def test_error_event_mid_stream() -> None:
    events = [
        anthropic_start(),
        block_start(0, {"type": "text", "text": ""}),
        block_delta(0, {"type": "text_delta", "text": "Hel"}),
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        block_delta(0, {"type": "text_delta", "text": "lo"}),
        STOP,
    ]
    translator = chunks_from_events()
    out = translator.feed(anthropic_stream(events)) + translator.finish()
    chunks = openai_chunks(out)
    assert chunks == [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Hel"}),
        {"error": {"message": "Overloaded", "type": "overloaded_error"}},
    ]


def test_answer_tool_input_streams_as_content() -> None:
    request = {
        **STREAMING_CHAT,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": {"type": "object"}},
        },
    }
    events = [
        anthropic_start(),
        *tool_block(0, "toolu_01", "weather", "", '{"city": ', '"Paris", "celsius": 18}'),
        message_delta("tool_use", {"output_tokens": 20}),
        STOP,
    ]
    chunks, _ = translate_events(anthropic_stream(events), request)
    final = assemble_completion(chunks)
    assert final["message"] == {
        "role": "assistant",
        "content": '{"city": "Paris", "celsius": 18}',
    }
    assert final["finish_reason"] == "stop"
    sdk = sdk_completion(chunks)["choices"][0]
    assert (sdk["message"]["content"], sdk["finish_reason"]) == (
        '{"city": "Paris", "celsius": 18}',
        "stop",
    )


def test_events_without_message_stop_are_ended_by_finish() -> None:
    stream = anthropic_stream(text_events()[:-1])  # the connection closed before message_stop
    translator = chunks_from_events()
    fed = translator.feed(stream)
    assert b"[DONE]" not in fed
    chunks = openai_chunks(fed + translator.finish())
    assert assemble_completion(chunks)["message"]["content"] == "Hello world"
    assert translator.finish() == b""


def test_events_with_nothing_in_them() -> None:
    translator = chunks_from_events()
    assert translator.feed(b"") + translator.finish() == b""


RICH_EVENTS = anthropic_stream(
    [
        anthropic_start(),
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        PING,
        block_delta(0, {"type": "thinking_delta", "thinking": "Paris → Rome"}),
        block_stop(0),
        *text_block(1, "Checking 两个", " cities 🌍"),
        *tool_block(2, "toolu_01", "get_weather", "", '{"city": "Pa', 'ris"}'),
        *tool_block(3, "toolu_02", "get_weather", '{"city": "Rome"}'),
        message_delta("tool_use", {"output_tokens": 40}),
        STOP,
    ],
    separator=b"\r\n\r\n",
)


def test_events_cut_at_every_byte_read_the_same() -> None:
    translator = chunks_from_events()
    whole = translator.feed(RICH_EVENTS) + translator.finish()
    assert assemble_completion(openai_chunks(whole))["finish_reason"] == "tool_calls"
    for cut in range(len(RICH_EVENTS) + 1):
        translator = chunks_from_events()
        out = translator.feed(RICH_EVENTS[:cut]) + translator.feed(RICH_EVENTS[cut:])
        assert out + translator.finish() == whole, cut


# ---- a stream that cannot be read ------------------------------------------------------

HUGE = 8 * 1024 * 1024 + 1  # past the longest event a reader holds (sse._HELD_LIMIT)


def test_an_event_longer_than_any_answer_ends_the_anthropic_stream_with_an_error() -> None:
    translator = events_from_chunks()
    begun = translator.feed(openai_stream([chunk(ROLE), chunk({"content": "Hel"})], done=False))
    out = translator.feed(b'data: {"choices":[{"delta":{"content":"' + b"x" * HUGE)
    events = anthropic_events(begun + out)
    assert kinds(events) == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta:text_delta",
        "error",
    ]
    assert "a stream event longer than 8 MiB" in events[-1]["error"]["message"]
    assert translator.feed(b'x"}}]}\n\n' + openai_stream([chunk({"content": "lo"})])) == b""
    assert translator.finish() == b""


def test_an_event_longer_than_any_answer_ends_the_openai_stream_with_an_error() -> None:
    translator = chunks_from_events()
    begun = translator.feed(anthropic_stream([anthropic_start()]))
    out = translator.feed(b'event: content_block_delta\ndata: {"text":"' + b"x" * HUGE)
    chunks = openai_chunks(begun + out)
    assert chunks[0] == openai_chunk({"role": "assistant", "content": ""})
    assert chunks[-1]["error"]["type"] == "api_error"
    assert "a stream event longer than 8 MiB" in chunks[-1]["error"]["message"]
    assert translator.feed(anthropic_stream([STOP])) == b""
    assert translator.finish() == b""
