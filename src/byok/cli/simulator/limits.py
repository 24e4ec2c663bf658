"""A key's rpm and tpm, enforced as providers enforce them, and told in the
headers of the endpoint's provider.

One token bucket per limit and key, of the limit's size, refilled
continuously (a sixtieth of it a second) on trio's clock, so that tests
under MockClock see minutes pass in virtual time.  A request costs one
request and the tokens OpenAI charges at admission: its prompt's characters
/ 4, rounded up, plus its max_tokens (``DEFAULT_MAX_TOKENS`` when it names
none).  A request that does not fit gets a 429 (``retry-after``: whole
seconds until it would fit) and takes nothing.  Answers advertise the buckets
as the endpoint's provider does: what is left after this request, and when
the bucket will be full again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...http.server import Response
from .errors import JSON, error_body

# Charged for the answer of a request that names no max_tokens (OpenAI charges
# the model's whole output allowance then; a fixed figure keeps tests simple).
DEFAULT_MAX_TOKENS = 256
_EPSILON = 1e-9  # float slack: a bucket refilled to 0.9999999999 holds 1
_PROMPT_KEYS = ("messages", "system", "prompt", "input", "instructions")
_ANTHROPIC_TOKEN_FAMILIES = ("tokens", "input-tokens", "output-tokens")


def estimated_tokens(path: str, body: dict[str, Any]) -> int:
    """The tokens a request is charged at admission, as OpenAI counts them:
    its prompt's characters / 4, rounded up, and the most its answer may
    take (none for embeddings and token counts, which answer no text)."""
    prompt = -(-sum(_text_length(body.get(key)) for key in _PROMPT_KEYS) // 4)
    if path in ("/v1/embeddings", "/v1/messages/count_tokens"):
        return prompt
    most = body.get("max_tokens") or body.get("max_completion_tokens")
    most = most or body.get("max_output_tokens")  # the Responses API's name
    return prompt + (most if isinstance(most, int) and most > 0 else DEFAULT_MAX_TOKENS)


def _text_length(value: Any) -> int:
    """The characters of text in a prompt: strings, messages' content, text
    parts, lists of these (images and tool calls count for nothing)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return _text_length(value.get("content")) + _text_length(value.get("text"))
    return 0


@dataclass
class Bucket:
    """One limit of one key: `capacity` a minute, refilled continuously (a
    sixtieth of it a second) up to `capacity`, full at first."""

    capacity: int
    level: float
    at: float  # trio's clock when `level` was right

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.capacity / 60)
        self.at = now

    def wait(self, cost: int) -> float:
        """Seconds until `cost` fits: 0 now, inf never (more than it holds)."""
        if cost <= self.level + _EPSILON:
            return 0.0
        if cost > self.capacity:
            return math.inf
        return (cost - self.level) * 60 / self.capacity

    def take(self, cost: int) -> None:
        self.level -= cost

    def until_full(self) -> float:
        return max(self.capacity - self.level, 0.0) * 60 / self.capacity


@dataclass
class Buckets:
    """Every key's buckets."""

    _buckets: dict[tuple[str, str], Bucket] = field(default_factory=dict)

    def admit(
        self,
        secret: str,
        limits: tuple[int | None, int | None],
        advertise: bool,
        dialect: str,
        tokens: int,
        now: float,
    ) -> Response | list[tuple[str, str]]:
        """Charge a request of `tokens` to its key's (rpm, tpm) buckets: the
        headers its answer carries; or, when it does not fit, the 429 to
        send, having taken nothing."""
        rpm, tpm = limits
        charges = [
            (kind, self._bucket(secret, kind, limit, now), cost)
            for kind, limit, cost in (("requests", rpm, 1), ("tokens", tpm, tokens))
            if limit is not None
        ]
        kind, bucket, cost = max(charges, key=lambda charge: charge[1].wait(charge[2]))
        wait = bucket.wait(cost)
        if wait > 0:
            per = f"{kind} per min ({'RPM' if kind == 'requests' else 'TPM'})"
            if wait == math.inf:  # never: more than the whole bucket
                message, delay = f"Request too large for {per}", []
            else:
                message = f"Rate limit reached for {per}"
                delay = [("retry-after", str(max(1, math.ceil(wait - _EPSILON))))]
            message += f": Limit {bucket.capacity}, Requested {cost}."
            headers = [*JSON, *delay]
            if advertise:
                headers += limit_headers(dialect, charges)
            return Response(429, headers, error_body(dialect, 429, message))
        for _, bucket, cost in charges:
            bucket.take(cost)
        headers = [("x-sim-charged-tokens", str(tokens))]
        if advertise:  # what is left once this request is in
            headers += limit_headers(dialect, charges)
        return headers

    def _bucket(self, secret: str, kind: str, capacity: int, now: float) -> Bucket:
        bucket = self._buckets.get((secret, kind))
        if bucket is None:
            bucket = self._buckets[secret, kind] = Bucket(capacity, capacity, now)
        bucket.refill(now)
        if bucket.capacity != capacity:  # set() changed the limit: what is left stays
            bucket.capacity = capacity
            bucket.level = min(bucket.level, capacity)
        return bucket


def limit_headers(dialect: str, charges: list[tuple[str, Bucket, int]]) -> list[tuple[str, str]]:
    """The buckets as the endpoint's provider tells them: limit, what is left
    (whole units, rounded down) and when it is full again."""
    headers: list[tuple[str, str]] = []
    for kind, bucket, _ in charges:
        limit = str(bucket.capacity)
        remaining = str(math.floor(bucket.level + _EPSILON))
        full_in = bucket.until_full()  # seconds on trio's clock, which may be a MockClock
        if dialect == "anthropic":
            # a wall-clock time, whole seconds rounded up as Anthropic sends them;
            # the one token bucket stands for the total and the input and
            # output limits alike (Anthropic rounds tokens to thousands: not here)
            when = datetime.fromtimestamp(math.ceil(time.time() + full_in), timezone.utc)
            reset = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            families = ("requests",) if kind == "requests" else _ANTHROPIC_TOKEN_FAMILIES
            for family in families:
                headers += [
                    (f"anthropic-ratelimit-{family}-limit", limit),
                    (f"anthropic-ratelimit-{family}-remaining", remaining),
                    (f"anthropic-ratelimit-{family}-reset", reset),
                ]
        else:
            headers += [
                (f"x-ratelimit-limit-{kind}", limit),
                (f"x-ratelimit-remaining-{kind}", remaining),
                (f"x-ratelimit-reset-{kind}", go_duration(full_in)),
            ]
    return headers


def go_duration(seconds: float) -> str:
    """`seconds` as OpenAI writes a reset (Go's time.Duration), to the
    millisecond rounded up: 20ms, 1s, 7.66s, 6m0s, 1h2m3.5s."""
    millis = math.ceil(seconds * 1000 - 1e-6)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text
