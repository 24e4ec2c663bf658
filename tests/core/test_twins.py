"""The compiled engine and its pure-Python twin make the same choices.

Hypothesis writes programs of picks, orders, reports and operator actions over
simulated time; both twins run each program and must answer every step the
same.  Randomness is a seeded splitmix64 in both, so even the random
strategies give identical sequences; their distributions are checked in
test_strategies.py.
"""

from __future__ import annotations

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


def run(impl, strategy, weights, caps, seed, program):
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
        answers.append(sel.retry_after(now=now))
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
)
def test_twins_answer_every_step_alike(strategy, weights, caps, seed, program):
    compiled, pure = BOTH
    assert run(compiled, strategy, weights, caps, seed, program) == run(
        pure, strategy, weights, caps, seed, program
    )


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
