"""What byok tells about the requests and attempts it handled: the metrics,
the ledger and the log (one line per request, one per change of a key's
state, saying why and for how long).  Nothing here decides anything; the
planner has reported each outcome to the engine already."""

from __future__ import annotations

import logging
import time

import trio

from byok_core import State, Transition

from ..http.server import Response
from ..telemetry import logs
from .exchange import Exchange
from .outcomes import Kind, Outcome
from .planner import Attempt, Plan
from .runtime import Live
from .translation import Translation

log = logging.getLogger("byok.proxy")


def key_name(attempt: Attempt) -> str:
    """How logs name a key: label, fingerprint and provider, never the secret."""
    pool = attempt.pool
    return f"key {attempt.label} ({pool.keys[attempt.label].fingerprint}) of {pool.provider.name}"


def _priced(ex: Exchange, attempt: Attempt | None, taken: int, given: int) -> float:
    """What tokens cost at the operator's price of the model that served them
    (else of the one asked for); 0.0 without a price."""
    prices = ex.runtime.config.prices
    price = prices.get(attempt.route.upstream_model) if attempt is not None else None
    price = price or prices.get(ex.model)
    return price.cost(taken, given) if price is not None else 0.0


def _model_label(ex: Exchange) -> str:
    """The model label of a request's metrics: the configured name it asked
    for, or "*" for a passthrough model (whatever name a client sent: one
    label for all, so that clients cannot grow the series without bound)."""
    return ex.model if ex.model in ex.runtime.config.models else "*"


class Reporter:
    def __init__(self, live: Live) -> None:
        self.live = live
        # one metrics registry and one ledger for the process: every runtime
        # carries the same two (runtime.py), so they are looked up once
        self.metrics = live.runtime.metrics
        self.ledger = live.runtime.ledger

    def attempt_ended(self, attempt: Attempt, outcome: Outcome, transition: str | None) -> None:
        """The plan's observer: an attempt ended with a verdict on its key."""
        provider = attempt.pool.provider.name
        label = attempt.label
        self.metrics.attempt(provider, label, outcome.kind._value_)
        if outcome.kind is Kind.SUCCESS or outcome.kind is Kind.CLIENT_ERROR:
            if transition is Transition.READY:
                log.info("%s: the probe succeeded, back to ready", key_name(attempt))
            return
        detail = self.live.runtime.redact(outcome.detail)
        window, resets_at = outcome.window, None
        if window is not None and outcome.retry_after is not None:
            resets_at = time.time() + outcome.retry_after
        self.ledger.failed(provider, label, outcome.status, detail, window, resets_at)
        if transition is State.BLOCKED:
            self.live.revalidator.schedule(provider, label, trio.current_time())
        if transition is not None:
            self._state_changed(attempt, outcome, transition, detail)

    def _state_changed(
        self, attempt: Attempt, outcome: Outcome, transition: str, detail: str
    ) -> None:
        """One log line per state change of a key: why, and for how long."""
        pool = attempt.pool
        provider = pool.provider.name
        label = attempt.label
        key = key_name(attempt)
        status = outcome.status or "no answer"
        self.metrics.cooldown(provider, label)
        # a refusal blocks the key in every pool of its provider (Router.block)
        self.live.key_changed(
            provider, label, None if transition is State.BLOCKED else pool, transition
        )
        now = trio.current_time()
        if transition is State.BLOCKED:
            due = self.live.revalidator.next_check(provider, label)
            check = "never re-validated" if due is None else f"re-validated in {due - now:g}s"
            if outcome.status is None:  # its credential, before any upstream answered
                log.warning("%s blocked: %s; %s", key, detail, check)
            else:
                log.warning(
                    "%s blocked: the upstream answered %s (%s); %s", key, status, detail, check
                )
            return
        view = next((v for v in pool.selector.snapshot(now=now) if v["id"] == label), None)
        out_for = f"{view['cooldown_remaining']:.1f}s" if view else "?"
        if transition is Transition.COOLED:
            given = outcome.retry_after
            if outcome.window is not None and given is not None:
                resets = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + given))
                why = f"its {outcome.window} quota window is spent until {resets}"
            elif given is not None:
                why = f"rate-limited, the upstream asked for {given:g}s"
            else:
                why = "rate-limited without a delay, backoff"
            log.warning("%s cooling for %s: %s", key, out_for, why)
        elif transition is Transition.OPENED:
            count = view["consecutive_failures"] if view else "?"
            log.warning(
                "%s circuit opened after %s failures in a row (last: %s %s); out for %s",
                key,
                count,
                status,
                detail,
                out_for,
            )
        elif transition is Transition.OPENED_BY_RATE:
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

    def used(self, ex: Exchange, plan: Plan, attempt: Attempt, taken: int, given: int) -> None:
        """Tokens an answer says it used: into the limits that took the
        estimate, the ledger and the metrics, under the model name the
        request is counted under (a fallback's tokens count for the model the
        client asked for; `target` says which upstream model served them)."""
        now = trio.current_time()
        plan.used(attempt, taken + given, now)
        client = ex.client
        if client is not None:
            if client.tpm:
                ex.runtime.clients.used(client, ex.cost, taken + given, now)
            shared = self.live.shared_clients
            if shared is not None and (
                client.daily_tokens or client.monthly_tokens or client.monthly_cost
            ):
                cost = _priced(ex, attempt, taken, given)
                shared.spent(client, taken + given, cost, time.time())
        pool = attempt.pool
        provider = pool.provider.name
        self.ledger.used(provider, attempt.label, pool.name, taken, given)
        self.metrics.tokens(provider, attempt.label, _model_label(ex), pool.name, taken, given)
        ex.input_tokens += taken
        ex.output_tokens += given
        if ex.booked:  # a stream's usage, after its answer's row: a row of its own
            self._book(ex, attempt, 0, 0, taken, given)

    def translated(self, translation: Translation) -> None:
        """An attempt goes through `translation`; the hints it dropped are
        counted once a request."""
        self.metrics.translated(translation.crossing, translation.unreported_drops())

    def stream_broke(self, attempt: Attempt, reason: str) -> None:
        log.warning("stream on %s ended early: %s", key_name(attempt), reason)

    def answered(self, ex: Exchange, plan: Plan, response: Response) -> None:
        """The request's one log line, its metrics and its place in the rates."""
        key = next((v for k, v in response.headers if k == "x-byok-key"), "-")
        path = ex.path
        status = response.status
        self.metrics.request(_model_label(ex), path, status, ex.overhead)
        self.ledger.answered(status)
        if self.live.usage is not None:
            attempt = plan.winner or (plan.attempts[-1] if plan.attempts else None)
            failed = 1 if status >= 500 or status == 429 else 0
            self._book(ex, attempt, 1, failed, ex.input_tokens, ex.output_tokens)
            ex.booked = True
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
        line = (
            f"{ex.request.method} {path} model={ex.model} key={key} "
            f"attempts={len(plan.attempts)} status={status} {took:.1f}ms"
            f"{' stream' if ex.stream else ''}"
        )
        direct = logs.direct
        if direct is None or not direct.write(log, line, fields):
            log.info("%s", line, extra={"fields": fields} if fields else None)

    def _book(
        self,
        ex: Exchange,
        attempt: Attempt | None,
        requests: int,
        errors: int,
        taken: int,
        given: int,
    ) -> None:
        """One row into the usage ledger: the client, the key that answered
        (or was tried last), the model asked for, and the cost at the
        operator's price of the model that served (else of the one asked for)."""
        usage = self.live.usage
        if usage is None:
            return
        provider, key = "-", "-"
        if attempt is not None:
            provider, key = attempt.pool.provider.name, attempt.label
        cost = 0.0
        if (taken or given) and ex.runtime.config.prices:
            cost = _priced(ex, attempt, taken, given)
        client = ex.client.label if ex.client is not None else "-"
        usage.add(client, provider, key, ex.model, requests, taken, given, errors, cost)

    def refused(self, path: str, status: int) -> None:
        """A request byok would not forward (its one log line is the access log's)."""
        self.answered_here("-", path, status)

    def answered_here(self, model: str, path: str, status: int) -> None:
        """A request byok answered itself, with no attempt (count_tokens' estimate)."""
        self.metrics.request(model, path, status, None)
        self.ledger.answered(status)
