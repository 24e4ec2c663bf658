"""The answer the client gets: relayed from the upstream, or byok's own.

A whole answer is relayed with its headers as headers.py lets them through,
plus byok's own (attempts, key label, overhead).  A stream is relayed chunk
by chunk as it arrives, the first chunk with the head: if the upstream breaks
off or goes silent after that, the stream ends with an error event in the
endpoint's dialect, never a silent truncation, and the plan blames the key.
An upstream's 4xx is relayed redacted, since an upstream may echo the key it
was sent.  When no attempt succeeded, the client gets one error in its
endpoint's dialect, with the status, Retry-After and x-should-retry the plan
chose.  An answer from a target of the other API (through translation) is
translated back: whole, as an error in the client's dialect, or event by
event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from ..config import Redactor
from ..http.coding import inflate
from ..http.server import Response
from ..http.upstream import UpstreamError, UpstreamResponse, UpstreamTimeout
from . import dialects, usage
from .exchange import Exchange
from .headers import client_headers
from .planner import ERROR_BODY_LIMIT, Attempt, GiveUp, Plan
from .reporting import Reporter
from .translation import BadAnswer, Translation, error_body
from .translation.chat_via_messages import ChunksFromEvents
from .translation.messages_via_chat import EventsFromChunks

_INFLATE_LIMIT = 64 * 1024 * 1024  # of a translated answer sent compressed unasked


def relay(
    ex: Exchange, plan: Plan, status: int, headers: list[tuple[str, str]], body: bytes
) -> Response:
    """An upstream's answer, whole, as the client gets it."""
    label = plan.winner.label if plan.winner else "-"
    return Response(status, client_headers(headers) + byok_headers(ex, plan, label), body)


def relay_client_error(
    ex: Exchange, plan: Plan, answer: UpstreamResponse, body: bytes, translated: bool = False
) -> Response:
    """An upstream 4xx, redacted like every other surface.  The secrets are
    those of the config the request began with, and the attempt's own key (a
    reload may have removed it since).  A compressed body is inflated to be
    read; one that cannot be read whole is withheld rather than passed on
    unread.  `translated`: the target speaks the other API, whose error is
    told in the client's."""
    status = answer.status
    headers = answer.headers
    encoding = (answer.header("content-encoding") or "identity").lower()
    if encoding != "identity":
        inflated = inflate(body, encoding, 4 * ERROR_BODY_LIMIT)
        if inflated is None:
            message = (
                f"the upstream answered {status} with a {encoding} body that byok "
                "cannot check for secrets, so it is withheld"
            )
            error = dialects.error_body(ex.dialect, status, message)
            return relay(ex, plan, status, list(dialects.JSON), error)
        body = inflated
        headers = [(k, v) for k, v in headers if k != "content-encoding"]
    winner = plan.winner
    assert winner is not None  # this attempt: the relay is its verdict
    own = Redactor([winner.pool.keys[winner.label].secret])
    headers = own.headers(plan.redact.headers(headers))
    body = own.bytes(plan.redact.bytes(body))
    if translated:
        return relay(ex, plan, status, _as_json(headers), error_body(ex.dialect, status, body))
    return relay(ex, plan, status, headers, body)


def relay_translated(
    ex: Exchange, plan: Plan, answer: UpstreamResponse, body: bytes, translation: Translation
) -> Response:
    """A whole 2xx answer from a target of the other API, in the client's;
    502 when it cannot be told there (an upstream's malformed answer)."""
    encoding = (answer.header("content-encoding") or "identity").lower()
    if encoding != "identity":  # asked for none, sent one all the same
        body = inflate(body, encoding, _INFLATE_LIMIT) or b""
    try:
        translated = translation.answer(body)
    except BadAnswer as problem:
        message = ex.runtime.redact(f"the upstream's answer could not be translated: {problem}")
        error = dialects.error_body(ex.dialect, 502, message)
        return relay(ex, plan, 502, list(dialects.JSON), error)
    return relay(ex, plan, answer.status, _as_json(answer.headers), translated)


def _as_json(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An upstream's headers over a body byok wrote: JSON, in no coding."""
    kept = [(k, v) for k, v in headers if k not in ("content-type", "content-encoding")]
    return [*kept, *dialects.JSON]


def relay_stream(
    ex: Exchange,
    plan: Plan,
    attempt: Attempt,
    answer: UpstreamResponse,
    upstream: AsyncIterator[bytes],
    first: bytes,
    reporter: Reporter,
    translator: EventsFromChunks | ChunksFromEvents | None = None,
) -> Response:
    """A stream whose first bytes are in: the client's answer, relaying the
    rest as it comes; its usage is counted on the way, and kept from a client
    that did not ask for it when byok did.  With a `translator`, the stream
    of a target of the other API is relayed as it translates it."""
    counted: usage.StreamUsage | usage.HiddenStreamUsage | EventsFromChunks | ChunksFromEvents
    # byok asked for a stream in no coding: one that comes compressed all the
    # same cannot be read event by event, and goes through as it came
    if translator is not None:
        counted = translator
    elif ex.ask_usage != "no" and not _encoded(answer):
        counted = usage.HiddenStreamUsage()
    else:
        counted = usage.StreamUsage()
    first = counted.feed(first)
    dialect = ex.dialect

    async def chunks() -> AsyncIterator[bytes]:
        yield first
        while True:
            broke = None
            # a read deadline, not a cancel scope per chunk: a scope costs a
            # slow stream's chunk nearly half its CPU (and a generator must
            # not yield inside one anyway)
            answer.read_by(plan.chunk_deadline(attempt, trio.current_time()))
            try:
                chunk = await upstream.__anext__()
            except StopAsyncIteration:
                plan.ended(attempt, trio.current_time())
                rest = counted.finish()  # an event the upstream did not end
                if rest:
                    yield rest
                return
            except UpstreamTimeout:
                broke = plan.timed_out(attempt, trio.current_time())
            except UpstreamError as error:
                broke = plan.redact(str(error))
                plan.failed(attempt, f"stream broke: {broke}", trio.current_time())
            if broke is not None:
                reporter.stream_broke(attempt, broke)
                yield dialects.stream_error_event(dialect, f"upstream stream failed: {broke}")
                return
            yield counted.feed(chunk)

    async def cleanup() -> None:
        plan.abandoned(attempt, trio.current_time())  # the client left mid-stream
        counted.finish()
        if counted.input or counted.output:
            reporter.used(ex, plan, attempt, counted.input, counted.output)
        await close_quietly(answer)

    response = relay(ex, plan, answer.status, answer.headers, b"")
    response.body = StreamBody(chunks(), cleanup)
    return response


def give_up(ex: Exchange, plan: Plan, answer: GiveUp) -> Response:
    """No attempt succeeded: one error in the endpoint's dialect."""
    headers = [*dialects.JSON, ("x-should-retry", "true" if answer.should_retry else "false")]
    if answer.retry_after is not None:
        headers.append(("retry-after", str(answer.retry_after)))
    headers += byok_headers(ex, plan, answer.label)
    body = dialects.error_body(ex.dialect, answer.status, ex.runtime.redact(answer.message))
    return Response(answer.status, headers, body)


def error_response(dialect: str, status: int, message: str) -> Response:
    """byok's own error, before any attempt."""
    return Response(status, list(dialects.JSON), dialects.error_body(dialect, status, message))


def byok_headers(ex: Exchange, plan: Plan, label: str) -> list[tuple[str, str]]:
    elapsed = time.perf_counter() - ex.started
    ex.overhead = max(elapsed - ex.upstream_seconds, 0.0)
    return [
        ("x-byok-attempts", str(len(plan.attempts))),
        ("x-byok-key", label),
        ("x-byok-overhead-ms", f"{ex.overhead * 1000:.2f}"),
    ]


class StreamBody:
    """A relayed stream: chunks as they come, and a cleanup that runs once on
    aclose() even if iteration never started (the client left first)."""

    def __init__(self, chunks: AsyncIterator[bytes], cleanup: Callable[[], Awaitable[None]]):
        self._chunks = chunks
        self._cleanup: Callable[[], Awaitable[None]] | None = cleanup

    def __aiter__(self) -> StreamBody:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is None:
            return
        try:
            await self._chunks.aclose()  # type: ignore[attr-defined]
        finally:
            await cleanup()


async def discard(response: Response) -> None:
    """Close an answer that will not be sent: its stream gives its key back."""
    if isinstance(response.body, StreamBody):
        with trio.CancelScope(shield=True):
            await response.body.aclose()


def _encoded(answer: UpstreamResponse) -> bool:
    return (answer.header("content-encoding") or "identity").lower() != "identity"


async def close_quietly(answer: UpstreamResponse) -> None:
    if answer.closed:  # read to the end: its connection went back already
        return
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await answer.aclose()
