"""Token usage read from answers and from streams cut at any byte."""

from __future__ import annotations

import gzip
import json
import random
import zlib

import pytest

from byok.gateway.usage import HiddenStreamUsage, StreamUsage, of_body


def sse(data: dict, event: str | None = None, newline: bytes = b"\n") -> bytes:
    head = f"event: {event}".encode() + newline if event else b""
    return head + b"data: " + json.dumps(data, separators=(",", ":")).encode() + newline * 2


OPENAI = (
    b"".join(sse({"choices": [{"delta": {"content": "x"}}], "usage": None}) for _ in range(30))
    + sse({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 22}})
    + b"data: [DONE]\n\n"
)
ANTHROPIC = (
    sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 7, "output_tokens": 1}}},
        "message_start",
    )
    + b"".join(
        sse({"type": "content_block_delta", "delta": {"text": "y" * 50}}, "content_block_delta")
        for _ in range(20)
    )
    + sse({"type": "message_delta", "usage": {"output_tokens": 33}}, "message_delta")
)
# the responses API puts the whole output before the usage, in one event
RESPONSES = sse(
    {
        "type": "response.completed",
        "response": {
            "output": [{"text": "z" * 100_000}],
            "usage": {"input_tokens": 5, "output_tokens": 999},
        },
    }
)
CRLF = sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}, newline=b"\r\n")


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(OPENAI, (11, 22)), (ANTHROPIC, (7, 33)), (RESPONSES, (5, 999)), (CRLF, (3, 4))],
    ids=["openai", "anthropic", "responses", "crlf"],
)
def test_stream_usage_survives_any_cut(stream: bytes, expected: tuple[int, int]):
    chooser = random.Random(1234)
    for _ in range(100):
        counted = StreamUsage()
        at = 0
        while at < len(stream):
            size = chooser.choice([1, 2, 7, 100, 1000, 65536])
            counted.feed(stream[at : at + size])
            at += size
        counted.finish()
        assert (counted.input, counted.output) == expected


def test_a_stream_without_usage_counts_nothing():
    counted = StreamUsage()
    counted.feed(sse({"choices": [{"delta": {"content": "usage"}}]}))
    counted.finish()
    assert (counted.input, counted.output) == (0, 0)


def test_whole_answers_plain_and_compressed():
    body = json.dumps({"usage": {"prompt_tokens": 2, "completion_tokens": 3}}).encode()
    assert of_body(body) == (2, 3)
    assert of_body(gzip.compress(body), "gzip") == (2, 3)
    assert of_body(zlib.compress(body), "deflate") == (2, 3)
    assert of_body(b"not gzip", "gzip") == (0, 0)
    assert of_body(b'{"id": "x"}') == (0, 0)
    anthropic = {"usage": {"input_tokens": 4, "cache_read_input_tokens": 6, "output_tokens": 1}}
    assert of_body(json.dumps(anthropic).encode()) == (10, 1)


def test_a_counted_stream_is_relayed_as_it_came():
    counted = StreamUsage()
    chunk = OPENAI[:100]
    assert counted.feed(chunk) is chunk
    assert counted.finish() == b""


# ---- a usage byok asked for and the client did not -------------------------------------

CHUNK = {"id": "c", "object": "chat.completion.chunk", "model": "m", "usage": None}
USAGE = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}


def asked_stream(newline: bytes = b"\n") -> tuple[bytes, bytes]:
    """An OpenAI stream with include_usage, and the same without its usage event."""
    words = b"".join(
        sse({**CHUNK, "choices": [{"index": 0, "delta": {"content": f"w{n}"}}]}, newline=newline)
        for n in range(30)
    )
    last = sse({**CHUNK, "choices": [{"index": 0, "finish_reason": "stop"}]}, newline=newline)
    usage = sse({**CHUNK, "choices": [], "usage": USAGE}, newline=newline)
    done = b"data: [DONE]" + newline * 2
    return words + last + usage + done, words + last + done


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_the_usage_event_is_taken_out_wherever_the_stream_is_cut(newline: bytes):
    stream, relayed = asked_stream(newline)
    chooser = random.Random(99)
    for _ in range(200):
        hidden = HiddenStreamUsage()
        out = []
        at = 0
        while at < len(stream):
            size = chooser.choice([1, 2, 3, 7, 50, 100, 1000, 65536])
            out.append(hidden.feed(stream[at : at + size]))
            at += size
        out.append(hidden.finish())
        assert b"".join(out) == relayed
        assert (hidden.input, hidden.output) == (11, 22)
        # no piece ends inside an event: the client never waits on half of one
        assert all(piece.endswith(newline * 2) for piece in out if piece)


def test_whole_events_without_a_usage_go_by_untouched():
    hidden = HiddenStreamUsage()
    chunk = sse({**CHUNK, "choices": [{"index": 0, "delta": {"content": "usage"}}]}) * 3
    assert hidden.feed(chunk) is chunk  # the common case: no copy
    assert hidden.finish() == b""
    assert (hidden.input, hidden.output) == (0, 0)


def test_a_usage_on_a_chunk_with_choices_is_counted_and_kept():
    # some OpenAI-compatible servers send it so, asked or not
    event = sse({**CHUNK, "choices": [{"index": 0, "finish_reason": "stop"}], "usage": USAGE})
    hidden = HiddenStreamUsage()
    assert hidden.feed(event + b"data: [DONE]\n\n") == event + b"data: [DONE]\n\n"
    assert (hidden.input, hidden.output) == (11, 22)


def test_a_stream_that_ends_inside_an_event():
    stream, relayed = asked_stream()
    cut = stream[:-2]  # [DONE] without its blank line
    hidden = HiddenStreamUsage()
    out = hidden.feed(cut)
    assert out + hidden.finish() == relayed[:-2]
    assert hidden.finish() == b""  # once only
    assert (hidden.input, hidden.output) == (11, 22)
    unended = HiddenStreamUsage()  # the usage event itself unended: still taken out
    usage = sse({**CHUNK, "choices": [], "usage": USAGE})
    assert unended.feed(usage[:-1]) == b""
    assert unended.finish() == b""
    assert (unended.input, unended.output) == (11, 22)


def test_a_usage_event_that_is_not_json_is_relayed():
    event = b'data: {"choices":[],"usage":{"prompt_tokens":\n\n'
    hidden = HiddenStreamUsage()
    assert hidden.feed(event) == event
    assert (hidden.input, hidden.output) == (0, 0)


def test_a_usage_with_no_count_is_not_worth_a_look():
    # the fast path looks for a count's name (..._tokens): an empty usage has none
    event = sse({**CHUNK, "choices": [], "usage": {}})
    hidden = HiddenStreamUsage()
    assert hidden.feed(event) is event
    assert (hidden.input, hidden.output) == (0, 0)
