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

An OpenAI-style stream tells its usage only when asked; byok asks for the
client that did not (gateway/body.py), and ``HiddenStreamUsage`` takes the
answer (the last event, usage and no choices) out of the stream it relays,
so that the client gets what it asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from ..http.coding import INFLATABLE, inflate

# Bytes are searched with bytes.find, not `in`: CPython's bytes `in` first
# tries its operand as an int and pays for the TypeError (some 1,900
# instructions under callgrind, more than the search through a stream chunk).
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


class _Chunk(msgspec.Struct):
    """An OpenAI stream chunk, as much of it as tells a usage-only one."""

    usage: Any = None
    choices: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


def _has_usage(data: bytes) -> bool:
    """Whether `data` holds a usage object: the ``"usage":null`` that rides on
    every chunk of an OpenAI stream with include_usage is not worth decoding."""
    return data.find(b'"usage":{') >= 0 or data.find(b'"usage": {') >= 0


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
    if body.find(_USAGE) < 0:
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

    def feed(self, chunk: bytes) -> bytes:
        """Count what `chunk` tells; what to relay of it: all of it."""
        cut = chunk.rfind(b"\n")
        if cut < 0:  # the line goes on
            if self._size + len(chunk) <= _LINE_LIMIT:
                self._parts.append(chunk)
                self._size += len(chunk)
            return chunk
        whole = chunk[: cut + 1]
        if self._parts:
            whole = b"".join([*self._parts, whole])
            self._parts.clear()
            self._size = 0
        if whole.find(_USAGE) >= 0:
            self._take(whole)
        if cut + 1 < len(chunk):
            rest = chunk[cut + 1 :]
            self._parts.append(rest)
            self._size = len(rest)
        return chunk

    def finish(self) -> bytes:
        """The stream ended (a stream may end without a final line break):
        what is left to relay, nothing (``feed`` relays all).  Once only."""
        if self._parts:
            last = b"".join(self._parts)
            self._parts.clear()
            self._size = 0
            if last.find(_USAGE) >= 0:
                self._take(last)
        return b""

    def _take(self, lines: bytes) -> None:
        for line in lines.split(b"\n"):
            if line.startswith(b"data:") and _has_usage(line):
                taken, given = _usage_of(line[5:].strip())
                self.input = max(self.input, taken)
                self.output = max(self.output, given)


class HiddenStreamUsage:
    """An OpenAI-style stream whose usage byok asked for and its client did
    not: the usage is counted (``input``/``output``, as StreamUsage), and the
    usage-only event (``"choices":[]``) is taken out of what the client gets.

    ``feed`` hands back what to relay now: whole events (an event ends with a
    blank line, LF or CRLF), less that one.  An event cut at the end of a
    chunk waits for its end in the next (an SSE client acts on an event only
    once it has ended, so it waits no longer for it); a stream that breaks
    off loses it, rather than ending on half an event.  The common chunk,
    whole events and no usage, goes back as it came, after one byte search.

    With include_usage, OpenAI also puts ``"usage":null`` on every other
    chunk.  It stays: the SDKs read a null usage as none (their parsed chunks
    are the same with or without it), a chunk left alone is the upstream's
    own bytes, and taking it out would rewrite every chunk of every stream.
    A usage that comes on a chunk with choices (an OpenAI-compatible server
    may send it so, asked or not) is counted and left where it is: that
    chunk is content the client asked for."""

    __slots__ = ("_held", "input", "output")

    def __init__(self) -> None:
        self.input = 0
        self.output = 0
        self._held = bytearray()  # an event begun and not ended

    def feed(self, chunk: bytes) -> bytes:
        """Count what `chunk` tells; what to relay of it now."""
        # The common chunk, whole events and no token count, goes by after
        # one byte search: a count's name ends in _tokens, and outside a
        # usage object no name of a chat or completion chunk does (a quote in
        # a string is escaped).  A usage with no count goes by as well.
        if not self._held and chunk.endswith(_EVENT_ENDS) and chunk.find(b'_tokens"') < 0:
            return chunk
        if self._held:
            self._held += chunk
            chunk = bytes(self._held)
            self._held.clear()
        end = _end_of_events(chunk)
        if end < len(chunk):
            if len(chunk) - end > _LINE_LIMIT:  # no stream chunk is that long: let it by unread
                return chunk
            self._held += memoryview(chunk)[end:]
            chunk = chunk[:end]
        return self._shown(chunk) if _has_usage(chunk) else chunk

    def finish(self) -> bytes:
        """The stream ended: what is left to relay (an event it did not end).  Once only."""
        if not self._held:  # the common end: the stream's last event ended it
            return b""
        rest = bytes(self._held)
        self._held.clear()
        return self._shown(rest) if _has_usage(rest) else rest

    def _shown(self, events: bytes) -> bytes:
        """`events`, counted, less the usage-only one."""
        return b"".join(e for e in _split_events(events) if not (_has_usage(e) and self._take(e)))

    def _take(self, event: bytes) -> bool:
        """Count the usage in `event`; whether it is the usage-only event."""
        lines = event.splitlines()
        data = b"\n".join(line[5:] for line in lines if line.startswith(b"data:"))
        try:
            found = _decode_chunk(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False  # not JSON: not the event byok asked for
        if not isinstance(found.usage, dict):
            return False
        taken, given = tokens(found.usage)
        self.input = max(self.input, taken)
        self.output = max(self.output, given)
        return isinstance(found.choices, list) and not found.choices


# An SSE event ends with a blank line: "\n\n", or "\r\n\r\n" (whose last
# three bytes are "\n\r\n").  A bare CR ending no LLM API sends is not read.
_EVENT_ENDS = (b"\n\n", b"\n\r\n")


def _end_of_events(data: bytes) -> int:
    """Where the last whole event in `data` ends (0: none ends in it)."""
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def _split_events(data: bytes) -> Iterator[bytes]:
    """The events of `data`, each with its blank line, byte for byte."""
    start = 0
    while start < len(data):
        ends = [at + len(end) for end in _EVENT_ENDS if (at := data.find(end, start)) >= 0]
        stop = min(ends) if ends else len(data)
        yield data[start:stop]
        start = stop
