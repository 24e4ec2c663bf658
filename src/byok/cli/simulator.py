"""A simulated upstream that speaks the OpenAI and Anthropic APIs over real HTTP.

The tests and ``byok demo`` run it on loopback.  Each key it accepts has a
behaviour that can be changed while it runs: answer normally, rate-limit
(429 with its delay in any of the headers providers use, or none; always or
every n-th request), refuse (401, 403), fail (500, or Anthropic's 529),
answer slowly, hang, trickle, reset the connection before answering, answer a
stream's head and then reset, drop a stream in the middle, or send a head
too large to read.  It records what it saw (key, path, model, stream,
headers, body) and how many requests were cancelled by their client, so a
test can prove that a disconnect reached the upstream.

Like OpenAI, an OpenAI-style stream tells its usage only when asked
(``stream_options.include_usage``): then every chunk carries
``"usage":null`` and a last chunk, with no choices, the usage; and
``stream_options`` without ``"stream": true`` is refused.

A key may have the limits a provider puts on it (``rpm``, ``tpm``), enforced
as providers do: a token bucket per limit and key, of the limit's size,
refilled continuously (a sixtieth of it a second) on trio's clock, so that
tests under MockClock see minutes pass in virtual time.  A request costs one
request and the tokens OpenAI charges at admission: its prompt's characters
/ 4, rounded up, plus its max_tokens (``DEFAULT_MAX_TOKENS`` when it names
none); it says what it was charged in ``x-sim-charged-tokens``.  A request
that does not fit gets a 429 (``retry-after``: whole seconds until it would
fit) and takes nothing.  Answers advertise the buckets as the endpoint's
provider does (``limit_headers="auto"``): what is left after this request,
and when the bucket will be full again.
"""

from __future__ import annotations

import gzip
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any

import msgspec
import trio

from ..http.server import AbortConnection, Request, Response

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]


@dataclass
class Behaviour:
    # ok | 429 | 401 | 403 | 500 | 529 | hang | reset | head_then_reset | drop
    # | trickle | huge_headers | echo_400 (a 400 that echoes the credential)
    mode: str = "ok"
    retry_after: float | None = 1.0  # for 429; None sends no delay at all
    # where a 429's delay goes: retry-after | retry-after-ms | http-date
    # | openai-reset (x-ratelimit-reset-requests) | anthropic-reset
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

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, or None")
        if self.limit_headers not in ("auto", None):
            raise ValueError('limit_headers must be "auto" or None')


@dataclass
class Seen:
    key: str
    path: str
    model: str
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # trio's clock, when it arrived
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatedUpstream:
    keys: dict[str, Behaviour] = field(default_factory=dict)  # secret -> behaviour
    names: dict[str, str] = field(default_factory=dict)  # secret -> a name for answers
    seen: list[Seen] = field(default_factory=list)
    cancelled: int = 0  # requests whose client went away before the answer ended
    rate_limited: int = 0  # 429s sent for a key's rpm or tpm, all keys together
    _count: dict[str, int] = field(default_factory=dict)
    _limited: dict[str, int] = field(default_factory=dict)  # secret -> such 429s
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def add_key(self, secret: str, name: str = "", **behaviour: Any) -> None:
        self.keys[secret] = Behaviour(**behaviour)
        self.names[secret] = name or secret[-4:]

    def set(self, secret: str, **behaviour: Any) -> None:
        """Change a key's behaviour; unnamed fields go back to their defaults."""
        self.keys[secret] = Behaviour(**behaviour)

    def requests_for(self, secret: str) -> int:
        return sum(1 for s in self.seen if s.key == secret)

    def rate_limited_count(self, secret: str) -> int:
        """The 429s `secret` got for its rpm or tpm (not those of mode="429")."""
        return self._limited.get(secret, 0)

    async def __call__(self, request: Request) -> Response:
        path = request.path
        listing = request.method == "GET" and path.rstrip("/").endswith("/models")
        # Both APIs list models at /v1/models; Anthropic's clients send anthropic-version.
        anthropic = path.startswith("/v1/messages") or (
            listing and bool(request.header("anthropic-version"))
        )
        dialect = "anthropic" if anthropic else "openai"
        secret = request.header("x-api-key")
        bearer = request.header("authorization")
        if bearer.lower().startswith("bearer "):
            secret = secret or bearer[7:]
        behaviour = self.keys.get(secret)
        if behaviour is None:
            return _error(
                dialect,
                401,
                # as some OpenAI-compatible servers do, the key comes back in
                # the message: byok must keep it out of everything it shows
                "invalid x-api-key"
                if dialect == "anthropic"
                else f"Incorrect API key provided: {secret}",
            )
        if listing:  # not in `seen`, which counts the requests that spend tokens
            return await self._listing(dialect, behaviour)
        try:
            body = msgspec.json.decode(request.body)
        except msgspec.DecodeError:
            return _error(dialect, 400, "body is not JSON")
        if not isinstance(body, dict):
            return _error(dialect, 400, "body is not a JSON object")
        model = str(body.get("model", ""))
        stream = bool(body.get("stream", False))
        seen = Seen(secret, path, model, stream, dict(request.headers), trio.current_time(), body)
        self.seen.append(seen)
        options = body.get("stream_options")
        if options is not None and not stream:  # OpenAI's own rule and words
            message = "The 'stream_options' parameter is only allowed when 'stream' is enabled."
            return _error(dialect, 400, message)
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        limits: list[tuple[str, str]] = []  # the headers that tell this key's limits
        if behaviour.rpm is not None or behaviour.tpm is not None:
            admitted = self._admit(secret, behaviour, dialect, path, body)
            if isinstance(admitted, Response):
                return admitted
            limits = admitted
        n = self._count[secret] = self._count.get(secret, 0) + 1
        if behaviour.delay:
            await self._wait(behaviour.delay)
        failing = n % behaviour.every == 0
        if behaviour.mode == "hang":
            await self._wait(3600)
        if behaviour.mode == "reset" and failing:
            raise AbortConnection()  # no answer at all: a reset before the head
        if behaviour.mode == "huge_headers":
            junk = [(f"x-junk-{i}", "j" * 8000) for i in range(256)]  # 2 MB of head
            return Response(200, [*JSON, *junk], b"{}")
        if behaviour.mode == "echo_400":
            # as careless servers do: the credential comes back in the error
            credential = request.header("authorization") or request.header("x-api-key")
            body = _error_body(dialect, 400, f"bad request sent with {credential}")
            headers = [*JSON, ("x-debug-auth", credential)]
            if behaviour.gzip and "gzip" in request.header("accept-encoding"):
                headers.append(("content-encoding", "gzip"))
                body = gzip.compress(body)
            return Response(400, headers, body)
        failure = _failure(dialect, behaviour, failing)
        if failure is not None:
            return failure
        text = f"Hello from {self.names.get(secret, 'sim')}".split() + ["word"] * max(
            behaviour.chunks - 3, 0
        )
        answer = _Answer(next(self._ids), model, text, dialect, path, include_usage)
        if not stream:
            # like the providers, an id of its own for every answer
            headers = [*JSON, ("x-request-id", f"req_sim_{answer.number}"), *limits]
            body = msgspec.json.encode(answer.whole())
            if behaviour.gzip and "gzip" in request.header("accept-encoding"):
                headers.append(("content-encoding", "gzip"))
                body = gzip.compress(body)
            return Response(200, headers, body)
        return Response(200, [*SSE, *limits], self._stream(answer, behaviour, failing))

    def _admit(
        self, secret: str, behaviour: Behaviour, dialect: str, path: str, body: dict[str, Any]
    ) -> Response | list[tuple[str, str]]:
        """Charge a request to its key's buckets: the headers its answer
        carries; or, when it does not fit, the 429 to send, having taken nothing."""
        now = trio.current_time()
        tokens = estimated_tokens(path, body)
        charges = [
            (kind, self._bucket(secret, kind, limit, now), cost)
            for kind, limit, cost in (
                ("requests", behaviour.rpm, 1),
                ("tokens", behaviour.tpm, tokens),
            )
            if limit is not None
        ]
        kind, bucket, cost = max(charges, key=lambda charge: charge[1].wait(charge[2]))
        wait = bucket.wait(cost)
        if wait > 0:
            self.rate_limited += 1
            self._limited[secret] = self._limited.get(secret, 0) + 1
            per = f"{kind} per min ({'RPM' if kind == 'requests' else 'TPM'})"
            if wait == math.inf:  # never: more than the whole bucket
                message, delay = f"Request too large for {per}", []
            else:
                message = f"Rate limit reached for {per}"
                delay = [("retry-after", str(max(1, math.ceil(wait - _EPSILON))))]
            message += f": Limit {bucket.capacity}, Requested {cost}."
            headers = [*JSON, *delay]
            if behaviour.limit_headers:
                headers += _limit_headers(dialect, charges)
            return Response(429, headers, _error_body(dialect, 429, message))
        for _, bucket, cost in charges:
            bucket.take(cost)
        headers = [("x-sim-charged-tokens", str(tokens))]
        if behaviour.limit_headers:  # what is left once this request is in
            headers += _limit_headers(dialect, charges)
        return headers

    def _bucket(self, secret: str, kind: str, capacity: int, now: float) -> _Bucket:
        bucket = self._buckets.get((secret, kind))
        if bucket is None:
            bucket = self._buckets[secret, kind] = _Bucket(capacity, capacity, now)
        bucket.refill(now)
        if bucket.capacity != capacity:  # set() changed the limit: what is left stays
            bucket.capacity = capacity
            bucket.level = min(bucket.level, capacity)
        return bucket

    async def _listing(self, dialect: str, behaviour: Behaviour) -> Response:
        """GET .../models: the key's behaviour, on every request (`every` is
        ignored), so that `byok keys check` sees what a chat request would."""
        if behaviour.delay:
            await self._wait(behaviour.delay)
        if behaviour.mode == "hang":
            await self._wait(3600)
        failure = _failure(dialect, behaviour, failing=True)
        if failure is not None:
            return failure
        return Response(200, JSON, msgspec.json.encode({"object": "list", "data": []}))

    async def _wait(self, seconds: float) -> None:
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.cancelled += 1
            raise

    async def _stream(
        self, answer: _Answer, behaviour: Behaviour, failing: bool
    ) -> AsyncIterator[bytes]:
        finished = False
        breaks = behaviour.mode in ("drop", "head_then_reset") and failing
        try:
            if behaviour.mode == "head_then_reset" and failing:
                yield b""  # the server sends the head now, alone
                await trio.sleep(0.01)
                raise AbortConnection()
            if behaviour.mode == "trickle":
                yield answer.events()[0]
                while True:  # a byte now and then, never the end
                    await trio.sleep(behaviour.chunk_delay or 1.0)
                    yield b": still thinking\n\n"
            for n, event in enumerate(answer.events()):
                if breaks and n >= behaviour.drop_after:
                    raise AbortConnection()
                size = behaviour.piece or len(event)
                for at in range(0, len(event), size):
                    if behaviour.chunk_delay and (n or at):
                        await trio.sleep(behaviour.chunk_delay)
                    yield event[at : at + size]
            finished = True
        finally:
            if not finished and not breaks:
                self.cancelled += 1


@dataclass
class _Answer:
    number: int
    model: str
    words: list[str]
    dialect: str
    path: str
    include_usage: bool = False  # an OpenAI stream's stream_options.include_usage

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": 5,
            "completion_tokens": len(self.words),
            "total_tokens": 5 + len(self.words),
        }

    def whole(self) -> dict[str, Any]:
        created = int(time.time())
        if self.path == "/v1/messages/count_tokens":
            return {"input_tokens": 5}
        if self.dialect == "anthropic":
            return {
                "id": f"msg_sim_{self.number}",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [{"type": "text", "text": self.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": len(self.words)},
            }
        if self.path == "/v1/embeddings":
            return {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": self.model,
                "usage": {"prompt_tokens": 5, "total_tokens": 5},
            }
        if self.path == "/v1/completions":
            return {
                "id": f"cmpl-sim-{self.number}",
                "object": "text_completion",
                "created": created,
                "model": self.model,
                "choices": [
                    {"index": 0, "text": self.text, "finish_reason": "stop", "logprobs": None}
                ],
                "usage": self.usage(),
            }
        if self.path == "/v1/responses":
            return {
                "id": f"resp_sim_{self.number}",
                "object": "response",
                "created_at": created,
                "model": self.model,
                "status": "completed",
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_sim_{self.number}",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": self.text, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": len(self.words),
                    "total_tokens": 5 + len(self.words),
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            }
        return {
            "id": f"chatcmpl-sim-{self.number}",
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
        }

    def events(self) -> list[bytes]:
        if self.dialect == "anthropic":
            return self._anthropic_events()
        completions = self.path == "/v1/completions"
        base: dict[str, Any] = {
            "id": f"{'cmpl' if completions else 'chatcmpl'}-sim-{self.number}",
            "object": "text_completion" if completions else "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }
        if self.include_usage:
            base["usage"] = None  # on every chunk but the last, as OpenAI sends it
        choices: list[dict[str, Any]] = []
        for n, word in enumerate(self.words):
            piece = word if n == 0 else " " + word
            if completions:
                choices.append({"index": 0, "text": piece, "finish_reason": None, "logprobs": None})
            else:
                delta = {"role": "assistant", "content": piece} if n == 0 else {"content": piece}
                choices.append({"index": 0, "delta": delta, "finish_reason": None})
        if completions:
            choices.append({"index": 0, "text": "", "finish_reason": "stop", "logprobs": None})
        else:
            choices.append({"index": 0, "delta": {}, "finish_reason": "stop"})
        events = [_sse({**base, "choices": [choice]}) for choice in choices]
        if self.include_usage:
            events.append(_sse({**base, "choices": [], "usage": self.usage()}))
        events.append(b"data: [DONE]\n\n")
        return events

    def _anthropic_events(self) -> list[bytes]:
        message: dict[str, Any] = {
            "id": f"msg_sim_{self.number}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        events = [
            _sse({"type": "message_start", "message": message}, "message_start"),
            _sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            ),
        ]
        for n, word in enumerate(self.words):
            delta = {"type": "text_delta", "text": word if n == 0 else " " + word}
            events.append(
                _sse(
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                    "content_block_delta",
                )
            )
        events += [
            _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(self.words)},
                },
                "message_delta",
            ),
            _sse({"type": "message_stop"}, "message_stop"),
        ]
        return events


# Charged for the answer of a request that names no max_tokens (OpenAI charges
# the model's whole output allowance then; a fixed figure keeps tests simple).
DEFAULT_MAX_TOKENS = 256
_EPSILON = 1e-9  # float slack: a bucket refilled to 0.9999999999 holds 1
_PROMPT_KEYS = ("messages", "system", "prompt", "input", "instructions")


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
class _Bucket:
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


def _limit_headers(dialect: str, charges: list[tuple[str, _Bucket, int]]) -> list[tuple[str, str]]:
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
                (f"x-ratelimit-reset-{kind}", _go_duration(full_in)),
            ]
    return headers


_ANTHROPIC_TOKEN_FAMILIES = ("tokens", "input-tokens", "output-tokens")


def _go_duration(seconds: float) -> str:
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


def _failure(dialect: str, behaviour: Behaviour, failing: bool) -> Response | None:
    """The error answer of a key that rate-limits, was revoked or fails; else None."""
    if behaviour.mode == "429" and failing:
        headers = list(JSON)
        if behaviour.retry_after is not None:
            headers += _delay_headers(behaviour.delay_header, behaviour.retry_after)
        return Response(429, headers, _error_body(dialect, 429, "Rate limit reached"))
    if behaviour.mode == "401":
        return _error(dialect, 401, "key revoked")
    if behaviour.mode == "403":
        return _error(dialect, 403, "this key may not use this model")
    if behaviour.mode in ("500", "529") and failing:
        status = int(behaviour.mode)
        return _error(dialect, status, "simulated server error" if status == 500 else "Overloaded")
    return None


def _delay_headers(where: str, seconds: float) -> list[tuple[str, str]]:
    """A 429's delay, the way one provider or another says it."""
    if where == "retry-after-ms":
        return [("retry-after-ms", f"{seconds * 1000:g}")]
    if where == "http-date":
        return [("retry-after", formatdate(time.time() + seconds, usegmt=True))]
    if where == "openai-reset":
        return [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", f"{seconds:g}s"),
            ("x-ratelimit-remaining-tokens", "9000"),
            ("x-ratelimit-reset-tokens", "1ms"),
        ]
    if where == "anthropic-reset":
        when = datetime.fromtimestamp(time.time() + seconds, timezone.utc)
        return [
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", when.isoformat().replace("+00:00", "Z")),
        ]
    return [("retry-after", f"{seconds:g}")]


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + msgspec.json.encode(data) + b"\n\n"


def _error_body(dialect: str, status: int, message: str) -> bytes:
    if dialect == "anthropic":
        kind = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(
            status, "api_error"
        )
        return msgspec.json.encode({"type": "error", "error": {"type": kind, "message": message}})
    kind = {401: "invalid_request_error", 429: "requests"}.get(status, "server_error")
    return msgspec.json.encode(
        {"error": {"message": message, "type": kind, "param": None, "code": None}}
    )


def _error(dialect: str, status: int, message: str) -> Response:
    return Response(status, list(JSON), _error_body(dialect, status, message))
