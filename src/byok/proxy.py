"""The proxy: one client request in, attempts on upstream keys, one answer out.

Theory of operation
-------------------
A request is checked (endpoint, client key, JSON body with a model), routed
(routing.py: the model's targets, then its fallbacks) and then tried key by
key in each pool's failover order, within the model's total deadline and its
number of attempts.  Each attempt reports its outcome to the engine
(outcomes.py): success with its time to first byte, 429 with the upstream's
delay, 401/403 block the key everywhere, 5xx/timeouts/connection failures
count toward the circuit breaker.  A client error (other 4xx) goes back to the
client as it is, penalises no key and is not retried.

Nothing reaches the client until an attempt succeeds, so every retry is
invisible.  A stream is relayed chunk by chunk from then on; if the upstream
breaks off or goes silent later, the stream ends with an error event in the
endpoint's dialect, never a silent truncation.

When no key can be tried, the answer is 429 with Retry-After (the engine's
time until the soonest key returns) or 503 when every key is blocked or
disabled; with ``wait_for_cooldown`` a short wait for the soonest key comes
first.  Everything byok answers on its own carries ``x-should-retry: false``
once our retries are spent, so SDK retries do not multiply ours.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import trio

from . import dialects, logs, usage
from .admin import Admin, credential, matches
from .config import Config, Redactor, RetryPolicy
from .gateway import outcomes
from .ledger import Ledger
from .metrics import Metrics
from .routing import Pool, Route, Router, upstream_url
from .server import Request, Response
from .upstream import Upstream, UpstreamError, UpstreamResponse

log = logging.getLogger("byok.proxy")

ERROR_BODY_LIMIT = 64 * 1024  # of an upstream error body kept for the client
# Request headers never sent upstream: the client's credentials, and what
# belongs to the client's connection.
DROP_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
        "expect",
    }
)
# Response headers never relayed to the client.  Hop-by-hop headers (and the
# upstream's content-length) are the server's to drop, on every response.
DROP_RESPONSE_HEADERS = frozenset({"set-cookie"})
# The upstream's own request id is worth keeping (a provider's support asks
# for it), under another name: x-request-id is byok's, one per answer.
RENAMED_RESPONSE_HEADERS = {"x-request-id": "x-upstream-request-id"}


class RoutingFields(msgspec.Struct):
    """All that routing reads from a body; msgspec skips the rest unparsed."""

    model: str
    stream: bool = False


@dataclass
class _Failure:
    label: str
    status: int | None  # None: no HTTP answer (timeout, connection failure)
    kind: str
    detail: str


@dataclass
class _Exchange:
    """One client request on its way through the attempts."""

    request: Request
    dialect: str
    model: str
    stream: bool
    policy: RetryPolicy
    started: float
    attempts: int = 0
    upstream_seconds: float = 0.0
    overhead: float | None = None  # seconds byok added, once the answer is made
    failures: list[_Failure] = field(default_factory=list)


class _Refusal(Exception):
    """A request byok will not forward: its status, and the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ReloadError(Exception):
    """A reload changed nothing; the message says where and why."""


# Server settings that the listening socket and the connections took at start.
RESTART_SETTINGS = (
    "host",
    "port",
    "max_body_bytes",
    "max_header_bytes",
    "max_headers",
    "read_timeout",
    "idle_timeout",
)


class Proxy:
    def __init__(
        self,
        config: Config,
        upstream: Upstream | None = None,
        reloader: Callable[[], Config] | None = None,
    ) -> None:
        """`reloader` reads the config anew (for POST /admin/reload and SIGHUP)."""
        self.upstream = upstream or Upstream()
        self.reloader = reloader
        self.ledger = Ledger()
        self.metrics = Metrics(self._key_states)
        self.admin = Admin(self)
        self.generation = 0
        self._reloading = trio.Lock()
        self._install(config, Router(config))

    def _install(self, config: Config, router: Router) -> None:
        # one assignment each, no await in between: a request sees the old
        # config and routes or the new ones, never a mix
        self.config = config
        self.router = router
        self._client_secrets = [k.secret.encode("utf-8") for k in config.server.client_keys]
        self.redact = Redactor(config.secrets())
        self.generation += 1
        self.loaded_at = time.time()

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        rid = logs.request_id(request.header("x-request-id"))
        logs.REQUEST_ID.set(rid)
        path = request.path
        dialect = dialects.ENDPOINTS.get(path)
        if dialect is not None:
            response = await self._serve(request, path, dialect, started)
        elif path == "/v1/models" and request.method == "GET":
            if self._authorized(request):
                response = self._models(request)
            else:
                response = _error("openai", 401, "missing or wrong byok client key")
        else:
            found = await self.admin(request)
            if found is None:
                known = ", ".join(["/v1/models", *dialects.ENDPOINTS])
                found = _error("openai", 404, f"no endpoint {path}; byok serves {known}")
            response = found
        response.headers.append(("x-request-id", rid))
        return response

    async def _serve(self, request: Request, path: str, dialect: str, started: float) -> Response:
        """One request to an LLM endpoint: admitted, then forwarded."""
        try:
            fields, routes = self._admit(request, path, dialect)
        except _Refusal as refusal:
            self.metrics.request("-", path, refusal.status, None)
            self.ledger.answered(refusal.status)
            return _error(dialect, refusal.status, str(refusal))
        exchange = _Exchange(
            request, dialect, fields.model, fields.stream, self.router.policy(fields.model), started
        )
        response = await self._forward(exchange, routes, path)
        self._log(exchange, response)
        return response

    def _admit(
        self, request: Request, path: str, dialect: str
    ) -> tuple[RoutingFields, list[Route]]:
        """The request's routing fields and routes, or a _Refusal that says why not."""
        if request.method != "POST":
            raise _Refusal(405, f"{path} takes POST, not {request.method}")
        if not self._authorized(request):
            raise _Refusal(
                401,
                "missing or wrong byok client key: send it as 'Authorization: Bearer <key>' "
                "or 'x-api-key: <key>'",
            )
        try:
            fields = msgspec.json.decode(request.body, type=RoutingFields)
        except msgspec.ValidationError as error:
            raise _Refusal(400, f"request body: {error}") from None
        except msgspec.DecodeError as error:
            raise _Refusal(400, f"request body is not valid JSON: {error}") from None
        routes = self.router.routes(fields.model, dialect, path)
        if routes is None:
            known = ", ".join(self.router.known_models()) or "none"
            raise _Refusal(404, f"no model {fields.model!r} is configured; known models: {known}")
        if not routes:
            raise _Refusal(400, f"model {fields.model!r} has no target that serves {path}")
        return fields, routes

    # ---- the attempts ---------------------------------------------------------

    async def _forward(self, ex: _Exchange, routes: list[Route], path: str) -> Response:
        deadline = trio.current_time() + ex.policy.deadline
        with trio.move_on_at(deadline):
            while True:
                candidates = self._candidates(ex, routes)
                for route, label in candidates:
                    if ex.policy.hedge_after is None:
                        response = await self._attempt(ex, route, label, path, deadline)
                    else:
                        first = (route, label)
                        response = await self._hedged(ex, first, candidates, path, deadline)
                    if response is not None:
                        return response
                wait = self.router.retry_after(routes)
                patience = ex.policy.wait_for_cooldown
                if (
                    patience > 0
                    and ex.attempts < ex.policy.attempts
                    and wait is not None
                    and wait <= patience
                ):
                    # the soonest key is back within our patience: wait for it (0:
                    # keys are ready but at their max_inflight, so poll gently)
                    await trio.sleep(max(wait, 0.05))
                    continue
                if ex.failures:
                    return self._exhausted(ex, routes)
                return self._none_available(ex, routes, wait)
        ex.failures.append(_Failure("-", None, outcomes.ERROR, "deadline passed"))
        return self._exhausted(ex, routes, timed_out=True)

    def _candidates(self, ex: _Exchange, routes: list[Route]) -> Iterator[tuple[Route, str]]:
        """Keys to try, acquired, in failover order, while attempts remain."""
        for route in routes:
            for label in route.pool.selector.order():
                if ex.attempts >= ex.policy.attempts:
                    return
                if route.pool.selector.acquire(label):
                    yield route, label

    async def _hedged(
        self,
        ex: _Exchange,
        first: tuple[Route, str],
        candidates: Iterator[tuple[Route, str]],
        path: str,
        deadline: float,
    ) -> Response | None:
        """The first attempt, and a second on the next key if the first has no
        response head after hedge_after seconds; the first success wins and
        the other attempt is cancelled."""
        won: list[Response] = []

        async def race(route: Route, label: str, headed: trio.Event) -> None:
            response = await self._attempt(ex, route, label, path, deadline, headed)
            if response is None:
                return
            if won:  # both succeeded at once: the late one gives its stream back
                if isinstance(response.body, StreamBody):
                    with trio.CancelScope(shield=True):
                        await response.body.aclose()
                return
            won.append(response)
            nursery.cancel_scope.cancel()

        assert ex.policy.hedge_after is not None
        async with trio.open_nursery() as nursery:
            headed = trio.Event()
            nursery.start_soon(race, *first, headed)
            with trio.move_on_after(ex.policy.hedge_after):
                await headed.wait()
            if not headed.is_set() and not won:
                second = next(candidates, None)
                if second is not None:
                    log.info("hedging: no answer from key %s yet, racing %s", first[1], second[1])
                    nursery.start_soon(race, *second, trio.Event())
        return won[0] if won else None

    async def _attempt(
        self,
        ex: _Exchange,
        route: Route,
        label: str,
        path: str,
        deadline: float,
        headed: trio.Event | None = None,
    ) -> Response | None:
        """One try on one key; a Response ends the request, None means go on.

        The key was acquired by the caller; it is released here when the
        attempt ends, or by the stream relay when a stream is handed over.
        """
        pool = route.pool
        ex.attempts += 1
        sent = trio.current_time()
        handed_over = False
        try:
            failure = None
            # CancelScope rather than trio.fail_at: the same deadline, without
            # a generator-based context manager on every request
            with trio.CancelScope(
                deadline=min(deadline, sent + ex.policy.first_byte_timeout)
            ) as timer:
                try:
                    answer = await self.upstream.send(
                        pool.provider.base_url,
                        "POST",
                        upstream_url(pool.provider, path),
                        self._upstream_headers(ex.request, route, pool.keys[label].secret, path),
                        _with_model(ex.request.body, ex.model, route.upstream_model),
                    )
                except UpstreamError as error:
                    failure = str(error)
            if timer.cancelled_caught:
                failure = "no response head in time"
            if failure is not None:
                ex.upstream_seconds += trio.current_time() - sent
                self._failed(ex, route, label, None, outcomes.Outcome(outcomes.ERROR), failure)
                return None
            first_byte = trio.current_time() - sent
            ex.upstream_seconds += first_byte
            self.metrics.first_byte(pool.provider.name, first_byte)
            if headed is not None:
                headed.set()
            outcome = outcomes.classify(answer.status, dict(answer.headers))
            if outcome.kind == outcomes.SUCCESS:
                pool.selector.report_success(label, latency=first_byte)
                if ex.stream:
                    handed_over = True
                    self.metrics.attempt(pool.provider.name, label, outcomes.SUCCESS)
                    return self._stream_response(ex, route, label, answer, sent)
                return await self._full_response(ex, route, label, answer, sent, deadline)
            body = await _read_error_body(answer)
            if outcome.kind == outcomes.CLIENT_ERROR:
                # The request's own fault: the upstream's answer, untouched.
                self.metrics.attempt(pool.provider.name, label, outcomes.CLIENT_ERROR)
                return self._relay(ex, answer.status, answer.headers, body, label)
            self._failed(ex, route, label, answer.status, outcome, _summary(body))
            return None
        finally:
            if not handed_over:
                pool.selector.release(label)

    def _failed(
        self,
        ex: _Exchange,
        route: Route,
        label: str,
        status: int | None,
        outcome: outcomes.Outcome,
        detail: str,
    ) -> None:
        """An attempt failed: tell the engine, and note it for the operator."""
        pool = route.pool
        provider = pool.provider.name
        # After a reload the target may have a new pool: it hears of the
        # failure too, or the next request would walk into the same 429.
        current = self.router.current(pool)
        pools = [pool] if current in (None, pool) or label not in current.keys else [pool, current]
        cooling_before = current is not None and _cooling(current, label)
        for each in pools:
            if outcome.kind == outcomes.RATE_LIMITED:
                each.selector.report_rate_limited(label, retry_after=outcome.retry_after)
            else:
                each.selector.report_error(label)  # a refusal counts in the key's history too
        if outcome.kind == outcomes.BLOCKED:
            pool.selector.block(label)
            self.router.block(provider, label)  # refused for every model, not just this one
        if current is not None and not cooling_before and _cooling(current, label):
            self.metrics.cooldown(provider, label)
        detail = self.redact(detail)
        self.metrics.attempt(provider, label, outcome.kind)
        self.ledger.failed(provider, label, status, detail)
        ex.failures.append(_Failure(label, status, outcome.kind, detail))

    async def _full_response(
        self,
        ex: _Exchange,
        route: Route,
        label: str,
        answer: UpstreamResponse,
        sent: float,
        deadline: float,
    ) -> Response | None:
        reading = trio.current_time()
        failure = None
        try:
            with trio.CancelScope(
                deadline=min(deadline, sent + ex.policy.attempt_timeout)
            ) as timer:
                try:
                    body = await answer.read()
                except UpstreamError as error:
                    failure = str(error)
            if timer.cancelled_caught:
                failure = "body did not arrive in time"
        finally:
            ex.upstream_seconds += trio.current_time() - reading
            await _close_quietly(answer)
        provider = route.pool.provider.name
        if failure is not None:  # no whole answer: like no answer at all
            self._failed(ex, route, label, None, outcomes.Outcome(outcomes.ERROR), failure)
            return None
        self.metrics.attempt(provider, label, outcomes.SUCCESS)
        taken, given = usage.of_body(body, (answer.header("content-encoding") or "").lower())
        if taken or given:
            self._used(route, label, taken, given)
        return self._relay(ex, answer.status, answer.headers, body, label)

    def _used(self, route: Route, label: str, taken: int, given: int) -> None:
        provider = route.pool.provider.name
        self.ledger.used(provider, label, taken, given)
        model = "*" if route.pool.passthrough else route.upstream_model
        self.metrics.tokens(provider, label, model, taken, given)

    def _stream_response(
        self, ex: _Exchange, route: Route, label: str, answer: UpstreamResponse, sent: float
    ) -> Response:
        policy = ex.policy
        ends_by = sent + policy.attempt_timeout
        counted = usage.StreamUsage()

        async def chunks() -> AsyncIterator[bytes]:
            upstream = answer.chunks()
            idle = policy.stream_idle_timeout
            try:
                while True:
                    # the scope covers the wait for a chunk only: a generator
                    # must not yield inside a cancel scope (trio's rule)
                    deadline = min(trio.current_time() + idle, ends_by)
                    with trio.CancelScope(deadline=deadline) as timer:
                        try:
                            chunk = await upstream.__anext__()
                        except StopAsyncIteration:
                            return
                    if timer.cancelled_caught:
                        raise UpstreamError("the upstream stream went silent")
                    counted.feed(chunk)
                    yield chunk
            except UpstreamError as error:
                reason = self.redact(str(error))
                self._failed(
                    ex, route, label, None, outcomes.Outcome(outcomes.ERROR), f"stream: {reason}"
                )
                log.warning("stream on key %s broke off: %s", label, reason)
                yield dialects.stream_error_event(ex.dialect, f"upstream stream failed: {reason}")

        async def cleanup() -> None:
            route.pool.selector.release(label)
            counted.finish()
            if counted.input or counted.output:
                self._used(route, label, counted.input, counted.output)
            await _close_quietly(answer)

        response = self._relay(ex, answer.status, answer.headers, b"", label)
        response.body = StreamBody(chunks(), cleanup)
        return response

    # ---- answers --------------------------------------------------------------

    def _relay(
        self, ex: _Exchange, status: int, headers: list[tuple[str, str]], body: bytes, label: str
    ) -> Response:
        out = [
            (RENAMED_RESPONSE_HEADERS.get(k, k), v)
            for k, v in headers
            if k not in DROP_RESPONSE_HEADERS
        ]
        return Response(status, out + self._byok_headers(ex, label), body)

    def _byok_headers(self, ex: _Exchange, label: str) -> list[tuple[str, str]]:
        elapsed = time.perf_counter() - ex.started
        ex.overhead = max(elapsed - ex.upstream_seconds, 0.0)
        return [
            ("x-byok-attempts", str(ex.attempts)),
            ("x-byok-key", label),
            ("x-byok-overhead-ms", f"{ex.overhead * 1000:.2f}"),
        ]

    def _exhausted(self, ex: _Exchange, routes: list[Route], timed_out: bool = False) -> Response:
        """Every attempt failed: one error that says what happened to each."""
        tried = "; ".join(
            f"key {f.label}: {f.status or 'no answer'} ({f.detail})" for f in ex.failures[-6:]
        )
        if all(f.kind == outcomes.RATE_LIMITED for f in ex.failures):
            wait = self.router.retry_after(routes) or 1.0  # 0: untried keys remain
            return self._rate_limited(ex, wait, f"rate-limited on every key tried; {tried}")
        status = 504 if timed_out or all(f.status is None for f in ex.failures) else 502
        message = f"{ex.attempts} upstream attempt(s) for model {ex.model!r} failed; {tried}"
        if timed_out:
            message = f"deadline of {ex.policy.deadline:g}s passed; {message}"
        return self._final(ex, status, message)

    def _none_available(self, ex: _Exchange, routes: list[Route], wait: float | None) -> Response:
        if wait is None:
            return self._final(ex, 503, f"every key for model {ex.model!r} is blocked or disabled")
        return self._rate_limited(
            ex,
            wait,
            f"every key for model {ex.model!r} is cooling down; the soonest is back in {wait:.1f}s",
        )

    def _rate_limited(self, ex: _Exchange, wait: float, message: str) -> Response:
        response = self._final(ex, 429, message)
        response.headers.append(("retry-after", str(max(1, math.ceil(wait)))))
        return response

    def _final(self, ex: _Exchange, status: int, message: str) -> Response:
        headers = [*dialects.JSON, ("x-should-retry", "false")]
        headers += self._byok_headers(ex, ex.failures[-1].label if ex.failures else "-")
        return Response(status, headers, dialects.error_body(ex.dialect, status, message))

    def _models(self, request: Request) -> Response:
        names = self.router.known_models()
        body: dict[str, Any]
        if request.header("anthropic-version"):
            data = [
                {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
                for n in names
            ]
            body = {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        else:
            listing = [
                {"id": n, "object": "model", "created": 0, "owned_by": "byok"} for n in names
            ]
            body = {"object": "list", "data": listing}
        return Response(200, list(dialects.JSON), msgspec.json.encode(body))

    # ---- helpers --------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if not self._client_secrets:
            return True
        return matches(credential(request), self._client_secrets)

    def _upstream_headers(
        self, request: Request, route: Route, secret: str, path: str
    ) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in request.headers if k not in DROP_REQUEST_HEADERS]
        headers.append(("accept-encoding", request.header("accept-encoding") or "identity"))
        provider = route.pool.provider
        if provider.kind == "anthropic" and path.startswith("/v1/messages"):
            headers.append(("x-api-key", secret))
            if not request.header("anthropic-version"):
                headers.append(("anthropic-version", provider.anthropic_version))
        else:
            headers.append(("authorization", f"Bearer {secret}"))
        return headers

    def _log(self, ex: _Exchange, response: Response) -> None:
        """The request's one log line, its metrics and its place in the rates."""
        key = next((v for k, v in response.headers if k == "x-byok-key"), "-")
        path = ex.request.path
        status = response.status
        # a passthrough model is whatever name a client sent: one label for all
        model = ex.model if ex.model in self.config.models else "*"
        self.metrics.request(model, path, status, ex.overhead)
        self.ledger.answered(status)
        if not log.isEnabledFor(logging.INFO):
            return
        took = (time.perf_counter() - ex.started) * 1000
        fields = None
        if logs.structured:
            fields = {
                "method": ex.request.method,
                "path": path,
                "model": ex.model,
                "key": key,
                "attempts": ex.attempts,
                "status": status,
                "ms": round(took, 2),
                "stream": ex.stream,
            }
        log.info(
            "%s %s model=%s key=%s attempts=%d status=%d %.1fms%s",
            ex.request.method,
            path,
            ex.model,
            key,
            ex.attempts,
            status,
            took,
            " stream" if ex.stream else "",
            extra={"fields": fields} if fields else None,
        )

    # ---- operating it -----------------------------------------------------------

    def _key_states(self) -> Iterator[tuple[str, str, str, str]]:
        """(model, provider, key, state) of every key, for the metrics."""
        for model, pools in self.router.pools_by_model():
            name = model.name if model else "*"
            for pool in pools:
                provider = pool.provider.name
                for view in pool.selector.snapshot():
                    yield name, provider, view["id"], view["state"]

    async def reload(self) -> dict[str, Any]:
        """Read the config anew and swap it in; ReloadError changes nothing."""
        if self.reloader is None:
            raise ReloadError(
                "this byok was started without --config (keys from the environment): "
                "there is no file to read again; restart it to change its keys"
            )
        async with self._reloading:
            try:
                config = await trio.to_thread.run_sync(self.reloader)
            except (ValueError, OSError) as error:  # ConfigError is a ValueError
                self.metrics.reload(False)
                reason = self.redact(str(error))
                log.warning("reload refused, nothing changed: %s", reason)
                raise ReloadError(reason) from None
            summary = self.swap(config)
            self.metrics.reload(True)
            log.info(
                "config reloaded from %s: generation %d, %d key(s) kept, %d new, %d removed",
                config.source,
                summary["generation"],
                summary["kept_keys"],
                summary["new_keys"],
                summary["removed_keys"],
            )
            return summary

    def swap(self, config: Config) -> dict[str, Any]:
        """Put `config` in place at once; requests in flight keep their routes."""
        old = self.config

        def secrets(c: Config) -> dict[tuple[str, str], str]:
            return {(p.name, k.label): k.secret for p in c.providers.values() for k in p.keys}

        before, after = secrets(old), secrets(config)
        kept = [k for k, secret in after.items() if before.get(k) == secret]
        for name in after.keys() & before.keys():
            if before[name] != after[name]:
                self.ledger.forget(*name)
        restart = [
            name
            for name in RESTART_SETTINGS
            if getattr(old.server, name) != getattr(config.server, name)
        ]
        self._install(config, Router(config, previous=self.router))
        return {
            "reloaded": True,
            "generation": self.generation,
            "source": config.source,
            "kept_keys": len(kept),
            "new_keys": len(after) - len(kept),
            "removed_keys": len(before.keys() - after.keys()),
            "restart_needed": restart,
        }

    async def aclose(self) -> None:
        await self.upstream.aclose()


def _cooling(pool: Pool, label: str) -> bool:
    return label in pool.keys and pool.selector.state(label) == "cooldown"


def _error(dialect: str, status: int, message: str) -> Response:
    return Response(status, list(dialects.JSON), dialects.error_body(dialect, status, message))


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


async def _close_quietly(answer: UpstreamResponse) -> None:
    if answer.closed:  # read to the end: its connection went back already
        return
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await answer.aclose()


async def _read_error_body(answer: UpstreamResponse) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        with trio.move_on_after(10):
            async for chunk in answer.chunks():
                parts.append(chunk)
                size += len(chunk)
                if size > ERROR_BODY_LIMIT:
                    break
    except UpstreamError:
        pass
    finally:
        await _close_quietly(answer)
    return b"".join(parts)[:ERROR_BODY_LIMIT]


def _summary(body: bytes) -> str:
    """A short, loggable reason from an upstream error body."""
    try:
        data = msgspec.json.decode(body)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else None
        text = str(message) if message else body.decode("utf-8", "replace")
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace")
    return " ".join(text.split())[:200] or "no body"


# A JSON string token, or a bracket: enough to walk the top level of an object.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_MODEL_VALUE = re.compile(rb'\s*:\s*("(?:[^"\\]|\\.)*")')


def _with_model(body: bytes, requested: str, upstream: str) -> bytes:
    """The body with its top-level "model" set to `upstream`, every other byte
    as the client sent it (no re-serialization)."""
    if requested == upstream:
        return body
    depth = 0
    for token in _TOKEN.finditer(body):
        text = token.group()
        if text in (b"{", b"["):
            depth += 1
        elif text in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and text == b'"model"':
            value = _MODEL_VALUE.match(body, token.end())
            if value:  # a key (followed by ':'), not a value that says "model"
                start, end = value.span(1)
                return body[:start] + msgspec.json.encode(upstream) + body[end:]
    raise ValueError("no top-level model in the body")  # decoded fine, so unreachable
