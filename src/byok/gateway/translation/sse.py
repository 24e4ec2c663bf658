"""Server-sent events read incrementally and written, for the stream translators.

A stream arrives in chunks cut anywhere; an event ends with a blank line
(``\\n\\n``, or ``\\r\\n\\r\\n``).  ``SseReader.feed`` hands back the data of
the events that ended in what it has been fed, and keeps the rest for the
next chunk.  The translators need no event name: the data of both APIs
names its own type.  Each event costs a few byte searches in the common
case (whole events, ``\\n`` line ends, one ``data:`` line): a stream
translator reads every event, so this is on the path of every delta.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .fast_text import first_event as _first_event

__all__ = ["SseReader", "data_only", "event"]

_HELD_LIMIT = 8 * 1024 * 1024  # of an event begun and not ended: no LLM event is longer
_encode = msgspec.json.Encoder().encode


class SseReader:
    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = b""  # the start of an event not ended yet

    def feed(self, chunk: bytes) -> list[bytes]:
        if not self.held:  # the commonest chunk: one whole event, of one data line
            end = chunk.find(b"\n")
            if chunk[:6] == b"data: ":  # OpenAI's
                if end == len(chunk) - 2 and chunk[-1:] == b"\n":
                    return [chunk[6:end]]
            elif chunk[:7] == b"event: " and chunk[end + 1 : end + 7] == b"data: ":  # Anthropic's
                last = chunk.find(b"\n", end + 7)
                if last == len(chunk) - 2 and chunk[-1:] == b"\n":
                    return [chunk[end + 7 : last]]
        data = self.held + chunk if self.held else chunk
        if data[-2:] == b"\n\n":  # the common chunk: whole events
            self.held = b""
            return _parse(data)
        end = _end_of_events(data)
        if end < len(data):
            if len(data) - end > _HELD_LIMIT:
                raise ValueError("a stream event longer than 8 MiB")
            self.held = data[end:]
            data = data[:end]
        else:
            self.held = b""
        return _parse(data) if data else []

    def first(self, chunk: bytes, at: int = 0) -> tuple[list[bytes], int]:
        """The data of the first event that `chunk` ends from `at` (the one
        held, or the next in `chunk`) and where in `chunk` it ended; ([],
        len(chunk)) when it ends none (what is left is held).  For a caller
        that takes the events after it another way (streams.EventStream)."""
        held = self.held
        if not held and _first_event is not None:  # in C: where the event ends, its data
            data, end = _first_event(chunk, at)
            if end >= 0:
                return [data] if data is not None else _parse(chunk[at:end]), end
        if held:  # a blank line may begin in what was held
            data, start, shift = held + chunk[at:], max(len(held) - 2, 0), len(held) - at
        else:
            data, start, shift = chunk, at, 0
        lf = data.find(b"\n\n", start)
        crlf = data.find(b"\n\r\n", start)
        if lf < 0 and crlf < 0:
            rest = data if held else chunk[at:]
            if len(rest) > _HELD_LIMIT:
                raise ValueError("a stream event longer than 8 MiB")
            self.held = rest
            return [], len(chunk)
        end = lf + 2 if crlf < 0 or 0 <= lf < crlf else crlf + 3
        self.held = b""
        return _parse(data[0 if held else at : end]), end - shift

    def finish(self) -> list[bytes]:
        """The stream ended: an event it did not end with a blank line."""
        held, self.held = self.held, b""
        return _parse(held + b"\n\n") if held.strip() else []


def _end_of_events(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def _parse(data: bytes) -> list[bytes]:
    """The data of the whole events in `data`, which ends with a blank line.

    Written for CPython's costs: a bytes method call (find, startswith)
    costs several times a slice compared, and ``in`` on bytes more still
    (it tries the needle as an int first, raising and clearing a TypeError
    inside), so the common events, OpenAI's ``data: ...`` and Anthropic's
    ``event: ...\\ndata: ...``, are found with one find each."""
    if data.find(b"\r") >= 0:
        data = data.replace(b"\r\n", b"\n")
    found = []
    at = 0
    size = len(data)
    while at < size:
        start = -1
        if data[at : at + 6] == b"data: ":
            start = at + 6
        elif data[at : at + 7] == b"event: ":
            start = data.find(b"\n", at) + 7
            if start < 7 or data[start - 6 : start] != b"data: ":
                start = -1
        if start >= 0:
            end = data.find(b"\n", start)
            if data[end + 1 : end + 2] == b"\n":  # one data line, then the blank line
                found.append(data[start:end])
                at = end + 2
                continue
        # any other event: ids, several data lines, comments, blank lines
        end = data.find(b"\n\n", at)
        if end < 0:
            end = size
        if end > at:
            lines = _data(data[at:end])
            if lines is not None:
                found.append(lines)
        at = end + 2
    return found


def _data(block: bytes) -> bytes | None:
    """The data of any event: its data lines joined, or None if it has none."""
    lines = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
        # ids, retry hints, names and comments (": keep-alive") carry nothing to translate
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else b"\n".join(lines)


def event(name: str, data: Any) -> bytes:
    """One event as Anthropic writes it: its name, then its data."""
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def data_only(data: Any) -> bytes:
    """One event as OpenAI writes it: data alone."""
    return b"data: " + _encode(data) + b"\n\n"
