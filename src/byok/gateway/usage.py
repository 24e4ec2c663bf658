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

from ..http.coding import INFLATABLE, inflate

_USAGE = b'"usage"'
_LINE_LIMIT = 4 * 1024 * 1024  # of an unfinished line kept between chunks
_INFLATE_LIMIT = 16 * 1024 * 1024  # of a compressed answer inflated to find its usage


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


_decode = msgspec.json.Decoder(_WithUsage).decode


def _usage_of(data: bytes) -> tuple[int, int]:
    try:
        found = _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0, 0
    for holder in (found, found.message, found.response):
        usage = holder.usage if holder is found else _field(holder, "usage")
        if usage is not None:
            return tokens(usage)
    return 0, 0


def _field(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else None


def of_body(body: bytes, encoding: str = "") -> tuple[int, int]:
    """(input, output) tokens of a whole answer; (0, 0) when it says nothing.

    The answer goes to the client as the upstream encoded it; a gzip or
    deflate body is inflated here, a bounded copy, only to read its usage."""
    if encoding in INFLATABLE:
        inflated = inflate(body, encoding, _INFLATE_LIMIT)
        if inflated is None:
            return 0, 0
        body = inflated
    if _USAGE not in body:
        return 0, 0
    return _usage_of(body)


class StreamUsage:
    """Feed it a stream's chunks as they pass; read ``input``/``output`` at the end.

    SSE is read line by line: a line cut between two chunks is kept (as
    parts, joined once it ends) until its end arrives, whatever the event
    separator (``\n\n`` or ``\r\n\r\n``) and however long the event (a
    responses-API ``response.completed`` carries the whole output before
    its usage)."""

    __slots__ = ("_parts", "_size", "input", "output")

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self._parts: list[bytes] = []  # the unfinished last line
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        cut = chunk.rfind(b"\n")
        if cut < 0:  # the line goes on
            if self._size + len(chunk) <= _LINE_LIMIT:
                self._parts.append(chunk)
                self._size += len(chunk)
            return
        whole = chunk[: cut + 1]
        if self._parts:
            whole = b"".join([*self._parts, whole])
            self._parts.clear()
            self._size = 0
        if _USAGE in whole:
            self._take(whole)
        if cut + 1 < len(chunk):
            rest = chunk[cut + 1 :]
            self._parts.append(rest)
            self._size = len(rest)

    def finish(self) -> None:
        """A stream may end without a final line break."""
        if self._parts:
            last = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            if _USAGE in last:
                self._take(last)

    def _take(self, lines: bytes) -> None:
        for line in lines.split(b"\n"):
            # "usage":null rides on every chunk of an OpenAI stream with
            # include_usage: only an object is worth decoding
            if line.startswith(b"data:") and (b'"usage":{' in line or b'"usage": {' in line):
                taken, given = _usage_of(line[5:].strip())
                self.input = max(self.input, taken)
                self.output = max(self.output, given)
