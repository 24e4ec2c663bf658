"""The compiled text delta (translation/_deltas.pyx) held to the Python path.

The stream translators hand a chunk of whole text-delta events to C, and
take their Python path when it gives None.  Whatever C translates must come
out as the Python path writes it (the same events, the text the same JSON
string, though C copies its escapes as they came), and the translator must
be left in the same state.  Two translators, one with C and one without, are
fed the same bytes: chunks written every way the APIs' servers write them,
then the same bytes damaged.  And C must take the chunks real servers send,
or it saves nothing: that is asserted too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byok.gateway.translation import text_deltas
from byok.gateway.translation.chat_via_messages import ChunksFromEvents
from byok.gateway.translation.messages_via_chat import EventsFromChunks

from .wire import (
    Json,
    anthropic_events,
    anthropic_stream,
    chat_to_messages,
    chunk,
    messages_to_chat,
    openai_chunks,
    openai_stream,
)

PROPERTY = settings(max_examples=300, deadline=None)
STREAMING_MESSAGES: Json = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "stream": True,
    "messages": [{"role": "user", "content": "Hi"}],
}
STREAMING_CHAT: Json = {
    "model": "gpt-4o-mini",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Hi"}],
}


def test_built_here() -> None:
    """This checkout's install compiled it (else every test below would
    compare the Python path with itself)."""
    assert text_deltas.COMPILED is True


# ---- OpenAI's chunks → Anthropic's events --------------------------------------------


def events_from_chunks(compiled: bool) -> EventsFromChunks:
    """A translator with a text block open: what comes next is more text."""
    translation = messages_to_chat(STREAMING_MESSAGES)
    translator = EventsFromChunks(compiled=compiled)
    assert type(translation.stream()) is EventsFromChunks
    translator.feed(openai_stream([chunk({"role": "assistant", "content": "Hi"})], done=False))
    return translator


def same_events(chunks: bytes) -> bytes | None:
    """Feed `chunks` to both translators; assert they said the same; what C said (or None)."""
    compiled, python = events_from_chunks(True), events_from_chunks(False)
    by_c = text_deltas.of_chunks(chunks, compiled._text_head, b"}}\n\n")
    said, expected = compiled.feed(chunks), python.feed(chunks)
    assert events_of(said) == events_of(expected)
    assert events_of(compiled.finish()) == events_of(python.finish())
    return by_c


def events_of(stream: bytes) -> list[Json]:
    return anthropic_events(stream) if stream else []


OPENAI = (  # how servers write one chunk of text
    b'{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion.chunk",'
    b'"created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default",'
    b'"system_fingerprint":"fp_eb9dce56a8","choices":[{"index":0,"delta":{"content":TEXT},'
    b'"logprobs":null,"finish_reason":null}],"obfuscation":"Bd4Xs"}'
)
VLLM = (
    b'{"id":"chatcmpl-0a1b","object":"chat.completion.chunk","created":1741570283,'
    b'"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":TEXT,'
    b'"reasoning_content":null},"logprobs":null,"finish_reason":null,"stop_reason":null}]}'
)
SPACED = (  # Python's json.dumps with its default separators (FastAPI servers, LiteLLM)
    b'{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1741570283, '
    b'"model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": TEXT, '
    b'"tool_calls": null, "refusal": null}, "finish_reason": null}], "usage": null}'
)
OLLAMA = (
    b'{"id":"chatcmpl-527","object":"chat.completion.chunk","created":1741570283,'
    b'"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,'
    b'"delta":{"role":"assistant","content":TEXT},"finish_reason":null}]}'
)
TEXTS = ["Hello", " world", 'a "quote" \\ and \n', "é ü 日本 🎉", "\u2028", "\x7f"]


@pytest.mark.parametrize(
    "writing", [OPENAI, VLLM, SPACED, OLLAMA], ids=["openai", "vllm", "spaced", "ollama"]
)
@pytest.mark.parametrize("ascii_only", [False, True], ids=["utf8", "escaped"])
def test_chunks_of_text_as_servers_write_them(writing: bytes, ascii_only: bool) -> None:
    events = [
        b"data: "
        + writing.replace(b"TEXT", json.dumps(text, ensure_ascii=ascii_only).encode())
        + b"\n\n"
        for text in TEXTS
    ]
    for event in events:
        assert same_events(event) is not None
    assert same_events(b"".join(events)) is not None


@pytest.mark.parametrize(
    "event",
    [
        b"data: [DONE]\n\n",
        b": keep-alive\n\n",
        b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}\n\n',
        b'data: {"choices":[{"index":1,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":""}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a","refusal":"no"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a","tool_calls":[]}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}],"error":{"message":"x"}}\n\n',
        b'data: {"id":1,"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0.0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"\\ud83c"}}]}\n\n',  # a lone half
        b'data: {"choices":[{"index":0,"delta":{"con\\u0074ent":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]} \n\n',
        b'data: {"choices":\n[{"index":0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\r\n\r\n',
        b'id: 7\ndata: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\ndata: [DONE]\n\n',
    ],
)
def test_chunks_left_to_python(event: bytes) -> None:
    """What C must not translate (another event, another field the
    translator reads, a writing it leaves to the reference) it leaves."""
    assert same_events(event) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e300, -0.0, 5e-324])
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
VALID_NUMBERS = st.sampled_from([b"1e400", b"-0", b"0.5e-3", b"123456789012345678901234567890"])
NUMBERS = VALID_NUMBERS | st.sampled_from([b"01", b"1.", b"-", b"+1", b".5", b"1e"])
spaces = st.sampled_from(["", " ", "\t", "\r", "  "])


KNOWN = {"content", "role", "refusal", "tool_calls", "reasoning_content", "index", "delta"}
KNOWN |= {"finish_reason", "stop_reason", "choices", "id", "model", "usage", "error"}
# each field the translator reads: what leaves a chunk "more text" (C's), and what else
MORE_TEXT = {
    "role": ['"assistant"', "null"],
    "refusal": ["null"],
    "tool_calls": ["null"],
    "reasoning_content": ["null"],
    "index": ["0"],
    "finish_reason": ["null"],
    "stop_reason": ["null", '"</s>"'],
    "id": ['"chatcmpl-1"'],
    "model": ['"gpt-4o"'],
    "usage": ["null"],
}
OTHERWISE = ['"assistant"', "null", '""', "[]", "1", "0", "0.0", '"stop"', "{}", '{"a":1}']


@st.composite
def openai_text_chunks(draw: Any, more_text: bool) -> bytes:
    """A chunk of text as any server might write it: members in any order,
    members the translator does not read, space anywhere JSON allows it.
    `more_text`: the fields the translator reads say "more text" (else
    they hold anything)."""

    def obj(members: list[tuple[str, str]]) -> str:
        members = draw(st.permutations(members))
        s = draw(spaces)
        return (
            "{"
            + s
            + ("," + s).join(
                f"{json.dumps(k, ensure_ascii=False)}{draw(spaces)}:{draw(spaces)}{v}"
                for k, v in members
            )
            + s
            + "}"
        )

    def fields(names: list[str]) -> list[tuple[str, str]]:
        chosen = draw(st.sets(st.sampled_from(names)))
        return [
            (n, draw(st.sampled_from(MORE_TEXT[n] if more_text else OTHERWISE))) for n in chosen
        ]

    def extra() -> list[tuple[str, str]]:
        # (a key with an escape in it is the Python path's: a writing no server uses)
        keys = st.text(max_size=6).filter(
            lambda key: (
                key not in KNOWN and not (more_text and "\\" in json.dumps(key, ensure_ascii=False))
            )
        )
        found = draw(st.lists(st.tuples(keys, json_values), max_size=2))
        values = [(k, json.dumps(v, ensure_ascii=draw(st.booleans()))) for k, v in found]
        if draw(st.booleans()):
            values.append(("x", draw(NUMBERS if not more_text else VALID_NUMBERS).decode()))
        return values

    text = draw(st.text(min_size=1, max_size=10))
    delta = [("content", json.dumps(text, ensure_ascii=draw(st.booleans())))]
    delta += fields(["role", "refusal", "tool_calls", "reasoning_content"])
    choice = [("delta", obj(delta + extra()))]
    choice += fields(["index", "finish_reason", "stop_reason"])
    top = [("choices", "[" + obj(choice + extra()) + "]")]
    top += fields(["id", "model", "usage"])
    return b"data: " + obj(top + extra()).encode() + b"\n\n"


@PROPERTY
@given(st.lists(openai_text_chunks(more_text=True), min_size=1, max_size=3))
def test_chunks_of_more_text_are_translated_in_c(chunks: list[bytes]) -> None:
    assert same_events(b"".join(chunks)) is not None


@PROPERTY
@given(st.lists(openai_text_chunks(more_text=False), min_size=1, max_size=3))
def test_any_chunks_as_python_translates_them(chunks: list[bytes]) -> None:
    same_events(b"".join(chunks))


@st.composite
def damaged(draw: Any, writings: Any) -> bytes:
    """Chunks with bytes changed, cut out or put in."""
    found = bytearray(b"".join(draw(st.lists(writings, min_size=1, max_size=2))))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(found) - 1))
        how = draw(st.sampled_from(["change", "cut", "put"]))
        byte = draw(
            st.sampled_from([0, 10, 13, 32, 34, 44, 58, 92, 93, 125, 0x80, 0xC3, 0xED, 0xF4, 0xFF])
            | st.integers(0, 255)
        )
        if how == "change":
            found[at] = byte
        elif how == "cut":
            del found[at]
        else:
            found.insert(at, byte)
    return bytes(found)


@PROPERTY
@given(damaged(openai_text_chunks(more_text=True)))
def test_damaged_chunks_as_python_translates_them(chunks: bytes) -> None:
    same_events(chunks)


# ---- Anthropic's events → OpenAI's chunks --------------------------------------------

START = {
    "type": "message_start",
    "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 1},
    },
}


def chunks_from_events(compiled: bool) -> ChunksFromEvents:
    """A translator past message_start: a text delta is one more chunk."""
    translation = chat_to_messages(STREAMING_CHAT)
    assert translation.answering is not None
    translator = ChunksFromEvents(translation.answering, compiled=compiled)
    translator.feed(
        anthropic_stream(
            [
                START,
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ]
        )
    )
    return translator


def same_chunks(events: bytes) -> bytes | None:
    compiled, python = chunks_from_events(True), chunks_from_events(False)
    by_c = text_deltas.of_events(events, compiled._head_text, b'},"finish_reason":null}]}\n\n')
    said, expected = compiled.feed(events), python.feed(events)
    assert said == expected  # the text is passed on unparsed by both
    assert compiled.finish() == python.finish()
    return by_c


def text_delta(text: str, index: int = 0, ascii_only: bool = False) -> bytes:
    data = (
        b'{"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"text_delta","text":'
        + json.dumps(text, ensure_ascii=ascii_only).encode()
        + b"}}"
    )
    return b"event: content_block_delta\ndata: " + data + b"\n\n"


@pytest.mark.parametrize("ascii_only", [False, True], ids=["utf8", "escaped"])
def test_text_deltas_as_anthropic_writes_them(ascii_only: bool) -> None:
    events = [text_delta(text, index, ascii_only) for index, text in enumerate(TEXTS)]
    for event in events:
        assert same_chunks(event) is not None
    assert same_chunks(b"".join(events)) is not None
    written = anthropic_stream(
        [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}]
    )
    assert same_chunks(written) is not None  # as tests/.../wire.py writes it, msgspec's way


def test_pings_and_text_blocks_begun_or_ended_say_nothing() -> None:
    """Passed over by both (an OpenAI client's chunks have no blocks), alone
    or between text deltas, as Anthropic's chunks often hold them."""
    assert same_chunks(PING + BLOCK_STOP + TEXT_START) == b""
    together = TEXT_START + text_delta("Hi") + PING + text_delta(" there") + BLOCK_STOP
    said = same_chunks(together)
    assert said is not None
    assert said.count(b"\n\n") == 2


PING = b'event: ping\ndata: {"type":"ping"}\n\n'
BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
TEXT_START = (
    b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)


DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'


@pytest.mark.parametrize(
    "event",
    [
        DELTA + b'0,"delta":{"type":"input_json_delta","partial_json":"{}"}}\n\n',
        DELTA + b'0,"delta":{"type":"text_delta","text":"\\ud83c"}}\n\n',  # a lone half
        DELTA + b'-1,"delta":{"type":"text_delta","text":"a"}}\n\n',
        DELTA + b'0,"delta":{"type":"text_delta","text":"a"}}\r\n\r\n',
        DELTA + b'0,"delta":{"type":"text_delta","text":"a"} }\n\n',
        DELTA + b'0,"delta":{"type":"text_delta","text":"a"}}\n',
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0} \n\n',
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":""}\n\n',
        b'event: ping\ndata: {"type":"ping"}\n',
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
        b'"content_block":{"type":"text","text":"a"}}\n\n',
        b'event: content_block_start\ndata: {"type":"content_block_start","index":1,'
        b'"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}\n\n',
        b"",
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "a"}}\n\n',
        b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a"}}'
        b"\n\n",
        b'event: ping\ndata: {"type": "ping"}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ],
)
def test_events_left_to_python(event: bytes) -> None:
    assert same_chunks(event) is None


anthropic_text_events = st.builds(
    text_delta, st.text(max_size=10), st.integers(0, 99), st.booleans()
) | st.sampled_from([PING, BLOCK_STOP, TEXT_START])


@PROPERTY
@given(st.lists(anthropic_text_events, min_size=1, max_size=4))
def test_any_text_deltas_as_python_translates_them(events: list[bytes]) -> None:
    assert same_chunks(b"".join(events)) is not None


@PROPERTY
@given(damaged(anthropic_text_events))
def test_damaged_text_deltas_as_python_translates_them(events: bytes) -> None:
    same_chunks(events)


# ---- whole streams, event by event as the proxy reads them ---------------------------


def test_streams_read_event_by_event_as_python_translates_them() -> None:
    """From start to end, with C taking what it can: the same stream."""
    texts = [chunk({"content": text}) for text in TEXTS]
    upstream = openai_stream(
        [chunk({"role": "assistant", "content": ""}), *texts, chunk({}, finish="stop")]
    )
    said = {}
    for compiled in (True, False):
        translator = EventsFromChunks(compiled=compiled)
        said[compiled] = (
            b"".join(translator.feed(e + b"\n\n") for e in upstream.split(b"\n\n") if e)
            + translator.finish()
        )
    assert anthropic_events(said[True]) == anthropic_events(said[False])
    assert "".join(
        e["delta"].get("text", "")
        for e in anthropic_events(said[True])
        if e["type"] == "content_block_delta"
    ) == "".join(TEXTS)

    events = [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in TEXTS
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    upstream = anthropic_stream(events)
    for compiled in (True, False):
        translation = chat_to_messages(STREAMING_CHAT)
        assert translation.answering is not None
        translator = ChunksFromEvents(translation.answering, compiled=compiled)
        said[compiled] = (
            b"".join(translator.feed(e + b"\n\n") for e in upstream.split(b"\n\n") if e)
            + translator.finish()
        )
    assert said[True] == said[False]
    assert "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in openai_chunks(said[True])
        if isinstance(c, dict) and c["choices"]
    ) == "".join(TEXTS)
