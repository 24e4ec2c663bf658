"""The commonest translations, of text, in C: a stream's text deltas, and a
whole answer of text, both ways.

``_fast_text.pyx`` (compiled into the wheel) takes an upstream's bytes of
text and writes the client's: a stream's events of text up to the first
other one, which the Python path then translates, or an answer of text alone
(None for any other, which the Python path translates).  Without it (a platform with neither
a wheel nor a compiler, or ``BYOK_NO_EXTENSIONS=1``, as for byok_core) these
are None, and the Python path translates everything: the same answers, each
text's JSON string written by msgspec instead of copied as it came.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["COMPILED", "chat_answer", "first_event", "message_answer", "of_chunks", "of_events"]

# (the upstream's bytes, where to begin in them, what goes before each text, what goes
# after) → (the client's bytes, where the whole events of text that begin there end)
Translate = Callable[[bytes, int, bytes, bytes], tuple[bytes, int]]

of_chunks: Translate | None = None  # OpenAI's chunks of text → Anthropic's text deltas
of_events: Translate | None = None  # Anthropic's text deltas → OpenAI's chunks of text
# Anthropic's whole answer of text, and the request's arrival → OpenAI's chat.completion
chat_answer: Callable[[bytes, int], bytes | None] | None = None
# OpenAI's whole answer of text → Anthropic's message
message_answer: Callable[[bytes], bytes | None] | None = None
# a stream's bytes and where to begin → (the data of the event there if it is one data
# line, else None; where the event ends), or (None, -1): sse.SseReader.first's common case
first_event: Callable[[bytes, int], tuple[bytes | None, int]] | None = None
if os.environ.get("BYOK_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from ._fast_text import chat_answer_of_message as chat_answer
        from ._fast_text import first_event
        from ._fast_text import message_of_chat_answer as message_answer
        from ._fast_text import text_of_chunks as of_chunks
        from ._fast_text import text_of_events as of_events
    except ImportError:  # not built here: the Python path alone
        pass
COMPILED = of_chunks is not None
