"""The attempt planner: every decision of one request's life, sans I/O.

Theory of operation
-------------------
The proxy does I/O only; this module decides.  A ``Plan`` is made for one
request from its routes (the model's targets, then its fallbacks' targets),
the model's retry policy and the time.  The proxy asks ``next(now)`` what to
do and gets one of:

    Try(attempt)    send the request with this key (acquired for it)
    Wait(until)     no key can be tried now and the soonest is back within
                    wait_for_cooldown: sleep until then and ask again
    GiveUp(...)     answer the client with this status, message and Retry-After
    None            nothing to start: wait for the attempts in flight (hedging)

and tells the plan what happened to each attempt, one event at a time.  The
plan holds no clock and does no I/O: every call takes ``now`` (the proxy's
trio clock, which it also hands to the engine) and the deadlines it returns
are the proxy's to enforce with cancel scopes.  An attempt moves through this
table (``TRANSITIONS``); any other event is a bug and raises PlannerError:

    phase      event        next       what the plan does
    ---------  -----------  ---------  -------------------------------------------
    sending    written      waiting    first_byte_timeout starts now, not before
    sending    failed       done       the key's failure (refused, reset, ...)
    sending    timed_out    done       byok's own wait (a connection slot): no
                                       key is blamed; only the deadline ends it
    waiting    written      waiting    sent again on a new connection (the server
                                       closed a reused one as it was written)
    waiting    head         reading    2xx: read the first bytes (a stream) or the
                                       whole body; else read the error body
    waiting    failed       done       the key's failure
    waiting    timed_out    done       the key's failure: no head in time
    reading    body         done       an error body: the failure is reported,
                                       or a client error is relayed
    reading    body         committed  a whole 2xx body: the answer goes out
    reading    first_bytes  committed  the client's head goes out with these bytes
    reading    ended        committed  a 2xx with an empty body
    reading    failed       done       the key's failure, retried unseen (nothing
                                       reached the client yet)
    reading    timed_out    done       the same, for silence
    committed  ended        done       success: reported only now, so that a stream
                                       counts as a success only when it ends cleanly
    committed  failed       done       the key's failure; the stream ends with an
                                       error event in the endpoint's dialect
    committed  timed_out    done       the same, for silence
    any        abandoned    done       nothing reported: the client left, another
                                       attempt won the race, the request ended

What the client gets when no attempt succeeds (``GiveUp``):

    no attempt made, every key cooling, the soonest for rate limits   429 + Retry-After
    no attempt made, every key cooling, the soonest for errors        503 + Retry-After
    no attempt made, every key blocked or disabled                    503
    no attempt made, every usable key at its max_inflight             429 + Retry-After: 1
    attempts spent, a tried key cools: as above, by the soonest one   429/503 + Retry-After
    attempts spent, no tried key cools, every failure timed out       504
    attempts spent, no tried key cools, otherwise                     502
    the request's deadline passed                                     504

``should_retry`` (``x-should-retry``) is true when a Retry-After of 60 s or
less is given: the official SDKs then wait and retry on their own; otherwise
false, so that their retries do not multiply byok's.

Every outcome goes to the engine here (``byok_core`` reports with ``now``):
success with its time to first byte, 429 with the upstream's delay, 401/403
block the key in every pool of its provider, every other failure counts
toward the circuit.  After a config reload, the target's new pool hears of a
failure too (``router()`` gives the router in force at each report).  The
``observer`` callback hears of every attempt that ended with
an outcome (for metrics, the ledger and the log), with the engine's
transition (``byok_core.TRANSITIONS``, or "blocked").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

import msgspec

from ..config import RetryPolicy
from ..routing import Pool, Route, Router
from .outcomes import Kind, Outcome, classify, failure

ERROR_BODY_LIMIT = 64 * 1024  # an error body larger than this is the key's failure
MAX_RETRY_AFTER = 60  # a Retry-After above this tells the SDKs not to retry on their own
WAIT_POLL = 0.05  # keys ready but at their max_inflight: how often to look again


class PlannerError(Exception):
    """An event that the attempt's phase does not allow: a bug in the caller."""


class Phase(str, Enum):
    SENDING = "sending"  # waiting for a connection, writing the request
    WAITING = "waiting"  # written: the first_byte_timeout runs
    READING = "reading"  # the head is in: reading first bytes, a body or an error body
    COMMITTED = "committed"  # the answer went to the client
    DONE = "done"


class Event(str, Enum):
    WRITTEN = "written"
    HEAD = "head"
    FIRST_BYTES = "first_bytes"
    BODY = "body"
    ENDED = "ended"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABANDONED = "abandoned"


_S, _W, _R, _C, _D = Phase
# (phase, event) -> the phases it may lead to; the handler picks among them.
TRANSITIONS: dict[tuple[Phase, Event], frozenset[Phase]] = {
    (_S, Event.WRITTEN): frozenset({_W}),
    (_S, Event.FAILED): frozenset({_D}),
    (_S, Event.TIMED_OUT): frozenset({_D}),
    (_W, Event.WRITTEN): frozenset({_W}),
    (_W, Event.HEAD): frozenset({_R}),
    (_W, Event.FAILED): frozenset({_D}),
    (_W, Event.TIMED_OUT): frozenset({_D}),
    (_R, Event.BODY): frozenset({_D, _C}),
    (_R, Event.FIRST_BYTES): frozenset({_C}),
    (_R, Event.ENDED): frozenset({_C}),
    (_R, Event.FAILED): frozenset({_D}),
    (_R, Event.TIMED_OUT): frozenset({_D}),
    (_C, Event.ENDED): frozenset({_D}),
    (_C, Event.FAILED): frozenset({_D}),
    (_C, Event.TIMED_OUT): frozenset({_D}),
    **{(phase, Event.ABANDONED): frozenset({_D}) for phase in (_S, _W, _R, _C)},
}


class Read(str, Enum):
    """What to read after a head."""

    FIRST_BYTES = "first_bytes"  # a stream: its first chunk, then commit
    BODY = "body"  # a whole 2xx answer
    ERROR_BODY = "error_body"  # bounded by ERROR_BODY_LIMIT


class Verdict(str, Enum):
    """What to do with a body that was read whole."""

    COMMIT = "commit"  # this attempt's answer goes to the client
    RELAY = "relay"  # a client error: the upstream's answer goes back, redacted
    RETRY = "retry"  # the key failed: ask next()
    DISCARD = "discard"  # another attempt already won


@dataclass(eq=False)
class Attempt:
    number: int  # 1-based, in the order started
    route: Route
    label: str
    started: float
    phase: Phase = Phase.SENDING
    written: float | None = None
    headed: float | None = None
    ends_by: float = math.inf  # attempt_timeout, from the write
    status: int | None = None
    outcome: Outcome | None = None
    read: Read | None = None
    probe: bool = False  # the key was half-open: this attempt is its one probe

    @property
    def pool(self) -> Pool:
        return self.route.pool

    @property
    def first_byte(self) -> float | None:
        """Seconds from the write to the response head."""
        if self.written is None or self.headed is None:
            return None
        return self.headed - self.written


@dataclass(frozen=True)
class Try:
    attempt: Attempt


@dataclass(frozen=True)
class Wait:
    until: float


@dataclass(frozen=True)
class GiveUp:
    status: int
    message: str
    retry_after: int | None = None  # whole seconds, for the Retry-After header
    should_retry: bool = False
    label: str = "-"  # the key of the last failure, for x-byok-key


Step = Try | Wait | GiveUp | None
Observer = Callable[[Attempt, Outcome, "str | None"], None]


def _ignore(attempt: Attempt, outcome: Outcome, transition: str | None) -> None:
    pass


@dataclass
class Plan:
    router: Callable[[], Router]  # the router in force now: a reload may swap it
    routes: list[Route]
    policy: RetryPolicy
    now: float  # when the request arrived
    model: str = ""  # the public model name, for messages
    stream: bool = False
    observer: Observer = _ignore
    redact: Callable[[str], str] = str
    attempts: list[Attempt] = field(default_factory=list)
    winner: Attempt | None = None
    deadline_passed: bool = False

    def __post_init__(self) -> None:
        self.deadline = self.now + self.policy.deadline
        self._route_index = 0
        self._order: list[str] | None = None
        self._position = 0
        self._probe = False

    # ---- what to do next ----------------------------------------------------------

    @property
    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.phase is not Phase.DONE]

    @property
    def failures(self) -> list[Attempt]:
        done = [a for a in self.attempts if a.phase is Phase.DONE and a.outcome is not None]
        return [a for a in done if a.outcome is not None and a.outcome.kind is not Kind.SUCCESS]

    def next(self, now: float) -> Step:
        """The next step, when no attempt is running or one has just failed."""
        if self.winner is not None:
            raise PlannerError("the request has its answer: nothing comes next")
        if now >= self.deadline:
            self.deadline_passed = True
            return None if self.running else self._give_up(now)
        if len(self.attempts) < self.policy.attempts:
            found = self._candidate(now)
            if found is not None:
                return Try(self._start(*found, now))
        if self.running:
            return None
        wait, _ = self._outlook(now)
        patience = self.policy.wait_for_cooldown
        if (
            patience > 0
            and len(self.attempts) < self.policy.attempts
            and wait is not None
            and wait <= patience
        ):
            until = now + max(wait, WAIT_POLL)
            if until < self.deadline:
                self._route_index, self._order = 0, None  # keys came back: orders anew
                return Wait(until)
        return self._give_up(now)

    def hedge_at(self) -> float | None:
        """When a second attempt should race the one in flight, if it has no head by then."""
        after = self.policy.hedge_after
        running = self.running
        if after is None or self.winner is not None or len(running) != 1:
            return None
        first = running[0]
        if first.phase not in (Phase.SENDING, Phase.WAITING):
            return None
        return first.started + after

    def hedge(self, now: float) -> Try | None:
        """The racing attempt, if one is due and a key and an attempt are left."""
        due = self.hedge_at()
        if due is None or now < due or now >= self.deadline:
            return None
        if len(self.attempts) >= self.policy.attempts:
            return None
        found = self._candidate(now)
        return None if found is None else Try(self._start(*found, now))

    def _candidate(self, now: float) -> tuple[Route, str] | None:
        """The next key in failover order, acquired; None when none is left."""
        while self._route_index < len(self.routes):
            route = self.routes[self._route_index]
            selector = route.pool.selector
            if self._order is None:
                self._order, self._position = selector.order(now=now), 0
            while self._position < len(self._order):
                label = self._order[self._position]
                self._position += 1
                # the head of an order is fresh; a later key may have cooled
                # meanwhile (another request's failure): not worth an attempt
                if self._position > 1 and selector.state(label, now=now) != "ready":
                    continue
                if selector.acquire(label):
                    self._probe = (
                        self._position == 1 and selector.state(label, now=now) == "half_open"
                    )
                    return route, label
            self._route_index += 1
            self._order = None
        return None

    def _start(self, route: Route, label: str, now: float) -> Attempt:
        attempt = Attempt(len(self.attempts) + 1, route, label, now, probe=self._probe)
        self.attempts.append(attempt)
        return attempt

    # ---- what happened to an attempt ------------------------------------------------

    def written(self, attempt: Attempt, now: float) -> float:
        """The request went out: returns the deadline for its response head."""
        self._move(attempt, Event.WRITTEN, Phase.WAITING)
        attempt.written = now
        attempt.ends_by = min(now + self.policy.attempt_timeout, self.deadline)
        return min(now + self.policy.first_byte_timeout, attempt.ends_by)

    def head(
        self,
        attempt: Attempt,
        status: int,
        headers: Iterable[tuple[str, str]],
        now: float,
        wall: float,
    ) -> tuple[Read, float]:
        """The response head is in: what to read next, and by when."""
        self._move(attempt, Event.HEAD, Phase.READING)
        attempt.headed = now
        attempt.status = status
        outcome = classify(status, headers, wall)
        attempt.outcome = outcome
        if outcome.kind is Kind.SUCCESS:
            if self.stream:
                assert attempt.written is not None
                first = min(attempt.written + self.policy.first_byte_timeout, attempt.ends_by)
                attempt.read = Read.FIRST_BYTES
                return Read.FIRST_BYTES, max(first, now)
            attempt.read = Read.BODY
            return Read.BODY, attempt.ends_by
        attempt.read = Read.ERROR_BODY
        return Read.ERROR_BODY, attempt.ends_by

    def body(self, attempt: Attempt, body: bytes, now: float) -> Verdict:
        """The body after a head, read whole (an error body, or a 2xx answer)."""
        self._check(attempt, Event.BODY)
        outcome = attempt.outcome
        assert outcome is not None  # the head classified it
        if outcome.kind is Kind.SUCCESS:
            self._move(attempt, Event.BODY, Phase.COMMITTED)
            if self.winner is not None:
                self._finish(attempt, None, now)
                return Verdict.DISCARD
            self.winner = attempt
            self._finish(attempt, outcome, now)
            return Verdict.COMMIT
        self._move(attempt, Event.BODY, Phase.DONE)
        detail = _summary(body)
        outcome = Outcome(outcome.kind, outcome.retry_after, outcome.status, detail=detail)
        if outcome.kind is Kind.CLIENT_ERROR:
            if self.winner is not None:
                self._finish(attempt, None, now)
                return Verdict.DISCARD
            self.winner = attempt  # the request's own fault: its answer, no retry
            self._finish(attempt, outcome, now)
            return Verdict.RELAY
        self._finish(attempt, outcome, now)
        return Verdict.RETRY

    def first_bytes(self, attempt: Attempt, now: float) -> bool:
        """A stream's first bytes are in: True if they go to the client (this
        attempt won); False if another attempt answered first (this one is
        then over, and its stream is the caller's to close)."""
        if self._commit(attempt, Event.FIRST_BYTES):
            return True
        self._finish(attempt, None, now)
        return False

    def ended(self, attempt: Attempt, now: float) -> bool:
        """The body ended cleanly: a committed stream's success, or an empty
        2xx that commits and ends at once (False if another attempt won)."""
        if attempt.phase is Phase.READING and not self._commit(attempt, Event.ENDED):
            self._finish(attempt, None, now)
            return False
        self._move(attempt, Event.ENDED, Phase.DONE)
        self._finish(attempt, attempt.outcome, now)
        return True

    def chunk_deadline(self, attempt: Attempt, now: float) -> float:
        """Until when the next chunk of a committed stream may take."""
        return min(now + self.policy.stream_idle_timeout, attempt.ends_by)

    def failed(self, attempt: Attempt, detail: str, now: float) -> None:
        """The key failed this attempt: refused, reset, malformed, too large, broken."""
        self._move(attempt, Event.FAILED, Phase.DONE)
        self._finish(attempt, failure(detail), now)

    def timed_out(self, attempt: Attempt, now: float) -> None:
        """The attempt's deadline passed (the one this plan gave for its phase)."""
        phase = attempt.phase
        self._move(attempt, Event.TIMED_OUT, Phase.DONE)
        if now >= self.deadline:
            self.deadline_passed = True
        if phase is Phase.SENDING:
            # byok's own wait for a connection: never the key's fault
            self._finish(attempt, None, now)
            return
        if phase is Phase.WAITING:
            detail = f"no response head within {self.policy.first_byte_timeout:g}s"
        elif phase is Phase.COMMITTED:
            detail = f"the stream went silent for {self.policy.stream_idle_timeout:g}s"
        elif attempt.read is Read.FIRST_BYTES:
            detail = f"no first byte within {self.policy.first_byte_timeout:g}s"
        else:
            detail = "the body did not arrive in time"
        if now >= attempt.ends_by and phase is not Phase.WAITING:
            detail = f"attempt_timeout of {self.policy.attempt_timeout:g}s reached"
        if self.deadline_passed:
            detail = f"deadline of {self.policy.deadline:g}s passed"
        self._finish(attempt, failure(detail, timed_out=True), now)

    def abandoned(self, attempt: Attempt, now: float) -> None:
        """The attempt stopped for a reason of byok's or the client's: nothing
        is reported against the key (its slot is given back)."""
        if attempt.phase is Phase.DONE:
            return
        self._move(attempt, Event.ABANDONED, Phase.DONE)
        self._finish(attempt, None, now)

    # ---- bookkeeping -------------------------------------------------------------------

    def _check(self, attempt: Attempt, event: Event, to: Phase | None = None) -> None:
        allowed = TRANSITIONS.get((attempt.phase, event))
        if allowed is None or (to is not None and to not in allowed):
            where = f"attempt {attempt.number}: {event.value} while {attempt.phase.value}"
            raise PlannerError(f"{where}: not a transition of the attempt table")

    def _move(self, attempt: Attempt, event: Event, to: Phase) -> None:
        self._check(attempt, event, to)
        attempt.phase = to

    def _commit(self, attempt: Attempt, event: Event) -> bool:
        self._move(attempt, event, Phase.COMMITTED)
        if self.winner is not None:
            return False
        self.winner = attempt
        return True

    def _finish(self, attempt: Attempt, outcome: Outcome | None, now: float) -> None:
        """Report the outcome to the engine and the observer, give the slot back."""
        pool = attempt.pool
        label = attempt.label
        attempt.phase = Phase.DONE
        attempt.outcome = outcome  # None: abandoned, no verdict on the key
        if outcome is not None:
            transition = self._report(pool, label, outcome, attempt, now)
            self.observer(attempt, outcome, transition)
        pool.selector.release(label)

    def _report(
        self, pool: Pool, label: str, outcome: Outcome, attempt: Attempt, now: float
    ) -> str | None:
        kind = outcome.kind
        if kind is Kind.CLIENT_ERROR:
            return None
        if kind is Kind.SUCCESS:
            return pool.selector.report_success(label, latency=attempt.first_byte, now=now)
        # After a reload the target may have a new pool: it hears of the
        # failure too, or the next request would walk into the same 429.
        current = self.router().current(pool)
        pools = [pool]
        if current is not None and current is not pool and label in current.keys:
            pools.append(current)
        transition = None
        for each in pools:
            if kind is Kind.RATE_LIMITED:
                change = each.selector.report_rate_limited(
                    label, retry_after=outcome.retry_after, now=now
                )
            else:  # a refusal counts in the key's history too
                change = each.selector.report_error(label, now=now)
            transition = change or transition
        if kind is Kind.BLOCKED:
            self.router().block(pool.provider.name, label)  # refused for every model
            transition = "blocked"
        return transition

    # ---- giving up ---------------------------------------------------------------------

    def _outlook(self, now: float) -> tuple[float | None, str]:
        """The soonest return over every route: (seconds, why), as byok_core's outlook()."""
        best: tuple[float | None, str] = (None, "out")
        for route in self.routes:
            wait, why = route.pool.selector.outlook(now=now)
            if wait is not None and (best[0] is None or wait < best[0]):
                best = (wait, why)
        return best

    def _tried_outlook(self, now: float) -> tuple[float | None, str]:
        """The soonest return among the keys this request tried that now cool."""
        best: tuple[float | None, str] = (None, "out")
        seen: set[tuple[str, str]] = set()
        for attempt in self.failures:
            pool = self.router().current(attempt.pool) or attempt.pool
            if (pool.name, attempt.label) in seen or attempt.label not in pool.keys:
                continue
            seen.add((pool.name, attempt.label))
            for view in pool.selector.snapshot(now=now):
                if view["id"] != attempt.label or view["state"] not in ("cooldown", "half_open"):
                    continue
                wait = float(view["cooldown_remaining"])
                if best[0] is None or wait < best[0]:
                    best = (wait, str(view["cause"] or "failing"))
        return best

    def _give_up(self, now: float) -> GiveUp:
        failures = self.failures
        label = failures[-1].label if failures else "-"
        model = repr(self.model)
        if self.deadline_passed:
            message = f"deadline of {self.policy.deadline:g}s passed"
            if failures:
                message += f"; {self._tried()}"
            return GiveUp(504, message, label=label)
        if not failures:
            wait, why = self._outlook(now)
            if wait is None:
                return GiveUp(503, f"every key for model {model} is blocked or disabled")
            if why == "available":
                message = f"every usable key for model {model} is at its max_inflight limit"
                return _waiting(429, message, 1.0, label)
            if why == "rate_limited":
                message = f"every key for model {model} is rate-limited"
            else:
                message = f"every key for model {model} is cooling down after errors"
            return _waiting(
                429 if why == "rate_limited" else 503,
                f"{message}; the soonest is back in {wait:.1f}s",
                wait,
                label,
            )
        attempts = len([a for a in self.attempts if a.outcome is not None])
        message = f"{attempts} upstream attempt(s) for model {model} failed; {self._tried()}"
        wait, why = self._tried_outlook(now)
        if wait is not None:
            if why == "rate_limited":
                message = f"rate-limited on every key tried; {self._tried()}"
            else:
                message = f"every key tried is cooling down after errors; {self._tried()}"
            message += f"; the soonest is back in {wait:.1f}s"
            return _waiting(429 if why == "rate_limited" else 503, message, wait, label)
        timed_out = all(a.outcome is not None and a.outcome.timed_out for a in failures)
        return GiveUp(504 if timed_out else 502, message, label=label)

    def _tried(self) -> str:
        parts = []
        for attempt in self.failures[-6:]:
            outcome = attempt.outcome
            assert outcome is not None
            status = outcome.status or "no answer"
            parts.append(f"key {attempt.label}: {status} ({self.redact(outcome.detail)})")
        return "; ".join(parts)


def _waiting(status: int, message: str, wait: float, label: str) -> GiveUp:
    seconds = max(1, math.ceil(wait))
    return GiveUp(status, message, seconds, seconds <= MAX_RETRY_AFTER, label)


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
