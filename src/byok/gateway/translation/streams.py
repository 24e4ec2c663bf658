"""What both stream translators share: the upstream's bytes read event by
event, and the events of text given to C first.

While a translator's stream is in its text (``_in_text``), C (fast_text)
translates the whole events of text at the start of what came; the event it
stops at (any other, or one not ended yet) goes the Python way (``_take``),
and then C again.  So a read that holds a whole stream (a slow proxy's reads
coalesce), or one cut in the middle of an event, still has its text
translated in C.  Without the extension every event goes the Python way,
all those of a read at once.
"""

from __future__ import annotations

from .fast_text import Translate
from .sse import SseReader

__all__ = ["EventStream"]


class EventStream:
    def __init__(self, compiled: Translate | None, text_tail: bytes) -> None:
        self._reader = SseReader()
        self._ended = False
        self._compiled = compiled
        self._fast: Translate | None = None  # `compiled` while the stream is in its text
        self._text_head = b""  # a text event's bytes before its text, the client's
        self._text_tail = text_tail  # and after it

    def feed(self, chunk: bytes) -> bytes:
        fast = self._fast
        if fast is not None and not self._reader.held:
            said, at = fast(chunk, 0, self._text_head, self._text_tail)
            if at == len(chunk):
                return said  # the common read: text alone
            return self._events(chunk, at, [said])
        if self._ended:
            return b""  # what comes after the end, or an error, is not the client's
        if self._compiled is not None:
            return self._events(chunk, 0, [])
        out: list[bytes] = []  # the Python way alone: every event the chunk ends
        try:
            events = self._reader.feed(chunk)
        except ValueError as problem:  # an event longer than any answer's
            self._unreadable(f"the upstream's stream cannot be read: {problem}", out)
            return b"".join(out)
        for data in events:
            self._take(data, out)
        return b"".join(out)

    def _events(self, chunk: bytes, at: int, out: list[bytes]) -> bytes:
        """With C: the events of `chunk` from `at`, one the Python way, then
        the text events after it in C, and so on."""
        reader = self._reader
        end = len(chunk)
        while at < end and not self._ended:
            try:
                events, at = reader.first(chunk, at)
            except ValueError as problem:  # an event longer than any answer's
                self._unreadable(f"the upstream's stream cannot be read: {problem}", out)
                break
            for data in events:
                self._take(data, out)
            fast = self._fast
            if fast is not None and at < end and not reader.held:
                said, at = fast(chunk, at, self._text_head, self._text_tail)
                out.append(said)
        return b"".join(out)

    def finish(self) -> bytes:
        """The upstream's stream ended: what is left to send.  Once only."""
        out: list[bytes] = []
        for data in self._reader.finish():
            if not self._ended:
                self._take(data, out)
        self._ended_by_upstream(out)
        return b"".join(out)

    def _in_text(self, head: bytes | None) -> None:
        """The stream is in its text (each text event begins with `head`),
        or (None) no more, or ended."""
        if head is None:
            self._fast = None
        else:
            self._text_head = head
            self._fast = self._compiled

    # each translator's own
    def _take(self, data: bytes, out: list[bytes]) -> None:
        raise NotImplementedError

    def _unreadable(self, message: str, out: list[bytes]) -> None:
        raise NotImplementedError

    def _ended_by_upstream(self, out: list[bytes]) -> None:
        raise NotImplementedError
