"""Selector.impose() / HealthTable.impose(): a key state learned from elsewhere
(another replica, through Redis) applied without shortening a cooldown, with
the operator's and the re-validation's decisions winning."""

from __future__ import annotations

import math

import pytest

T = 1000.0


def make(impl, ids=("a", "b"), **options):
    options.setdefault("strategy", "round_robin")
    return impl.Selector(list(ids), **options)


def row(sel, id, now=T):
    return next(r for r in sel.snapshot(now=now) if r["id"] == id)


# ---- cooldown ------------------------------------------------------------------------


def test_a_cooldown_takes_a_ready_key_out_until_the_deadline(impl):
    sel = make(impl)
    assert sel.impose("a", "cooldown", until=T + 30, cause="rate_limited", now=T) is True
    assert sel.state("a", now=T + 29.999) == "cooldown"
    assert sel.state("a", now=T + 30) == "half_open"
    assert [sel.pick(now=T + 1) for _ in range(3)] == ["b"] * 3
    view = row(sel, "a", T + 10)
    assert (view["cause"], view["cooldown_remaining"]) == ("rate_limited", pytest.approx(20))
    assert sel.outlook(now=T + 10) == (0.0, "available")
    sel.block("b")
    assert sel.outlook(now=T + 10) == (pytest.approx(20), "rate_limited")


def test_a_cooldown_never_shortens_a_later_one(impl):
    sel = make(impl)
    sel.report_rate_limited("a", retry_after=60, now=T)
    assert sel.impose("a", "cooldown", until=T + 10, cause="failing", now=T) is False
    view = row(sel, "a")
    assert (view["cooldown_remaining"], view["cause"]) == (pytest.approx(60), "rate_limited")


def test_a_later_cooldown_extends_and_names_its_cause(impl):
    sel = make(impl)
    sel.report_rate_limited("a", retry_after=5, now=T)
    assert sel.impose("a", "cooldown", until=T + 50, cause="failing", now=T + 1) is True
    view = row(sel, "a", T + 1)
    assert (view["cooldown_remaining"], view["cause"]) == (pytest.approx(49), "failing")


def test_a_cooldown_sends_a_half_open_key_back_and_frees_its_probe(impl):
    sel = make(impl, ids=["a"], cooldown=1)
    sel.report_rate_limited("a", retry_after=1, now=T)
    assert sel.pick(now=T + 1) == "a"  # the probe, claimed here
    assert sel.impose("a", "cooldown", until=T + 20, cause="rate_limited", now=T + 1) is True
    assert sel.state("a", now=T + 1) == "cooldown"
    assert sel.pick(now=T + 19.9) is None
    assert sel.pick(now=T + 20) == "a"  # a fresh probe at the new deadline


def test_a_deadline_already_past_changes_nothing(impl):
    sel = make(impl)
    before = sel.snapshot(now=T)
    assert sel.impose("a", "cooldown", until=T - 1, cause="rate_limited", now=T) is False
    assert sel.impose("a", "cooldown", until=T, cause="rate_limited", now=T) is False
    assert sel.snapshot(now=T) == before


@pytest.mark.parametrize("action", ["block", "disable"])
def test_a_cooldown_does_not_downgrade_blocked_or_disabled(impl, action):
    sel = make(impl)
    getattr(sel, action)("a")
    assert sel.impose("a", "cooldown", until=T + 30, cause="failing", now=T) is False
    assert sel.state("a", now=T + 40) == ("blocked" if action == "block" else "disabled")


def test_imposing_counts_nothing_and_keeps_the_level(impl):
    sel = make(impl, cooldown=1, max_cooldown=100)
    sel.report_rate_limited("a", now=T)  # level 1
    sel.report_success("a", now=T + 1)  # the probe: ready, still on probation
    sel.impose("a", "cooldown", until=T + 10, cause="failing", now=T + 1)
    sel.impose("b", "cooldown", until=T + 10, cause="rate_limited", now=T + 1)
    a, b = row(sel, "a", T + 1), row(sel, "b", T + 1)
    counters = ("picks", "successes", "failures", "rate_limits", "consecutive_failures")
    assert {k: a[k] for k in counters} == {
        "picks": 0,
        "successes": 1,
        "failures": 1,
        "rate_limits": 1,
        "consecutive_failures": 0,
    }
    assert {k: b[k] for k in counters} == dict.fromkeys(counters, 0)
    assert (a["backoff_level"], b["backoff_level"]) == (1, 0)
    assert (a["window_attempts"], b["window_attempts"]) == (2, 0)
    # after the imposed cooldown the key fails again: backoff at level 1 (2 s), level 2
    assert sel.report_error("a", now=T + 10) == "probe_failed"
    assert sel.state("a", now=T + 11.999) == "cooldown"
    assert sel.state("a", now=T + 12) == "half_open"
    assert row(sel, "a", T + 10)["backoff_level"] == 2


# ---- ready, blocked, disabled ----------------------------------------------------------


@pytest.mark.parametrize("setup", ["cooldown", "half_open", "blocked", "disabled"])
def test_ready_always_wins_with_a_clean_slate(impl, setup):
    sel = make(impl, ids=["a"], cooldown=1, max_cooldown=100, failure_threshold=1)
    sel.report_error("a", now=T - 2)  # level 1
    sel.report_error("a", now=T - 1)  # a failed probe: level 2, cooling until T + 1
    if setup == "blocked":
        sel.block("a")
    elif setup == "disabled":
        sel.disable("a")
    at = T + 1 if setup == "half_open" else T
    assert sel.state("a", now=at) == setup
    assert sel.impose("a", "ready", now=at) is True
    view = row(sel, "a", at)
    assert (view["state"], view["cause"], view["backoff_level"]) == ("ready", None, 0)
    assert (view["window_attempts"], view["failures"]) == (0, 2)
    assert sel.pick(now=at) == "a"


def test_ready_on_a_ready_key_reports_no_change(impl):
    sel = make(impl)
    assert sel.impose("a", "ready") is False
    assert sel.state("a") == "ready"


@pytest.mark.parametrize("state", ["blocked", "disabled"])
def test_blocked_and_disabled_win_over_a_cooldown(impl, state):
    sel = make(impl)
    sel.report_rate_limited("a", retry_after=5, now=T)
    assert sel.impose("a", state, now=T) is True
    assert sel.state("a", now=T + 100) == state
    assert sel.impose("a", state, now=T) is False  # already so
    assert sel.retry_after(now=T) == 0.0  # b
    sel.block("b")
    assert sel.retry_after(now=T) is None


def test_blocked_leaves_a_disabled_key_disabled(impl):
    """As block() does: replicas converge on the operator's disable whatever
    order the two events arrive in."""
    first, second = make(impl), make(impl)
    first.impose("a", "disabled")
    first.impose("a", "blocked")
    second.impose("a", "blocked")
    second.impose("a", "disabled")
    assert first.state("a") == second.state("a") == "disabled"
    assert first.impose("a", "blocked") is False


def test_a_health_table_imposes_by_index(impl):
    table = impl.HealthTable(2)
    assert table.impose(1, "cooldown", until=T + 3, cause="failing", now=T) is True
    assert table.impose(0, "disabled") is True
    assert [table.state(i, now=T) for i in range(2)] == ["disabled", "cooldown"]
    assert table.outlook(now=T) == (pytest.approx(3), "failing")
    with pytest.raises(IndexError, match="out of range"):
        table.impose(2, "ready")


def test_the_real_clock_by_default(impl):
    import time

    sel = make(impl)
    sel.impose("a", "cooldown", until=time.monotonic() + 100, cause="rate_limited")
    assert sel.state("a") == "cooldown"
    assert 99 < row(sel, "a", time.monotonic())["cooldown_remaining"] <= 100


# ---- wrong arguments --------------------------------------------------------------


def test_an_unknown_id_is_a_key_error(impl):
    with pytest.raises(KeyError, match="no member 'zz'"):
        make(impl).impose("zz", "ready")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("half_open",), "cannot impose state 'half_open'; impose one of: ready, cooldown"),
        (("cooling",), "cannot impose state 'cooling'"),
        ((None,), "cannot impose state None"),
        (("cooldown",), "a cooldown needs until"),
        (("cooldown", "soon", "failing"), "a cooldown needs until"),
        (("cooldown", True, "failing"), "a cooldown needs until"),
        (("cooldown", -1, "failing"), "until must be monotonic seconds"),
        (("cooldown", math.nan, "failing"), "until must be monotonic seconds"),
        (("cooldown", math.inf, "failing"), "until must be monotonic seconds"),
        (("cooldown", T + 1), "a cooldown needs its cause, one of: rate_limited, failing"),
        (("cooldown", T + 1, "broken"), "a cooldown needs its cause"),
        (("ready", T + 1), "until and cause go with a cooldown only"),
        (("blocked", None, "failing"), "until and cause go with a cooldown only"),
    ],
)
def test_bad_states_and_deadlines_are_value_errors(impl, args, message):
    sel = make(impl)
    with pytest.raises(ValueError, match=message):
        sel.impose("a", *args, now=T)
    assert sel.state("a", now=T) == "ready"


def test_a_bad_now_is_refused(impl):
    with pytest.raises(ValueError, match="now must be monotonic seconds"):
        make(impl).impose("a", "cooldown", until=T, cause="failing", now=-5)


def test_the_engine_words_are_accepted():
    from byok_core import Cause, State, _selector, _selector_py

    for cls in (_selector.Selector, _selector_py.Selector):
        sel = cls(["a"])
        assert sel.impose("a", State.COOLDOWN, until=T + 1, cause=Cause.FAILING, now=T)
        assert sel.snapshot(now=T)[0]["cause"] is Cause.FAILING


def test_twins_agree_on_a_run_of_impositions(both):
    steps = [
        ("report_rate_limited", ("a", 5)),
        ("impose", ("a", "cooldown", T + 3, "failing")),
        ("impose", ("a", "cooldown", T + 9, "failing")),
        ("impose", ("b", "blocked")),
        ("impose", ("b", "cooldown", T + 4, "rate_limited")),
        ("impose", ("b", "ready")),
        ("impose", ("c", "disabled")),
        ("impose", ("c", "blocked")),
        ("impose", ("a", "ready")),
    ]
    traces = []
    for impl in both:
        sel = impl.Selector(["a", "b", "c"], seed=3)
        trace = []
        for name, args in steps:
            trace.append(getattr(sel, name)(*args, now=T))
            trace.append((sel.snapshot(now=T + 1), sel.outlook(now=T + 1), sel.pick(now=T + 1)))
        traces.append(trace)
    assert traces[0] == traces[1]
