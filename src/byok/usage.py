"""Tokens used, read from the ``usage`` of answers as they pass through.

Where usage is, per dialect:

    OpenAI chat/completions/embeddings   top-level usage: prompt_tokens, completion_tokens
    OpenAI responses                     top-level usage (a stream: in response.completed's
                                         response): input_tokens, output_tokens
    Anthropic messages                   top-level usage (a stream: message_start's message
                                         has the input, message_delta the output so far)

A whole body is decoded only when it mentions ``"usage"`` at all, into a
struct that keeps that one field (msgspec skips the rest unparsed).  A stream
is scanned chunk by chunk for the same word; only events that hold it are
decoded.  Counts in a stream are cumulative (Anthropic repeats its output
count as it grows), so a stream's usage is the largest of each count seen.
"""

from __future__ import annotations

from typing import Any

import msgspec

_USAGE = b'"usage"'
_TAIL_LIMIT = 64 * 1024  # of an unfinished event kept between chunks


class _WithUsage(msgspec.Struct):
    usage: Any = None
    message: Any = None  # Anthropic's message_start
    response: Any = None  # OpenAI's response.completed


def tokens(usage: Any) -> tuple[int, int]:
    """(input, output) from one usage object of either dialect."""
    if not isinstance(usage, dict):
        return 0, 0
    taken = 0
    for name in ("prompt_tokens", "input_tokens", "cache_creation_input_tokens"):
        taken += _count(usage.get(name))
    taken += _count(usage.get("cache_read_input_tokens"))
    given = _count(usage.get("completion_tokens")) or _count(usage.get("output_tokens"))
    return taken, given


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage_of(data: bytes) -> tuple[int, int]:
    try:
        found = msgspec.json.decode(data, type=_WithUsage)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0, 0
    for holder in (found, found.message, found.response):
        usage = holder.usage if holder is found else _field(holder, "usage")
        if usage is not None:
            return tokens(usage)
    return 0, 0


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def of_body(body: bytes) -> tuple[int, int]:
    """(input, output) tokens of a whole answer; (0, 0) when it says nothing."""
    if _USAGE not in body:
        return 0, 0
    return _usage_of(body)


class StreamUsage:
    """Feed it a stream's chunks as they pass; read ``input``/``output`` at the end."""

    __slots__ = ("_tail", "input", "output")

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self._tail = b""  # the unfinished last event, while it may hold usage

    def feed(self, chunk: bytes) -> None:
        if self._tail:
            chunk = self._tail + chunk
            self._tail = b""
        if chunk.endswith(b"\n\n"):  # the common case: whole events
            if _USAGE in chunk:
                self._take(chunk)
            return
        cut = chunk.rfind(b"\n\n")
        whole, unfinished = (b"", chunk) if cut < 0 else (chunk[:cut], chunk[cut + 2 :])
        if _USAGE in whole:
            self._take(whole)
        if len(unfinished) < _TAIL_LIMIT:
            self._tail = unfinished

    def finish(self) -> None:
        """A stream may end without a final blank line."""
        if self._tail and _USAGE in self._tail:
            self._take(self._tail)
        self._tail = b""

    def _take(self, events: bytes) -> None:
        for line in events.split(b"\n"):
            if line.startswith(b"data:") and _USAGE in line:
                taken, given = _usage_of(line[5:].strip())
                self.input = max(self.input, taken)
                self.output = max(self.output, given)
