"""Limits: configured rpm/tpm/daily_tokens, the provider's headroom, the
pool's own limits and the headroom strategy, on both twins.

Time is the caller's `now` throughout: the buckets refill on it, never on
the machine's clock.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from byok_core import STRATEGIES, Cause

from .conftest import load

T = 1000.0
BOTH = (load("compiled"), load("pure"))


# ---- configured limits ----------------------------------------------------------------


def test_rpm_is_a_bucket_of_a_minute(impl):
    sel = impl.Selector(["a"], rpm=3)
    assert [sel.pick(now=T) for _ in range(4)] == ["a", "a", "a", None]
    assert sel.limits_wait("a", now=T) == (pytest.approx(20.0), "rpm")
    assert sel.outlook(now=T) == (pytest.approx(20.0), Cause.LIMITED)
    assert sel.pick(now=T + 19.9) is None
    assert sel.pick(now=T + 20.0) == "a"  # one request refilled per 60/3 s
    assert sel.pick(now=T + 20.0) is None
    # a limit is not a failure: nothing counted against the key's health
    view = sel.snapshot(now=T + 20)[0]
    assert (view["state"], view["failures"], view["backoff_level"]) == ("ready", 0, 0)
    assert view["limits"] == {"rpm": {"limit": 3, "remaining": 0, "full_in": 60.0}}


def test_tpm_takes_the_estimated_tokens(impl):
    sel = impl.Selector(["a", "b"], strategy="priority", tpm={"a": 1000})
    assert sel.pick(now=T, cost=600) == "a"
    assert sel.pick(now=T, cost=600) == "b"  # a has 400 left
    assert sel.pick(now=T, cost=400) == "a"
    wait, which = sel.limits_wait("a", cost=100, now=T)
    assert (wait, which) == (pytest.approx(6.0), "tpm")  # 1000 tokens a minute: 100 in 6 s
    assert sel.order(now=T, cost=100) == ["b"]
    assert sel.order(now=T + 6, cost=100) == ["a", "b"]


def test_a_request_larger_than_the_bucket_waits_for_it_full(impl):
    sel = impl.Selector(["a"], tpm=1000)
    assert sel.pick(now=T, cost=5000) == "a"  # takes the whole bucket, not more
    assert sel.limits_wait("a", cost=5000, now=T) == (pytest.approx(60.0), "tpm")
    assert sel.pick(now=T + 60, cost=5000) == "a"


def test_daily_tokens_refill_over_a_day(impl):
    sel = impl.Selector(["a"], daily_tokens=86_400)
    assert sel.acquire("a", cost=86_400, now=T)
    sel.release("a", cost=86_400)
    assert not sel.acquire("a", cost=10, now=T + 1)
    assert sel.limits_wait("a", cost=10, now=T + 1) == (pytest.approx(9.0), "daily_tokens")
    assert sel.acquire("a", cost=10, now=T + 10)


def test_usage_corrects_the_estimate_both_ways(impl):
    sel = impl.Selector(["a"], tpm=600)
    assert sel.acquire("a", cost=300, now=T)
    sel.report_usage("a", estimated=300, actual=100, now=T)  # 200 given back
    sel.release("a", cost=300)
    assert sel.snapshot(now=T)[0]["limits"]["tpm"]["remaining"] == 500
    assert sel.acquire("a", cost=100, now=T)
    sel.report_usage("a", estimated=100, actual=900, now=T)  # 800 more: overdrawn
    sel.release("a", cost=100)
    assert sel.snapshot(now=T)[0]["limits"]["tpm"]["remaining"] == -400
    assert not sel.acquire("a", now=T)
    # a correction never fills the bucket beyond full
    fresh = impl.Selector(["a"], tpm=600)
    fresh.report_usage("a", estimated=500, actual=0, now=T)
    assert fresh.snapshot(now=T)[0]["limits"]["tpm"]["remaining"] == 600


def test_acquire_takes_every_limit_or_none(impl):
    sel = impl.Selector(["a"], rpm=10, tpm=100)
    assert sel.acquire("a", cost=90, now=T)
    assert not sel.acquire("a", cost=20, now=T)  # tpm says no: rpm keeps its 9
    limits = sel.snapshot(now=T)[0]["limits"]
    assert (limits["rpm"]["remaining"], limits["tpm"]["remaining"]) == (9, 10)
    assert sel.snapshot(now=T)[0]["inflight"] == 1
    sel.release("a", cost=90)
    assert sel.snapshot(now=T)[0]["inflight"] == 0


def test_order_takes_nothing_from_the_limits(impl):
    sel = impl.Selector(["a", "b"], strategy="priority", rpm=1)
    for _ in range(3):
        assert sel.order(now=T) == ["a", "b"]
    assert sel.acquire("a", now=T)
    assert sel.order(now=T) == ["b"]


def test_a_limit_does_not_end_with_restore_or_a_success(impl):
    sel = impl.Selector(["a"], rpm=1)
    assert sel.pick(now=T) == "a"
    sel.report_success("a", now=T)
    sel.restore("a")
    assert sel.pick(now=T) is None


def test_outlook_counts_a_cooldown_and_a_limit_together(impl):
    sel = impl.Selector(["a", "b"], rpm={"b": 1}, cooldown=5, failure_threshold=1)
    sel.report_error("a", now=T)  # a cools 5 s
    assert sel.pick(now=T) == "b"  # b's minute is spent: back in 60 s
    assert sel.outlook(now=T) == (pytest.approx(5.0), Cause.FAILING)
    sel.report_rate_limited("a", retry_after=90, now=T)
    assert sel.outlook(now=T) == (pytest.approx(60.0), Cause.LIMITED)
    sel.impose("b", "cooldown", until=T + 100, cause="rate_limited", now=T)
    assert sel.outlook(now=T) == (pytest.approx(90.0), Cause.RATE_LIMITED)


def test_bad_limits_and_costs_are_refused(impl):
    with pytest.raises(ValueError, match="rpm for 'a' must be at least 0"):
        impl.Selector(["a"], rpm={"a": -1})
    with pytest.raises(TypeError, match="tpm for 'a' must be an integer"):
        impl.Selector(["a"], tpm=[1.5])
    with pytest.raises(ValueError, match="pool_rpm for the pool must be at least 0"):
        impl.Selector(["a"], pool_rpm=-2)
    sel = impl.Selector(["a"])
    for bad in (-1, 1 << 41):
        with pytest.raises(ValueError, match="cost must be from 0"):
            sel.pick(cost=bad)
    for bad in (True, 1.5, "10"):
        with pytest.raises(TypeError, match="cost must be an integer"):
            sel.acquire("a", cost=bad)
    with pytest.raises(TypeError, match="per-member options of a HealthTable"):
        impl.HealthTable(1, rpm={"0": 1})


# ---- the provider's headroom ---------------------------------------------------------


def test_headroom_rebuilds_the_providers_buckets(impl):
    sel = impl.Selector(["a"])
    assert sel.acquire("a", cost=500, now=T)
    # OpenAI's figures: 499 of 500 requests left, full again in 120 ms; 29,500
    # of 30,000 tokens left, full again in 1 s
    sel.report_headroom(
        "a",
        requests_remaining=499,
        requests_limit=500,
        requests_reset=0.12,
        tokens_remaining=29_500,
        tokens_limit=30_000,
        tokens_reset=1.0,
        cost=500,
        now=T,
    )
    sel.release("a", cost=500)
    limits = sel.snapshot(now=T)[0]["limits"]
    assert limits["provider_requests"] == {"limit": 500, "remaining": 499, "full_in": 0.12}
    assert limits["provider_tokens"]["remaining"] == 29_500
    assert limits["provider_tokens"]["full_in"] == pytest.approx(1.0)
    # the bucket refills at the rate the figures imply: 500 tokens a second
    assert sel.limits_wait("a", cost=30_000, now=T) == (pytest.approx(1.0), "provider_tokens")
    assert sel.limits_wait("a", cost=29_500, now=T) == (0.0, None)


def test_headroom_subtracts_the_calls_still_in_flight(impl):
    sel = impl.Selector(["a"])
    for _ in range(3):
        assert sel.acquire("a", cost=100, now=T)
    # the answer to the first: the provider has not counted the other two yet
    sel.report_headroom(
        "a", requests_remaining=5, requests_limit=10, requests_reset=5.0, cost=100, now=T
    )
    sel.report_headroom(
        "a", tokens_remaining=1000, tokens_limit=2000, tokens_reset=10.0, cost=100, now=T
    )
    limits = sel.snapshot(now=T)[0]["limits"]
    assert limits["provider_requests"]["remaining"] == 3  # 5 less the two in flight
    assert limits["provider_tokens"]["remaining"] == 800  # 1000 less their 200


def test_an_empty_key_is_skipped_until_it_refills_not_cooled(impl):
    sel = impl.Selector(["a", "b"], strategy="priority")
    sel.report_headroom("a", requests_remaining=0, requests_limit=60, requests_reset=60.0, now=T)
    assert sel.order(now=T) == ["b"]
    assert sel.state("a", now=T) == "ready"
    assert sel.limits_wait("a", now=T) == (pytest.approx(1.0), "provider_requests")
    assert sel.order(now=T + 1) == ["a", "b"]
    assert sel.snapshot(now=T)[0]["backoff_level"] == 0


def test_headroom_figures_partly_given_or_odd(impl):
    sel = impl.Selector(["a"])
    # Azure: remaining only; a bucket needs a size, so one of 7 a minute
    sel.report_headroom("a", tokens_remaining=7, now=T)
    assert sel.snapshot(now=T)[0]["limits"]["provider_tokens"]["limit"] == 7
    # nothing to learn from "0 of 0"; NaN is not given; a reset in the past is now
    sel.report_headroom("a", requests_remaining=0, requests_limit=0, now=T)
    assert "provider_requests" not in sel.snapshot(now=T)[0]["limits"]
    sel.report_headroom("a", requests_remaining=math.nan, requests_reset=-3.0, now=T)
    assert "provider_requests" not in sel.snapshot(now=T)[0]["limits"]
    sel.report_headroom("a", requests_remaining=5.0, requests_limit=1e30, now=T)
    assert sel.snapshot(now=T)[0]["limits"]["provider_requests"]["limit"] == 1 << 40
    with pytest.raises(TypeError, match="requests_remaining must be a number"):
        sel.report_headroom("a", requests_remaining="5")
    with pytest.raises(TypeError, match="tokens_reset must be a number of seconds"):
        sel.report_headroom("a", tokens_reset="1s")


def test_headroom_strategy_prefers_the_largest_share_left(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="headroom")
    figures = {"a": 10, "b": 80, "c": 40}
    for key, remaining in figures.items():
        sel.report_headroom(
            key, requests_remaining=remaining, requests_limit=100, requests_reset=30, now=T
        )
    assert sel.order(now=T) == ["b", "c", "a"]
    assert sel.pick(now=T) == "b"
    # ties (no figures, or equal shares) go to the fewest picks
    fresh = impl.Selector(["a", "b"], strategy="headroom")
    assert [fresh.pick(now=T) for _ in range(4)] == ["a", "b", "a", "b"]


# ---- the pool's own limits -------------------------------------------------------------


def test_pool_rpm_holds_over_every_member(impl):
    sel = impl.Selector(["a", "b"], pool_rpm=3)
    assert [sel.pick(now=T) for _ in range(4)] == ["a", "b", "a", None]
    assert sel.order(now=T) == []
    assert sel.outlook(now=T) == (pytest.approx(20.0), Cause.LIMITED)
    assert sel.limits_wait(now=T) == (pytest.approx(20.0), "rpm")
    assert sel.pool_snapshot(now=T)["limits"]["rpm"]["remaining"] == 0
    assert impl.Selector(["a"]).pool_snapshot() is None


def test_pool_acquire_rolls_back_when_the_member_says_no(impl):
    sel = impl.Selector(["a", "b"], rpm={"a": 1}, pool_tpm=1000, pool_max_inflight=2)
    assert sel.acquire("a", cost=100, now=T)
    assert not sel.acquire("a", cost=100, now=T)  # a's rpm: the pool gets its 100 back
    assert sel.pool_snapshot(now=T)["limits"]["tpm"]["remaining"] == 900
    assert sel.pool_snapshot(now=T)["inflight"] == 1
    assert sel.acquire("b", cost=100, now=T)
    assert not sel.acquire("b", cost=100, now=T)  # the pool's max_inflight
    assert sel.order(now=T) == []
    sel.release("b", cost=100)
    assert sel.order(now=T) == ["b"]
    sel.report_usage("a", estimated=100, actual=600, now=T)
    assert sel.pool_snapshot(now=T)["limits"]["tpm"]["remaining"] == 300


# ---- reloads and sharing ------------------------------------------------------------------


def test_inherit_keeps_what_was_spent_and_what_was_learned(impl):
    old = impl.Selector(["a", "b"], rpm=2)
    assert old.pick(now=T) == "a"
    old.report_headroom("b", tokens_remaining=10, tokens_limit=100, tokens_reset=9.0, now=T)
    new = impl.Selector(["a", "b"], rpm={"a": 4})  # a reload: a's rpm raised, b's dropped
    new.inherit(old)
    a, b = new.snapshot(now=T)
    assert a["limits"] == {"rpm": {"limit": 4, "remaining": 2, "full_in": 30.0}}
    assert b["limits"]["provider_tokens"]["remaining"] == 10
    assert "rpm" not in b["limits"]


def test_limits_are_shared_through_a_segment(impl):
    segment = impl.HealthSegment.create(64, workers=2)
    try:
        other = impl.HealthSegment.attach(segment.name, worker=1)
        one = impl.Selector(["a", "b"], rpm={"a": 2}, pool_tpm=100, shared=segment, scope="p")
        two = impl.Selector(["a", "b"], rpm={"a": 2}, pool_tpm=100, shared=other, scope="p")
        assert one.acquire("a", cost=60, now=T)
        assert two.acquire("a", now=T)
        assert not two.acquire("a", now=T)  # the shared minute is spent
        assert not two.acquire("b", cost=50, now=T)  # and the pool's tokens: 40 left
        assert two.acquire("b", cost=40, now=T)
        two.report_headroom("a", requests_remaining=0, requests_limit=9, now=T)
        # the other worker's call in flight counts as sent after the answer
        assert one.snapshot(now=T)[0]["limits"]["provider_requests"]["remaining"] == -1
        one.release("a", cost=60)
        two.release("a")
        two.release("b", cost=40)
        assert one.pool_snapshot(now=T)["inflight"] == 0
        other.close()
    finally:
        segment.close()
        segment.unlink()


# ---- the twins agree ----------------------------------------------------------------------

IDS = ["k0", "k1", "k2", "k3"]


def _program(rng: random.Random, length: int) -> list[tuple]:
    program: list[tuple] = []
    for _ in range(length):
        roll = rng.random()
        member = rng.choice(IDS)
        cost = rng.choice([0, 10, 250, 900, 5000])
        if roll < 0.2:
            program.append(("pick", cost))
        elif roll < 0.3:
            program.append(("order", cost))
        elif roll < 0.45:
            program.append(("acquire", member, cost))
        elif roll < 0.55:
            program.append(("release",))
        elif roll < 0.7:
            remaining = rng.choice([None, 0, 3, 40, 1e9, math.nan])
            limit = rng.choice([None, 0, 60, 100])
            reset = rng.choice([None, 0.0, 0.5, 7.0, 61.0])
            sent = rng.choice([None, -0.5, 0.0])
            program.append(("headroom", member, remaining, limit, reset, cost, sent))
        elif roll < 0.8:
            program.append(("usage", member, cost, rng.choice([0, 100, 2000])))
        elif roll < 0.85:
            program.append(("rate_limited", member, rng.choice([None, 2.0])))
        else:
            program.append(("wait", rng.choice([0.01, 0.3, 2.0, 15.0])))
    return program


@pytest.mark.parametrize("seed", range(10))
def test_twins_agree_on_limits(seed):
    rng = random.Random(seed)
    strategy = STRATEGIES[seed % len(STRATEGIES)] if seed % 3 else "headroom"
    program = _program(rng, 800)
    traces = []
    for impl in BOTH:
        sel = impl.Selector(
            IDS,
            strategy=strategy,
            seed=seed,
            rpm={"k0": 30, "k1": 5},
            tpm={"k1": 3000, "k2": 10_000},
            daily_tokens={"k3": 200_000},
            pool_rpm=120 if seed % 2 else 0,
            pool_tpm=40_000 if seed % 2 else 0,
        )
        now, held, trace = T, [], []
        for op, *args in program:
            if op == "wait":
                now += args[0]
            elif op == "pick":
                trace.append(sel.pick(now=now, cost=args[0]))
            elif op == "order":
                trace.append(sel.order(now=now, cost=args[0]))
            elif op == "acquire":
                taken = sel.acquire(args[0], cost=args[1], now=now)
                if taken:
                    held.append((args[0], args[1]))
                trace.append(taken)
            elif op == "release":
                if held:
                    sel.release(*held.pop(0))
            elif op == "headroom":
                member, remaining, limit, reset, cost, sent = args
                sel.report_headroom(
                    member,
                    requests_remaining=remaining,
                    requests_limit=limit,
                    requests_reset=reset,
                    tokens_remaining=None if remaining is None else remaining * 50,
                    tokens_limit=None if limit is None else limit * 100,
                    tokens_reset=reset,
                    cost=cost,
                    now=now,
                    sent=None if sent is None else now + sent,
                )
            elif op == "usage":
                sel.report_usage(args[0], args[1], args[2], now=now)
            else:
                trace.append(sel.report_rate_limited(args[0], args[1], now=now))
            trace.append(sel.outlook(now=now, cost=250))
            trace.append(sel.limits_wait(IDS[len(trace) % 4], cost=250, now=now))
            trace.append(sel.snapshot(now=now))
            trace.append(sel.pool_snapshot(now=now))
        traces.append(trace)
    assert traces[0] == traces[1]
    # the run went through what it is meant to compare
    assert any(step == (0.0, None) for step in traces[0])
    assert any(isinstance(step, tuple) and step[1] == "limited" for step in traces[0])
    assert None in traces[0]  # a pick that found every member over a limit


def test_an_answer_overtaken_by_a_newer_ones_changes_nothing(impl):
    sel = impl.Selector(["a"])
    for _ in range(3):
        assert sel.acquire("a", cost=100, now=T)
    figures = {"tokens_limit": 10_000, "tokens_reset": 60.0, "cost": 100}
    # the call sent at T + 2 is answered first: 7,000 left when it arrived
    sel.report_headroom("a", tokens_remaining=7000, now=T + 3, sent=T + 2, **figures)
    left = sel.snapshot(now=T + 3)[0]["limits"]["provider_tokens"]["remaining"]
    # the answer of the call sent at T + 1 comes later and would say 7,500:
    # older news, dropped
    sel.report_headroom("a", tokens_remaining=7500, now=T + 3, sent=T + 1, **figures)
    assert sel.snapshot(now=T + 3)[0]["limits"]["provider_tokens"]["remaining"] == left
    # an answer of a call sent as late or later is news again
    sel.report_headroom("a", tokens_remaining=5000, now=T + 3, sent=T + 2, **figures)
    assert sel.snapshot(now=T + 3)[0]["limits"]["provider_tokens"]["remaining"] < left


def test_the_readmes_limits_example_runs(impl):
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    intro = "Limits, with a request's estimated tokens as `cost`:"
    block = readme.split(intro, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(block, {"Selector": impl.Selector})
