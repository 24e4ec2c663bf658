"""How one simulated key behaves: its failures, delays, limits and the shape
of its answers.  Set per key (SimulatedUpstream.add_key, .set) and read by
every part of the simulator, so it has a module of its own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Behaviour:
    # ok | 429 | 401 | 403 | 500 | 529 | hang | reset | head_then_reset | drop
    # | trickle | huge_headers | echo_400 (a 400 that echoes the credential)
    mode: str = "ok"
    retry_after: float | None = 1.0  # for 429; None sends no delay at all
    # where a 429's delay goes: retry-after | retry-after-ms | http-date
    # | openai-reset (x-ratelimit-reset-requests) | anthropic-reset
    # | anthropic-window (a subscription's spent 5-hour window, unified headers)
    # | codex-window (a spent weekly window, x-codex-* headers)
    delay_header: str = "retry-after"
    every: int = 1  # with 429/500/529/reset/drop: only every n-th request fails
    delay: float = 0.0  # before the response head
    chunk_delay: float = 0.0  # between stream chunks
    chunks: int = 5  # words in an answer (stream chunks)
    drop_after: int = 2  # with drop: chunks sent before the connection drops
    gzip: bool = False  # whole answers gzipped when the client accepts it
    # with a stream: each event sent in pieces of this many bytes (0: whole),
    # chunk_delay apart, so that they reach the reader in separate reads
    piece: int = 0
    rpm: int | None = None  # requests a minute this key may make (None: unlimited)
    tpm: int | None = None  # tokens a minute, as charged at admission (None: unlimited)
    # "auto": answers carry the limits in the headers of the endpoint's provider
    # (x-ratelimit-* or anthropic-ratelimit-*); None: no such header, as from
    # a server that does not advertise its limits
    limit_headers: str | None = "auto"
    tool_calls: int = 1  # calls in a reply that calls tools (at most one per tool)
    text_before_tools: bool = False  # a short text before the tool calls
    interleave_tool_calls: bool = False  # OpenAI streams: the calls' pieces in turn
    reasoning_content: bool = False  # OpenAI: the thinking in reasoning_content, as DeepSeek's
    cached_tokens: int = 0  # prompt tokens read from the cache, on top of the 5

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, or None")
        if self.limit_headers not in ("auto", None):
            raise ValueError('limit_headers must be "auto" or None')
        if not isinstance(self.tool_calls, int) or self.tool_calls < 1:
            raise ValueError("tool_calls must be a whole number of at least 1")
        if not isinstance(self.cached_tokens, int) or self.cached_tokens < 0:
            raise ValueError("cached_tokens must be a whole number, 0 or more")
