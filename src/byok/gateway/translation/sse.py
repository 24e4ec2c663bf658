"""Server-sent events read incrementally and written, for the stream translators.

A stream arrives in chunks cut anywhere; an event ends with a blank line
(``\\n\\n``, or ``\\r\\n\\r\\n``).  ``SseReader.feed`` hands back the events
that ended in what it has been fed, as (event name, data), and keeps the
rest for the next chunk.  The common chunk (one or a few whole events) costs
one search for its last blank line and a split.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SseReader", "event"]

_HELD_LIMIT = 8 * 1024 * 1024  # of an event begun and not ended: no LLM event is longer
_encode = msgspec.json.Encoder().encode


class SseReader:
    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        data = self._held + chunk if self._held else chunk
        end = _end_of_events(data)
        if end < len(data):
            if len(data) - end > _HELD_LIMIT:
                raise ValueError("a stream event longer than 8 MiB")
            self._held = data[end:]
            data = data[:end]
        else:
            self._held = b""
        return _parse(data) if data else []

    def finish(self) -> list[tuple[bytes, bytes]]:
        """The stream ended: an event it did not end with a blank line."""
        held, self._held = self._held, b""
        return _parse(held) if held.strip() else []


def _end_of_events(data: bytes) -> int:
    lf = data.rfind(b"\n\n")
    crlf = data.rfind(b"\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 3 if crlf >= 0 else 0)


def _parse(data: bytes) -> list[tuple[bytes, bytes]]:
    if data.find(b"\r") >= 0:
        data = data.replace(b"\r\n", b"\n")
    events = []
    for block in data.split(b"\n\n"):
        if not block:
            continue
        name = b""
        lines = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                lines.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                name = line[6:].strip()
            # ids, retry hints and comments (": keep-alive") carry nothing to translate
        if lines:
            events.append((name, lines[0] if len(lines) == 1 else b"\n".join(lines)))
    return events


def event(name: str, data: Any) -> bytes:
    """One event as Anthropic writes it: its name, then its data."""
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def data_only(data: Any) -> bytes:
    """One event as OpenAI writes it: data alone."""
    return b"data: " + _encode(data) + b"\n\n"
