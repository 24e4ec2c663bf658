"""The proxy: one client request in, attempts on upstream keys, one answer out.

Theory of operation
-------------------
A request is checked (endpoint, client key, JSON body with a model) and
routed (gateway/routing.py: the model's targets, then its fallbacks).  From then on
the attempt planner (gateway/planner.py) makes every decision: which key
next, wait for a cooldown or answer now, hedge, give up, with which status;
it reports each outcome to the engine.  This module does the I/O it asks
for: sends on the key it names, with the deadlines it gives (enforced as
cancel scopes), and tells it what happened, event by event.

Nothing reaches the client until an attempt has its first body bytes: the
client's response head goes out together with them, so an upstream that
fails between its head and its body is retried unseen.  A stream is relayed
chunk by chunk from then on; if the upstream breaks off or goes silent later,
the stream ends with an error event in the endpoint's dialect, never a silent
truncation, and the key is blamed.  A client error (other 4xx) goes back to
the client, redacted, penalises no key and is not retried.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from ..config import Config, Redactor, RetryPolicy
from ..http.server import Request, Response
from ..http.upstream import Upstream, UpstreamError, UpstreamResponse
from ..ops.admin import Admin, credential, matches
from ..telemetry import logs
from ..telemetry.ledger import Ledger
from ..telemetry.metrics import Metrics
from . import dialects, usage
from .body import BodyError, RoutingFields, parse, with_model
from .outcomes import Kind, Outcome
from .planner import (
    ERROR_BODY_LIMIT,
    Attempt,
    GiveUp,
    Phase,
    Plan,
    Read,
    Try,
    Verdict,
    Wait,
)
from .revalidation import Revalidator
from .routing import Route, Router, upstream_url

log = logging.getLogger("byok.proxy")

MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # of a whole (not streamed) answer held in memory
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


@dataclass
class _Exchange:
    """One client request on its way through the attempts."""

    request: Request
    path: str
    dialect: str
    model: str
    stream: bool
    policy: RetryPolicy
    started: float  # perf_counter, for the overhead figure
    upstream_seconds: float = 0.0  # spent waiting on upstreams
    overhead: float | None = None  # seconds byok added, once the answer is made


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
        self.max_response_bytes = MAX_RESPONSE_BYTES
        self.reloader = reloader
        self.ledger = Ledger()
        self.metrics = Metrics(self._key_states)
        self.admin = Admin(self)
        self.generation = 0
        self._reloading = trio.Lock()
        self._install(config, Router(config))
        self.revalidator = Revalidator(lambda: (self.config, self.router))

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
        policy = self.router.policy(fields.model)
        exchange = _Exchange(request, path, dialect, fields.model, fields.stream, policy, started)
        plan = Plan(
            self._current_router,
            routes,
            policy,
            trio.current_time(),
            model=fields.model,
            stream=fields.stream,
            observer=self._observe,
            redact=self.redact,
        )
        response = await self._forward(exchange, plan)
        self._log(exchange, plan, response)
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
            fields = parse(request.body)
        except BodyError as error:
            raise _Refusal(400, str(error)) from None
        routes = self.router.routes(fields.model, dialect, path)
        if routes is None:
            known = ", ".join(self.router.known_models()) or "none"
            raise _Refusal(404, f"no model {fields.model!r} is configured; known models: {known}")
        if not routes:
            raise _Refusal(400, f"model {fields.model!r} has no target that serves {path}")
        return fields, routes

    # ---- the attempts: the plan decides, this code does the I/O -----------------

    async def _forward(self, ex: _Exchange, plan: Plan) -> Response:
        now = plan.now  # the first step is taken at once
        while True:
            step = plan.next(now)
            if isinstance(step, GiveUp):
                return self._give_up(ex, plan, step)
            if isinstance(step, Wait):
                # the soonest key is back within wait_for_cooldown
                await trio.sleep_until(step.until)
                now = trio.current_time()
                continue
            assert isinstance(step, Try)  # nothing runs between attempts here
            if ex.policy.hedge_after is None:
                response = await self._attempt(ex, plan, step.attempt)
            else:
                response = await self._race(ex, plan, step.attempt)
            if response is not None:
                return response
            now = trio.current_time()

    async def _race(self, ex: _Exchange, plan: Plan, first: Attempt) -> Response | None:
        """Attempts that may overlap: a second key races the first when the
        first has no head after hedge_after; a failure starts the next key at
        once.  The first answer wins; the others are cancelled (no key blamed).
        An answer that is not returned (it lost, or the client left) is closed
        here, so that its key's slot and its connection go back."""
        send, receive = trio.open_memory_channel[Response | None](math.inf)
        won: Response | None = None

        async def run(attempt: Attempt) -> None:
            send.send_nowait(await self._attempt(ex, plan, attempt))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, first)
                running = 1
                while running:
                    hedge_at = plan.hedge_at()
                    with trio.move_on_at(math.inf if hedge_at is None else hedge_at):
                        response = await receive.receive()
                        running -= 1
                        if response is not None:
                            won = response
                            nursery.cancel_scope.cancel()
                            break
                        if not running or plan.winner is not None:
                            continue  # nothing runs, or the winner's answer is on its way
                        step = plan.next(trio.current_time())
                        if isinstance(step, Try):
                            nursery.start_soon(run, step.attempt)
                            running += 1
                        continue
                    hedge = plan.hedge(trio.current_time())
                    if hedge is not None:
                        log.info(
                            "hedging: no answer yet from %s, racing %s",
                            _key_name(plan.running[0]),
                            _key_name(hedge.attempt),
                        )
                        nursery.start_soon(run, hedge.attempt)
                        running += 1
        except BaseException:
            if won is not None:
                await _discard(won)
            raise
        finally:
            while True:  # answers that arrived but will never be returned
                try:
                    left = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if left is not None and left is not won:
                    await _discard(left)
        return won

    async def _attempt(self, ex: _Exchange, plan: Plan, attempt: Attempt) -> Response | None:
        """One try on one key: a Response ends the request, None asks the plan again.

        The key was acquired by the plan; the plan gives it back when the
        attempt ends, or the stream relay does when a stream is handed over.
        """
        route, pool = attempt.route, attempt.pool
        try:
            payload = with_model(ex.request.body, ex.model, route.upstream_model)
        except BodyError as error:  # a field name that is not UTF-8: the client's to fix
            plan.abandoned(attempt, trio.current_time())
            return _error(ex.dialect, 400, str(error))
        if attempt.probe:
            log.info("%s is half-open: one request probes it", _key_name(attempt))
        handed_over = False
        started = trio.current_time()
        queued = False
        try:
            # One scope, its deadline moved as the attempt goes: first the
            # connect (as if a connection slot were free, the common case)...
            with trio.CancelScope(deadline=plan.connect_deadline(started)) as timer:

                def waiting_for_a_slot() -> None:
                    # ...byok's own wait for a slot: only the request's deadline...
                    nonlocal queued
                    queued = True
                    timer.deadline = plan.deadline

                def connecting() -> None:
                    if queued:
                        timer.deadline = plan.slot_taken(attempt, trio.current_time())
                    else:
                        plan.slot_taken(attempt, started)  # the scope's deadline already

                def written() -> None:
                    # ...then the head, first_byte_timeout from the write
                    timer.deadline = plan.written(attempt, trio.current_time())

                try:
                    answer = await self.upstream.send(
                        pool.provider.base_url,
                        "POST",
                        upstream_url(pool.provider, ex.path),
                        self._upstream_headers(
                            ex.request, route, pool.keys[attempt.label].secret, ex.path
                        ),
                        payload,
                        on_queued=waiting_for_a_slot,
                        on_connecting=connecting,
                        on_written=written,
                    )
                except UpstreamError as error:
                    local = error.kind in ("local", "invalid")  # not the upstream's doing
                    plan.failed(attempt, str(error), trio.current_time(), local=local)
                    return None
            now = trio.current_time()
            ex.upstream_seconds += now - started
            if timer.cancelled_caught:
                plan.timed_out(attempt, now)
                return None
            read, until = plan.head(attempt, answer.status, answer.headers, now, time.time())
            self.metrics.first_byte(pool.provider.name, attempt.first_byte or 0.0)
            if read is Read.FIRST_BYTES:
                response = await self._first_bytes(ex, plan, attempt, answer, until)
                handed_over = response is not None
                return response
            return await self._whole(ex, plan, attempt, answer, read, until)
        finally:
            if not handed_over and attempt.phase is not Phase.DONE:
                plan.abandoned(attempt, trio.current_time())  # cancelled, or a bug

    async def _whole(
        self,
        ex: _Exchange,
        plan: Plan,
        attempt: Attempt,
        answer: UpstreamResponse,
        read: Read,
        until: float,
    ) -> Response | None:
        """A body read whole: a 2xx answer, or an error body (bounded)."""
        limit = ERROR_BODY_LIMIT if read is Read.ERROR_BODY else self.max_response_bytes
        reading = now = trio.current_time()
        try:
            with trio.CancelScope(deadline=until) as timer:
                try:
                    body = await answer.read(limit=limit)
                except UpstreamError as error:
                    plan.failed(attempt, str(error), trio.current_time())
                    return None
        finally:
            now = trio.current_time()
            ex.upstream_seconds += now - reading
            await _close_quietly(answer)
        if timer.cancelled_caught:
            plan.timed_out(attempt, now)
            return None
        verdict = plan.body(attempt, body, now)
        if verdict is Verdict.RELAY:  # the request's own fault: the upstream's answer
            return self._relay_client_error(ex, plan, answer, body)
        if verdict is not Verdict.COMMIT:
            return None
        encoding = (answer.header("content-encoding") or "").lower()
        taken, given = usage.of_body(body, encoding)
        if taken or given:
            self._used(attempt, taken, given)
        return self._relay(ex, plan, answer.status, answer.headers, body)

    async def _first_bytes(
        self, ex: _Exchange, plan: Plan, attempt: Attempt, answer: UpstreamResponse, until: float
    ) -> Response | None:
        """A stream's head is in: wait for its first bytes before the client
        sees anything, so that a break before them is retried unseen."""
        chunks = answer.chunks()
        first = b""
        ended = False
        reading = trio.current_time()
        with trio.CancelScope(deadline=until) as timer:
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                ended = True
            except UpstreamError as error:
                plan.failed(attempt, f"stream: {error}", trio.current_time())
                await _close_quietly(answer)
                return None
        now = trio.current_time()
        ex.upstream_seconds += now - reading
        if timer.cancelled_caught:
            plan.timed_out(attempt, now)
            await _close_quietly(answer)
            return None
        if ended:  # a 2xx with an empty body
            won = plan.ended(attempt, now)
            await _close_quietly(answer)
            return self._relay(ex, plan, answer.status, answer.headers, b"") if won else None
        if not plan.first_bytes(attempt, now):
            await _close_quietly(answer)  # another attempt answered first
            return None
        return self._stream_response(ex, plan, attempt, answer, chunks, first)

    def _stream_response(
        self,
        ex: _Exchange,
        plan: Plan,
        attempt: Attempt,
        answer: UpstreamResponse,
        upstream: AsyncIterator[bytes],
        first: bytes,
    ) -> Response:
        counted = usage.StreamUsage()
        counted.feed(first)
        dialect = ex.dialect

        async def chunks() -> AsyncIterator[bytes]:
            yield first
            while True:
                broke = None
                # the scope covers the wait for a chunk only: a generator
                # must not yield inside a cancel scope (trio's rule)
                with trio.CancelScope(
                    deadline=plan.chunk_deadline(attempt, trio.current_time())
                ) as timer:
                    try:
                        chunk = await upstream.__anext__()
                    except StopAsyncIteration:
                        plan.ended(attempt, trio.current_time())
                        return
                    except UpstreamError as error:
                        broke = self.redact(str(error))
                        plan.failed(attempt, f"stream broke: {broke}", trio.current_time())
                if timer.cancelled_caught:
                    broke = plan.timed_out(attempt, trio.current_time())
                if broke is not None:
                    log.warning("stream on %s ended early: %s", _key_name(attempt), broke)
                    yield dialects.stream_error_event(dialect, f"upstream stream failed: {broke}")
                    return
                counted.feed(chunk)
                yield chunk

        async def cleanup() -> None:
            plan.abandoned(attempt, trio.current_time())  # the client left mid-stream
            counted.finish()
            if counted.input or counted.output:
                self._used(attempt, counted.input, counted.output)
            await _close_quietly(answer)

        response = self._relay(ex, plan, answer.status, answer.headers, b"")
        response.body = StreamBody(chunks(), cleanup)
        return response

    def _observe(self, attempt: Attempt, outcome: Outcome, transition: str | None) -> None:
        """An attempt ended with a verdict on its key: metrics, ledger, log."""
        provider = attempt.pool.provider.name
        label = attempt.label
        self.metrics.attempt(provider, label, outcome.kind._value_)
        if outcome.kind is Kind.SUCCESS or outcome.kind is Kind.CLIENT_ERROR:
            if transition == "ready":
                log.info("%s: the probe succeeded, back to ready", _key_name(attempt))
            return
        detail = self.redact(outcome.detail)
        self.ledger.failed(provider, label, outcome.status, detail)
        if transition == "blocked":
            self.revalidator.schedule(provider, label, trio.current_time())
        if transition is not None:
            self._log_transition(attempt, outcome, transition, detail)

    def _log_transition(
        self, attempt: Attempt, outcome: Outcome, transition: str, detail: str
    ) -> None:
        """One log line per state change of a key: why, and for how long."""
        pool = attempt.pool
        provider = pool.provider.name
        label = attempt.label
        key = _key_name(attempt)
        status = outcome.status or "no answer"
        if transition == "blocked":
            self.metrics.cooldown(provider, label)
            now = trio.current_time()
            due = self.revalidator.next_check(provider, label)
            check = "never re-validated" if due is None else f"re-validated in {due - now:g}s"
            log.warning("%s blocked: the upstream answered %s (%s); %s", key, status, detail, check)
            return
        views = pool.selector.snapshot(now=trio.current_time())
        view = next((v for v in views if v["id"] == label), None)
        out_for = f"{view['cooldown_remaining']:.1f}s" if view else "?"
        self.metrics.cooldown(provider, label)
        if transition == "cooled":
            given = outcome.retry_after
            why = (
                f"rate-limited, the upstream asked for {given:g}s"
                if given is not None
                else "rate-limited without a delay, backoff"
            )
            log.warning("%s cooling for %s: %s", key, out_for, why)
        elif transition == "opened":
            count = view["consecutive_failures"] if view else "?"
            log.warning(
                "%s circuit opened after %s failures in a row (last: %s %s); out for %s",
                key,
                count,
                status,
                detail,
                out_for,
            )
        elif transition == "opened_by_rate":
            share = f"{view['window_failures']} of {view['window_attempts']}" if view else "?"
            log.warning(
                "%s circuit opened: %s recent attempts failed (last: %s %s); out for %s",
                key,
                share,
                status,
                detail,
                out_for,
            )
        else:  # probe_failed
            log.warning("%s probe failed (%s %s); out for %s", key, status, detail, out_for)

    def _used(self, attempt: Attempt, taken: int, given: int) -> None:
        pool = attempt.pool
        provider = pool.provider.name
        self.ledger.used(provider, attempt.label, taken, given)
        model = "*" if pool.passthrough else attempt.route.upstream_model
        self.metrics.tokens(provider, attempt.label, model, taken, given)

    # ---- answers --------------------------------------------------------------

    def _relay(
        self, ex: _Exchange, plan: Plan, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> Response:
        out = [
            (RENAMED_RESPONSE_HEADERS.get(k, k), v)
            for k, v in headers
            if k not in DROP_RESPONSE_HEADERS
        ]
        label = plan.winner.label if plan.winner else "-"
        return Response(status, out + self._byok_headers(ex, plan, label), body)

    def _relay_client_error(
        self, ex: _Exchange, plan: Plan, answer: UpstreamResponse, body: bytes
    ) -> Response:
        """An upstream 4xx, redacted like every other surface: an upstream may
        echo the key it was sent.  The secrets are those of the config the
        request began with, and the attempt's own key (a reload may have
        removed it since).  A compressed body is inflated to be read; one that
        cannot be read whole is withheld rather than passed on unread."""
        status = answer.status
        headers = answer.headers
        encoding = (answer.header("content-encoding") or "identity").lower()
        if encoding != "identity":
            inflated = _inflate(body, encoding, 4 * ERROR_BODY_LIMIT)
            if inflated is None:
                message = (
                    f"the upstream answered {status} with a {encoding} body that byok "
                    "cannot check for secrets, so it is withheld"
                )
                error = dialects.error_body(ex.dialect, status, message)
                return self._relay(ex, plan, status, list(dialects.JSON), error)
            body = inflated
            headers = [(k, v) for k, v in headers if k != "content-encoding"]
        winner = plan.winner
        assert winner is not None  # this attempt: the relay is its verdict
        own = Redactor([winner.pool.keys[winner.label].secret])
        headers = own.headers(plan.redact.headers(headers))
        return self._relay(ex, plan, status, headers, own.bytes(plan.redact.bytes(body)))

    def _byok_headers(self, ex: _Exchange, plan: Plan, label: str) -> list[tuple[str, str]]:
        elapsed = time.perf_counter() - ex.started
        ex.overhead = max(elapsed - ex.upstream_seconds, 0.0)
        return [
            ("x-byok-attempts", str(len(plan.attempts))),
            ("x-byok-key", label),
            ("x-byok-overhead-ms", f"{ex.overhead * 1000:.2f}"),
        ]

    def _give_up(self, ex: _Exchange, plan: Plan, answer: GiveUp) -> Response:
        """No attempt succeeded: one error in the endpoint's dialect."""
        headers = [*dialects.JSON, ("x-should-retry", "true" if answer.should_retry else "false")]
        if answer.retry_after is not None:
            headers.append(("retry-after", str(answer.retry_after)))
        headers += self._byok_headers(ex, plan, answer.label)
        body = dialects.error_body(ex.dialect, answer.status, self.redact(answer.message))
        return Response(answer.status, headers, body)

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

    def _current_router(self) -> Router:
        return self.router

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
        spec = provider.spec
        chosen = request.header(spec.version_header) if spec.version_header else ""
        headers += spec.credentials(secret, path, provider.anthropic_version, chosen)
        return headers

    def _log(self, ex: _Exchange, plan: Plan, response: Response) -> None:
        """The request's one log line, its metrics and its place in the rates."""
        key = next((v for k, v in response.headers if k == "x-byok-key"), "-")
        path = ex.path
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
                "attempts": len(plan.attempts),
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
            len(plan.attempts),
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
                for view in pool.selector.snapshot(now=trio.current_time()):
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

    async def maintain(self) -> None:
        """Background work while serving, until cancelled: idle upstream
        connections swept, blocked keys re-validated."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.upstream.sweep_idle)
            nursery.start_soon(self.revalidator.run, self.upstream)

    async def aclose(self) -> None:
        await self.upstream.aclose()


def _key_name(attempt: Attempt) -> str:
    """How logs name a key: label, fingerprint and provider, never the secret."""
    pool = attempt.pool
    return f"key {attempt.label} ({pool.keys[attempt.label].fingerprint}) of {pool.provider.name}"


def _inflate(body: bytes, encoding: str, limit: int) -> bytes | None:
    """A gzip or deflate body inflated whole, or None (another encoding, a
    corrupt body, or more than `limit` bytes once inflated)."""
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib, by the header
    try:
        data = inflater.decompress(body, limit)
    except zlib.error:
        return None
    return data if inflater.eof and not inflater.unconsumed_tail else None


async def _discard(response: Response) -> None:
    """Close an answer that will not be sent: its stream gives its key back."""
    if isinstance(response.body, StreamBody):
        with trio.CancelScope(shield=True):
            await response.body.aclose()


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
