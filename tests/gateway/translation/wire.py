"""What the translation tests share.

The translators are called as the proxy calls them (``Translation.of`` on
the client's bytes, ``body`` for the upstream model, ``answer``, ``stream``).
Upstream streams are written as OpenAI and Anthropic write them.  A
translated stream is read back strictly, independently of byok's own SSE
reader: every event is checked against its API's grammar (Anthropic's
blocks one at a time, start, deltas, stop, with indices counting from 0;
OpenAI's role first, a tool call's id and name in its first delta,
``[DONE]`` last) while it is assembled into the final message, as a client
would assemble it.  The official SDKs' own accumulators assemble it too,
as a second opinion that does not share byok's reading of the APIs.
"""

from __future__ import annotations

import copy
import json
from typing import Any, cast

import msgspec
from anthropic.lib.streaming._messages import accumulate_event  # the SDK's own accumulator
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from byok.gateway.translation import Translation, chat_target
from byok.providers import OPENAI, OPENAI_COMPATIBLE

MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
CREATED = 1_700_000_000  # the request's arrival, as the proxy passes it

GPT = chat_target(OPENAI, "gpt-4o-mini", None)  # OpenAI, takes no reasoning_effort
O4 = chat_target(OPENAI, "o4-mini", None)  # OpenAI, a reasoning model
COMPATIBLE = chat_target(OPENAI_COMPATIBLE, "llama-3.1-8b", None)  # vLLM and the like

Json = dict[str, Any]


def messages_to_chat(
    request: Json, target: Any = GPT, path: str = MESSAGES, created: int = CREATED
) -> Translation:
    body = msgspec.json.encode(request)
    return Translation.of(body, path, "messages→chat", target, created)


def chat_to_messages(request: Json, created: int = CREATED) -> Translation:
    return Translation.of(msgspec.json.encode(request), CHAT, "chat→messages", None, created)


def to_chat(request: Json, target: Any = GPT, model: str = "gpt-4o-mini") -> tuple[Json, list[str]]:
    """An Anthropic request as the OpenAI target gets it, and the hints dropped."""
    translation = messages_to_chat(request, target)
    return msgspec.json.decode(translation.body(model)), translation.dropped.names


def to_messages(request: Json, model: str = "claude-sonnet-4-5") -> tuple[Json, list[str]]:
    """An OpenAI request as the Anthropic target gets it, and the hints dropped."""
    translation = chat_to_messages(request)
    return msgspec.json.decode(translation.body(model)), translation.dropped.names


# ---- upstream streams, written as the APIs write them --------------------------------


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def openai_stream(chunks: list[Json], *, done: bool = True, separator: bytes = b"\n\n") -> bytes:
    """An OpenAI stream: data lines alone, ``data: [DONE]`` at the end."""
    events = [f"data: {compact(c)}".encode() for c in chunks]
    if done:
        events.append(b"data: [DONE]")
    return b"".join(e + separator for e in events)


def anthropic_stream(events: list[Json], *, separator: bytes = b"\n\n") -> bytes:
    """An Anthropic stream: each event's name, then its data."""
    return b"".join(f"event: {e['type']}\ndata: {compact(e)}".encode() + separator for e in events)


def chunk(
    delta: Json | None = None,
    finish: str | None = None,
    *,
    usage: Json | None = None,
    id: str = "chatcmpl-AbC123",
    model: str = "gpt-4o-mini-2024-07-18",
) -> Json:
    """One chat.completion.chunk as OpenAI sends it with include_usage: a
    choice (unless `delta` is None and `finish` too: the usage chunk's
    ``choices: []``), ``usage`` null until the last, and the fields byok
    does not read (service_tier, system_fingerprint, obfuscation)."""
    choices = []
    if delta is not None or finish is not None:
        choices.append(
            {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}
        )
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1_712_000_000,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": choices,
        "usage": usage,
        "obfuscation": "x1Yz",
    }


def call_start(index: int, call_id: str, name: str) -> Json:
    """A tool call's first delta: its id, type and name, no arguments yet."""
    return {
        "tool_calls": [
            {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
        ]
    }


def call_piece(index: int, arguments: str) -> Json:
    return {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}


# ---- translated streams, read strictly ------------------------------------------------


def anthropic_events(stream: bytes) -> list[Json]:
    """The events of a stream byok wrote for an Anthropic client: each an
    ``event:`` line and a ``data:`` line naming the same type, then a blank line."""
    assert stream.endswith(b"\n\n"), stream[-80:]
    events = []
    for block in stream[:-2].split(b"\n\n"):
        name, data = block.split(b"\n")
        assert name.startswith(b"event: "), block
        assert data.startswith(b"data: "), block
        event = json.loads(data[6:])
        assert event["type"] == name[7:].decode(), block
        events.append(event)
    return events


def openai_chunks(stream: bytes) -> list[Any]:
    """The chunks of a stream byok wrote for an OpenAI client (data lines
    alone); ``"[DONE]"`` for the end marker, which may only come last."""
    assert stream.endswith(b"\n\n"), stream[-80:]
    found: list[Any] = []
    for block in stream[:-2].split(b"\n\n"):
        assert block.startswith(b"data: "), block
        assert b"\n" not in block, block
        assert "[DONE]" not in found, "an event after [DONE]"
        data = block[6:]
        found.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return found


def kinds(events: list[Json]) -> list[str]:
    """An Anthropic stream's event sequence, each delta named by its type."""
    return [
        f"{e['type']}:{e['delta']['type']}" if e["type"] == "content_block_delta" else e["type"]
        for e in events
    ]


_DELTA_OF = {"text": "text_delta", "thinking": "thinking_delta", "tool_use": "input_json_delta"}


def assemble_message(events: list[Json]) -> Json:
    """The message an Anthropic client makes of a whole stream, checking the
    stream's grammar on the way: message_start first (a ping may follow);
    blocks one at a time, each start, its deltas, then its stop, with indices
    counting from 0; a tool_use block's partial_json pieces joining into a
    JSON object; then message_delta and message_stop."""
    assert events[0]["type"] == "message_start", events[0]
    assert events[-2]["type"] == "message_delta", events[-2]
    assert events[-1] == {"type": "message_stop"}
    message: Json = copy.deepcopy(events[0]["message"])
    assert message["content"] == []
    content: list[Json] = message["content"]
    open_index: int | None = None
    pieces: list[str] = []
    for event in events[1:-2]:
        kind = event["type"]
        if kind == "ping":
            continue
        if kind == "content_block_start":
            assert open_index is None, f"block {event['index']} began inside block {open_index}"
            assert event["index"] == len(content), event
            open_index = event["index"]
            content.append(copy.deepcopy(event["content_block"]))
            pieces = []
        elif kind == "content_block_delta":
            assert open_index is not None, event
            assert event["index"] == open_index, event
            block, delta = content[open_index], event["delta"]
            assert delta["type"] == _DELTA_OF[block["type"]], (block, delta)
            if block["type"] == "text":
                block["text"] += delta["text"]
            elif block["type"] == "thinking":
                block["thinking"] += delta["thinking"]
            else:
                pieces.append(delta["partial_json"])
        elif kind == "content_block_stop":
            assert open_index is not None, event
            assert event["index"] == open_index, event
            block = content[open_index]
            if block["type"] == "tool_use":
                assert block["input"] == {}
                block["input"] = json.loads("".join(pieces)) if pieces else {}
                assert isinstance(block["input"], dict)
            open_index = None
        else:
            raise AssertionError(f"an event out of place: {event}")
    assert open_index is None
    final = events[-2]
    message["stop_reason"] = final["delta"]["stop_reason"]
    message["stop_sequence"] = final["delta"]["stop_sequence"]
    message["usage"].update(final["usage"])
    return message


def sdk_message(events: list[Json]) -> Json:
    """The message the anthropic SDK's stream accumulator makes of the events."""
    snapshot: Any = None
    buffers: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(
            event=cast(Any, event), current_snapshot=snapshot, json_bufs=buffers
        )
    built: Json = snapshot.to_dict()
    built.pop("stop_details", None)  # a field of newer API versions, which byok does not send
    return built


def assemble_completion(chunks: list[Any]) -> Json:
    """The completion an OpenAI client makes of a whole stream, checking the
    stream on the way: every chunk of one id, created and model; the role in
    the first delta; a tool call's id, type and name in its first delta, its
    index counting from 0; finish_reason once, in the last chunk with a
    choice; a usage chunk (``choices: []``) only after that; [DONE] last."""
    assert chunks[-1] == "[DONE]"
    chunks = chunks[:-1]
    head = {k: chunks[0][k] for k in ("id", "created", "model")}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    message: Json = {"role": "assistant", "content": None}
    calls: list[Json] = []
    finish = None
    usage = None
    for n, item in enumerate(chunks):
        assert item["object"] == "chat.completion.chunk"
        assert {k: item[k] for k in head} == head
        if not item["choices"]:
            assert finish is not None, "a usage chunk before the finish"
            assert n == len(chunks) - 1
            usage = item["usage"]
            continue
        assert finish is None, "a chunk after the finish"
        (choice,) = item["choices"]
        assert choice["index"] == 0
        finish = choice["finish_reason"]
        delta = choice["delta"]
        for name in ("content", "reasoning_content"):
            if name in delta:
                message[name] = (message.get(name) or "") + delta[name]
        for call in delta.get("tool_calls", ()):
            if call["index"] == len(calls):
                assert call["type"] == "function", call
                assert call["id"], call
                assert call["function"]["name"], call
                calls.append(
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": ""},
                    }
                )
            else:
                assert call["index"] < len(calls), call
                assert "id" not in call, call
            calls[call["index"]]["function"]["arguments"] += call["function"].get("arguments", "")
    assert finish is not None
    if calls:
        message["tool_calls"] = calls
    if message["content"] == "":
        message["content"] = None  # the first delta's "": no text came
    completion: Json = {**head, "finish_reason": finish, "message": message}
    if usage is not None:
        completion["usage"] = usage
    return completion


def sdk_completion(chunks: list[Any]) -> Json:
    """The completion the openai SDK's stream state makes of the chunks."""
    state: Any = ChatCompletionStreamState()
    for item in chunks:
        if item != "[DONE]":
            list(state.handle_chunk(ChatCompletionChunk.model_validate(item)))
    # the snapshot, not get_final_completion(), which raises on length and content_filter
    built: Json = state.current_completion_snapshot.model_dump(exclude_none=True)
    return built
