"""The attempt planner, driven by hand: every transition of an attempt, every
answer the client can get, and what reaches the engine.  No sockets and no
clock: time is a number passed in, as the proxy passes trio's."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from byok.config import RetryPolicy, from_dict
from byok.gateway.outcomes import Kind, Outcome
from byok.gateway.planner import (
    TRANSITIONS,
    Attempt,
    Event,
    GiveUp,
    Phase,
    Plan,
    PlannerError,
    Read,
    Try,
    Verdict,
    Wait,
    _summary,
)
from byok.gateway.routing import Router

T = 1000.0
PATH = "/v1/chat/completions"
OK = [("content-type", "application/json")]


def tables(keys: tuple[str, ...] = ("a", "b", "c"), **model: Any) -> dict[str, Any]:
    return {
        "server": {"cooldown": 1, "max_cooldown": 15, "failure_threshold": 3},
        "providers": {
            "p": {
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "keys": [{"key": f"sk-{k}-secret", "label": k} for k in keys],
            }
        },
        "models": {"m": {"targets": ["p/up"], "strategy": "priority", **model}},
    }


def router_for(keys: tuple[str, ...] = ("a", "b", "c"), **model: Any) -> Router:
    return Router(from_dict(tables(keys, **model)))


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, Kind, str | None]] = []

    def __call__(self, attempt: Attempt, outcome: Any, transition: str | None) -> None:
        self.events.append((attempt.label, outcome.kind, transition))


def plan_for(
    router: Router | None = None, *, stream: bool = False, now: float = T, **policy: Any
) -> Plan:
    router = router or router_for()
    routes = router.routes("m", "openai", PATH)
    assert routes

    def current() -> Router:
        return router

    return Plan(
        current, routes, RetryPolicy(**policy), now, model="m", stream=stream, observer=Seen()
    )


def seen(plan: Plan) -> list[tuple[str, Kind, str | None]]:
    assert isinstance(plan.observer, Seen)
    return plan.observer.events


def start(plan: Plan, now: float = T) -> Attempt:
    step = plan.next(now)
    assert isinstance(step, Try), step
    return step.attempt


def sent(plan: Plan, now: float = T) -> Attempt:
    attempt = start(plan, now)
    plan.slot_taken(attempt, now)
    plan.written(attempt, now)
    return attempt


def headed(plan: Plan, status: int = 200, headers: Any = OK, now: float = T) -> Attempt:
    attempt = sent(plan, now)
    plan.head(attempt, status, headers, now, wall=0.0)
    return attempt


def fail_with(plan: Plan, status: int, headers: Any = OK, now: float = T) -> Attempt:
    attempt = headed(plan, status, headers, now)
    assert plan.body(attempt, b'{"error": {"message": "nope"}}', now) is Verdict.RETRY
    return attempt


def state(plan: Plan, label: str, now: float = T) -> str:
    return plan.routes[0].pool.selector.state(label, now=now)


def inflight(plan: Plan) -> list[int]:
    return [v["inflight"] for v in plan.routes[0].pool.selector.snapshot(now=T)]


# ---- the attempt table ---------------------------------------------------------------


def to_phase(plan: Plan, phase: Phase, read: Read = Read.FIRST_BYTES) -> Attempt:
    """A fresh attempt brought to `phase` by legal events."""
    attempt = start(plan)
    if phase is Phase.QUEUED:
        return attempt
    plan.slot_taken(attempt, T)
    if phase is Phase.CONNECTING:
        return attempt
    plan.written(attempt, T)
    if phase is Phase.WAITING:
        return attempt
    plan.stream = read is Read.FIRST_BYTES
    plan.head(attempt, 200, OK, T, wall=0.0)
    if phase is Phase.READING:
        return attempt
    if phase is Phase.COMMITTED:
        assert plan.first_bytes(attempt, T)
        return attempt
    plan.abandoned(attempt, T)
    return attempt


def fire(plan: Plan, attempt: Attempt, event: Event) -> None:
    if event is Event.SLOT_TAKEN:
        plan.slot_taken(attempt, T)
    elif event is Event.WRITTEN:
        plan.written(attempt, T)
    elif event is Event.RESENT:
        plan.resent(attempt)
    elif event is Event.HEAD:
        plan.head(attempt, 200, OK, T, wall=0.0)
    elif event is Event.FIRST_BYTES:
        plan.first_bytes(attempt, T)
    elif event is Event.BODY:
        plan.body(attempt, b"{}", T)
    elif event is Event.ENDED:
        plan.ended(attempt, T)
    elif event is Event.FAILED:
        plan.failed(attempt, "connection reset", T)
    elif event is Event.TIMED_OUT:
        plan.timed_out(attempt, T)
    else:
        plan.abandoned(attempt, T)


@pytest.mark.parametrize(("phase", "event"), list(itertools.product(list(Phase), list(Event))))
def test_every_event_in_every_phase_follows_the_table(phase, event):
    read = Read.BODY if event is Event.BODY else Read.FIRST_BYTES
    plan = plan_for(attempts=1)
    attempt = to_phase(plan, phase, read)
    allowed = TRANSITIONS.get((phase, event))
    if phase is Phase.DONE and event is Event.ABANDONED:
        plan.abandoned(attempt, T)  # abandoning what ended is a no-op
        assert attempt.phase is Phase.DONE
        return
    if allowed is None:
        with pytest.raises(PlannerError, match=f"{event.value} while {phase.value}"):
            fire(plan, attempt, event)
        return
    fire(plan, attempt, event)
    if event is Event.FIRST_BYTES or (event is Event.ENDED and phase is Phase.READING):
        assert attempt.phase in allowed | {Phase.DONE}
    else:
        assert attempt.phase in allowed
    # whatever happened, the key's slot was given back once the attempt was done
    if attempt.phase is Phase.DONE:
        assert inflight(plan) == [0, 0, 0]


def test_the_table_names_every_phase_but_done():
    phases = {phase for phase, _ in TRANSITIONS}
    assert phases == set(Phase) - {Phase.DONE}


# ---- which key, and when to stop -----------------------------------------------------


def test_keys_come_in_failover_order_and_each_failure_moves_on():
    plan = plan_for()
    labels = []
    for _ in range(3):
        attempt = start(plan)
        labels.append(attempt.label)
        plan.failed(attempt, "connection refused", T)
    assert labels == ["a", "b", "c"]
    assert [label for label, _, _ in seen(plan)] == ["a", "b", "c"]


def test_attempts_bound_the_tries():
    plan = plan_for(attempts=2)
    for _ in range(2):
        plan.failed(start(plan), "reset", T)
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    assert answer.status == 502
    assert "2 upstream attempt(s) for model 'm' failed" in answer.message
    assert "key b: no answer (reset)" in answer.message


def test_a_key_that_cooled_meanwhile_is_skipped():
    plan = plan_for()
    first = start(plan)
    # another request's 429 cools b while a is being tried
    plan.routes[0].pool.selector.report_rate_limited("b", retry_after=5, now=T)
    plan.failed(first, "reset", T)
    assert start(plan).label == "c"


def test_a_half_open_key_is_marked_as_the_probe():
    router = router_for(("a",))
    router.pools[0].selector.report_rate_limited("a", retry_after=1, now=T)
    plan = plan_for(router, now=T + 1)
    assert start(plan, T + 1).probe is True
    assert start(plan_for(), T).probe is False


def test_fallback_routes_follow_the_model_targets():
    data = tables(("a",))
    data["providers"]["q"] = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "keys": [{"key": "sk-q-secret", "label": "q1"}],
    }
    data["models"]["m"]["fallbacks"] = ["n"]
    data["models"]["n"] = {"targets": ["q/other"]}
    router = Router(from_dict(data))
    plan = plan_for(router)
    first = start(plan)
    plan.failed(first, "reset", T)
    second = start(plan)
    assert (second.label, second.route.upstream_model) == ("q1", "other")


# ---- what the client gets ----------------------------------------------------------


def test_every_key_rate_limited_is_429_with_the_soonest_return():
    plan = plan_for()
    selector = plan.routes[0].pool.selector
    for label, delay in (("a", 7.2), ("b", 3.4), ("c", 9)):
        selector.report_rate_limited(label, retry_after=delay, now=T)
    answer = plan.next(T)
    assert answer == GiveUp(
        429,
        "every key for model 'm' is rate-limited; the soonest is back in 3.4s",
        4,
        True,
    )


def test_a_retry_after_over_a_minute_tells_the_sdk_not_to_retry():
    plan = plan_for()
    for label in "abc":
        plan.routes[0].pool.selector.report_rate_limited(label, retry_after=120, now=T)
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after, answer.should_retry) == (429, 120, False)


def test_every_key_cooling_after_errors_is_503_with_retry_after():
    plan = plan_for()
    selector = plan.routes[0].pool.selector
    for label in "abc":
        for _ in range(3):
            selector.report_error(label, now=T)
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after, answer.should_retry) == (503, 1, True)
    assert "cooling down after errors" in answer.message


def test_every_key_blocked_or_disabled_is_503_without_retry_after():
    plan = plan_for()
    selector = plan.routes[0].pool.selector
    selector.block("a")
    selector.block("b")
    selector.disable("c")
    answer = plan.next(T)
    assert answer == GiveUp(503, "every key for model 'm' is blocked or disabled")


def test_every_key_at_its_inflight_cap_is_429_retry_after_one():
    data = tables(("a",))
    data["providers"]["p"]["keys"][0]["max_inflight"] = 1
    router = Router(from_dict(data))
    busy = plan_for(router)
    start(busy)
    answer = plan_for(router).next(T)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after, answer.should_retry) == (429, 1, True)
    assert "max_inflight" in answer.message


@pytest.mark.parametrize(
    ("failures", "status", "retry_after"),
    [
        (["reset", "reset", "reset"], 502, None),
        (["timeout", "timeout", "timeout"], 504, None),
        (["timeout", "reset", "timeout"], 502, None),
        ([500, 500, 500], 502, None),
        ([429, 429, 429], 429, 2),
        ([429, 500, "reset"], 429, 2),
        ([401, 401, 401], 502, None),
    ],
)
def test_spent_attempts_answer_by_what_the_tried_keys_do(failures, status, retry_after):
    plan = plan_for(attempts=3)
    for failure in failures:
        if failure == "reset":
            plan.failed(start(plan), "connection reset", T)
        elif failure == "timeout":
            attempt = start(plan)
            plan.slot_taken(attempt, T)
            plan.written(attempt, T)
            plan.timed_out(attempt, T + 60)
        else:
            fail_with(plan, failure, [("retry-after", "2")])
    answer = plan.next(T + 0.5)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after) == (status, retry_after)
    assert answer.should_retry is (retry_after is not None)
    assert answer.label == plan.attempts[-1].label


def test_spent_attempts_on_opened_circuits_answer_503():
    plan = plan_for(router_for(("a",)))
    for _ in range(2):  # earlier requests' failures
        plan.routes[0].pool.selector.report_error("a", now=T)
    fail_with(plan, 500)  # the third in a row opens the circuit
    assert seen(plan) == [("a", Kind.ERROR, "opened")]
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after, answer.should_retry) == (503, 1, True)


def test_the_deadline_ends_the_request_with_504():
    plan = plan_for(deadline=10)
    attempt = start(plan)
    plan.slot_taken(attempt, T)
    plan.written(attempt, T)
    assert plan.next(T + 10) is None  # an attempt still runs: wait for it
    plan.timed_out(attempt, T + 10)
    answer = plan.next(T + 10)
    assert isinstance(answer, GiveUp)
    assert answer.status == 504
    assert answer.message.startswith("deadline of 10s passed; key a: no answer (deadline")


def test_the_deadline_before_any_attempt_is_504_too():
    answer = plan_for(deadline=5).next(T + 5)
    assert answer == GiveUp(504, "deadline of 5s passed")


def test_wait_for_cooldown_waits_for_the_soonest_key():
    plan = plan_for(wait_for_cooldown=3)
    for label in "abc":
        plan.routes[0].pool.selector.report_rate_limited(label, retry_after=2, now=T)
    assert plan.next(T) == Wait(T + 2)
    assert start(plan, T + 2).label == "a"  # back: orders are made anew


def test_no_wait_beyond_patience_nor_past_the_deadline():
    for policy in ({"wait_for_cooldown": 1}, {"wait_for_cooldown": 5, "deadline": 2}):
        plan = plan_for(**policy)
        for label in "abc":
            plan.routes[0].pool.selector.report_rate_limited(label, retry_after=2, now=T)
        assert isinstance(plan.next(T), GiveUp)


def test_keys_at_their_cap_are_polled_within_patience():
    data = tables(("a",))
    data["providers"]["p"]["keys"][0]["max_inflight"] = 1
    router = Router(from_dict(data))
    start(plan_for(router))
    assert plan_for(router, wait_for_cooldown=1).next(T) == Wait(T + 0.05)


# ---- what reaches the engine -------------------------------------------------------


def test_a_stream_is_a_success_only_when_it_ends_cleanly():
    plan = plan_for(stream=True)
    attempt = headed(plan)
    assert plan.first_bytes(attempt, T + 0.5)
    assert seen(plan) == []  # nothing reported at the head or the first bytes
    selector = plan.routes[0].pool.selector
    assert selector.snapshot(now=T)[0]["successes"] == 0
    assert plan.ended(attempt, T + 3)
    assert seen(plan) == [("a", Kind.SUCCESS, None)]
    assert selector.snapshot(now=T)[0]["successes"] == 1
    assert inflight(plan) == [0, 0, 0]


def test_a_stream_that_breaks_after_commit_counts_against_the_key():
    router = router_for()
    for _ in range(3):
        plan = plan_for(router, stream=True)
        attempt = headed(plan)
        assert attempt.label == "a"
        assert plan.first_bytes(attempt, T)
        plan.failed(attempt, "stream broke: reset", T)
    assert state(plan, "a") == "cooldown"  # failure_threshold breaks opened it
    assert seen(plan) == [("a", Kind.ERROR, "opened")]


def test_a_break_before_the_first_bytes_is_retried_on_the_next_key():
    plan = plan_for(stream=True)
    attempt = headed(plan)
    plan.failed(attempt, "stream: connection reset", T)
    assert plan.winner is None
    assert start(plan).label == "b"


def test_an_empty_2xx_stream_commits_and_succeeds():
    plan = plan_for(stream=True)
    attempt = headed(plan)
    assert plan.ended(attempt, T) is True
    assert plan.winner is attempt
    assert seen(plan) == [("a", Kind.SUCCESS, None)]


def test_a_whole_body_commits_and_reports_its_first_byte_latency():
    plan = plan_for()
    attempt = start(plan)
    plan.slot_taken(attempt, T)
    plan.written(attempt, T)
    assert plan.head(attempt, 200, OK, T + 0.25, wall=0.0) == (Read.BODY, T + 600)
    assert plan.body(attempt, b"{}", T + 0.3) is Verdict.COMMIT
    view = plan.routes[0].pool.selector.snapshot(now=T)[0]
    assert view["latency_ewma"] == pytest.approx(0.25)


def test_a_429_passes_its_delay_to_the_engine():
    plan = plan_for()
    fail_with(plan, 429, [("retry-after", "12")])
    assert plan.routes[0].pool.selector.snapshot(now=T)[0]["cooldown_remaining"] == 12
    assert seen(plan) == [("a", Kind.RATE_LIMITED, "cooled")]


def test_a_401_blocks_the_key_in_every_pool_of_its_provider():
    data = tables()
    data["models"]["other"] = {"targets": ["p/up2"]}
    router = Router(from_dict(data))
    plan = plan_for(router)
    fail_with(plan, 401)
    assert seen(plan) == [("a", Kind.BLOCKED, "blocked")]
    assert router.pool("p", "up2").selector.state("a", now=T) == "blocked"
    assert start(plan).label == "b"


def test_a_credential_that_cannot_be_had_blocks_the_key_or_counts_a_failure():
    data = tables()
    data["models"]["other"] = {"targets": ["p/up2"]}
    router = Router(from_dict(data))
    plan = plan_for(router, attempts=2)
    reason = "credential: the token endpoint refused the refresh token /home/u/.claude"
    plan.credential_failed(start(plan), reason, T, blocks=True)
    assert seen(plan) == [("a", Kind.BLOCKED, "blocked")]
    assert plan.attempts[0].outcome == Outcome(Kind.BLOCKED, detail=reason, credential=True)
    assert router.pool("p", "up2").selector.state("a", now=T) == "blocked"  # for every model
    second = start(plan)
    plan.credential_failed(second, "credential: the token endpoint is down", T, blocks=False)
    assert second.outcome is not None
    assert second.outcome.kind is Kind.ERROR
    assert plan.routes[0].pool.selector.state("b", now=T) == "ready"  # one failure, not a block
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    # the operator's reason (a path, an endpoint's words) is not the client's to read
    assert "/home/u" not in answer.message
    assert answer.message.endswith(
        "key b: no answer (its credential could not be had; see /admin/keys)"
    )


def test_a_resent_attempt_starts_again_from_the_wait_for_a_slot():
    plan = plan_for()
    attempt = sent(plan, T)
    plan.resent(attempt)
    assert attempt.phase is Phase.QUEUED
    assert attempt.written is None
    assert plan.slot_taken(attempt, T + 40) == T + 40 + 60  # first_byte_timeout from now
    plan.written(attempt, T + 41)
    plan.head(attempt, 200, OK, T + 42, wall=0.0)
    assert plan.body(attempt, b"{}", T + 42) is Verdict.COMMIT
    assert attempt.first_byte == 1.0  # from the second write


def test_a_client_error_is_relayed_and_blames_no_key():
    plan = plan_for()
    attempt = headed(plan, 400)
    assert plan.body(attempt, b'{"error": {"message": "bad"}}', T) is Verdict.RELAY
    assert plan.winner is attempt
    assert seen(plan) == [("a", Kind.CLIENT_ERROR, None)]
    assert plan.routes[0].pool.selector.snapshot(now=T)[0]["failures"] == 0
    with pytest.raises(PlannerError, match="has its answer"):
        plan.next(T)


def test_waiting_for_a_connection_never_blames_the_key():
    plan = plan_for(deadline=5)
    attempt = start(plan)
    plan.timed_out(attempt, T + 5)  # still sending: byok's own wait
    assert seen(plan) == []
    assert plan.routes[0].pool.selector.snapshot(now=T)[0]["failures"] == 0
    answer = plan.next(T + 5)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after) == (504, None)
    assert answer.message.startswith("deadline of 5s passed")


@pytest.mark.parametrize(
    ("phase", "read", "when", "detail", "blamed"),
    [
        (Phase.QUEUED, None, T + 900, "deadline of 900s passed", False),
        (Phase.CONNECTING, None, T + 60, "could not connect and send within 60s", True),
        (Phase.WAITING, None, T + 60, "no response head within 60s", True),
        (Phase.READING, Read.FIRST_BYTES, T + 60, "no first byte within 60s", True),
        (Phase.READING, Read.BODY, T + 600, "the body did not arrive within 600s", True),
        (Phase.COMMITTED, None, T + 200, "the stream went silent for 120s", True),
        # byok's own caps on a stream that still flows: no fault of the key's
        (Phase.COMMITTED, None, T + 600, "attempt_timeout of 600s reached", False),
    ],
)
def test_timeouts_say_what_did_not_arrive(phase, read, when, detail, blamed):
    plan = plan_for(attempts=1)
    attempt = to_phase(plan, phase, read or Read.FIRST_BYTES)
    assert plan.timed_out(attempt, when) == detail
    assert attempt.outcome is not None
    assert attempt.outcome.timed_out
    assert attempt.outcome.detail == detail
    assert attempt.blamed is blamed
    assert (seen(plan) != []) is blamed


def test_the_requests_deadline_never_blames_a_key():
    router = router_for()
    plan = plan_for(router, deadline=10)
    plan.failed(start(plan), "reset", T)  # a wasted 9 s on a, say
    attempt = sent(plan, T + 9)
    assert plan.timed_out(attempt, T + 10) == "deadline of 10s passed"
    assert not attempt.blamed  # b had 1 s of its 60: not its fault
    assert router.pools[0].selector.snapshot(now=T)[1]["failures"] == 0


def test_the_deadlines_the_plan_gives():
    plan = plan_for(first_byte_timeout=5, attempt_timeout=30, stream_idle_timeout=7, deadline=100)
    attempt = start(plan, T + 1)
    assert plan.slot_taken(attempt, T + 1.5) == T + 6.5  # connect and write in time too
    assert plan.written(attempt, T + 2) == T + 7  # first_byte_timeout from the write
    assert attempt.ends_by == T + 32
    plan.stream = True
    assert plan.head(attempt, 200, OK, T + 3, wall=0.0) == (Read.FIRST_BYTES, T + 7)
    assert plan.first_bytes(attempt, T + 4)
    assert plan.chunk_deadline(attempt, T + 10) == T + 17
    assert plan.chunk_deadline(attempt, T + 30) == T + 32  # attempt_timeout caps it


def test_an_error_head_reads_a_bounded_error_body():
    plan = plan_for()
    attempt = start(plan)
    plan.slot_taken(attempt, T)
    plan.written(attempt, T)
    assert plan.head(attempt, 503, OK, T, wall=0.0) == (Read.ERROR_BODY, T + 600)


def test_a_failure_after_a_reload_reaches_the_new_pool_too():
    router = router_for()
    plan = plan_for(router)
    attempt = headed(plan, 429, [("retry-after", "30")])
    new = Router(from_dict(tables(("a", "b", "c"), strategy="round_robin")), previous=router)
    plan.router = lambda: new
    plan.body(attempt, b"", T)
    assert router.pool("p", "up").selector.state("a", now=T) == "cooldown"
    assert new.pool("p", "up").selector.state("a", now=T) == "cooldown"


def test_abandoned_attempts_report_nothing_and_give_the_key_back():
    router = router_for()
    for phase in (Phase.QUEUED, Phase.WAITING, Phase.READING, Phase.COMMITTED):
        plan = plan_for(router)
        attempt = to_phase(plan, phase)
        plan.abandoned(attempt, T)
        assert attempt.phase is Phase.DONE
        assert attempt.outcome is None
        assert seen(plan) == []
    views = router.pools[0].selector.snapshot(now=T)
    assert all(v["inflight"] == 0 and v["failures"] == 0 and v["successes"] == 0 for v in views)


# ---- hedging -------------------------------------------------------------------------


def test_a_hedge_is_due_after_hedge_after_without_a_head():
    plan = plan_for(hedge_after=2)
    first = start(plan)
    assert plan.hedge_at() == T + 2
    assert plan.hedge(T + 1) is None
    second = plan.hedge(T + 2)
    assert isinstance(second, Try)
    assert second.attempt.label == "b"
    assert plan.hedge_at() is None  # two race: no third
    plan.slot_taken(first, T)
    plan.written(first, T)
    plan.head(first, 200, OK, T + 3, wall=0.0)
    assert plan.body(first, b"{}", T + 3) is Verdict.COMMIT
    plan.slot_taken(second.attempt, T + 2)
    plan.written(second.attempt, T + 2)
    plan.head(second.attempt, 200, OK, T + 3, wall=0.0)
    assert plan.body(second.attempt, b"{}", T + 3) is Verdict.DISCARD
    assert inflight(plan) == [0, 0, 0]


def test_no_hedge_once_the_head_is_in_or_without_hedging():
    plan = plan_for(hedge_after=1)
    attempt = start(plan)
    plan.slot_taken(attempt, T)
    plan.written(attempt, T)
    plan.head(attempt, 200, OK, T + 0.5, wall=0.0)
    assert plan.hedge_at() is None
    assert plan.hedge(T + 5) is None
    assert plan_for().hedge_at() is None


def test_a_failure_while_racing_starts_the_next_key_at_once():
    plan = plan_for(hedge_after=2, stream=True)
    first = start(plan)
    second = plan.hedge(T + 2)
    assert second is not None
    plan.failed(first, "connection refused", T + 2.1)
    third = plan.next(T + 2.1)
    assert isinstance(third, Try)
    assert third.attempt.label == "c"
    plan.slot_taken(second.attempt, T + 2)
    plan.written(second.attempt, T + 2)
    plan.head(second.attempt, 200, OK, T + 3, wall=0.0)
    assert plan.first_bytes(second.attempt, T + 3)
    plan.slot_taken(third.attempt, T + 2.1)
    plan.written(third.attempt, T + 2.1)
    plan.head(third.attempt, 200, OK, T + 3, wall=0.0)
    assert plan.first_bytes(third.attempt, T + 3) is False  # lost: it is over
    assert third.attempt.phase is Phase.DONE


def test_no_hedge_without_keys_or_attempts_left():
    plan = plan_for(router_for(("a",)), hedge_after=1)
    start(plan)
    assert plan.hedge(T + 1) is None
    plan = plan_for(hedge_after=1, attempts=1)
    start(plan)
    assert plan.hedge(T + 1) is None
    plan = plan_for(hedge_after=1, deadline=1)
    start(plan)
    assert plan.hedge(T + 1) is None


def test_next_waits_for_running_attempts_when_no_key_is_left():
    plan = plan_for(router_for(("a", "b")), hedge_after=1)
    first = start(plan)
    assert plan.hedge(T + 1) is not None
    plan.failed(first, "reset", T + 1)
    assert plan.next(T + 1) is None


# ---- small parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (b'{"error": {"message": "Rate   limit\\nreached"}}', "Rate limit reached"),
        (b'{"type": "error", "error": {"type": "x", "message": "Overloaded"}}', "Overloaded"),
        (b'{"message": "flat"}', "flat"),
        (b'["a list"]', '["a list"]'),
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (b"", "no body"),
        (b"x" * 500, "x" * 200),
    ],
)
def test_error_summaries(body, summary):
    assert _summary(body) == summary


def test_an_attempt_has_no_first_byte_time_before_its_head():
    attempt = start(plan_for())
    assert attempt.first_byte is None


def test_a_plan_without_an_observer_still_reports_to_the_engine():
    router = router_for()
    routes = router.routes("m", "openai", PATH)
    assert routes
    plan = Plan(lambda: router, routes, RetryPolicy(), T)
    fail_with(plan, 500)
    assert router.pools[0].selector.snapshot(now=T)[0]["failures"] == 1


def test_a_key_at_its_cap_further_down_the_order_is_passed_over():
    data = tables()
    data["providers"]["p"]["keys"][1]["max_inflight"] = 1
    router = Router(from_dict(data))
    plan = plan_for(router)
    first = start(plan)  # its order is a, b, c
    busy = plan_for(router)
    busy.failed(start(busy), "reset", T)
    assert start(busy).label == "b"  # b's one slot is taken now
    plan.failed(first, "reset", T)
    assert start(plan).label == "c"


def test_a_client_error_loses_to_an_answer_already_given():
    plan = plan_for(hedge_after=1)
    first = start(plan)
    second = plan.hedge(T + 1)
    assert second is not None
    for attempt, status in ((first, 200), (second.attempt, 400)):
        plan.slot_taken(attempt, T + 1)
        plan.written(attempt, T + 1)
        plan.head(attempt, status, OK, T + 2, wall=0.0)
    assert plan.body(first, b"{}", T + 2) is Verdict.COMMIT
    assert plan.body(second.attempt, b"{}", T + 2) is Verdict.DISCARD
    assert seen(plan) == [("a", Kind.SUCCESS, None)]


def test_an_empty_answer_loses_to_an_answer_already_given():
    plan = plan_for(hedge_after=1, stream=True)
    first = start(plan)
    second = plan.hedge(T + 1)
    assert second is not None
    for attempt in (first, second.attempt):
        plan.slot_taken(attempt, T + 1)
        plan.written(attempt, T + 1)
        plan.head(attempt, 200, OK, T + 2, wall=0.0)
    assert plan.first_bytes(first, T + 2)
    assert plan.ended(second.attempt, T + 2) is False
    assert second.attempt.phase is Phase.DONE
    assert inflight(plan) == [1, 0, 0]  # the winner streams on


def test_a_key_tried_twice_counts_once_in_the_answer():
    plan = plan_for(router_for(("a",)), wait_for_cooldown=5, attempts=2)
    fail_with(plan, 429, [("retry-after", "0.5")])
    wait = plan.next(T)
    assert wait == Wait(T + 0.5)
    retry = start(plan, T + 0.5)
    assert retry.label == "a"
    plan.slot_taken(retry, T + 0.5)
    plan.written(retry, T + 0.5)
    plan.head(retry, 429, [("retry-after", "3")], T + 0.5, wall=0.0)
    plan.body(retry, b"", T + 0.5)
    answer = plan.next(T + 0.5)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after) == (429, 3)


# ---- what the review found -------------------------------------------------------------


def test_a_hedge_that_cannot_start_is_not_due_again():
    plan = plan_for(router_for(("a",)), hedge_after=1)
    start(plan)
    assert plan.hedge_at() == T + 1
    assert plan.hedge(T + 1) is None  # no other key
    assert plan.hedge_at() is None  # so the proxy does not wake for it again


def test_wait_for_cooldown_is_the_requests_whole_patience():
    data = tables(("a",))
    data["providers"]["p"]["keys"][0]["max_inflight"] = 1
    router = Router(from_dict(data))
    start(plan_for(router))  # a's one slot is taken, for good
    plan = plan_for(router, wait_for_cooldown=1)
    assert plan.next(T) == Wait(T + 0.05)
    assert plan.next(T + 0.95) == Wait(T + 1.0)
    answer = plan.next(T + 1.0)  # a further wait would pass the patience
    assert isinstance(answer, GiveUp)
    assert answer.status == 429


def test_keys_exhausted_with_an_untried_key_cooling_answer_when_it_returns():
    plan = plan_for(router_for(("a", "b")))
    plan.routes[0].pool.selector.report_rate_limited("b", retry_after=3, now=T)
    fail_with(plan, 500)  # a fails once and stays ready
    answer = plan.next(T)  # no key left to try, one attempt of four used
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after, answer.should_retry) == (429, 3, True)
    assert "key a: 500" in answer.message


def test_a_rotated_key_is_not_blamed_for_its_old_secret():
    router = router_for(("a", "b"))
    plan = plan_for(router)
    attempt = headed(plan, 401)
    rotated = tables(("a", "b"))
    rotated["providers"]["p"]["keys"][0]["key"] = "sk-a-NEW-secret"
    new = Router(from_dict(rotated), previous=router)
    plan.router = lambda: new
    assert plan.body(attempt, b"", T) is Verdict.RETRY
    assert router.pool("p", "up").selector.state("a", now=T) == "blocked"  # the old secret
    assert new.pool("p", "up").selector.state("a", now=T) == "ready"  # the new one


def test_attempts_after_a_reload_take_keys_from_the_new_pool():
    router = router_for(("a", "b"))
    plan = plan_for(router)
    plan.failed(start(plan), "reset", T)  # a's order came from the old pool
    fewer = Router(from_dict(tables(("b",), strategy="round_robin")), previous=router)
    plan.router = lambda: fewer
    plan._order = None  # the next route's order is made anew (as after a Wait)
    assert start(plan).pool is fewer.pool("p", "up")


def test_a_target_removed_by_a_reload_is_skipped():
    router = router_for(("a",))
    plan = plan_for(router)
    data = tables(("a",))
    data["models"]["m"]["targets"] = ["p/elsewhere"]
    plan.router = lambda: Router(from_dict(data), previous=router)
    answer = plan.next(T)
    assert answer == GiveUp(503, "every key for model 'm' is blocked or disabled")


def probing(router: Router) -> Plan:
    router.pools[0].selector.report_rate_limited("a", retry_after=1, now=T)
    plan = plan_for(router, now=T + 1)
    return plan


def test_a_probe_that_ends_without_a_verdict_is_handed_back():
    router = router_for(("a",))
    plan = probing(router)
    attempt = start(plan, T + 1)
    assert attempt.probe
    plan.abandoned(attempt, T + 1)  # the client left
    again = plan_for(router, now=T + 1)
    assert start(again, T + 1).label == "a"  # probed again at once, not in 30 s


def test_a_probe_answered_with_a_client_error_proves_the_key():
    router = router_for(("a",))
    plan = probing(router)
    attempt = headed(plan, 400, now=T + 1)
    assert attempt.probe
    assert plan.body(attempt, b"{}", T + 1) is Verdict.RELAY
    assert router.pools[0].selector.state("a", now=T + 1) == "ready"


def test_byoks_own_failures_blame_no_key():
    plan = plan_for(router_for(("a",)))
    attempt = start(plan)
    plan.slot_taken(attempt, T)
    plan.failed(attempt, "cannot reach 127.0.0.1: Too many open files", T, local=True)
    assert seen(plan) == []
    assert plan.routes[0].pool.selector.snapshot(now=T)[0]["failures"] == 0
    answer = plan.next(T)
    assert isinstance(answer, GiveUp)
    assert (answer.status, answer.retry_after) == (503, 1)
    assert "byok could not reach the upstream" in answer.message


def test_a_second_401_is_not_a_second_state_change():
    router = router_for()
    plans = [plan_for(router), plan_for(router)]
    attempts = [headed(plans[0], 401), headed(plans[1], 401)]  # both in flight on a
    assert [a.label for a in attempts] == ["a", "a"]
    for plan, attempt in zip(plans, attempts):
        plan.body(attempt, b"", T)
    assert seen(plans[0]) == [("a", Kind.BLOCKED, "blocked")]
    assert seen(plans[1]) == [("a", Kind.BLOCKED, None)]  # already blocked: no new line


def test_a_key_whose_own_clock_ran_out_with_the_deadline_is_blamed():
    plan = plan_for(deadline=60, first_byte_timeout=60)
    attempt = sent(plan)
    assert plan.timed_out(attempt, T + 60) == "no response head within 60s"
    assert attempt.blamed
    assert plan.deadline_passed
