"""The simulated upstream: one HTTP app that answers as the key it is called
with is set to behave, in the dialects it is told to speak.

A request goes through, in order: the key (unknown: 401), the route (one of
a dialect it does not speak: 404), the body (not a JSON object: 400), the
request's shape (refused as the real API refuses it: 400; not for a key in
mode ``echo_400``, a careless server), the key's rpm and tpm (429), then the
key's behaviour (delays, failures) and the answer, shaped by the request.
Every request from the route on is in `seen`, with the status it got.
"""

from __future__ import annotations

import gzip
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from ...http.server import AbortConnection, Request, Response
from .answers import Answer
from .behaviour import Behaviour
from .errors import JSON, SSE, error, error_body, failure, not_found
from .limits import Buckets, estimated_tokens
from .replies import compose
from .validation import Invalid, parse

DIALECTS = ("openai", "anthropic")
COUNT_TOKENS = "/v1/messages/count_tokens"


@dataclass
class Seen:
    key: str
    path: str
    model: str
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0  # trio's clock, when it arrived
    body: dict[str, Any] = field(default_factory=dict)
    # the status answered: 404 for a route of a dialect not spoken, 400 for a
    # body the API refuses; 0 while unanswered (or never: hung, reset)
    status: int = 0


@dataclass
class SimulatedUpstream:
    keys: dict[str, Behaviour] = field(default_factory=dict)  # secret -> behaviour
    names: dict[str, str] = field(default_factory=dict)  # secret -> a name for answers
    seen: list[Seen] = field(default_factory=list)
    cancelled: int = 0  # requests whose client went away before the answer ended
    rate_limited: int = 0  # 429s sent for a key's rpm or tpm, all keys together
    # the dialects it serves: the routes of any other answer 404, as from a
    # server that has none such (in the shape of the dialect it speaks)
    speaks: tuple[str, ...] = DIALECTS
    _count: dict[str, int] = field(default_factory=dict)
    _limited: dict[str, int] = field(default_factory=dict)  # secret -> such 429s
    _buckets: Buckets = field(default_factory=Buckets)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if not self.speaks or not set(self.speaks) <= set(DIALECTS):
            raise ValueError(f"speaks must name one or both of {DIALECTS}")

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
        served = dialect in self.speaks
        if not served:  # errors come in the shape of the dialect it does speak
            dialect = self.speaks[0]
        secret = request.header("x-api-key")
        bearer = request.header("authorization")
        if bearer.lower().startswith("bearer "):
            secret = secret or bearer[7:]
        behaviour = self.keys.get(secret)
        if behaviour is None:
            return error(
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
        if not served:
            seen = self._record(secret, path, request, _lenient(request.body))
            seen.status = 404
            return not_found(dialect, request.method, path)
        try:
            body = msgspec.json.decode(request.body)
        except msgspec.DecodeError:
            return error(dialect, 400, "body is not JSON")
        if not isinstance(body, dict):
            return error(dialect, 400, "body is not a JSON object")
        seen = self._record(secret, path, request, body)
        response = await self._answer(secret, behaviour, dialect, request, body)
        seen.status = response.status
        return response

    def _record(self, secret: str, path: str, request: Request, body: dict[str, Any]) -> Seen:
        model = str(body.get("model", ""))
        stream = bool(body.get("stream", False))
        seen = Seen(secret, path, model, stream, dict(request.headers), trio.current_time(), body)
        self.seen.append(seen)
        return seen

    async def _answer(
        self,
        secret: str,
        behaviour: Behaviour,
        dialect: str,
        request: Request,
        body: dict[str, Any],
    ) -> Response:
        path = request.path
        try:  # a careless server (echo_400) refuses everything its own way
            parsed = None if behaviour.mode == "echo_400" else parse(path, body)
        except Invalid as invalid:
            return error(dialect, 400, invalid.message, invalid.param, invalid.code)
        limits: list[tuple[str, str]] = []  # the headers that tell this key's limits
        if behaviour.rpm is not None or behaviour.tpm is not None:
            admitted = self._buckets.admit(
                secret,
                (behaviour.rpm, behaviour.tpm),
                behaviour.limit_headers is not None,
                dialect,
                estimated_tokens(path, body),
                trio.current_time(),
            )
            if isinstance(admitted, Response):
                self.rate_limited += 1
                self._limited[secret] = self._limited.get(secret, 0) + 1
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
            echoed = error_body(dialect, 400, f"bad request sent with {credential}")
            return self._whole(
                400, [*JSON, ("x-debug-auth", credential)], echoed, behaviour, request
            )
        refused = failure(dialect, behaviour, failing)
        if refused is not None:
            return refused
        options = body.get("stream_options")
        answer = Answer(
            next(self._ids),
            str(body.get("model", "")),
            dialect,
            path,
            compose(parsed, behaviour, self.names.get(secret, "sim")),
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            reasoning_content=behaviour.reasoning_content,
            interleave=behaviour.interleave_tool_calls,
            cached_tokens=behaviour.cached_tokens,
            input_tokens=estimated_tokens(path, body) if path == COUNT_TOKENS else 0,
        )
        if not body.get("stream", False):
            # like the providers, an id of its own for every answer
            headers = [*JSON, ("x-request-id", f"req_sim_{answer.number}"), *limits]
            return self._whole(
                200, headers, msgspec.json.encode(answer.whole()), behaviour, request
            )
        return Response(200, [*SSE, *limits], self._stream(answer, behaviour, failing))

    def _whole(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        behaviour: Behaviour,
        request: Request,
    ) -> Response:
        """A whole answer, gzipped when the key says so and the client takes it."""
        if behaviour.gzip and "gzip" in request.header("accept-encoding"):
            return Response(status, [*headers, ("content-encoding", "gzip")], gzip.compress(body))
        return Response(status, headers, body)

    async def _listing(self, dialect: str, behaviour: Behaviour) -> Response:
        """GET .../models: the key's behaviour, on every request (`every` is
        ignored), so that `byok keys check` sees what a chat request would."""
        if behaviour.delay:
            await self._wait(behaviour.delay)
        if behaviour.mode == "hang":
            await self._wait(3600)
        refused = failure(dialect, behaviour, failing=True)
        if refused is not None:
            return refused
        return Response(200, JSON, msgspec.json.encode({"object": "list", "data": []}))

    async def _wait(self, seconds: float) -> None:
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            self.cancelled += 1
            raise

    async def _stream(
        self, answer: Answer, behaviour: Behaviour, failing: bool
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


def _lenient(body: bytes) -> dict[str, Any]:
    """The body as far as it is a JSON object (a 404 reads no further)."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
