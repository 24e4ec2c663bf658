"""What an upstream answer means for the key that produced it.

    2xx                       success
    429                       rate_limited, with the delay the upstream gave
    401, 403                  blocked: the key is refused until an operator acts
    408, 5xx, 529, no answer  error: counts toward the circuit breaker
    other 4xx                 client_error: the request's fault; passed back
                              to the client untouched, no key penalised, no retry

The delay of a 429 comes from, in order: ``retry-after-ms``, ``retry-after``
(seconds or an HTTP date), then the providers' reset headers for whichever
limit is exhausted (OpenAI's ``x-ratelimit-reset-*`` durations such as
``6m0s``, Anthropic's ``anthropic-ratelimit-*-reset`` timestamps).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

SUCCESS, RATE_LIMITED, BLOCKED, ERROR, CLIENT_ERROR = (
    "success",
    "rate_limited",
    "blocked",
    "error",
    "client_error",
)
MAX_DELAY = 24 * 3600.0  # a reset further away than a day is not believed


@dataclass(frozen=True)
class Outcome:
    kind: str
    retry_after: float | None = None  # seconds, for rate_limited

    @property
    def retryable(self) -> bool:
        return self.kind in (RATE_LIMITED, BLOCKED, ERROR)


def classify(status: int, headers: Mapping[str, str], now: float | None = None) -> Outcome:
    if 200 <= status < 300:
        return Outcome(SUCCESS)
    if status == 429:
        return Outcome(RATE_LIMITED, rate_limit_delay(headers, now))
    if status in (401, 403):
        return Outcome(BLOCKED)
    if status == 408 or status >= 500:
        return Outcome(ERROR)
    return Outcome(CLIENT_ERROR)


def rate_limit_delay(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the upstream says to come back; None if it does not say."""
    wall = time.time() if now is None else now
    for parse in (_retry_after_ms, _retry_after, _openai_reset, _anthropic_reset):
        delay = parse(headers, wall)
        if delay is not None:
            return min(max(delay, 0.0), MAX_DELAY)
    return None


def _retry_after_ms(headers: Mapping[str, str], wall: float) -> float | None:
    value = _number(headers.get("retry-after-ms"))
    return None if value is None else value / 1000


def _retry_after(headers: Mapping[str, str], wall: float) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - wall


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _openai_reset(headers: Mapping[str, str], wall: float) -> float | None:
    return _exhausted_first(
        headers,
        [
            ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
            ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        ],
        _duration,
        wall,
    )


def _anthropic_reset(headers: Mapping[str, str], wall: float) -> float | None:
    limits = ("requests", "tokens", "input-tokens", "output-tokens")
    return _exhausted_first(
        headers,
        [
            (f"anthropic-ratelimit-{name}-remaining", f"anthropic-ratelimit-{name}-reset")
            for name in limits
        ],
        _timestamp,
        wall,
    )


def _exhausted_first(
    headers: Mapping[str, str],
    pairs: list[tuple[str, str]],
    parse: Callable[[str | None, float], float | None],
    wall: float,
) -> float | None:
    """The longest reset among exhausted limits, else the shortest of all."""
    exhausted: list[float] = []
    others: list[float] = []
    for remaining, reset in pairs:
        delay = parse(headers.get(reset), wall)
        if delay is None:
            continue
        (exhausted if headers.get(remaining, "").strip() == "0" else others).append(delay)
    if exhausted:
        return max(exhausted)
    return min(others) if others else None


def _duration(raw: str | None, wall: float) -> float | None:
    if not raw:
        return None
    raw = raw.strip()
    parts = _DURATION.findall(raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        return _number(raw)
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _timestamp(raw: str | None, wall: float) -> float | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - wall


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value == value and value != float("inf") else None
