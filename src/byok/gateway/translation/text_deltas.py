"""The stream translators' commonest event, a text delta, translated in C.

``_deltas.pyx`` (compiled into the wheel) takes an upstream chunk of whole
text-delta events and writes the client's, or gives None for any other
chunk.  Without it (a platform with neither a wheel nor a compiler, or
``BYOK_NO_EXTENSIONS=1``, as for byok_core) these are None, and the
translators take their Python path for every event: the same events, the
text's JSON string written by msgspec instead of copied.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["COMPILED", "of_chunks", "of_events"]

# (the upstream's bytes, what goes before each text, what goes after) → the client's, or None
Translate = Callable[[bytes, bytes, bytes], "bytes | None"]

of_chunks: Translate | None = None  # OpenAI's chunks of text → Anthropic's text deltas
of_events: Translate | None = None  # Anthropic's text deltas → OpenAI's chunks of text
if os.environ.get("BYOK_NO_EXTENSIONS", "") in ("", "0"):
    try:
        from ._deltas import text_of_chunks as of_chunks
        from ._deltas import text_of_events as of_events
    except ImportError:  # not built here: the Python path alone
        pass
COMPILED = of_chunks is not None
