"""What an upstream attempt's result means for the key that produced it.

    2xx                        success
    429                        rate_limited, with the delay the upstream gave
                               (None: it gave none, and backoff applies)
    401, 403                   blocked: refused until re-validated or restored
    408, 5xx, 529, 3xx         error: counts toward the circuit breaker (byok
                               follows no redirect: an API that sends one is
                               misconfigured or failing)
    no answer                  error: refused or reset connection, a
                               malformed or oversized answer, a timeout, a
                               stream that broke before it ended cleanly;
                               none at all when the failure was byok's own
    other 4xx                  client_error: the request's fault; passed back
                               to the client (redacted), no key penalised, no retry

The delay of a 429 comes from, in order: a subscription's spent quota
window, ``retry-after-ms``, ``retry-after`` (seconds or an HTTP date), then
the providers' reset headers for whichever limit is exhausted (OpenAI's
``x-ratelimit-reset-*`` durations such as ``6m0s``, Anthropic's
``anthropic-ratelimit-*-reset`` timestamps).  Dates and timestamps are read
against the wall clock, which the caller passes in.

Quota windows.  A subscription account (Claude's, ChatGPT's through the
Codex backend) is limited over windows of hours and days, and its 429 says
which window is spent and when it resets:

    anthropic-ratelimit-unified-status: rejected
    anthropic-ratelimit-unified-reset: 1800018000          (epoch seconds)
    anthropic-ratelimit-unified-representative-claim: five_hour
    anthropic-ratelimit-unified-{5h,7d,...}-status / -reset  (each window)

    x-codex-{primary,secondary}-used-percent: 100
    x-codex-{primary,secondary}-reset-after-seconds (or -reset-at, epoch)
    x-codex-{primary,secondary}-window-minutes: 300 | 10080

The key then cools until the window resets (the longest of the spent ones:
all must be whole again), whatever a shorter retry-after says, since every
request before then would be refused too; the outcome names the window.
A window's reset is believed up to 8 days away, a rate limit's up to one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum

from ..providers import KINDS


class Kind(str, Enum):
    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"
    BLOCKED = "blocked"
    ERROR = "error"
    CLIENT_ERROR = "client_error"


# Transport failures (UpstreamError.kind) that are byok's own doing, not the
# key's: no file descriptor left, a URL byok cannot send to.
BYOK_OWN_FAILURES = frozenset({"local", "invalid"})
MAX_DELAY = 24 * 3600.0  # a reset further away than a day is not believed
MAX_WINDOW_DELAY = 8 * 24 * 3600.0  # ... but a weekly quota window's is
_UNIFIED = "anthropic-ratelimit-unified-"
_WINDOW_NAME = re.compile(r"\d+[mhd](?:_[a-z0-9_]+)?")  # 5h, 7d, 7d_opus


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    retry_after: float | None = None  # seconds, for rate_limited
    status: int | None = None  # the upstream's HTTP status; None: no HTTP answer
    timed_out: bool = False  # something actually timed out (a reset is not a timeout)
    detail: str = ""  # why, for the operator and the client's error message
    window: str | None = None  # a 429's spent quota window ("five_hour", "7d"), if it said
    # a short-lived key's token could not be had: its reason is the operator's
    # (a file, a command's error), never the client's
    credential: bool = False


def classify(status: int, headers: Iterable[tuple[str, str]], wall: float) -> Outcome:
    """The outcome of an HTTP answer, from its status and headers (lower-cased
    names, as they came); `wall` is time.time(), for the delay headers that
    carry dates.  Only a 429's headers are read."""
    found = _SUCCESSES.get(status)
    if found is not None:  # the common case, shared (an Outcome is frozen)
        return found
    if status == 429:
        named = dict(headers)
        spent = quota_window(named, wall)
        if spent is not None:
            window, delay = spent
            return Outcome(Kind.RATE_LIMITED, delay, status, window=window)
        return Outcome(Kind.RATE_LIMITED, rate_limit_delay(named, wall), status)
    if status in (401, 403):
        return Outcome(Kind.BLOCKED, status=status)
    if status == 408 or status >= 500 or status < 400:
        return Outcome(Kind.ERROR, status=status)
    return Outcome(Kind.CLIENT_ERROR, status=status)


_SUCCESSES = {status: Outcome(Kind.SUCCESS, status=status) for status in range(200, 300)}
_RESET_FAMILIES = tuple(dict.fromkeys(kind.rate_limits for kind in KINDS.values()))


def failure(detail: str, *, timed_out: bool = False) -> Outcome:
    """An attempt that got no usable HTTP answer: the key's failure."""
    return Outcome(Kind.ERROR, timed_out=timed_out, detail=detail)


def rate_limit_delay(headers: Mapping[str, str], wall: float) -> float | None:
    """Seconds until the upstream says to come back; None if it does not say."""
    for parse in (_retry_after_ms, _retry_after, _provider_reset):
        delay = parse(headers, wall)
        if delay is not None:
            return min(max(delay, 0.0), MAX_DELAY)
    return None


def quota_window(headers: Mapping[str, str], wall: float) -> tuple[str, float] | None:
    """The spent quota window a subscription's 429 names, and the seconds
    until it resets (the longest of those spent); None if it names none."""
    spent = _anthropic_window(headers, wall) or _codex_window(headers, wall)
    if spent is None:
        return None
    window, delay = spent
    return window, min(max(delay, 0.0), MAX_WINDOW_DELAY)


def _anthropic_window(headers: Mapping[str, str], wall: float) -> tuple[str, float] | None:
    windows = []
    for name, value in headers.items():
        if not name.startswith(_UNIFIED) or not name.endswith("-status"):
            continue
        # a window's own status: 5h, 7d, 7d_opus (not overage, fallback: not windows)
        window = name[len(_UNIFIED) : -len("-status")]
        if _WINDOW_NAME.fullmatch(window) and value.strip().lower() == "rejected":
            reset = _epoch(headers.get(f"{_UNIFIED}{window}-reset"), wall)
            if reset is not None and reset > 0:
                windows.append((reset, window))
    if headers.get(f"{_UNIFIED}status", "").strip().lower() == "rejected":
        reset = _epoch(headers.get(f"{_UNIFIED}reset"), wall)
        claim = headers.get(f"{_UNIFIED}representative-claim", "").strip()
        if reset is not None and reset > 0:
            windows.append((reset, claim or "unified"))
    if not windows:
        return None  # none spent, or each already reset: the other headers say
    reset, window = max(windows)
    return window, reset


def _codex_window(headers: Mapping[str, str], wall: float) -> tuple[str, float] | None:
    windows = []
    for which in ("primary", "secondary"):
        used = _number(headers.get(f"x-codex-{which}-used-percent"))
        if used is None or used < 100:
            continue
        reset = _number(headers.get(f"x-codex-{which}-reset-after-seconds"))
        if reset is None:
            reset = _epoch(headers.get(f"x-codex-{which}-reset-at"), wall)
        if reset is None or reset <= 0:
            continue
        minutes = _number(headers.get(f"x-codex-{which}-window-minutes"))
        windows.append((reset, which if minutes is None else _length(minutes)))
    if not windows:
        return None
    reset, window = max(windows)
    return window, reset


def _epoch(raw: str | None, wall: float) -> float | None:
    """Seconds from `wall` to an epoch time (seconds, or milliseconds past
    1e11) or an RFC 3339 time."""
    value = _number(raw)
    if value is None:
        return parse_timestamp(raw, wall)
    return (value / 1000 if value > 1e11 else value) - wall


def _length(minutes: float) -> str:
    """A window's length as people say it: 5h, 7d, 90m."""
    if minutes % 1440 == 0:
        return f"{minutes / 1440:g}d"
    if minutes % 60 == 0:
        return f"{minutes / 60:g}h"
    return f"{minutes:g}m"


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


# Go's time.Duration as OpenAI writes it: hours, minutes, seconds in that
# order (6m0s, 1h2m3.5s), or milliseconds (20ms); one match, no loop, as this
# runs on every answer (ratelimits.py)
_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUMBER}h)?(?:{_NUMBER}m(?!s))?(?:{_NUMBER}s)?(?:{_NUMBER}ms)?")


def _provider_reset(headers: Mapping[str, str], wall: float) -> float | None:
    # every kind's reset headers, whoever answered: an OpenAI-compatible
    # server may send either family
    for family in _RESET_FAMILIES:
        read = parse_duration if family.reset_format == "duration" else parse_timestamp
        delay = _exhausted_first(headers, family.limits, read, wall)
        if delay is not None:
            return delay
    return None


def _exhausted_first(
    headers: Mapping[str, str],
    pairs: Iterable[tuple[str, str]],
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


def parse_duration(raw: str | None, wall: float) -> float | None:
    """Seconds in an OpenAI-style duration (``6m0s``, ``20ms``) or a bare number;
    None if it is neither.  `wall` is unused: every reset parser takes it."""
    if not raw:
        return None
    raw = raw.strip()
    if raw.endswith("s"):  # 20ms or 1s, as most resets read: no regex needed
        per_second = 1000 if raw.endswith("ms") else 1
        number = raw[:-2] if per_second == 1000 else raw[:-1]
        if number.isdecimal():
            return int(number) / per_second
    found = _DURATION.fullmatch(raw)
    if found is None or found.lastindex is None:  # no unit: a bare number, or nothing
        return _number(raw)
    hours, minutes, whole, millis = found.groups()
    seconds = float(whole) if whole else 0.0
    if millis:
        seconds += float(millis) / 1000
    if minutes:
        seconds += float(minutes) * 60
    if hours:
        seconds += float(hours) * 3600
    return seconds


def parse_timestamp(raw: str | None, wall: float) -> float | None:
    """Seconds from `wall` (time.time()) to an RFC 3339 time (negative: past);
    None if it is not one."""
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
