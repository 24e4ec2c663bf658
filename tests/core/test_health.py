"""The health state machine: cooldown, half-open probes, circuit, block, restore,
the failure-rate window, causes, outlook() and the transitions reports return."""

from __future__ import annotations

import time

import pytest

T = 1000.0


def make(impl, ids=("a", "b"), **options):
    options.setdefault("strategy", "round_robin")
    return impl.Selector(list(ids), **options)


# ---- rate limits and cooldown ---------------------------------------------------


def test_rate_limit_cools_the_member_and_traffic_moves(impl):
    sel = make(impl, cooldown=60, max_cooldown=60)
    sel.report_rate_limited("a", now=T)
    assert sel.state("a", now=T) == "cooldown"
    assert [sel.pick(now=T) for _ in range(3)] == ["b"] * 3


def test_retry_after_sets_the_deadline_exactly(impl):
    sel = make(impl, cooldown=1)
    sel.report_rate_limited("a", retry_after=30, now=T)
    assert sel.state("a", now=T + 29.999) == "cooldown"
    assert sel.state("a", now=T + 30) == "half_open"
    assert sel.snapshot(now=T + 10)[0]["cooldown_remaining"] == pytest.approx(20)


def test_retry_after_zero_makes_the_member_half_open_at_once(impl):
    sel = make(impl)
    sel.report_rate_limited("a", retry_after=0, now=T)
    assert sel.state("a", now=T) == "half_open"


def test_backoff_doubles_with_each_failed_probe_and_is_capped(impl):
    sel = make(impl, ids=["a"], cooldown=1, max_cooldown=5)
    t = T
    expected = [1, 2, 4, 5, 5]
    for delay in expected:
        assert sel.report_rate_limited("a", now=t) == "cooled"  # no delay: backoff
        assert sel.state("a", now=t + delay - 0.001) == "cooldown"
        assert sel.state("a", now=t + delay) == "half_open"
        t += delay
        assert sel.pick(now=t) == "a"  # the probe
    assert sel.report_success("a", now=t) == "ready"
    assert sel.state("a", now=t) == "ready"
    # five failures in six attempts: the success closed the circuit but did
    # not forgive the key, so the next failure cools it at the cap again
    assert sel.snapshot(now=t)[0]["backoff_level"] == 5
    sel.report_rate_limited("a", now=t)
    assert sel.state("a", now=t + 4.999) == "cooldown"
    assert sel.state("a", now=t + 5) == "half_open"


def test_a_new_failure_extends_the_deadline_and_never_shortens_it(impl):
    sel = make(impl, cooldown=1)
    sel.report_rate_limited("a", retry_after=10, now=T)
    sel.report_rate_limited("a", retry_after=2, now=T + 1)  # would end at T+3
    assert sel.state("a", now=T + 9) == "cooldown"
    sel.report_rate_limited("a", retry_after=20, now=T + 5)  # ends at T+25
    assert sel.state("a", now=T + 24) == "cooldown"
    assert sel.state("a", now=T + 25) == "half_open"


def test_late_failures_while_cooling_do_not_escalate(impl):
    """Fifty requests in flight when a key died cost it one cooldown, not 2**50."""
    sel = make(impl, cooldown=1, max_cooldown=1000)
    sel.report_rate_limited("a", now=T)
    for _ in range(50):
        sel.report_error("a", now=T + 0.5)
    assert sel.state("a", now=T + 1.5) == "half_open"
    assert sel.snapshot(now=T)[0]["backoff_level"] == 1


def test_cooldown_ends_in_half_open_by_itself(impl):
    sel = make(impl, ids=["a"], cooldown=0.01)
    sel.report_rate_limited("a")
    assert sel.pick() is None
    time.sleep(0.02)
    assert sel.state("a") == "half_open"
    assert sel.pick() == "a"


# ---- half-open probes ---------------------------------------------------------------


def test_exactly_one_caller_gets_the_probe(impl):
    sel = make(impl, cooldown=1)
    sel.report_rate_limited("a", now=T)
    got = [sel.pick(now=T + 1) for _ in range(6)]
    assert got.count("a") == 1
    assert sel.snapshot(now=T + 1)[0]["probing"] is True
    assert sel.retry_after(now=T + 1) == 0.0  # b is ready


def test_probe_success_makes_the_member_ready_but_keeps_the_level(impl):
    sel = make(impl, ids=["a"], cooldown=1, failure_threshold=2)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    assert sel.state("a", now=T) == "cooldown"
    assert sel.pick(now=T + 1) == "a"
    assert sel.report_success("a", latency=0.2, now=T + 1.5) == "ready"
    view = sel.snapshot(now=T + 2)[0]
    assert view["state"] == "ready"
    assert view["cause"] is None
    assert view["consecutive_failures"] == 0
    assert view["backoff_level"] == 1  # on probation: 2 failures in 3 attempts
    assert [sel.pick(now=T + 2) for _ in range(3)] == ["a"] * 3


def test_probe_failure_sends_it_back_for_longer(impl):
    sel = make(impl, ids=["a"], cooldown=1)
    sel.report_rate_limited("a", now=T)
    assert sel.pick(now=T + 1) == "a"
    sel.report_error("a", now=T + 1)
    assert sel.state("a", now=T + 2.9) == "cooldown"
    assert sel.state("a", now=T + 3) == "half_open"


def test_a_lost_probe_lapses_after_probe_timeout(impl):
    sel = make(impl, ids=["a"], cooldown=1, probe_timeout=5)
    sel.report_rate_limited("a", now=T)
    assert sel.pick(now=T + 1) == "a"
    assert sel.pick(now=T + 2) is None
    assert sel.retry_after(now=T + 2) == pytest.approx(4)
    assert sel.pick(now=T + 6) == "a"


def test_a_success_during_cooldown_keeps_the_cooldown(impl):
    """A request sent before the 429 may still succeed; the limit stands."""
    sel = make(impl, cooldown=1)
    sel.report_rate_limited("a", retry_after=30, now=T)
    sel.report_success("a", now=T + 1)
    assert sel.state("a", now=T + 1) == "cooldown"


def test_half_open_appears_only_at_the_head_of_an_order(impl):
    sel = make(impl, ids=["a", "b", "c"], strategy="priority", cooldown=1)
    sel.report_rate_limited("b", now=T)
    assert sel.order(now=T + 1) == ["a", "c"]  # b is half-open but not first
    assert sel.state("b", now=T + 1) == "half_open"
    sel.disable("a")
    assert sel.order(now=T + 1) == ["b", "c"]  # now b heads it, as a probe
    assert sel.order(now=T + 1) == ["c"]  # and nobody else gets it


# ---- errors and the circuit ------------------------------------------------------


def test_circuit_opens_after_threshold_consecutive_errors(impl):
    sel = make(impl, failure_threshold=3, cooldown=60, max_cooldown=60)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    assert sel.state("a", now=T) == "ready"
    sel.report_error("a", now=T)
    assert sel.state("a", now=T) == "cooldown"
    assert {sel.pick(now=T) for _ in range(4)} == {"b"}


def test_success_resets_the_consecutive_count(impl):
    sel = make(impl, failure_threshold=3)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    sel.report_success("a", now=T)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    assert sel.state("a", now=T) == "ready"
    assert sel.snapshot(now=T)[0]["consecutive_failures"] == 2


# ---- block, disable, restore -----------------------------------------------------------


@pytest.mark.parametrize("action", ["block", "disable"])
def test_blocked_and_disabled_never_come_back_by_themselves(impl, action):
    sel = make(impl, cooldown=0.001)
    getattr(sel, action)("a")
    expected = "blocked" if action == "block" else "disabled"
    for later in (0, 1, 1e6):
        assert sel.state("a", now=T + later) == expected
        assert sel.pick(now=T + later) == "b"
    sel.report_success("a", now=T)  # a late success does not unblock
    assert sel.state("a", now=T) == expected
    sel.report_rate_limited("a", now=T)  # nor does a 429 turn it into a cooldown
    assert sel.state("a", now=T + 1e6) == expected


@pytest.mark.parametrize("action", ["block", "disable", "rate_limit"])
def test_restore_brings_any_state_back(impl, action):
    sel = make(impl, ids=["a"], cooldown=60, max_cooldown=60)
    if action == "rate_limit":
        sel.report_rate_limited("a", now=T)
    else:
        getattr(sel, action)("a")
    assert sel.pick(now=T + 1) is None
    sel.restore("a")
    assert sel.state("a", now=T + 1) == "ready"
    assert sel.pick(now=T + 1) == "a"


def test_block_does_not_override_an_operator_disable(impl):
    sel = make(impl)
    sel.disable("a")
    sel.block("a")
    assert sel.state("a") == "disabled"
    sel.restore("a")
    sel.block("a")
    sel.disable("a")
    assert sel.state("a") == "disabled"


def test_all_blocked_picks_none_and_never_returns(impl):
    sel = make(impl)
    sel.block("a")
    sel.block("b")
    assert sel.pick(now=T) is None
    assert sel.retry_after(now=T) is None


# ---- retry_after ---------------------------------------------------------------------


def test_retry_after_is_zero_while_one_member_is_available(impl):
    sel = make(impl, cooldown=60, max_cooldown=60)
    sel.report_rate_limited("a", now=T)
    assert sel.retry_after(now=T) == 0.0


def test_retry_after_is_the_soonest_return(impl):
    sel = make(impl, ids=["a", "b", "c"])
    sel.report_rate_limited("a", retry_after=30, now=T)
    sel.report_rate_limited("b", retry_after=12.5, now=T)
    sel.block("c")
    assert sel.retry_after(now=T) == pytest.approx(12.5)
    assert sel.retry_after(now=T + 10) == pytest.approx(2.5)
    assert sel.retry_after(now=T + 12.5) == 0.0


def test_retry_after_counts_a_half_open_member_as_available(impl):
    sel = make(impl, ids=["a"], cooldown=1)
    sel.report_rate_limited("a", now=T)
    assert sel.retry_after(now=T + 1) == 0.0


# ---- in flight -------------------------------------------------------------------------


def test_max_inflight_caps_a_member(impl):
    sel = make(impl, max_inflight={"a": 2})
    assert sel.acquire("a")
    assert sel.acquire("a")
    assert not sel.acquire("a")
    assert {sel.pick(now=T) for _ in range(4)} == {"b"}
    sel.release("a")
    assert "a" in {sel.pick(now=T) for _ in range(4)}
    assert sel.snapshot(now=T)[0]["inflight"] == 1


def test_release_without_acquire_is_an_error(impl):
    sel = make(impl)
    with pytest.raises(ValueError, match="release"):
        sel.release("a")
    assert sel.snapshot()[0]["inflight"] == 0


# ---- the snapshot --------------------------------------------------------------------


def test_snapshot_reports_every_field(impl):
    sel = make(impl, weights=[3, 1], cooldown=2)
    sel.pick(now=T)
    sel.report_success("a", latency=0.25, now=T)
    sel.report_rate_limited("b", now=T)
    a, b = sel.snapshot(now=T + 0.5)
    assert a == {
        "id": "a",
        "state": "ready",
        "cause": None,
        "weight": 3,
        "cooldown_remaining": 0.0,
        "probing": False,
        "backoff_level": 0,
        "consecutive_failures": 0,
        "picks": 1,
        "successes": 1,
        "failures": 0,
        "rate_limits": 0,
        "window_attempts": 1,
        "window_failures": 0,
        "inflight": 0,
        "max_inflight": None,
        "latency_ewma": 0.25,
        "limits": {},
    }
    assert b["state"] == "cooldown"
    assert b["cause"] == "rate_limited"
    assert b["cooldown_remaining"] == pytest.approx(1.5)
    assert (b["failures"], b["rate_limits"], b["consecutive_failures"]) == (1, 1, 1)
    assert (b["window_attempts"], b["window_failures"]) == (1, 1)
    assert b["latency_ewma"] is None


# ---- the health table on its own -------------------------------------------------------


def test_health_table_by_index(impl):
    table = impl.HealthTable(3, cooldown=5, max_inflight=[0, 1, 0])
    assert len(table) == 3
    table.report_rate_limited(0, now=T)
    table.block(1)
    assert [table.state(i, now=T) for i in range(3)] == ["cooldown", "blocked", "ready"]
    assert table.acquire(1)
    assert not table.acquire(1)
    table.release(1)
    assert table.retry_after(now=T) == 0.0
    table.disable(2)
    assert table.retry_after(now=T) == pytest.approx(5)
    with pytest.raises(IndexError, match="out of range"):
        table.state(3)
    with pytest.raises(TypeError, match="index must be an int"):
        table.block("0")


def test_a_failed_probe_cannot_be_claimed_twice(impl):
    sel = impl.Selector(["a"], cooldown=1)
    sel.report_rate_limited("a", now=T)
    assert sel.pick(now=T + 1) == "a"  # the probe
    sel.report_error("a", now=T + 1)  # fails: cooling again until T+3
    assert sel.pick(now=T + 1) is None
    assert sel.state("a", now=T + 3) == "half_open"
    assert sel.pick(now=T + 3) == "a"  # back on time, not after a probe timeout


def test_a_stale_claim_loses_after_the_probe_failed():
    """Interleaving: A saw the member half-open; B claimed the probe and it
    failed; A's claim comes late and must lose (the compiled claim makes the
    same re-check under the member's lock; it is a C inline, not callable here)."""
    from byok_core._health_py import PROBE, HealthTable

    table = HealthTable(1, cooldown=1)
    table.report_rate_limited(0, now=T)
    now = int((T + 1) * 1e9)
    assert table._availability(0, now) == PROBE  # A looks
    assert table._claim_probe(0, now)  # B claims
    table.report_error(0, now=T + 1)  # B's probe fails
    assert not table._claim_probe(0, now)  # A's claim is stale


# ---- backoff level: what raises it, what resets it -------------------------------------


def test_explained_429s_never_raise_the_level(impl):
    sel = make(impl, ids=["a"])  # the defaults: cooldown 1 s, max_cooldown 15 s
    t = T
    for _ in range(10):
        assert sel.report_rate_limited("a", retry_after=1, now=t) == "cooled"
        assert sel.state("a", now=t + 0.999) == "cooldown"
        t += 1
        assert sel.state("a", now=t) == "half_open"
    view = sel.snapshot(now=t)[0]
    assert (view["backoff_level"], view["consecutive_failures"]) == (0, 0)
    assert (view["window_attempts"], view["window_failures"]) == (0, 0)  # capacity, not health
    assert (view["failures"], view["rate_limits"]) == (10, 10)
    assert sel.report_rate_limited("a", now=t) == "cooled"  # no delay: unexplained
    assert sel.state("a", now=t + 0.999) == "cooldown"
    assert sel.state("a", now=t + 1) == "half_open"  # cooldown * 2**0: back within 2 s
    view = sel.snapshot(now=t)[0]
    assert (view["backoff_level"], view["consecutive_failures"]) == (1, 1)
    assert (view["window_attempts"], view["window_failures"]) == (1, 1)


def test_a_429_with_a_delay_cools_exactly_that_long_on_probation_too(impl):
    sel = make(impl, ids=["a"], failure_threshold=5)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    sel.report_rate_limited("a", now=T)  # level 1, cooling 1 s
    assert sel.report_rate_limited("a", retry_after=0.25, now=T + 1) == "cooled"  # half-open
    view = sel.snapshot(now=T + 1)[0]
    assert (view["backoff_level"], view["consecutive_failures"]) == (1, 3)
    assert view["cooldown_remaining"] == pytest.approx(0.25)
    assert sel.state("a", now=T + 1.25) == "half_open"


def test_errors_escalate_up_to_the_default_cap(impl):
    sel = make(impl, ids=["a"])  # failure_threshold 3, cooldown 1 s, max_cooldown 15 s
    assert [sel.report_error("a", now=T) for _ in range(3)] == [None, None, "opened"]
    t = T
    for delay in [1, 2, 4, 8, 15, 15]:
        assert sel.state("a", now=t + delay - 0.001) == "cooldown"
        assert sel.state("a", now=t + delay) == "half_open"
        t += delay
        assert sel.pick(now=t) == "a"  # the probe
        assert sel.report_error("a", now=t) == "probe_failed"
        assert sel.snapshot(now=t)[0]["cause"] == "failing"
    assert sel.snapshot(now=t)[0]["backoff_level"] == 7


@pytest.mark.parametrize(
    ("late_errors", "successes", "level"),
    [
        (0, 8, 1),  # 1 failure in 9 attempts: too few attempts to judge
        (0, 9, 0),  # 1 in 10: well under failure_rate / 2
        (2, 9, 1),  # 3 in 12: 25% is not under it
        (2, 10, 0),  # 3 in 13
    ],
)
def test_the_level_resets_only_well_under_the_threshold(impl, late_errors, successes, level):
    sel = make(impl, ids=["a"], failure_threshold=100)
    sel.report_rate_limited("a", now=T)  # unexplained: level 1, cooling 1 s
    for _ in range(late_errors):
        assert sel.report_error("a", now=T + 0.5) is None  # late: counted, never escalated
    t = T + 2
    assert sel.report_success("a", now=t) == "ready"
    for _ in range(successes - 1):
        assert sel.report_success("a", now=t) is None
    view = sel.snapshot(now=t)[0]
    assert (view["window_attempts"], view["window_failures"]) == (
        1 + late_errors + successes,
        1 + late_errors,
    )
    assert view["backoff_level"] == level


def test_without_the_rate_rule_a_success_forgives_at_once(impl):
    sel = make(impl, ids=["a"], failure_rate=0)
    sel.report_rate_limited("a", now=T)
    assert sel.report_success("a", now=T + 1) == "ready"
    assert sel.snapshot(now=T + 1)[0]["backoff_level"] == 0


# ---- the failure-rate circuit ------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "options", "last"),
    [
        ("SF" * 5, {}, "opened_by_rate"),  # 5 of 10
        ("FS" * 4 + "F", {}, None),  # 5 of 9: under the minimum of attempts
        ("FS" * 5 + "F", {}, "opened_by_rate"),  # 6 of 11
        ("SSFSF" * 2, {}, None),  # 4 of 10: 40%
        ("SFSF", {"failure_rate_min_attempts": 4}, "opened_by_rate"),
        ("SSFSSSFSSF", {"failure_rate": 0.3}, "opened_by_rate"),  # 3 of 10
        ("SSFSSSFSSSF", {"failure_rate": 0.3}, None),  # 3 of 11
        ("SF" * 10, {"failure_rate": 0}, None),  # the rule is off
        ("SFF", {"failure_rate": 1.0, "failure_rate_min_attempts": 1}, None),  # 2 of 3
        ("F", {"failure_rate": 1.0, "failure_rate_min_attempts": 1}, "opened_by_rate"),
    ],
)
def test_the_rate_circuit(impl, outcomes, options, last):
    sel = make(impl, ids=["a"], **options)
    results = [
        sel.report_success("a", now=T) if o == "S" else sel.report_error("a", now=T)
        for o in outcomes
    ]
    assert results == [None] * (len(outcomes) - 1) + [last]
    view = sel.snapshot(now=T)[0]
    if last:
        assert (view["state"], view["cause"], view["backoff_level"]) == ("cooldown", "failing", 1)
        assert view["cooldown_remaining"] == pytest.approx(1)
    else:
        assert (view["state"], view["cause"], view["backoff_level"]) == ("ready", None, 0)


def test_the_consecutive_count_opens_first(impl):
    sel = make(impl, ids=["a"], failure_rate_min_attempts=1)
    assert sel.report_error("a", now=T) == "opened_by_rate"
    sel = make(impl, ids=["a"], failure_threshold=1, failure_rate_min_attempts=1)
    assert sel.report_error("a", now=T) == "opened"


def test_on_probation_the_share_counts_without_the_minimum(impl):
    sel = make(impl, ids=["a"])
    sel.report_rate_limited("a", now=T)  # level 1, cooling 1 s
    assert sel.report_success("a", now=T + 1) == "ready"  # the probe: level stays 1
    assert sel.report_error("a", now=T + 1) == "opened_by_rate"  # 2 of 3 attempts
    assert sel.state("a", now=T + 2.999) == "cooldown"  # backoff(1): 2 s
    assert sel.state("a", now=T + 3) == "half_open"
    assert sel.snapshot(now=T + 1)[0]["backoff_level"] == 2


def test_on_probation_a_share_under_the_threshold_does_not_open(impl):
    sel = make(impl, ids=["a"])
    sel.report_rate_limited("a", now=T)
    for _ in range(3):
        sel.report_success("a", now=T + 1)
    assert sel.report_error("a", now=T + 1) is None  # 2 of 5
    view = sel.snapshot(now=T + 1)[0]
    assert (view["state"], view["backoff_level"]) == ("ready", 1)


# The default window is 30 s in 10 buckets of 3 s; 999.0 starts a bucket.
@pytest.mark.parametrize(
    ("reported", "looked", "counted"),
    [
        (999.0, 999.0, True),
        (999.0, 1028.9, True),
        (999.0, 1029.0, False),  # a window later the bucket is out
        (1001.9, 1028.9, True),
        (1001.9, 1029.0, False),  # buckets go whole: this report 27.1 s later
        (1002.0, 1031.9, True),
        (1002.0, 1032.0, False),
    ],
)
def test_the_window_forgets_bucket_by_bucket(impl, reported, looked, counted):
    sel = make(impl, ids=["a"])
    sel.report_error("a", now=reported)
    view = sel.snapshot(now=looked)[0]
    assert (view["window_attempts"], view["window_failures"]) == ((1, 1) if counted else (0, 0))


def test_a_bucket_is_emptied_before_its_slot_is_reused(impl):
    sel = make(impl, ids=["a"])
    sel.report_error("a", now=999.0)
    sel.report_success("a", now=1029.0)  # the same slot, a window later
    view = sel.snapshot(now=1029.0)[0]
    assert (view["window_attempts"], view["window_failures"]) == (1, 0)


def test_old_failures_leave_the_window_and_stop_counting(impl):
    for later, expected in [(10, "opened_by_rate"), (31, None)]:
        sel = make(impl, ids=["a"])
        for _ in range(4):
            sel.report_success("a", now=T)
            sel.report_error("a", now=T)
        sel.report_success("a", now=T + later)
        assert sel.report_error("a", now=T + later) == expected


def test_custom_window_width(impl):
    sel = make(impl, ids=["a"], failure_rate_window=1.0)  # buckets of 0.1 s
    sel.report_error("a", now=999.0)
    assert sel.snapshot(now=999.95)[0]["window_attempts"] == 1
    assert sel.snapshot(now=1000.0)[0]["window_attempts"] == 0


def test_restore_clears_the_level_the_window_and_the_cause(impl):
    sel = make(impl, ids=["a"], failure_threshold=2)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    sel.restore("a")
    view = sel.snapshot(now=T)[0]
    assert (view["state"], view["cause"], view["backoff_level"]) == ("ready", None, 0)
    assert (view["window_attempts"], view["window_failures"]) == (0, 0)
    assert (view["consecutive_failures"], view["failures"]) == (0, 2)  # totals stay


# ---- cause and outlook() --------------------------------------------------------------


def test_cause_and_outlook_of_a_rate_limited_member(impl):
    sel = make(impl, ids=["a"], probe_timeout=30)
    assert sel.outlook(now=T) == (0.0, "available")
    sel.report_rate_limited("a", retry_after=7, now=T)
    assert sel.snapshot(now=T)[0]["cause"] == "rate_limited"
    assert sel.outlook(now=T + 2) == (pytest.approx(5), "rate_limited")
    assert sel.outlook(now=T + 2)[0] == sel.retry_after(now=T + 2)
    assert sel.snapshot(now=T + 7)[0]["cause"] == "rate_limited"  # half-open: still why
    assert sel.outlook(now=T + 7) == (0.0, "available")
    assert sel.pick(now=T + 7) == "a"  # the probe, claimed until T + 37
    assert sel.outlook(now=T + 8) == (pytest.approx(29), "rate_limited")
    sel.report_success("a", now=T + 8)
    assert sel.snapshot(now=T + 8)[0]["cause"] is None


def test_cause_and_outlook_of_a_failing_member(impl):
    sel = make(impl, ids=["a"], failure_threshold=1)
    sel.report_error("a", now=T)
    assert sel.snapshot(now=T)[0]["cause"] == "failing"
    assert sel.outlook(now=T) == (pytest.approx(1), "failing")


def test_outlook_gives_the_soonest_member_and_its_cause(impl):
    sel = make(impl, ids=["a", "b", "c"], failure_threshold=1)
    sel.report_rate_limited("a", retry_after=10, now=T)
    sel.report_error("b", now=T)  # 1 s
    sel.block("c")
    assert sel.outlook(now=T) == (pytest.approx(1), "failing")
    sel.report_error("b", now=T + 1)  # probe failed: 2 s
    assert sel.outlook(now=T + 2) == (pytest.approx(1), "failing")
    sel.report_error("b", now=T + 3)  # 4 s: until T + 7
    sel.report_error("b", now=T + 7)  # 8 s: until T + 15, after a's T + 10
    assert sel.outlook(now=T + 7) == (pytest.approx(3), "rate_limited")
    assert sel.outlook(now=T + 10) == (0.0, "available")


@pytest.mark.parametrize(
    ("ids", "out"), [([], []), (["a"], ["block"]), (["a", "b"], ["block", "disable"])]
)
def test_outlook_is_out_when_nobody_returns_by_itself(impl, ids, out):
    sel = make(impl, ids=ids)
    for member, action in zip(ids, out):
        getattr(sel, action)(member)
    assert sel.outlook(now=T) == (None, "out")
    assert sel.retry_after(now=T) is None
    assert impl.HealthTable(0).outlook(now=T) == (None, "out")


def test_a_late_report_sets_the_cause_only_if_it_extends_the_deadline(impl):
    sel = make(impl, ids=["a"], failure_threshold=1)
    sel.report_error("a", now=T)  # failing until T + 1
    assert sel.report_rate_limited("a", retry_after=0.2, now=T + 0.5) is None
    assert sel.snapshot(now=T + 0.5)[0]["cause"] == "failing"
    assert sel.report_rate_limited("a", retry_after=5, now=T + 0.5) is None  # until T + 5.5
    assert sel.snapshot(now=T + 0.5)[0]["cause"] == "rate_limited"
    assert sel.report_error("a", now=T + 1) is None  # would end at T + 2
    view = sel.snapshot(now=T + 1)[0]
    assert (view["cause"], view["backoff_level"]) == ("rate_limited", 1)
    assert view["cooldown_remaining"] == pytest.approx(4.5)
    sel.report_error("a", now=T + 5)  # would end at T + 6: extends
    assert sel.snapshot(now=T + 5)[0]["cause"] == "failing"
    sel.block("a")
    assert sel.snapshot(now=T + 5)[0]["cause"] is None


# ---- what each report returns ----------------------------------------------------------

SETUPS = {
    "ready": [],
    "cooling": [("report_rate_limited", 10)],
    "half_open": [("report_rate_limited", 1)],  # at T - 1: half-open at T
    "blocked": [("block",)],
    "disabled": [("disable",)],
    "two_errors": [("report_error",), ("report_error",)],
    "nine_mixed": [("report_success",), ("report_error",)] * 4 + [("report_success",)],
}


@pytest.mark.parametrize(
    ("setup", "report", "expected"),
    [
        ("ready", ("report_success",), None),
        ("half_open", ("report_success",), "ready"),
        ("cooling", ("report_success",), None),
        ("blocked", ("report_success",), None),
        ("ready", ("report_rate_limited", 5), "cooled"),
        ("ready", ("report_rate_limited", None), "cooled"),
        ("half_open", ("report_rate_limited", 5), "cooled"),
        ("half_open", ("report_rate_limited", None), "cooled"),
        ("cooling", ("report_rate_limited", 50), None),  # extends, changes no state
        ("cooling", ("report_rate_limited", None), None),
        ("disabled", ("report_rate_limited", None), None),
        ("ready", ("report_error",), None),
        ("two_errors", ("report_error",), "opened"),
        ("nine_mixed", ("report_error",), "opened_by_rate"),
        ("half_open", ("report_error",), "probe_failed"),
        ("cooling", ("report_error",), None),
        ("blocked", ("report_error",), None),
    ],
)
def test_every_report_returns_its_transition(impl, setup, report, expected):
    """The same from a Selector (by id) and a HealthTable (by index)."""
    for target, member in [(make(impl, ids=["a"]), "a"), (impl.HealthTable(1), 0)]:
        for name, *args in SETUPS[setup]:
            if name in ("block", "disable"):
                getattr(target, name)(member)
            else:
                getattr(target, name)(member, *args, now=T - 1)
        name, *args = report
        assert getattr(target, name)(member, *args, now=T) == expected


def test_transitions_are_exported():
    import byok_core

    assert byok_core.TRANSITIONS == ("ready", "cooled", "opened", "opened_by_rate", "probe_failed")


def test_an_abandoned_probe_is_free_again_at_once(impl):
    sel = make(impl, ids=["a"], cooldown=1)
    sel.report_rate_limited("a", retry_after=1, now=T)
    assert sel.pick(now=T + 1) == "a"  # the probe
    assert sel.pick(now=T + 1) is None  # claimed: nobody else probes
    assert sel.report_abandoned("a", now=T + 1) is None
    assert sel.pick(now=T + 1) == "a"  # free again, not after probe_timeout
    view = sel.snapshot(now=T + 1)[0]
    assert (view["failures"], view["successes"], view["state"]) == (1, 0, "half_open")


def test_abandoning_outside_a_probe_changes_nothing(impl):
    sel = make(impl, ids=["a", "b"], cooldown=1)
    before = sel.snapshot(now=T)
    sel.report_abandoned("a", now=T)  # ready
    sel.report_rate_limited("b", retry_after=5, now=T)
    sel.report_abandoned("b", now=T + 1)  # cooling, its deadline ahead
    after = sel.snapshot(now=T + 1)
    assert after[0] == {**before[0], "picks": 0}
    assert after[1]["state"] == "cooldown"
    assert after[1]["cooldown_remaining"] == pytest.approx(4)


def test_a_quiet_key_is_forgiven_once_its_window_holds_no_failure(impl):
    sel = make(impl, ids=["a"], cooldown=1, failure_threshold=1)
    assert sel.report_error("a", now=T) == "opened"
    assert sel.report_success("a", now=T + 1) == "ready"  # the probe
    assert sel.snapshot(now=T + 1)[0]["backoff_level"] == 1  # the failure is in the window
    sel.report_success("a", now=T + 20)
    assert sel.snapshot(now=T + 20)[0]["backoff_level"] == 1
    sel.report_success("a", now=T + 31)  # one request a while later: the window is clean
    assert sel.snapshot(now=T + 31)[0]["backoff_level"] == 0
