"""The attempt planner: every decision of one request's life, sans I/O.

Theory of operation
-------------------
The proxy does I/O only; this module decides.  A ``Plan`` is made for one
request from its routes (the model's targets, then its fallbacks' targets),
the model's retry policy and the time.  The proxy asks ``next(now)`` what to
do and gets one of:

    Try(attempt)    send the request with this key (acquired for it)
    Wait(until)     no key can be tried now and the soonest is back within
                    wait_for_cooldown (or a half-open key's probe is out, which
                    may answer any moment): sleep until then and ask again
    GiveUp(...)     answer the client with this status, message and Retry-After
    None            nothing to start: wait for the attempts in flight (hedging)

and tells the plan what happened to each attempt, one event at a time.  The
plan holds no clock and does no I/O: every call takes ``now`` (the proxy's
trio clock, which it also hands to the engine) and the deadlines it returns
are the proxy's to enforce with cancel scopes.  An attempt moves through this
table (``TRANSITIONS``); any other event is a bug and raises PlannerError:

    phase       event        next        what the plan does
    ----------  -----------  ----------  ------------------------------------------
    queued      slot_taken   connecting  byok's own wait for a connection is over;
                                         connect and write within first_byte_timeout
    queued      timed_out    done        only the request's deadline ends byok's own
                                         wait: no key is blamed
    connecting  written      waiting     first_byte_timeout starts now, not before
    waiting     written      waiting     sent again on a new connection (the server
                                         closed a reused one as it was written)
    waiting     resent       queued      a short-lived key's token got a 401 and was
                                         renewed: sent once more, from the start
    waiting     head         reading     2xx: read the first bytes (a stream) or the
                                         whole body; else read the error body
    reading     body         done        an error body: the failure is reported,
                                         or a client error is relayed
    reading     body         committed   a whole 2xx body: the answer goes out
    reading     first_bytes  committed   the client's head goes out with these bytes
    reading     ended        committed   a 2xx with an empty body
    committed   ended        done        success: reported only now, so that a stream
                                         counts as a success only when it ends cleanly
    any         failed       done        the key's failure (refused, reset, malformed,
                                         too large, broken); before commit it is
                                         retried unseen, after it the stream ends with
                                         an error event; a failure of byok's own
                                         (local: no file descriptors) blames no key;
                                         a short-lived key whose token cannot be had
                                         fails so too, or is blocked as a 401 blocks
                                         when it will not mend by itself
    any         timed_out    done        the key's failure if its own clock ran out
                                         (connect, head, first byte, body, a silent
                                         stream); none if the request's deadline or
                                         attempt_timeout cut a flowing stream short
    any         abandoned    done        nothing reported: the client left, another
                                         attempt won the race, the request ended; a
                                         probe it held is freed at once

What the client gets when no attempt succeeds (``GiveUp``):

    no attempt made, every key cooling, the soonest for rate limits   429 + Retry-After
    no attempt made, every key cooling, the soonest for errors        503 + Retry-After
    no attempt made, every key blocked or disabled                    503
    no attempt made, every usable key at its max_inflight             429 + Retry-After: 1
    no attempt made, every usable key (or the pool) over a limit      429 + Retry-After, the
      (rpm, tpm, daily_tokens, or the provider's remaining figures)     limit named
    attempts failed, a key of the request's routes cools: as above,   429/503 + Retry-After
      by the soonest one
    attempts failed, no key cools, every failure timed out            504
    attempts failed, no key cools, only byok's own failures           503 + Retry-After: 1
    attempts failed, no key cools, otherwise                          502
    the request's deadline passed                                     504

``should_retry`` (``x-should-retry``) is true when a Retry-After of 60 s or
less is given: the official SDKs then wait and retry on their own; otherwise
false, so that their retries do not multiply byok's.

Limits.  A plan carries its request's estimated tokens (``cost``): keys are
ordered and acquired for that many (byok_core passes by a key or a pool
over a limit, which is a wait, never a failure), in the target's pool and,
when the provider's keys have limits of their own (rpm, tpm, daily_tokens
over all their models), in the provider's ``accounts`` selector too.  Every
response head tells the engine what the provider says the key has left
(``headroom``), before the key is picked again.

Every outcome goes to the engine here (``byok_core`` reports with ``now``):
success with its time to first byte, 429 with the upstream's delay, 401/403
block the key in every pool of its provider, every other failure counts
toward the circuit; a probe that ended without a verdict is handed back.
``router()`` gives the router in force now: after a config reload, new
attempts order keys in the target's new pool, and a failure reaches the new
pool too, unless the label now names another secret (a rotated key starts
clean).  The ``observer`` callback hears of every outcome reported against
a key (for metrics, the ledger and the log), with the engine's transition
(``byok_core.Transition``, or ``State.BLOCKED`` when it blocked the key).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import NoReturn

import msgspec

from byok_core import Selector, State

from ..config import Redactor, RetryPolicy
from .outcomes import Kind, Outcome, classify, failure
from .ratelimits import headroom
from .routing import Pool, Route, Router

ERROR_BODY_LIMIT = 64 * 1024  # an error body larger than this is the key's failure
MAX_RETRY_AFTER = 60  # a Retry-After above this tells the SDKs not to retry on their own
WAIT_POLL = 0.05  # keys ready but at their max_inflight: how often to look again
PROBE_POLL = 0.1  # the soonest key is a half-open one whose probe is out: ditto


class PlannerError(Exception):
    """An event that the attempt's phase does not allow: a bug in the caller."""


class Phase(str, Enum):
    QUEUED = "queued"  # waiting for a connection slot: byok's own wait
    CONNECTING = "connecting"  # connecting and writing the request
    WAITING = "waiting"  # written: the first_byte_timeout runs
    READING = "reading"  # the head is in: reading first bytes, a body or an error body
    COMMITTED = "committed"  # the answer went to the client
    DONE = "done"


class Event(str, Enum):
    SLOT_TAKEN = "slot_taken"
    WRITTEN = "written"
    RESENT = "resent"
    HEAD = "head"
    FIRST_BYTES = "first_bytes"
    BODY = "body"
    ENDED = "ended"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    ABANDONED = "abandoned"


_Q, _N, _W, _R, _C, _D = Phase
_SUCCESS = Kind.SUCCESS
# (phase, event) -> the phases it may lead to; the handler picks among them.
TRANSITIONS: dict[tuple[Phase, Event], frozenset[Phase]] = {
    (_Q, Event.SLOT_TAKEN): frozenset({_N}),
    (_N, Event.WRITTEN): frozenset({_W}),
    (_W, Event.WRITTEN): frozenset({_W}),
    (_W, Event.RESENT): frozenset({_Q}),
    (_W, Event.HEAD): frozenset({_R}),
    (_R, Event.BODY): frozenset({_D, _C}),
    (_R, Event.FIRST_BYTES): frozenset({_C}),
    (_R, Event.ENDED): frozenset({_C}),
    (_C, Event.ENDED): frozenset({_D}),
    **{
        (phase, event): frozenset({_D})
        for phase in (_Q, _N, _W, _R, _C)
        for event in (Event.FAILED, Event.TIMED_OUT, Event.ABANDONED)
    },
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


@dataclass(eq=False, slots=True)
class Attempt:
    number: int  # 1-based, in the order started
    route: Route
    label: str
    started: float
    phase: Phase = Phase.QUEUED
    connect_by: float = math.inf  # slot taken: connect and write by then
    written: float | None = None
    headed: float | None = None
    ends_by: float = math.inf  # attempt_timeout, from the write
    outcome: Outcome | None = None  # how it ended (None: abandoned)
    blamed: bool = False  # its outcome was reported against the key
    local: bool = False  # it failed for a reason of byok's own
    read: Read | None = None
    probe: bool = False  # the key was half-open: this attempt is its one probe
    pool: Pool = field(init=False)
    accounts: Selector | None = field(init=False)  # the one it acquired the key in

    def __post_init__(self) -> None:
        self.pool = self.route.pool  # read on every report: an attribute, not a property
        self.accounts = self.pool.accounts

    @property
    def first_byte(self) -> float | None:
        """Seconds from the write to the response head."""
        if self.written is None or self.headed is None:
            return None
        return self.headed - self.written


@dataclass(slots=True)
class Try:
    attempt: Attempt


@dataclass(slots=True)
class Wait:
    until: float


@dataclass(slots=True)
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
    redact: Redactor = field(default_factory=lambda: Redactor(()))  # the request's config's
    cost: int = 0  # the request's estimated tokens (gateway/estimate.py)
    headroom: bool = True  # tell the engine what each answer's rate-limit headers say
    attempts: list[Attempt] = field(default_factory=list)
    winner: Attempt | None = None
    deadline_passed: bool = False

    def __post_init__(self) -> None:
        self.deadline = self.now + self.policy.deadline
        self._patience_until = self.now + self.policy.wait_for_cooldown
        self._route_index = 0
        self._order: list[str] | None = None
        self._position = 0
        self._probe = False
        self._no_hedge = False  # a hedge was due and no key or attempt was left

    # ---- what to do next ----------------------------------------------------------

    @property
    def running(self) -> list[Attempt]:
        return [a for a in self.attempts if a.phase is not Phase.DONE]

    @property
    def failures(self) -> list[Attempt]:
        """Attempts that ended in a failure, whether a key was blamed or not."""
        return [a for a in self.attempts if a.phase is Phase.DONE and _failed(a.outcome)]

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
        if len(self.attempts) < self.policy.attempts and wait is not None:
            until = now + max(wait, WAIT_POLL)
            if until > self._patience_until and self._probe_out(now):
                # the engine counts a claimed probe out until its timeout, but
                # it may answer any moment: look again soon, within patience
                until = now + PROBE_POLL
            # wait_for_cooldown is the request's whole patience, not each wait's
            if until <= self._patience_until and until < self.deadline:
                self._route_index, self._order = 0, None  # keys came back: orders anew
                return Wait(until)
        return self._give_up(now)

    def hedge_at(self) -> float | None:
        """When a second attempt should race the one in flight, if it has no head by then."""
        after = self.policy.hedge_after
        running = self.running
        if after is None or self._no_hedge or self.winner is not None or len(running) != 1:
            return None
        first = running[0]
        if first.phase not in (Phase.QUEUED, Phase.CONNECTING, Phase.WAITING):
            return None
        return first.started + after

    def hedge(self, now: float) -> Try | None:
        """The racing attempt, if one is due and a key and an attempt are left;
        once none is, no hedge is due again for this request."""
        due = self.hedge_at()
        if due is None or now < due:
            return None
        found = None
        if len(self.attempts) < self.policy.attempts and now < self.deadline:
            found = self._candidate(now)
        if found is None:
            self._no_hedge = True
            return None
        return Try(self._start(*found, now))

    def _candidate(self, now: float) -> tuple[Route, str] | None:
        """The next key in failover order, acquired; None when none is left."""
        while self._route_index < len(self.routes):
            route = self.routes[self._route_index]
            if self._order is None:
                # a reload may have given the target a new pool: order keys there
                current = self.router().current(route.pool)
                if current is None:  # the target is gone
                    self._route_index += 1
                    continue
                if current is not route.pool:
                    route = self.routes[self._route_index] = replace(route, pool=current)
                self._order = route.pool.selector.order(None, now, self.cost)
                self._position = 0
            selector = route.pool.selector
            accounts = route.pool.accounts
            while self._position < len(self._order):
                label = self._order[self._position]
                self._position += 1
                # the head of an order is fresh; a later key may have cooled
                # meanwhile (another request's failure): not worth an attempt
                if self._position > 1 and selector.state(label, now=now) is not State.READY:
                    continue
                if selector.acquire(label, self.cost, now):
                    if accounts is not None and not accounts.acquire(label, self.cost, now):
                        selector.release(label, self.cost)  # the key's own limit: next one
                        continue
                    self._probe = (
                        self._position == 1 and selector.state(label, now=now) is State.HALF_OPEN
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

    # The methods below check the attempt's phase by identity, inline: they run
    # on every request, and the table's own lookup (tuples of enums) would cost
    # more than all the rest.  tests/gateway/test_planner.py holds them to it.

    def connect_deadline(self, now: float) -> float:
        """When an attempt whose connection slot is free at `now` must have
        connected and written its request (what slot_taken(attempt, now) gives)."""
        return min(now + self.policy.first_byte_timeout, self.deadline)

    def slot_taken(self, attempt: Attempt, now: float) -> float:
        """byok's own wait for a connection is over: returns the deadline for
        connecting and writing the request (first_byte_timeout from now)."""
        if attempt.phase is not _Q:
            self._refuse(attempt, Event.SLOT_TAKEN)
        attempt.phase = _N
        attempt.connect_by = self.connect_deadline(now)
        return attempt.connect_by

    def written(self, attempt: Attempt, now: float) -> float:
        """The request went out: returns the deadline for its response head."""
        if attempt.phase is not _N and attempt.phase is not _W:
            self._refuse(attempt, Event.WRITTEN)
        attempt.phase = _W
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
        if attempt.phase is not _W:
            self._refuse(attempt, Event.HEAD)
        attempt.phase = _R
        attempt.headed = now
        if self.headroom:
            left = headroom(headers, wall)
            if left is not None:
                attempt.pool.selector.report_headroom(
                    attempt.label,
                    left.requests_remaining,
                    left.requests_limit,
                    left.requests_reset,
                    left.tokens_remaining,
                    left.tokens_limit,
                    left.tokens_reset,
                    self.cost,
                    now,
                    attempt.started,
                )
        outcome = classify(status, headers, wall)
        attempt.outcome = outcome
        if outcome.kind is _SUCCESS:
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
        if attempt.phase is not _R:
            self._refuse(attempt, Event.BODY)
        outcome = attempt.outcome
        assert outcome is not None  # the head classified it
        if outcome.kind is _SUCCESS:
            attempt.phase = _C
            if self.winner is not None:
                self._finish(attempt, None, now)
                return Verdict.DISCARD
            self.winner = attempt
            self._finish(attempt, outcome, now)
            return Verdict.COMMIT
        attempt.phase = _D
        detail = _summary(body)
        outcome = replace(outcome, detail=detail)
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
        if attempt.phase is _R and not self._commit(attempt, Event.ENDED):
            self._finish(attempt, None, now)
            return False
        if attempt.phase is not _C:
            self._refuse(attempt, Event.ENDED)
        self._finish(attempt, attempt.outcome, now)
        return True

    def chunk_deadline(self, attempt: Attempt, now: float) -> float:
        """Until when the next chunk of a committed stream may take."""
        return min(now + self.policy.stream_idle_timeout, attempt.ends_by)

    def resent(self, attempt: Attempt) -> None:
        """A short-lived key's token was refused (401) and renewed: the
        attempt is sent once more, from byok's own wait for a slot on."""
        self._move(attempt, Event.RESENT, Phase.QUEUED)
        attempt.written = None
        attempt.connect_by = math.inf

    def failed(self, attempt: Attempt, detail: str, now: float, *, local: bool = False) -> None:
        """The attempt failed: refused, reset, malformed, too large, broken;
        `local` when the cause is byok's own (no file descriptor left), which
        blames no key."""
        self._move(attempt, Event.FAILED, Phase.DONE)
        attempt.local = local
        self._finish(attempt, failure(detail), now, blame=not local)

    def credential_failed(self, attempt: Attempt, reason: str, now: float, *, blocks: bool) -> None:
        """A short-lived key's token could not be had (nothing was sent): the
        key's failure, or its block when it will not mend by itself (a
        refused refresh token)."""
        self._move(attempt, Event.FAILED, Phase.DONE)
        kind = Kind.BLOCKED if blocks else Kind.ERROR
        self._finish(attempt, Outcome(kind, detail=reason, credential=True), now)

    def timed_out(self, attempt: Attempt, now: float) -> str:
        """A deadline this plan gave for the attempt's phase passed: returns
        what did not arrive in time.  The key is blamed only when its own
        clock ran out, not when the request's deadline or byok's own wait did."""
        phase, read = attempt.phase, attempt.read
        self._move(attempt, Event.TIMED_OUT, Phase.DONE)
        policy = self.policy
        written = attempt.written if attempt.written is not None else math.inf
        if phase is Phase.QUEUED:
            own, detail = False, "no connection became free in time"
        elif phase is Phase.CONNECTING:
            own = now >= attempt.connect_by
            detail = f"could not connect and send within {policy.first_byte_timeout:g}s"
        elif phase is Phase.WAITING:
            own = now >= written + policy.first_byte_timeout
            detail = f"no response head within {policy.first_byte_timeout:g}s"
        elif phase is Phase.COMMITTED:
            # silence is the stream's fault; the cap on a flowing stream is ours
            own = now < attempt.ends_by
            detail = (
                f"the stream went silent for {policy.stream_idle_timeout:g}s"
                if own
                else f"attempt_timeout of {policy.attempt_timeout:g}s reached"
            )
        elif read is Read.FIRST_BYTES:
            own = now >= written + policy.first_byte_timeout
            detail = f"no first byte within {policy.first_byte_timeout:g}s"
        else:
            own = now >= written + policy.attempt_timeout
            detail = f"the body did not arrive within {policy.attempt_timeout:g}s"
        if now >= self.deadline:
            self.deadline_passed = True
            if not own:
                detail = f"deadline of {policy.deadline:g}s passed"
        self._finish(attempt, failure(detail, timed_out=True), now, blame=own)
        return detail

    def abandoned(self, attempt: Attempt, now: float) -> None:
        """The attempt stopped for a reason of byok's or the client's: nothing
        is reported against the key (its slot is given back)."""
        if attempt.phase is Phase.DONE:
            return
        self._move(attempt, Event.ABANDONED, Phase.DONE)
        self._finish(attempt, None, now)

    # ---- bookkeeping -------------------------------------------------------------------

    def _refuse(self, attempt: Attempt, event: Event) -> NoReturn:
        where = f"attempt {attempt.number}: {event.value} while {attempt.phase.value}"
        raise PlannerError(f"{where}: not a transition of the attempt table")

    def _move(self, attempt: Attempt, event: Event, to: Phase) -> None:
        """The general (slower) check, for the events that end an attempt."""
        allowed = TRANSITIONS.get((attempt.phase, event))
        if allowed is None or to not in allowed:
            self._refuse(attempt, event)
        attempt.phase = to

    def _commit(self, attempt: Attempt, event: Event) -> bool:
        if attempt.phase is not _R:
            self._refuse(attempt, event)
        attempt.phase = _C
        if self.winner is not None:
            return False
        self.winner = attempt
        return True

    def _finish(
        self, attempt: Attempt, outcome: Outcome | None, now: float, *, blame: bool = True
    ) -> None:
        """Report the outcome to the engine and the observer, give the slot back."""
        pool, label = attempt.pool, attempt.label
        attempt.phase = Phase.DONE
        attempt.outcome = outcome  # None: abandoned
        attempt.blamed = blame and outcome is not None
        if attempt.blamed:
            assert outcome is not None
            transition = self._report(pool, label, outcome, attempt, now)
            self.observer(attempt, outcome, transition)
        if attempt.probe and not (
            attempt.blamed and outcome and outcome.kind is not Kind.CLIENT_ERROR
        ):
            # a probe that ended without a verdict on the key: the next pick
            # probes at once (a client error proves the key works)
            if outcome is not None and outcome.kind is Kind.CLIENT_ERROR:
                pool.selector.report_success(label, now=now)
            else:
                pool.selector.report_abandoned(label, now=now)
        pool.selector.release(label, self.cost)
        if attempt.accounts is not None:
            attempt.accounts.release(label, self.cost)

    def used(self, attempt: Attempt, tokens: int, now: float) -> None:
        """The answer's real token count: the limits that took the estimate
        take the difference (the pool's, the key's own)."""
        cost = self.cost
        attempt.pool.selector.report_usage(attempt.label, cost, tokens, now)
        if attempt.accounts is not None:
            attempt.accounts.report_usage(attempt.label, cost, tokens, now)

    def _report(
        self, pool: Pool, label: str, outcome: Outcome, attempt: Attempt, now: float
    ) -> str | None:
        kind = outcome.kind
        if kind is Kind.CLIENT_ERROR:
            return None
        if kind is Kind.SUCCESS:
            return pool.selector.report_success(label, latency=attempt.first_byte, now=now)
        # After a reload the target may have a new pool: it hears of the
        # failure too, or the next request would walk into the same 429; but
        # not if the label names another secret now (a rotated key is new).
        router = self.router()
        identity = pool.keys[label].identity
        current = router.current(pool)
        pools = [pool]
        if current is not None and current is not pool:
            key = current.keys.get(label)
            if key is not None and key.identity == identity:
                pools.append(current)
        if kind is Kind.BLOCKED:
            was_blocked = pools[-1].selector.state(label, now=now) is State.BLOCKED
            for each in pools:
                each.selector.report_error(label, now=now)  # in the key's history too
                each.selector.block(label)
            router.block(pool.provider.name, label, identity)  # refused for every model
            return None if was_blocked else State.BLOCKED
        transition = None
        for each in pools:
            if kind is Kind.RATE_LIMITED:
                change = each.selector.report_rate_limited(
                    label, retry_after=outcome.retry_after, now=now
                )
            else:
                change = each.selector.report_error(label, now=now)
            transition = change or transition
        return transition

    # ---- giving up ---------------------------------------------------------------------

    def _pools(self) -> list[Pool]:
        """The pools of the request's routes, as they are now (after a reload)."""
        router = self.router()
        pools = []
        for route in self.routes:
            pool = router.current(route.pool)
            if pool is not None and pool not in pools:
                pools.append(pool)
        return pools

    def _outlook(self, now: float) -> tuple[float | None, str]:
        """The soonest return over every route: (seconds, why), as byok_core's
        outlook() says it for this request's cost, the keys' own limits counted."""
        best: tuple[float | None, str] = (None, "out")
        for pool in self._pools():
            wait, why = pool.selector.outlook(now, self.cost)
            if wait == 0.0 and pool.accounts is not None:
                own = self._own_limits_wait(pool, now)
                if own > 0:
                    wait, why = own, "limited"
            if wait is not None and (best[0] is None or wait < best[0]):
                best = (wait, why)
        return best

    def _probe_out(self, now: float) -> bool:
        """Whether a key of the request's routes is half-open with its probe out."""
        return any(
            view["probing"] for pool in self._pools() for view in pool.selector.snapshot(now=now)
        )

    def _own_limits_wait(self, pool: Pool, now: float) -> float:
        """Seconds until a usable key of `pool` fits its own limits (0: one does)."""
        accounts = pool.accounts
        assert accounts is not None
        soonest = math.inf
        for label in pool.keys:
            if pool.selector.state(label, now=now) in (State.READY, State.HALF_OPEN):
                soonest = min(soonest, accounts.limits_wait(label, self.cost, now)[0])
        return 0.0 if soonest == math.inf else soonest

    def _binding_limit(self, now: float) -> str:
        """Which limit holds the request back soonest to return, in words."""
        best: tuple[float, str] = (math.inf, "a limit")
        for pool in self._pools():
            wait, name = pool.selector.limits_wait(None, self.cost, now)
            if name is not None and wait < best[0]:
                best = (wait, f"the {name} of {pool.name}")
            for label in pool.keys:
                for selector, whose in ((pool.selector, "on"), (pool.accounts, "of")):
                    if selector is None:
                        continue
                    wait, name = selector.limits_wait(label, self.cost, now)
                    if name is not None and wait < best[0]:
                        where = f"{pool.name}" if whose == "on" else f"{pool.provider.name}"
                        words = _LIMIT_WORDS.get(name, f"the {name}")
                        best = (wait, f"{words} of key {label} ({where})")
        return best[1]

    def _soonest_cooling(self, now: float) -> tuple[float | None, str]:
        """The soonest return among the keys that cool now (tried or not), and why."""
        best: tuple[float | None, str] = (None, "out")
        for pool in self._pools():
            for view in pool.selector.snapshot(now=now):
                if view["state"] not in (State.COOLDOWN, State.HALF_OPEN):
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
            elif why == "limited":
                limit = self._binding_limit(now)
                message = f"every key for model {model} is over a limit, soonest {limit}"
                return _waiting(429, f"{message}; it fits again in {wait:.1f}s", wait, label)
            else:
                message = f"every key for model {model} is cooling down after errors"
            return _waiting(
                429 if why == "rate_limited" else 503,
                f"{message}; the soonest is back in {wait:.1f}s",
                wait,
                label,
            )
        tried = self._tried()
        wait, why = self._soonest_cooling(now)
        if wait is not None:
            if why == "rate_limited":
                message = f"rate-limited; {tried}"
            else:
                message = f"keys are cooling down after errors; {tried}"
            message += f"; the soonest key is back in {wait:.1f}s"
            return _waiting(429 if why == "rate_limited" else 503, message, wait, label)
        ended = len(failures)
        message = f"{ended} upstream attempt(s) for model {model} failed; {tried}"
        if all(a.local for a in failures):
            return _waiting(503, f"byok could not reach the upstream: {tried}", 1.0, label)
        timed_out = all(a.outcome is not None and a.outcome.timed_out for a in failures)
        return GiveUp(504 if timed_out else 502, message, label=label)

    def _tried(self) -> str:
        parts = []
        for attempt in self.failures[-6:]:
            outcome = attempt.outcome
            assert outcome is not None
            status = outcome.status or "no answer"
            if outcome.credential:  # the operator's to read, in /admin/keys and the log
                detail = "its credential could not be had; see /admin/keys"
            else:
                detail = self.redact(outcome.detail)
            parts.append(f"key {attempt.label}: {status} ({detail})")
        return "; ".join(parts)


# byok_core's limit names as a message says them
_LIMIT_WORDS = {
    "provider_requests": "the provider's remaining requests",
    "provider_tokens": "the provider's remaining tokens",
}


def _failed(outcome: Outcome | None) -> bool:
    return outcome is not None and outcome.kind is not Kind.SUCCESS


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
