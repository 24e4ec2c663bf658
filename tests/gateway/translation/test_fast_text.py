"""The compiled translations of text (translation/_fast_text.pyx) held to the Python path.

The stream translators hand the whole events of text in a read to C, and a
whole answer goes to C first; each takes its Python path for what C leaves
(any other event, an answer it gives None for).  Whatever C translates must come out as the Python
path writes it (the same events and answers, each text the same JSON string,
though C copies its escapes as they came), and a translator must be left in
the same state.  Both are fed the same bytes: written every way the APIs'
servers write them, then damaged.  And C must take what real servers send,
or it saves nothing: that is asserted too.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byok.gateway.translation import (
    BadAnswer,
    _decode_completion,
    _decode_message,
    _encode,
    fast_text,
)
from byok.gateway.translation.chat_via_messages import Answering, ChunksFromEvents, chat_answer
from byok.gateway.translation.messages_via_chat import EventsFromChunks, message_answer

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
    assert fast_text.COMPILED is True


# ---- OpenAI's chunks → Anthropic's events --------------------------------------------


def events_from_chunks(compiled: bool) -> EventsFromChunks:
    """A translator with a text block open: what comes next is more text."""
    translation = messages_to_chat(STREAMING_MESSAGES)
    translator = EventsFromChunks(compiled=compiled)
    assert type(translation.stream()) is EventsFromChunks
    translator.feed(openai_stream([chunk({"role": "assistant", "content": "Hi"})], done=False))
    return translator


def same_events(chunks: bytes) -> int:
    """Feed `chunks` to both translators, assert they said the same, and
    say how much of them C took."""
    compiled, python = events_from_chunks(True), events_from_chunks(False)
    _, took = fast_text.of_chunks(chunks, 0, compiled._text_head, b"}}\n\n")
    said, expected = compiled.feed(chunks), python.feed(chunks)
    assert events_of(said) == events_of(expected)
    assert events_of(compiled.finish()) == events_of(python.finish())
    return took


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
        assert same_events(event) == len(event)
    assert same_events(b"".join(events)) == len(b"".join(events))


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
    ],
)
def test_chunks_left_to_python(event: bytes) -> None:
    """What C must not translate (another event, another field the
    translator reads, a writing it leaves to the reference) it leaves."""
    assert same_events(event) == 0


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
    assert same_events(b"".join(chunks)) == len(b"".join(chunks))


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


def same_chunks(events: bytes) -> int:
    """As same_events, the other way."""
    compiled, python = chunks_from_events(True), chunks_from_events(False)
    _, took = fast_text.of_events(events, 0, compiled._text_head, b'},"finish_reason":null}]}\n\n')
    said, expected = compiled.feed(events), python.feed(events)
    assert said == expected  # the text is passed on unparsed by both
    assert compiled.finish() == python.finish()
    return took


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
        assert same_chunks(event) == len(event)
    assert same_chunks(b"".join(events)) == len(b"".join(events))
    written = anthropic_stream(
        [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}]
    )
    assert same_chunks(written) == len(written)  # as tests/.../wire.py writes it, msgspec's way


def test_none_is_refused_not_read() -> None:
    for call in (
        lambda: of_events(None, b"", b""),  # type: ignore[arg-type]
        lambda: fast_text.chat_answer(None, 0),  # type: ignore[arg-type,misc]
        lambda: fast_text.message_answer(None),  # type: ignore[arg-type,misc]
    ):
        with pytest.raises(TypeError):
            call()


def test_pings_and_text_blocks_begun_or_ended_say_nothing() -> None:
    """Passed over by both (an OpenAI client's chunks have no blocks), alone
    or between text deltas, as Anthropic's chunks often hold them."""
    quiet = PING + BLOCK_STOP + TEXT_START
    assert same_chunks(quiet) == len(quiet)
    assert of_events(quiet, b"<", b">") == (b"", len(quiet))
    together = TEXT_START + text_delta("Hi") + PING + text_delta(" there") + BLOCK_STOP
    assert same_chunks(together) == len(together)
    assert of_events(together, b"<", b">") == (b'<"Hi"><" there">', len(together))


def of_events(chunk: bytes, head: bytes, tail: bytes) -> tuple[bytes, int]:
    assert fast_text.of_events is not None
    return fast_text.of_events(chunk, 0, head, tail)


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
    assert same_chunks(event) == 0


anthropic_text_events = st.builds(
    text_delta, st.text(max_size=10), st.integers(0, 99), st.booleans()
) | st.sampled_from([PING, BLOCK_STOP, TEXT_START])


@PROPERTY
@given(st.lists(anthropic_text_events, min_size=1, max_size=4))
def test_any_text_deltas_as_python_translates_them(events: list[bytes]) -> None:
    assert same_chunks(b"".join(events)) == len(b"".join(events))


@PROPERTY
@given(damaged(anthropic_text_events))
def test_damaged_text_deltas_as_python_translates_them(events: bytes) -> None:
    same_chunks(events)


# ---- whole streams, event by event as the proxy reads them ---------------------------


def openai_upstream() -> bytes:
    texts = [chunk({"content": text}) for text in TEXTS * 3]
    return openai_stream(
        [chunk({"role": "assistant", "content": ""}), *texts, chunk({}, finish="stop")]
    )


def anthropic_upstream() -> bytes:
    text = {"type": "text", "text": ""}
    events = [START, {"type": "content_block_start", "index": 0, "content_block": text}]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        for t in TEXTS * 3
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
    return anthropic_stream(events)


def read_in_pieces(
    translator: EventsFromChunks | ChunksFromEvents, stream: bytes, size: int
) -> bytes:
    pieces = [stream[at : at + size] for at in range(0, len(stream), size)]
    return b"".join(translator.feed(piece) for piece in pieces) + translator.finish()


class Taken:
    """A compiled translation that counts the bytes it took."""

    def __init__(self, compiled: fast_text.Translate | None) -> None:
        assert compiled is not None
        self.compiled = compiled
        self.bytes = 0

    def __call__(self, chunk: bytes, at: int, head: bytes, tail: bytes) -> tuple[bytes, int]:
        said, end = self.compiled(chunk, at, head, tail)
        self.bytes += end - at
        return said, end


# an event at a time (as a server flushes them), and cut anywhere (as reads coalesce
# and split them under load): then C takes the whole events after an event's end
SIZES = [1, 2, 7, 50, 97, 150, 333, 1000, 100_000]


@pytest.mark.parametrize("size", SIZES)
def test_an_openai_stream_read_in_pieces_as_python_translates_it(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = Taken(fast_text.of_chunks)
    monkeypatch.setattr(fast_text, "of_chunks", taken)
    said = {
        compiled: read_in_pieces(EventsFromChunks(compiled), openai_upstream(), size)
        for compiled in (True, False)
    }
    assert anthropic_events(said[True]) == anthropic_events(said[False])
    text = "".join(
        e["delta"].get("text", "")
        for e in anthropic_events(said[True])
        if e["type"] == "content_block_delta"
    )
    assert text == "".join(TEXTS * 3)
    if size >= 1000:  # pieces of three events or more: most of them are C's
        assert taken.bytes > len(openai_upstream()) / 2


@pytest.mark.parametrize("size", SIZES)
def test_an_anthropic_stream_read_in_pieces_as_python_translates_it(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = Taken(fast_text.of_events)
    monkeypatch.setattr(fast_text, "of_events", taken)
    said = {}
    for compiled in (True, False):
        translation = chat_to_messages(STREAMING_CHAT)
        assert translation.answering is not None
        translator = ChunksFromEvents(translation.answering, compiled=compiled)
        said[compiled] = read_in_pieces(translator, anthropic_upstream(), size)
    assert said[True] == said[False]
    chunks = [c for c in openai_chunks(said[True]) if isinstance(c, dict) and c["choices"]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "".join(
        TEXTS * 3
    )
    if size >= 1000:
        assert taken.bytes > len(anthropic_upstream()) / 2


def test_events_by_event_are_cs_once_the_stream_is_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each event in a read of its own, as nginx flushes them in the
    benchmarks: every text delta but the first is C's."""
    taken = Taken(fast_text.of_events)
    monkeypatch.setattr(fast_text, "of_events", taken)
    translation = chat_to_messages(STREAMING_CHAT)
    assert translation.answering is not None
    translator = ChunksFromEvents(translation.answering)
    events = [e + b"\n\n" for e in anthropic_upstream().split(b"\n\n") if e]
    for event in events:
        translator.feed(event)
    deltas = [e for e in events if b"text_delta" in e]
    assert taken.bytes >= sum(map(len, deltas))


# ---- Anthropic's whole answer of text → OpenAI's --------------------------------------

CREATED = 1_700_000_000


def same_answer(body: bytes) -> bytes | None:
    """What C writes of `body` (or None), asserted to be what the Python path writes."""
    assert fast_text.chat_answer is not None
    return held_to_python(
        fast_text.chat_answer(body, CREATED),
        lambda: _encode(chat_answer(_decode_message(body), Answering(CREATED))),
    )


def held_to_python(by_c: bytes | None, python: Callable[[], bytes]) -> bytes | None:
    """`by_c`, asserted to be what `python` writes (JSON-equal), or None
    where the Python path cannot read the answer."""
    try:
        expected = python()
    except (msgspec.DecodeError, msgspec.ValidationError, BadAnswer):
        assert by_c is None  # an answer the Python path cannot read is never C's
        return None
    if by_c is not None:
        assert json.loads(by_c) == json.loads(expected)
    return by_c


ANSWER: Json = {  # Anthropic's, as its API reference shows one
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 503,
        "service_tier": "standard",
        "server_tool_use": None,
    },
    "container": None,
}


def answer(**changes: Any) -> bytes:
    return json.dumps({**ANSWER, **changes}, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "body",
    [
        answer(),
        json.dumps(ANSWER, indent=2, ensure_ascii=False).encode(),
        answer(content=[]),
        answer(content=[{"type": "text", "text": 'a "b" \\ é 🎉\n'}, {"type": "text", "text": ""}]),
        answer(content=[{"type": "text", "text": "cited", "citations": [{"type": "x"}]}]),
        answer(stop_reason="max_tokens"),
        answer(stop_reason="refusal"),
        answer(stop_reason="model_context_window_exceeded"),
        answer(stop_reason="tool_use"),
        answer(stop_reason="pause_turn"),
        answer(stop_reason="stop_sequence", stop_sequence="END"),
        answer(stop_reason=None),
        answer(stop_reason="a reason of tomorrow"),
        answer(usage={"input_tokens": 3, "output_tokens": 4}),
        answer(usage={"input_tokens": None, "output_tokens": 4, "cache_read_input_tokens": None}),
        answer(usage={"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": -0}),
        answer(usage={}),
    ],
)
def test_answers_of_text_are_written_in_c(body: bytes) -> None:
    assert same_answer(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        answer(content=[{"type": "tool_use", "id": "t", "name": "f", "input": {}}]),
        answer(content=[{"type": "thinking", "thinking": "hm", "signature": "s"}]),
        answer(content=[{"type": "text", "text": "a", "id": "x"}]),
        answer(content=[{"type": "text"}]),
        answer(content=[{"type": "text", "text": "a"}] * 65),
        answer(stop_reason=7),
        answer(id=7),
        answer(usage={"input_tokens": 1.0, "output_tokens": 4}),
        answer(usage={"input_tokens": 10**20, "output_tokens": 4}),
        answer(usage=None),
        answer(content=None),
        answer()[:-1],
        answer() + b"x",
        answer().replace(b'"end_turn"', b'"max\\u005ftokens"'),
        answer().replace(b'"content"', b'"con\\u0074ent"'),
        answer().replace(b'"usage"', b'"content":[],"usage"'),
        answer().replace(b'"Hi!', b'"\\ud83c Hi!'),
        b"[]",
        b"",
    ],
)
def test_answers_left_to_python(body: bytes) -> None:
    assert same_answer(body) is None


counts = st.integers(-(10**12), 10**12) | st.none()
answer_texts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=10)})
    | st.fixed_dictionaries(
        {"type": st.just("text"), "text": st.text(max_size=4), "citations": st.none()}
    ),
    max_size=4,
)
COUNTS = ["input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
usages = st.dictionaries(st.sampled_from(COUNTS), counts) | st.builds(
    lambda counted, other: {**counted, **other},  # with what Anthropic adds: service_tier, ...
    st.dictionaries(st.sampled_from(COUNTS), counts),
    st.dictionaries(
        st.text(string.ascii_letters + "_", max_size=5).filter(lambda key: key not in COUNTS),
        json_values,
        max_size=2,
    ),
)
reasons = (
    st.none()
    | st.sampled_from(
        [
            "end_turn",
            "max_tokens",
            "stop_sequence",
            "tool_use",
            "refusal",
            "pause_turn",
            "model_context_window_exceeded",
            "",
        ]
    )
    | st.text(string.ascii_letters + " _", max_size=5)  # (an escape is the Python path's)
)


# members an answer may hold that the translation does not read (a key of
# these letters needs no escape, which would leave the answer to Python)
other_members = st.dictionaries(
    st.text(string.ascii_letters + "_", max_size=5).filter(lambda key: key not in MESSAGE_FIELDS),
    json_values,
    max_size=2,
)
MESSAGE_FIELDS = {"id", "model", "content", "usage", "stop_reason", "stop_sequence", "type", "role"}


def written_any_way(draw: Any, body: Json) -> bytes:
    """`body` as JSON: its members in any order, spaced or compact, escaped or UTF-8."""
    members = dict(draw(st.permutations(list(body.items()))))
    if draw(st.booleans()):
        return json.dumps(members, ensure_ascii=draw(st.booleans())).encode()
    return json.dumps(members, separators=(",", ":"), ensure_ascii=False).encode()


@st.composite
def text_answers(draw: Any) -> bytes:
    """Anthropic's answer of text, written any way JSON allows (members in any order)."""
    body: Json = {
        "id": draw(st.text(max_size=8)),
        "model": draw(st.text(max_size=8)),
        "content": draw(answer_texts),
        "usage": draw(usages),
        **draw(other_members),
    }
    if draw(st.booleans()):
        body["stop_reason"] = draw(reasons)
    if draw(st.booleans()):
        body["stop_sequence"] = draw(st.text(max_size=4) | st.none())
    if draw(st.booleans()):
        body.update(type="message", role="assistant")
    return written_any_way(draw, body)


@PROPERTY
@given(text_answers())
def test_any_answer_of_text_is_written_in_c(body: bytes) -> None:
    assert same_answer(body) is not None


@PROPERTY
@given(damaged(text_answers()))
def test_damaged_answers_as_python_translates_them(body: bytes) -> None:
    same_answer(body)


# ---- OpenAI's whole answer of text → Anthropic's ---------------------------------------


def same_message(body: bytes) -> bytes | None:
    """What C writes of `body` (or None), asserted to be what the Python path writes."""
    assert fast_text.message_answer is not None
    return held_to_python(
        fast_text.message_answer(body), lambda: _encode(message_answer(_decode_completion(body)))
    )


COMPLETION: Json = {  # OpenAI's, as its API reference shows one
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
}


def completion(choice: Json | None = None, **changes: Any) -> bytes:
    body = {**COMPLETION, **changes}
    if choice is not None:
        body["choices"] = [{**COMPLETION["choices"][0], **choice}]
    return json.dumps(body, separators=(",", ":")).encode()


def said(content: Any, **message: Any) -> Json:
    return {"message": {"role": "assistant", "content": content, **message}}


@pytest.mark.parametrize(
    "body",
    [
        completion(),
        json.dumps(COMPLETION, indent=2, ensure_ascii=True).encode(),
        completion(said('a "b" \\ é 🎉\n')),
        completion(said("")),
        completion(said(None)),
        completion({"message": {}}),
        completion({"finish_reason": "length"}),
        completion({"finish_reason": "content_filter"}),
        completion({"finish_reason": "tool_calls"}),
        completion({"finish_reason": None}),
        completion({"finish_reason": "something new"}),
        completion({"finish_reason": "stop", "stop_reason": "</answer>"}),  # vLLM's
        completion({"finish_reason": "length", "stop_reason": "</answer>"}),
        completion({"finish_reason": "stop", "stop_reason": 128009}),
        completion(usage=None),
        completion(usage={"prompt_tokens": 100, "completion_tokens": 5}),
        completion(usage={"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 60}}),
        completion(usage={"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 60}}),
        completion(usage={"prompt_tokens": None, "prompt_tokens_details": None}),
        completion(usage={"prompt_tokens": 9, "prompt_tokens_details": {"cached_tokens": None}}),
        completion(system_fingerprint=None),
        json.dumps({"choices": [{"message": {"content": "hi"}}]}).encode(),
    ],
)
def test_completions_of_text_are_written_in_c(body: bytes) -> None:
    assert same_message(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        completion(said("a", refusal="no")),
        completion(said(None, tool_calls=[{"id": "c", "type": "function", "function": {}}])),
        completion(said("a", reasoning_content="hm")),
        completion({"delta": {"content": "a"}}),
        completion({"finish_reason": "st\\u006fp"}),
        completion({"stop_reason": 1.5}),
        completion({"index": None}),
        completion(choices=[]),
        completion(choices=[COMPLETION["choices"][0]] * 2),
        completion(id=None),
        completion(created=1.5),
        completion(usage={"prompt_tokens": 1.0}),
        completion(usage={"prompt_tokens_details": {"cached_tokens": "x"}}),
        completion(error={"message": "x"}),
        completion({"logprobs": {"content": [{"token": "x", "logprob": -0.5}]}}),
        completion().replace(b'"logprobs":null', b'"logprobs":1e400'),  # msgspec: out of range
        completion()[:-1],
        completion() + b"]",
        completion().replace(b'"Hello!', b'"\\udc00 Hello!'),
        b"",
    ],
)
def test_completions_left_to_python(body: bytes) -> None:
    assert same_message(body) is None


@st.composite
def text_completions(draw: Any) -> bytes:
    """OpenAI's answer of text, written any way JSON allows (members in any order)."""
    message: Json = {"content": draw(st.text(max_size=10) | st.none())}
    if draw(st.booleans()):
        message.update(role="assistant", refusal=None)
    choice: Json = {"message": message, **draw(other_members)}
    if draw(st.booleans()):
        choice["finish_reason"] = draw(
            st.sampled_from(["stop", "length", "tool_calls", "content_filter", "x"]) | st.none()
        )
    if draw(st.booleans()):
        choice["stop_reason"] = draw(st.text(max_size=4) | st.integers(0, 10**6) | st.none())
    if draw(st.booleans()):
        choice["index"] = 0
    body: Json = {
        "id": draw(st.text(max_size=8)),
        "choices": [dict(draw(st.permutations(list(choice.items()))))],
        **draw(other_members.filter(lambda m: "choices" not in m and "error" not in m)),
    }
    if draw(st.booleans()):
        usage: Json = {name: draw(counts) for name in draw(st.sets(st.sampled_from(TOKENS)))}
        if draw(st.booleans()):
            usage["prompt_tokens_details"] = draw(
                st.none() | st.fixed_dictionaries({"cached_tokens": counts})
            )
        body["usage"] = usage
    if draw(st.booleans()):
        body.update(model="gpt-4o", object="chat.completion", created=1741569952)
    return written_any_way(draw, body)


TOKENS = ["prompt_tokens", "completion_tokens", "total_tokens"]


@PROPERTY
@given(text_completions())
def test_any_completion_of_text_is_written_in_c(body: bytes) -> None:
    assert same_message(body) is not None


@PROPERTY
@given(damaged(text_completions()))
def test_damaged_completions_as_python_translates_them(body: bytes) -> None:
    same_message(body)
