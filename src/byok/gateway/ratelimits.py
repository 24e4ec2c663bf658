"""What an upstream answer's headers say its key has left of its rate limits.

Providers tell, on every answer and not only on a 429, how much of each limit
remains and when it will be whole again.  Two families of headers:

    OpenAI (and the OpenAI-compatible servers that copy it: Groq, Together,
    vLLM, Azure ...):
        x-ratelimit-limit-requests      x-ratelimit-limit-tokens
        x-ratelimit-remaining-requests  x-ratelimit-remaining-tokens
        x-ratelimit-reset-requests      x-ratelimit-reset-tokens
    resets are durations (``1s``, ``6m0s``, ``20ms``, Groq's ``2m59.56s``) or
    a bare number of seconds, which past 1e9 is an epoch time instead.  Azure
    sends the two ``remaining`` headers alone.

    Anthropic:
        anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}
    resets are RFC 3339 times, read against the wall clock the caller passes.

`headroom()` folds either family into one `Headroom` of six fields; a field
whose header is missing or unreadable (negative, NaN, not a number) is None,
and nothing raises.  It runs on every upstream answer, most of which (a local
server's) carry none of these headers: one pass over the headers, a set
lookup per name (measured cheaper than a prefix test: the names arrive as
fresh strings, and startswith costs more than hashing one), nothing more
when none matched.  The parsers of durations, numbers and timestamps are the
ones that read a 429's delay (outcomes.py).

providers.py's ``rate_limits`` families list (remaining, reset) pairs only,
for the 429 delay; the limits, and Anthropic's choice between its token
families, are this module's alone, so it names its headers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .outcomes import parse_duration, parse_timestamp


@dataclass(frozen=True, slots=True)
class Headroom:
    """What one answer says its key has left; None: it did not say (readably)."""

    requests_remaining: int | None
    requests_limit: int | None
    requests_reset: float | None  # seconds from now until the limit is whole again (>= 0)
    tokens_remaining: int | None
    tokens_limit: int | None
    tokens_reset: float | None


# (remaining, limit, reset) of each limit, by family
_OPENAI = {
    "requests": (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-requests",
        "x-ratelimit-reset-requests",
    ),
    "tokens": (
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-reset-tokens",
    ),
}
# Anthropic's tokens-* family is, in its docs' words, "the most restrictive
# limit currently in effect", input and output together.  Without it, the
# input-tokens family binds: output tokens are charged up front from the
# request's max_tokens (and corrected at its end), so their limit is seldom
# the one that stops a request, and it is not read.
_ANTHROPIC = {
    limit: (
        f"anthropic-ratelimit-{limit}-remaining",
        f"anthropic-ratelimit-{limit}-limit",
        f"anthropic-ratelimit-{limit}-reset",
    )
    for limit in ("requests", "tokens", "input-tokens")
}
_KNOWN = frozenset(
    name for family in (_OPENAI, _ANTHROPIC) for names in family.values() for name in names
)
_ANTHROPIC_TOKENS = frozenset(_ANTHROPIC["tokens"])
_EPOCH = 1e9  # a bare reset past this many seconds (31 years) is an epoch time
_FOREVER = float("inf")


def headroom(headers: Iterable[tuple[str, str]], wall: float) -> Headroom | None:
    """What an answer's headers (lower-cased names, as the upstream client
    gives them) say its key has left; `wall` is time.time(), for the resets
    given as times.  None when the answer carries none of the headers read here."""
    found: dict[str, str] | None = None
    for name, value in headers:
        if name in _KNOWN:
            if found is None:
                found = {}
            found[name] = value
    if found is None:
        return None
    get = found.get
    tokens = "tokens" if not _ANTHROPIC_TOKENS.isdisjoint(found) else "input-tokens"
    return Headroom(
        *_limit(get, _OPENAI["requests"], _ANTHROPIC["requests"], wall),
        *_limit(get, _OPENAI["tokens"], _ANTHROPIC[tokens], wall),
    )


def _limit(
    get: Callable[[str], str | None],
    openai: tuple[str, str, str],
    anthropic: tuple[str, str, str],
    wall: float,
) -> tuple[int | None, int | None, float | None]:
    """One limit's (remaining, limit, reset), from the OpenAI family's headers,
    else from the Anthropic family's (an answer carries one family)."""
    return (
        _count(get(openai[0]) or get(anthropic[0])),
        _count(get(openai[1]) or get(anthropic[1])),
        _reset(get(openai[2]), get(anthropic[2]), wall),
    )


def _count(raw: str | None) -> int | None:
    # counts are whole numbers: int() reads them at a third of parse_number's
    # cost, and refuses the rest (a fraction, NaN, words) as garbage
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None  # Azure sends -1 where it has no figure


def _reset(duration: str | None, timestamp: str | None, wall: float) -> float | None:
    """Seconds until a limit is whole again: from OpenAI's duration if there is
    one, else from Anthropic's time; one already past is 0."""
    if duration is not None:
        seconds = parse_duration(duration, wall)
        if seconds is None or not 0 <= seconds < _FOREVER:
            return None  # a negative duration, or one of 400 digits
        return max(seconds - wall, 0.0) if seconds > _EPOCH else seconds
    seconds = parse_timestamp(timestamp, wall)
    return None if seconds is None else max(seconds, 0.0)
