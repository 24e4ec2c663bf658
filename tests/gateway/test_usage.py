"""Token usage read from answers and from streams cut at any byte."""

from __future__ import annotations

import gzip
import json
import random
import zlib

import pytest

from byok.gateway.usage import StreamUsage, of_body


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
