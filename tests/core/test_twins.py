"""The compiled engine and its pure-Python twin make the same choices.

Hypothesis writes programs of picks, orders, reports and operator actions over
simulated time; both twins run each program and must answer every step the
same.  Randomness is a seeded splitmix64 in both, so even the random
strategies give identical sequences; their distributions are checked in
test_strategies.py.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byok_core import STRATEGIES

from .conftest import load

BOTH = (load("compiled"), load("pure"))

IDS = ["k0", "k1", "k2", "k3", "k4"]

member = st.sampled_from(IDS)
step = st.one_of(
    st.tuples(st.just("pick"), st.one_of(st.none(), st.text(max_size=8))),
    st.tuples(st.just("order"), st.one_of(st.none(), st.text(max_size=8))),
    st.tuples(
        st.just("report_success"),
        member,
        st.one_of(st.none(), st.floats(0, 5, allow_nan=False)),
    ),
    st.tuples(
        st.just("report_rate_limited"),
        member,
        st.one_of(st.none(), st.floats(0, 20, allow_nan=False)),
    ),
    st.tuples(st.just("report_error"), member),
    st.tuples(st.sampled_from(["block", "disable", "restore", "acquire", "release"]), member),
    st.tuples(st.just("wait"), st.floats(0, 10, allow_nan=False)),
)


def run(impl, strategy, weights, caps, seed, program, rate=(0.5, 30.0, 10)):
    sel = impl.Selector(
        IDS,
        strategy=strategy,
        weights=weights,
        max_inflight=caps,
        seed=seed,
        cooldown=0.5,
        max_cooldown=8,
        failure_threshold=2,
        probe_timeout=3,
        failure_rate=rate[0],
        failure_rate_window=rate[1],
        failure_rate_min_attempts=rate[2],
    )
    now = 50.0
    answers = []
    for op, *args in program:
        if op == "wait":
            now += args[0]
            continue
        try:
            if op in ("pick", "order"):
                answers.append(getattr(sel, op)(key=args[0], now=now))
            elif op in ("report_success", "report_rate_limited"):
                answers.append(getattr(sel, op)(args[0], args[1], now=now))
            elif op == "report_error":
                answers.append(sel.report_error(args[0], now=now))
            else:
                answers.append(getattr(sel, op)(args[0]))
        except ValueError as error:  # release() without acquire()
            answers.append(("ValueError", str(error)))
        answers.append(sel.outlook(now=now))
    answers.append(sel.snapshot(now=now))
    answers.append([sel.state(i, now=now) for i in IDS])
    return answers


@settings(max_examples=300, deadline=None)
@given(
    strategy=st.sampled_from(STRATEGIES),
    weights=st.lists(st.integers(1, 9), min_size=len(IDS), max_size=len(IDS)),
    caps=st.lists(st.integers(0, 2), min_size=len(IDS), max_size=len(IDS)),
    seed=st.integers(0, 2**64 - 1),
    program=st.lists(step, max_size=60),
    rate=st.tuples(
        st.sampled_from([0.0, 0.3, 0.5, 1.0]),
        st.sampled_from([2.0, 30.0]),
        st.integers(1, 6),
    ),
)
def test_twins_answer_every_step_alike(strategy, weights, caps, seed, program, rate):
    compiled, pure = BOTH
    assert run(compiled, strategy, weights, caps, seed, program, rate) == run(
        pure, strategy, weights, caps, seed, program, rate
    )


def random_program(rng: random.Random, length: int) -> list[tuple]:
    """Reports, picks and small advances of time, weighted toward failures so
    that every rule of the health table fires (circuits, probation, probes)."""
    program: list[tuple] = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.25:
            program.append(("pick", None))
        elif roll < 0.45:
            program.append(("report_success", rng.choice(IDS), rng.choice([None, 0.1, 2.5])))
        elif roll < 0.6:
            delay = rng.choice([None, None, 0.0, 0.7, 4.0])
            program.append(("report_rate_limited", rng.choice(IDS), delay))
        elif roll < 0.85:
            program.append(("report_error", rng.choice(IDS)))
        elif roll < 0.88:
            program.append((rng.choice(["block", "disable", "restore"]), rng.choice(IDS)))
        else:
            program.append(("wait", rng.choice([0.05, 0.4, 1.0, 2.5, 7.0])))
    return program


@pytest.mark.parametrize("seed", range(12))
def test_twins_keep_identical_snapshots_over_a_seeded_random_run(seed):
    """Long programs (hypothesis keeps its own short): the snapshot after every
    step, with each report's transition and the outlook, must be the same."""
    rng = random.Random(seed)
    strategy = STRATEGIES[seed % len(STRATEGIES)]
    program = random_program(rng, 1500)
    traces = []
    for impl in BOTH:
        sel = impl.Selector(
            IDS,
            strategy=strategy,
            seed=seed,
            failure_threshold=4,
            failure_rate_window=6.0,
            failure_rate_min_attempts=5,
        )
        now, trace = 100.0, []
        for op, *args in program:
            if op == "wait":
                now += args[0]
            elif op == "pick":
                trace.append(sel.pick(now=now))
            elif op == "report_error":
                trace.append(sel.report_error(args[0], now=now))
            elif op in ("report_success", "report_rate_limited"):
                trace.append(getattr(sel, op)(args[0], args[1], now=now))
            else:
                getattr(sel, op)(args[0])
            trace.append(sel.outlook(now=now))
            trace.append(sel.snapshot(now=now))
        traces.append(trace)
    assert traces[0] == traces[1]
    # the run went through the rules it is meant to compare
    seen = {step for step in traces[0] if isinstance(step, str)}
    assert {"ready", "cooled", "probe_failed"} <= seen
    assert seen & {"opened", "opened_by_rate"}


@settings(max_examples=50, deadline=None)
@given(
    strategy=st.sampled_from(STRATEGIES),
    weights=st.lists(st.integers(1, 50), min_size=1, max_size=40),
    seed=st.integers(0, 2**64 - 1),
)
def test_twins_agree_on_long_runs(strategy, weights, seed):
    ids = [f"m{i}" for i in range(len(weights))]
    sequences = []
    for impl in BOTH:
        sel = impl.Selector(ids, strategy=strategy, weights=weights, seed=seed)
        sequences.append(
            [sel.pick(key=f"user{n % 7}" if n % 3 else None, now=1.0) for n in range(300)]
            + sel.order(now=1.0)
        )
    assert sequences[0] == sequences[1]


def test_twins_agree_on_large_pools():
    """Big orders exercise every gap of the compiled Shell sort."""
    ids = [f"m{i}" for i in range(1500)]
    for strategy in STRATEGIES:
        results = []
        for impl in BOTH:
            sel = impl.Selector(
                ids, strategy=strategy, weights=[1 + i % 7 for i in range(1500)], seed=4
            )
            for n in range(0, 1500, 3):
                sel.report_success(ids[n], latency=(n * 7919 % 1000) / 1000, now=1.0)
                sel.acquire(ids[n])
            results.append([sel.order(key="user", now=1.0) for _ in range(3)])
        assert results[0] == results[1], strategy
