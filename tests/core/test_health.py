"""The health state machine: cooldown, half-open probes, circuit, block, restore."""

from __future__ import annotations

import time

import pytest

T = 1000.0


def make(impl, ids=("a", "b"), **options):
    options.setdefault("strategy", "round_robin")
    return impl.Selector(list(ids), **options)


# ---- rate limits and cooldown ---------------------------------------------------


def test_rate_limit_cools_the_member_and_traffic_moves(impl):
    sel = make(impl, cooldown=60)
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
        sel.report_rate_limited("a", now=t)
        assert sel.state("a", now=t + delay - 0.001) == "cooldown"
        assert sel.state("a", now=t + delay) == "half_open"
        t += delay
        assert sel.pick(now=t) == "a"  # the probe
    sel.report_success("a", now=t)
    assert sel.state("a", now=t) == "ready"
    sel.report_rate_limited("a", now=t)  # level was reset by the success
    assert sel.state("a", now=t + 1) == "half_open"


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


def test_probe_success_makes_the_member_ready_and_resets_counters(impl):
    sel = make(impl, ids=["a"], cooldown=1, failure_threshold=2)
    sel.report_error("a", now=T)
    sel.report_error("a", now=T)
    assert sel.state("a", now=T) == "cooldown"
    assert sel.pick(now=T + 1) == "a"
    sel.report_success("a", latency=0.2, now=T + 1.5)
    view = sel.snapshot(now=T + 2)[0]
    assert view["state"] == "ready"
    assert view["consecutive_failures"] == 0
    assert view["backoff_level"] == 0
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
    sel = make(impl, failure_threshold=3, cooldown=60)
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
    sel = make(impl, ids=["a"], cooldown=60)
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
    sel = make(impl, cooldown=60)
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
        "weight": 3,
        "cooldown_remaining": 0.0,
        "probing": False,
        "backoff_level": 0,
        "consecutive_failures": 0,
        "picks": 1,
        "successes": 1,
        "failures": 0,
        "rate_limits": 0,
        "inflight": 0,
        "max_inflight": None,
        "latency_ewma": 0.25,
    }
    assert b["state"] == "cooldown"
    assert b["cooldown_remaining"] == pytest.approx(1.5)
    assert (b["failures"], b["rate_limits"], b["consecutive_failures"]) == (1, 1, 1)
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
