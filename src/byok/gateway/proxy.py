"""The proxy: one client request in, attempts on upstream keys, one answer out.

Theory of operation
-------------------
A request is checked (endpoint, client key, JSON body with a model) and
routed (routing.py: the model's targets, then its fallbacks).  From then on
the attempt planner (planner.py) makes every decision: which key next, wait
for a cooldown or answer now, hedge, give up, with which status; it reports
each outcome to the engine.  This module does the I/O it asks for: sends on
the key it names, with the deadlines it gives (enforced as cancel scopes),
and tells it what happened, event by event.  The answer is made by relay.py
(nothing reaches the client before an attempt has its first body bytes);
reporting.py logs and counts what happened.  A route to a target of the
other API carries its translation (translation/): made at admission, where a
request that cannot be translated faithfully for any route is refused with
a 400 naming the field; each attempt on such a route sends the translated
body, and its answer, error or stream is translated back.

The runtime in force when a request begins (runtime.py) serves it to its
end: a reload in the meantime changes what the next request sees.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Coroutine, Mapping
from typing import Any

import msgspec
import trio

from ..config import ClientKey
from ..credentials import CredentialError
from ..http.server import Request, Response
from ..http.upstream import Upstream, UpstreamError, UpstreamResponse, UpstreamTimeout
from . import dialects, usage
from .auth import credential
from .body import BodyError, RoutingFields, ask_usage, parse, with_model
from .clients import Refusal, SharedStateAway
from .estimate import estimate
from .exchange import NO_TRANSLATIONS, Exchange
from .headers import upstream_headers
from .listing import ModelListing
from .outcomes import BYOK_OWN_FAILURES
from .planner import ERROR_BODY_LIMIT, Attempt, GiveUp, Phase, Plan, Read, Try, Verdict, Wait
from .relay import (
    close_quietly,
    discard,
    error_response,
    give_up,
    relay,
    relay_client_error,
    relay_stream,
    relay_translated,
)
from .reporting import Reporter, key_name
from .routing import Route, Router, upstream_url
from .runtime import Live, Runtime
from .translation import Translation, Untranslatable, chat_target, estimate_input_tokens

log = logging.getLogger("byok.proxy")

MAX_RESPONSE_BYTES = 256 * 1024 * 1024  # of a whole (not streamed) answer held in memory
MODELS = "/v1/models"
COUNT_TOKENS = "/v1/messages/count_tokens"
CLIENT_KEY_HELP = (
    "missing or wrong byok client key: send it as 'Authorization: Bearer <key>' "
    "or 'x-api-key: <key>'"
)


class _Refusal(Exception):
    """A request byok will not forward: its status, and the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Proxy:
    def __init__(self, live: Live, upstream: Upstream) -> None:
        self.live = live
        self.upstream = upstream
        self.reporter = Reporter(live)
        self.listing = ModelListing(upstream, live.credentials)
        self.max_response_bytes = MAX_RESPONSE_BYTES

    async def __call__(self, request: Request) -> Response | None:
        """The answer to a request for an LLM endpoint or the models listing;
        None for any other path."""
        started = time.perf_counter()
        path = request.path
        dialect = dialects.ENDPOINTS.get(path)
        runtime = self.live.runtime
        if dialect is None:
            if path != MODELS:
                return None
            if request.method != "GET":
                return error_response("openai", 405, f"{path} takes GET, not {request.method}")
            if runtime.clients.keys and runtime.clients.identify(credential(request)) is None:
                return error_response("openai", 401, CLIENT_KEY_HELP)
            listed = "anthropic" if request.header("anthropic-version") else "openai"
            names = await self.listing.names(runtime, listed)
            return Response(200, list(dialects.JSON), dialects.model_listing(listed, names))
        try:
            fields, routes, client = self._admit(request, runtime, path, dialect)
            translations = self._translations(request, path, routes)
        except _Refusal as refusal:
            self.reporter.refused(path, refusal.status)
            return error_response(dialect, refusal.status, str(refusal))
        if not routes[0].path:  # count_tokens with no Anthropic target: byok counts
            return self._counted_here(translations, path)
        cost = estimate(request.body, fields)
        held = False  # the client's local rates hold this request's cost
        if client is not None and client.checked:
            refused = runtime.clients.allowed(client, fields.model)
            if refused is None and client.limited:
                refused, held = await self._admit_client(runtime, client, cost)
            if refused is not None:
                self.reporter.refused(path, refused.status)
                return _client_refused(dialect, refused)
        policy = runtime.router.policy(fields.model)
        exchange = Exchange(
            request,
            runtime,
            path,
            dialect,
            fields.model,
            fields.stream,
            policy,
            started,
            translations,
        )
        exchange.ask_usage = ask_usage(fields, path)
        exchange.client = client
        exchange.cost = cost
        plan = Plan(
            self._current_router,
            routes,
            policy,
            trio.current_time(),
            model=fields.model,
            stream=fields.stream,
            observer=self.reporter.attempt_ended,
            redact=runtime.redact,
            cost=cost,
            headroom=runtime.config.server.headroom,
        )
        try:
            response = await self._forward(exchange, plan)
        finally:
            if held:
                assert client is not None
                runtime.clients.release(client, cost)
        self.reporter.answered(exchange, plan, response)
        return response

    def _admit(
        self, request: Request, runtime: Runtime, path: str, dialect: str
    ) -> tuple[RoutingFields, list[Route], ClientKey | None]:
        """The request's routing fields, routes and client key (None: byok
        takes requests without one), or a _Refusal that says why not."""
        if request.method != "POST":
            raise _Refusal(405, f"{path} takes POST, not {request.method}")
        client = None
        if runtime.clients.keys:
            client = runtime.clients.identify(credential(request))
            if client is None:
                raise _Refusal(401, CLIENT_KEY_HELP)
        try:
            fields = parse(request.body)
        except BodyError as problem:
            raise _Refusal(400, str(problem)) from None
        router = runtime.router
        routes = router.routes(fields.model, dialect, path)
        if routes is None:
            known = ", ".join(router.known_models()) or "none"
            raise _Refusal(404, f"no model {fields.model!r} is configured; known models: {known}")
        if not routes:
            raise _Refusal(400, f"model {fields.model!r} has no target that serves {path}")
        return fields, routes, client

    def _translations(
        self, request: Request, path: str, routes: list[Route]
    ) -> Mapping[tuple[str, str], Translation]:
        """The request translated for each route to a target of the other API,
        by (pool name, upstream model).  A route it cannot be translated for
        faithfully is left out of `routes`; when none is left, _Refusal 400
        names the field and says why."""
        for route in routes:
            if route.crossing is not None:
                break
        else:  # the common case: every target speaks the client's API
            return NO_TRANSLATIONS
        if path == COUNT_TOKENS and any(route.crossing is None for route in routes):
            # Anthropic's own count is exact: byok's estimate only when no target gives it
            routes[:] = [route for route in routes if route.crossing is None]
            return NO_TRANSLATIONS
        made: dict[object, Translation | Untranslatable] = {}
        translations: dict[tuple[str, str], Translation] = {}
        refused: Untranslatable | None = None
        kept = []
        created = int(time.time())
        for route in routes:
            if route.crossing is None:
                kept.append(route)
                continue
            provider = route.pool.provider
            target = None
            if route.crossing == "messages→chat":
                target = chat_target(provider.spec, route.upstream_model, provider.reasoning)
            # one translation per crossing and target traits (chat_target's are
            # one object per value: by identity, as hashing one costs more)
            made_for = (route.crossing, id(target))
            found = made.get(made_for)
            if found is None:
                try:
                    found = Translation.of(request.body, path, route.crossing, target, created)
                except Untranslatable as problem:
                    found = problem
                made[made_for] = found
            if isinstance(found, Untranslatable):
                log.info("%s left out: %s", route.pool.name, found)
                refused = refused or found
                continue
            kept.append(route)
            translations[(route.pool.name, route.upstream_model)] = found
        if not kept:
            assert refused is not None
            raise _Refusal(400, str(refused))
        routes[:] = kept
        return translations

    def _counted_here(
        self, translations: Mapping[tuple[str, str], Translation], path: str
    ) -> Response:
        """count_tokens for a model with only OpenAI targets: byok's estimate,
        labelled as one (an OpenAI API counts no Messages request)."""
        translation = next(iter(translations.values()))
        assert translation.client_request is not None
        counted = estimate_input_tokens(translation.client_request)
        body = msgspec.json.encode({"input_tokens": counted})
        self.reporter.answered_here(translation.client_request.model, path, 200)
        headers = [*dialects.JSON, ("x-byok-token-count", "estimate")]
        return Response(200, headers, body)

    async def _admit_client(
        self, runtime: Runtime, client: ClientKey, cost: int
    ) -> tuple[Refusal | None, bool]:
        """The client's rates and budgets: the cluster's while it answers,
        else this process group's.  (refusal or None, whether the local
        rates hold the request's cost until it ends)."""
        wall = time.time()
        shared = self.live.shared_clients
        if shared is not None:
            try:
                return await shared.admit(client, cost, wall), False
            except SharedStateAway:
                pass  # Redis is away: this group's own rates and ledger decide
        refused = runtime.clients.admit(client, cost, trio.current_time(), wall)
        return refused, refused is None and bool(client.rpm or client.tpm)

    def _current_router(self) -> Router:
        return self.live.runtime.router

    # ---- the attempts: the plan decides, this code does the I/O -----------------

    async def _forward(self, ex: Exchange, plan: Plan) -> Response:
        now = plan.now  # the first step is taken at once
        while True:
            step = plan.next(now)
            if isinstance(step, GiveUp):
                return give_up(ex, plan, step)
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

    async def _race(self, ex: Exchange, plan: Plan, first: Attempt) -> Response | None:
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
                            key_name(plan.running[0]),
                            key_name(hedge.attempt),
                        )
                        nursery.start_soon(run, hedge.attempt)
                        running += 1
        except BaseException:
            if won is not None:
                await discard(won)
            raise
        finally:
            while True:  # answers that arrived but will never be returned
                try:
                    left = receive.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if left is not None and left is not won:
                    await discard(left)
        return won

    async def _attempt(self, ex: Exchange, plan: Plan, attempt: Attempt) -> Response | None:
        """One try on one key: a Response ends the request, None asks the plan again.

        The key was acquired by the plan; the plan gives it back when the
        attempt ends, or the stream relay does when a stream is handed over.
        """
        route, pool = attempt.route, attempt.pool
        translation = None
        if route.crossing is None:
            try:
                payload = with_model(ex.request.body, ex.model, route.upstream_model, ex.ask_usage)
            except BodyError as problem:  # a field name that is not UTF-8: the client's to fix
                plan.abandoned(attempt, trio.current_time())
                return error_response(ex.dialect, 400, str(problem))
        else:
            translation = ex.translations[(pool.name, route.upstream_model)]
            payload = translation.body(route.upstream_model)
            self.reporter.translated(translation)
        if attempt.probe:
            log.info("%s is half-open: one request probes it", key_name(attempt))
        key = pool.keys[attempt.label]
        secret = key.secret
        if key.source is not None:  # a short-lived key: its token now
            try:
                secret = await self.live.credentials.token(self.upstream, key.source)
            except CredentialError as error:
                self._credential_failed(plan, attempt, error)
                return None
        handed_over = False
        started = trio.current_time()
        queued = False

        # The deadlines of the attempt's phases, which the upstream client
        # enforces (a cancel scope only for a wait for a slot or a connect: a
        # scope per request cost more than the rest of its waiting)...
        def waiting_for_a_slot() -> float:
            # ...byok's own wait for a slot: only the request's deadline...
            nonlocal queued
            queued = True
            return plan.deadline

        def connecting() -> float:
            # ...connecting and writing: first_byte_timeout from the slot...
            return plan.slot_taken(attempt, trio.current_time() if queued else started)

        def written() -> float:
            # ...then the head, first_byte_timeout from the write...
            return plan.written(attempt, trio.current_time())

        def send(secret: str) -> Coroutine[Any, Any, UpstreamResponse]:
            # the client's call itself, awaited by the caller: no coroutine of its own
            return self.upstream.send(
                pool.provider.base_url,
                "POST",
                upstream_url(pool.provider, route.path),
                upstream_headers(
                    ex.request,
                    pool.provider,
                    secret,
                    ex.stream,
                    ex.dialect if translation is not None else None,
                    key.source,
                ),
                payload,
                egress=pool.provider.egress,
                on_queued=waiting_for_a_slot,
                on_connecting=connecting,
                on_written=written,
            )

        try:
            try:
                answer = await send(secret)
                if answer.status == 401 and key.source is not None:
                    # the token was refused before it expired (revoked, or
                    # this host's clock is behind): renewed, and sent once more
                    await close_quietly(answer)
                    try:
                        secret = await self.live.credentials.renew(
                            self.upstream, key.source, secret
                        )
                    except CredentialError as error:
                        self._credential_failed(plan, attempt, error)
                        return None
                    plan.resent(attempt)
                    queued, started = False, trio.current_time()
                    answer = await send(secret)
            except UpstreamTimeout:
                now = trio.current_time()
                ex.upstream_seconds += now - started
                plan.timed_out(attempt, now)
                return None
            except UpstreamError as error:
                local = error.kind in BYOK_OWN_FAILURES
                plan.failed(attempt, str(error), trio.current_time(), local=local)
                return None
            now = trio.current_time()
            ex.upstream_seconds += now - started
            read, until = plan.head(attempt, answer.status, answer.headers, now, time.time())
            self.reporter.metrics.first_byte(pool.provider.name, attempt.first_byte or 0.0)
            answer.read_by(until)  # ...then the body, or a stream's first bytes
            if read is Read.FIRST_BYTES:
                response = await self._first_bytes(ex, plan, attempt, answer, translation)
                handed_over = response is not None
                return response
            return await self._whole(ex, plan, attempt, answer, read, translation)
        finally:
            if not handed_over and attempt.phase is not Phase.DONE:
                plan.abandoned(attempt, trio.current_time())  # cancelled, or a bug

    def _credential_failed(self, plan: Plan, attempt: Attempt, error: CredentialError) -> None:
        """A short-lived key's token could not be had: the key's failure, or
        its block when it will not mend by itself."""
        reason = f"credential: {error.reason}"
        plan.credential_failed(attempt, reason, trio.current_time(), blocks=error.blocks)

    async def _whole(
        self,
        ex: Exchange,
        plan: Plan,
        attempt: Attempt,
        answer: UpstreamResponse,
        read: Read,
        translation: Translation | None,
    ) -> Response | None:
        """A body read whole: a 2xx answer, or an error body (bounded), by the
        read deadline the caller gave the answer."""
        limit = ERROR_BODY_LIMIT if read is Read.ERROR_BODY else self.max_response_bytes
        reading = trio.current_time()
        try:
            body = await answer.read(limit=limit)
        except UpstreamTimeout:
            plan.timed_out(attempt, trio.current_time())
            return None
        except UpstreamError as error:
            plan.failed(attempt, str(error), trio.current_time())
            return None
        finally:
            now = trio.current_time()
            ex.upstream_seconds += now - reading
            await close_quietly(answer)
        verdict = plan.body(attempt, body, now)
        if verdict is Verdict.RELAY:  # the request's own fault: the upstream's answer
            return relay_client_error(ex, plan, answer, body, translated=translation is not None)
        if verdict is not Verdict.COMMIT:
            return None
        encoding = (answer.header("content-encoding") or "").lower()
        taken, given = usage.of_body(body, encoding)
        if taken or given:
            self.reporter.used(ex, plan, attempt, taken, given)
        if translation is not None:
            return relay_translated(ex, plan, answer, body, translation)
        return relay(ex, plan, answer.status, answer.headers, body)

    async def _first_bytes(
        self,
        ex: Exchange,
        plan: Plan,
        attempt: Attempt,
        answer: UpstreamResponse,
        translation: Translation | None,
    ) -> Response | None:
        """A stream's head is in: wait for its first bytes (by the read
        deadline the caller gave the answer) before the client sees anything,
        so that a break before them is retried unseen."""
        chunks = answer.chunks()
        first = b""
        ended = False
        reading = trio.current_time()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            ended = True
        except UpstreamTimeout:
            now = trio.current_time()
            ex.upstream_seconds += now - reading
            plan.timed_out(attempt, now)
            await close_quietly(answer)
            return None
        except UpstreamError as error:
            plan.failed(attempt, f"stream: {error}", trio.current_time())
            await close_quietly(answer)
            return None
        except trio.Cancelled:
            ex.upstream_seconds += trio.current_time() - reading
            await close_quietly(answer)
            raise
        now = trio.current_time()
        ex.upstream_seconds += now - reading
        if ended:  # a 2xx with an empty body
            won = plan.ended(attempt, now)
            await close_quietly(answer)
            if not won:
                return None
            if translation is not None:
                return relay_translated(ex, plan, answer, b"", translation)
            return relay(ex, plan, answer.status, answer.headers, b"")
        if not plan.first_bytes(attempt, now):
            await close_quietly(answer)  # another attempt answered first
            return None
        translator = translation.stream() if translation is not None else None
        return relay_stream(ex, plan, attempt, answer, chunks, first, self.reporter, translator)


def _client_refused(dialect: str, refused: Refusal) -> Response:
    """A client key's own limit or budget: 403 or 429 in the endpoint's dialect."""
    response = error_response(dialect, refused.status, refused.message)
    if refused.retry_after is not None:
        response.headers.append(("retry-after", str(refused.retry_after)))
        response.headers.append(("x-should-retry", "true" if refused.should_retry else "false"))
    return response
