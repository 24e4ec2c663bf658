"""Bad arguments raise errors that say what to fix."""

from __future__ import annotations

import pytest


def test_unknown_strategy_names_the_valid_ones(impl):
    with pytest.raises(ValueError, match=r"unknown strategy 'fastest'.*round_robin.*sticky"):
        impl.Selector(["a"], strategy="fastest")


def test_duplicate_ids(impl):
    with pytest.raises(ValueError, match="duplicate member id 'a'"):
        impl.Selector(["a", "b", "a"])


def test_ids_must_be_strings(impl):
    with pytest.raises(TypeError, match="member ids must be str"):
        impl.Selector(["a", 2])
    with pytest.raises(TypeError, match="not a single string"):
        impl.Selector("abc")


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        ([1, 0], ValueError, "at least 1"),
        ([1, -3], ValueError, "at least 1"),
        ([1, 1.5], TypeError, "must be an integer"),
        ([1, True], TypeError, "must be an integer"),
        ({"a": "2"}, TypeError, "must be an integer"),
        ([1], ValueError, "has 1 entries but there are 2 members"),
        ({"zz": 2}, KeyError, "unknown member ids: 'zz'"),
        ([1, 2**40], ValueError, "at most"),
    ],
)
def test_bad_weights(impl, weights, error, message):
    with pytest.raises(error, match=message):
        impl.Selector(["a", "b"], strategy="weighted_round_robin", weights=weights)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cooldown": 0}, "cooldown must be"),
        ({"cooldown": -1}, "cooldown must be"),
        ({"cooldown": float("nan")}, "cooldown must be"),
        ({"cooldown": 1e9, "max_cooldown": 1e9}, "cooldown must be .* to 1e"),
        ({"cooldown": 10, "max_cooldown": 5}, "max_cooldown .* at least cooldown"),
        ({"failure_threshold": 0}, "failure_threshold must be"),
        ({"failure_threshold": 2.5}, "failure_threshold must be"),
        ({"probe_timeout": 0}, "probe_timeout must be"),
        ({"latency_alpha": 0}, "latency_alpha must be"),
        ({"latency_alpha": 1.5}, "latency_alpha must be"),
        ({"max_inflight": -1}, "max_inflight for all members must be at least 0"),
        ({"cooldown": 20}, r"max_cooldown \(15.0\) must be at least cooldown \(20\)"),
        ({"failure_threshold": 2**63}, "failure_threshold must be an integer from 1 to 2"),
        ({"failure_rate": -0.1}, "failure_rate must be a number from 0 to 1, got -0.1"),
        ({"failure_rate": 1.5}, "failure_rate must be a number from 0 to 1"),
        ({"failure_rate": float("nan")}, "failure_rate must be a number from 0 to 1"),
        ({"failure_rate": "0.5"}, "failure_rate must be a number from 0 to 1"),
        ({"failure_rate": True}, "failure_rate must be a number from 0 to 1"),
        ({"failure_rate_window": 0}, "failure_rate_window must be a number of seconds"),
        ({"failure_rate_window": -5}, "failure_rate_window must be a number of seconds"),
        ({"failure_rate_window": float("inf")}, "failure_rate_window must be"),
        ({"failure_rate_window": "30"}, "failure_rate_window must be a number of seconds"),
        ({"failure_rate_window": 5e-9}, "failure_rate_window must be at least 10 nanoseconds"),
        ({"failure_rate_min_attempts": 0}, "failure_rate_min_attempts must be an integer of at"),
        ({"failure_rate_min_attempts": 2.0}, "failure_rate_min_attempts must be an integer"),
        ({"failure_rate_min_attempts": True}, "failure_rate_min_attempts must be an integer"),
        ({"failure_rate_min_attempts": 2**63}, "failure_rate_min_attempts must be an integer"),
    ],
)
def test_bad_options(impl, options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        impl.Selector(["a", "b"], **options)
    with pytest.raises((ValueError, TypeError), match=message):
        impl.HealthTable(2, **options)


@pytest.mark.parametrize(
    "options",
    [
        {"failure_rate": 0},
        {"failure_rate": 1},
        {"failure_rate": 0.25, "failure_rate_window": 1e-8, "failure_rate_min_attempts": 1},
        {"failure_rate_window": 1e8, "failure_rate_min_attempts": 2**62},
        {"cooldown": 20, "max_cooldown": 20},
    ],
)
def test_good_options_at_the_edges(impl, options):
    sel = impl.Selector(["a"], **options)
    sel.report_error("a", now=10.0)
    assert sel.snapshot(now=10.0)[0]["window_failures"] == 1
    assert len(impl.HealthTable(1, **options)) == 1


def test_new_options_are_keyword_only(impl):
    with pytest.raises(TypeError):
        impl.Selector(["a"], "round_robin", None, 1.0, 15.0, 3, None, 0.5)


def test_bad_seed(impl):
    with pytest.raises(TypeError, match="seed must be an int"):
        impl.Selector(["a"], strategy="random", seed="x")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.report_success("zz"),
        lambda s: s.report_rate_limited("zz"),
        lambda s: s.report_error("zz"),
        lambda s: s.block("zz"),
        lambda s: s.disable("zz"),
        lambda s: s.restore("zz"),
        lambda s: s.acquire("zz"),
        lambda s: s.release("zz"),
        lambda s: s.state("zz"),
    ],
)
def test_unknown_member_is_a_key_error(impl, call):
    sel = impl.Selector(["a"])
    with pytest.raises(KeyError, match="no member 'zz' in this selector"):
        call(sel)


@pytest.mark.parametrize(
    ("retry_after", "cools_for"),
    [(-5, 0.0), (float("nan"), 1.0), (float("inf"), 1e8), (1e9, 1e8), (10**12, 1e8)],
)
def test_out_of_range_report_seconds_are_clamped_not_lost(impl, retry_after, cools_for):
    """A 429 with a nonsense delay (a date already past, an absurd number)
    still cools the key: the outcome is never lost to a bad number."""
    sel = impl.Selector(["a"], cooldown=1)
    sel.report_rate_limited("a", retry_after=retry_after, now=10.0)
    view = sel.snapshot(now=10.0)[0]
    assert view["rate_limits"] == 1
    assert view["cooldown_remaining"] == pytest.approx(cools_for)  # NaN: the 1 s backoff
    sel.report_success("a", latency=-3, now=10.0)
    sel.report_success("a", latency=float("nan"), now=10.0)
    view = sel.snapshot(now=10.0)[0]
    assert view["successes"] == 2
    assert view["latency_ewma"] == 0.0  # -3 counted as 0, NaN as unknown


def test_durations_below_a_nanosecond_are_refused(impl):
    with pytest.raises(ValueError, match="at least one nanosecond"):
        impl.Selector(["a"], cooldown=1e-10)


@pytest.mark.parametrize("now", [-1.0, 1e10, float("nan"), float("inf")])
def test_now_must_be_monotonic_seconds(impl, now):
    sel = impl.Selector(["a"])
    for call in (sel.pick, sel.order, sel.retry_after, sel.snapshot):
        with pytest.raises(ValueError, match=r"now must be monotonic seconds"):
            call(now=now)
    with pytest.raises(ValueError, match=r"now must be monotonic seconds"):
        sel.report_error("a", now=now)
    assert sel.snapshot()[0]["failures"] == 0


def test_report_seconds_must_be_numbers(impl):
    sel = impl.Selector(["a"])
    with pytest.raises(TypeError, match="retry_after must be a number"):
        sel.report_rate_limited("a", retry_after="5")
    with pytest.raises(TypeError):
        sel.pick(now="soon")


def test_introspection(impl):
    sel = impl.Selector(["a", "b"], strategy="priority")
    assert sel.ids == ("a", "b")
    assert sel.strategy == "priority"
    assert len(sel) == 2
    assert "a" in sel
    assert "z" not in sel
    assert repr(sel) == "<Selector priority over 2 members>"
