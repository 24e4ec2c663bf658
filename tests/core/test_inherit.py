"""Hot reload: a new selector takes over the health of the keys it shares with
the old one (Selector.inherit, HealthTable.copy_member)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import load

T = 1000.0


def reload(impl, old, ids, **options):
    new = impl.Selector(list(ids), **options)
    return new, new.inherit(old)


def view(sel, id, now):
    return next(row for row in sel.snapshot(now=now) if row["id"] == id)


# ---- what carries over -------------------------------------------------------------


def test_a_cooling_key_keeps_its_deadline(impl):
    old = impl.Selector(["a", "b"], cooldown=1)
    old.report_rate_limited("a", retry_after=30, now=T)
    old.block("b")
    new, _ = reload(impl, old, ["a", "b", "c"])
    new.disable("c")
    assert new.state("a", now=T + 29.999) == "cooldown"
    assert new.state("a", now=T + 30) == "half_open"
    assert view(new, "a", T + 10)["cooldown_remaining"] == pytest.approx(20)
    assert new.retry_after(now=T + 10) == old.retry_after(now=T + 10) == pytest.approx(20)


def test_the_deadline_survives_on_the_real_clock(impl):
    """until is monotonic ns in both implementations: time.monotonic()'s clock."""
    old = impl.Selector(["a"])
    old.report_rate_limited("a", retry_after=100)
    new, _ = reload(impl, old, ["a", "b"])
    remaining = view(new, "a", time.monotonic())["cooldown_remaining"]
    assert 99 < remaining <= 100
    assert new.state("a") == "cooldown"


def test_the_backoff_level_carries_over(impl):
    options = {"cooldown": 1, "max_cooldown": 100}
    old = impl.Selector(["a"], **options)
    old.report_rate_limited("a", now=T)  # level 1: cools 1 s
    old.report_rate_limited("a", now=T + 1)  # failed probe, level 2: cools 2 s
    assert view(old, "a", T + 1)["backoff_level"] == 2
    new, _ = reload(impl, old, ["a"], **options)
    assert view(new, "a", T + 1)["backoff_level"] == 2
    # after the cooldown a further failure escalates as it would have on old: 4 s
    for sel in (old, new):
        sel.report_error("a", now=T + 3)
        assert sel.state("a", now=T + 6.999) == "cooldown"
        assert sel.state("a", now=T + 7) == "half_open"
        assert view(sel, "a", T + 3)["backoff_level"] == 3


def test_a_late_failure_does_not_escalate_after_the_reload(impl):
    old = impl.Selector(["a"], cooldown=1, max_cooldown=100)
    old.report_rate_limited("a", now=T)
    new, _ = reload(impl, old, ["a"], cooldown=1, max_cooldown=100)
    new.report_error("a", now=T + 0.5)  # sent before the key cooled
    assert view(new, "a", T + 0.5)["backoff_level"] == 1
    assert new.state("a", now=T + 1.5) == "half_open"


def test_the_window_and_the_cause_carry_over(impl):
    old = impl.Selector(["a", "b"])
    for _ in range(4):
        old.report_success("a", now=T)
        old.report_error("a", now=T)
    old.report_rate_limited("b", retry_after=5, now=T)
    new, _ = reload(impl, old, ["a", "b"])
    a = view(new, "a", T)
    assert (a["window_attempts"], a["window_failures"]) == (8, 4)
    assert (view(new, "b", T)["cause"], view(new, "b", T + 5)["cause"]) == ("rate_limited",) * 2
    # the window goes on where it was: the tenth attempt opens the circuit on both
    for sel in (old, new):
        sel.report_success("a", now=T + 1)
        assert sel.report_error("a", now=T + 1) == "opened_by_rate"
        assert view(sel, "a", T + 1)["cause"] == "failing"


def test_probation_carries_over(impl):
    old = impl.Selector(["a"])
    old.report_rate_limited("a", now=T)  # level 1
    assert old.report_success("a", now=T + 1) == "ready"  # ready, still on probation
    new, _ = reload(impl, old, ["a"])
    assert view(new, "a", T + 1)["backoff_level"] == 1
    for sel in (old, new):  # 2 of 3 attempts: no minimum on probation
        assert sel.report_error("a", now=T + 1) == "opened_by_rate"
        assert sel.state("a", now=T + 2.999) == "cooldown"


@pytest.mark.parametrize(
    ("width", "now", "attempts"),
    [
        (30, 1020.0, 3),  # the same buckets
        (30, 1031.9, 2),
        (60, 1020.0, 3),  # buckets of 6 s: 999 lands in [996, 1002)
        (60, 1055.9, 3),
        (60, 1056.0, 2),  # [996, 1002) is out
        (3, 1020.0, 1),  # buckets of 0.3 s: only the report at 1020 is recent
        (3, 1006.0, 0),  # all three land in one slot, which the latest (1020) keeps
    ],
)
def test_the_window_lands_in_buckets_of_another_width(impl, width, now, attempts):
    old = impl.Selector(["a"])  # 30 s: buckets of 3 s
    for t in (999.0, 1005.0, 1020.0):
        old.report_error("a", now=t)
    new, _ = reload(impl, old, ["a"], failure_rate_window=width)
    row = view(new, "a", now)
    assert (row["window_attempts"], row["window_failures"]) == (attempts, attempts)


@pytest.mark.parametrize("action", ["block", "disable"])
def test_blocked_and_disabled_stay_out(impl, action):
    old = impl.Selector(["a", "b"])
    getattr(old, action)("a")
    new, _ = reload(impl, old, ["a", "b"])
    expected = "blocked" if action == "block" else "disabled"
    assert new.state("a", now=T) == expected
    assert [new.pick(now=T) for _ in range(3)] == ["b"] * 3
    new.block("a")  # block() still does not override a disable
    assert new.state("a", now=T) == expected


def test_half_open_stays_half_open_and_probes_once(impl):
    old = impl.Selector(["a"], cooldown=1)
    old.report_rate_limited("a", now=T)
    new, _ = reload(impl, old, ["a"], cooldown=1)
    assert new.state("a", now=T + 2) == "half_open"
    assert new.pick(now=T + 2) == "a"  # the probe
    assert new.pick(now=T + 2) is None  # claimed
    new.report_success("a", now=T + 2)
    assert new.state("a", now=T + 2) == "ready"


def test_a_claimed_probe_stays_claimed(impl):
    old = impl.Selector(["a"], cooldown=1, probe_timeout=10)
    old.report_rate_limited("a", now=T)
    assert old.pick(now=T + 1) == "a"  # the probe, claimed on old until T+11
    new, _ = reload(impl, old, ["a"], cooldown=1, probe_timeout=10)
    assert view(new, "a", T + 2)["probing"] is True
    assert new.pick(now=T + 2) is None
    assert new.pick(now=T + 11) == "a"  # the claim lapses on time


def test_counters_and_latency_are_kept(impl):
    old = impl.Selector(["a", "b"], strategy="priority")
    for _ in range(4):
        old.pick(now=T)
    old.report_success("a", latency=0.5, now=T)
    old.report_success("a", latency=0.1, now=T)
    old.report_error("a", now=T)
    old.report_rate_limited("b", retry_after=5, now=T)
    old.report_error("b", now=T)
    new, _ = reload(impl, old, ["b", "a"], strategy="priority")
    keys = (
        "state",
        "cooldown_remaining",
        "probing",
        "backoff_level",
        "consecutive_failures",
        "picks",
        "successes",
        "failures",
        "rate_limits",
        "latency_ewma",
        "cause",
        "window_attempts",
        "window_failures",
    )
    for id in ("a", "b"):
        before, after = view(old, id, T + 1), view(new, id, T + 1)
        assert {k: after[k] for k in keys} == {k: before[k] for k in keys}, id
    a = view(new, "a", T)
    assert (a["picks"], a["successes"], a["failures"], a["consecutive_failures"]) == (4, 2, 1, 1)
    assert a["latency_ewma"] == 0.5 + 0.3 * (0.1 - 0.5)
    b = view(new, "b", T)
    # the 429 named its delay: a failure and a rate limit, but not in a row
    assert (b["failures"], b["rate_limits"], b["consecutive_failures"]) == (2, 1, 1)


def test_latency_samples_are_kept(impl):
    """The EWMA goes on from the old average, not from a first sample."""
    old = impl.Selector(["a"], strategy="latency")
    old.report_success("a", latency=1.0, now=T)
    new, _ = reload(impl, old, ["a"], strategy="latency")
    new.report_success("a", latency=0.0, now=T)
    assert view(new, "a", T)["latency_ewma"] == pytest.approx(0.7)


def test_consecutive_failures_carry_toward_the_circuit(impl):
    old = impl.Selector(["a", "b"], failure_threshold=3)
    old.report_error("a", now=T)
    old.report_error("a", now=T)
    new, _ = reload(impl, old, ["a", "b"], failure_threshold=3)
    assert new.state("a", now=T) == "ready"
    new.report_error("a", now=T)  # the third in a row
    assert new.state("a", now=T) == "cooldown"


def test_inflight_is_not_copied_and_the_new_cap_holds(impl):
    old = impl.Selector(["a"], max_inflight=5)
    for _ in range(3):
        assert old.acquire("a")
    new, _ = reload(impl, old, ["a"], max_inflight=1)
    row = view(new, "a", T)
    assert (row["inflight"], row["max_inflight"]) == (0, 1)
    assert new.acquire("a")
    assert not new.acquire("a")
    new.release("a")
    with pytest.raises(ValueError, match="nothing in flight"):
        new.release("a")  # old's three calls are not counted here
    old.release("a")  # calls in flight release on the old selector
    assert view(old, "a", T)["inflight"] == 2


def test_a_new_cap_of_none_stays_none(impl):
    old = impl.Selector(["a"], max_inflight=2)
    new, _ = reload(impl, old, ["a"])
    assert view(new, "a", T)["max_inflight"] is None


# ---- which ids ---------------------------------------------------------------------


def test_new_ids_start_ready_and_removed_ids_are_ignored(impl):
    old = impl.Selector(["gone", "kept"], cooldown=60, max_cooldown=60)
    old.report_rate_limited("gone", now=T)
    old.block("kept")
    new, carried = reload(impl, old, ["fresh", "kept"])
    assert carried == ["kept"]
    assert "gone" not in new
    assert new.state("fresh", now=T) == "ready"
    assert new.state("kept", now=T) == "blocked"
    fresh = view(new, "fresh", T)
    assert (fresh["picks"], fresh["failures"], fresh["backoff_level"]) == (0, 0, 0)
    assert new.pick(now=T) == "fresh"


def test_the_returned_ids_are_in_the_new_order(impl):
    old = impl.Selector(["a", "b", "c", "d"])
    new = impl.Selector(["d", "x", "b", "a"])
    assert new.inherit(old) == ["d", "b", "a"]
    assert impl.Selector(["y", "z"]).inherit(old) == []
    assert impl.Selector([]).inherit(old) == []
    assert new.inherit(impl.Selector([])) == []


def test_an_unshared_member_is_left_alone(impl):
    old = impl.Selector(["a"])
    new = impl.Selector(["a", "b"])
    new.block("b")
    new.report_error("b", now=T)
    new.inherit(old)
    row = view(new, "b", T)
    assert (row["state"], row["failures"]) == ("blocked", 1)


def test_inheriting_overwrites_the_shared_members(impl):
    """A reload onto a selector that already served traffic takes old's record."""
    old = impl.Selector(["a"])
    new = impl.Selector(["a"], cooldown=60, max_cooldown=60)
    new.report_rate_limited("a", now=T)
    new.inherit(old)
    assert new.state("a", now=T) == "ready"
    assert view(new, "a", T)["failures"] == 0


def test_inheriting_from_itself_changes_nothing(impl):
    sel = impl.Selector(["a", "b"], cooldown=5)
    sel.report_rate_limited("a", now=T)
    sel.report_success("b", latency=0.2, now=T)
    before = sel.snapshot(now=T + 1)
    assert sel.inherit(sel) == ["a", "b"]
    assert sel.snapshot(now=T + 1) == before


def test_the_old_selector_is_untouched(impl):
    old = impl.Selector(["a", "b"], cooldown=5)
    old.report_rate_limited("a", now=T)
    before = old.snapshot(now=T + 1)
    new, _ = reload(impl, old, ["a"])
    new.restore("a")
    new.report_error("a", now=T)
    assert old.snapshot(now=T + 1) == before


# ---- wrong arguments ---------------------------------------------------------------


@pytest.mark.parametrize("other", [None, "a", ["a"], object()])
def test_inherit_takes_only_a_selector(impl, other):
    with pytest.raises(TypeError, match="inherit\\(\\) takes a"):
        impl.Selector(["a"]).inherit(other)


def test_inherit_refuses_the_other_implementation():
    compiled, pure = load("compiled"), load("pure")
    with pytest.raises(TypeError, match="do not mix"):
        compiled.Selector(["a"]).inherit(pure.Selector(["a"]))
    with pytest.raises(TypeError, match="do not mix"):
        pure.Selector(["a"]).inherit(compiled.Selector(["a"]))


def test_inherit_refuses_a_health_table(impl):
    with pytest.raises(TypeError, match="Selector"):
        impl.Selector(["a"]).inherit(impl.HealthTable(1))


# ---- HealthTable.copy_member -------------------------------------------------------


def test_copy_member_by_index(impl):
    source = impl.HealthTable(3, cooldown=5, max_inflight=[0, 0, 4])
    source.report_rate_limited(0, now=T)
    source.disable(1)
    source.report_success(2, latency=0.25, now=T)
    assert source.acquire(2)
    table = impl.HealthTable(2, max_inflight=2)
    table.copy_member(source, 0, 1)
    table.copy_member(source, 1, 0)
    assert [table.state(i, now=T + 1) for i in range(2)] == ["disabled", "cooldown"]
    assert table.snapshot(now=T + 1)[1]["cooldown_remaining"] == pytest.approx(4)
    table.copy_member(source, 2, 0)  # overwrites the disabled record
    row = table.snapshot(now=T)[0]
    assert (row["state"], row["successes"], row["latency_ewma"]) == ("ready", 1, 0.25)
    assert (row["inflight"], row["max_inflight"]) == (0, 2)


def test_copy_member_carries_the_window_cause_and_level(impl):
    source = impl.HealthTable(1, failure_threshold=2)
    source.report_success(0, now=T)
    source.report_error(0, now=T)
    source.report_error(0, now=T)  # opened: level 1, failing
    table = impl.HealthTable(2)
    table.copy_member(source, 0, 1)
    row = table.snapshot(now=T)[1]
    assert (row["state"], row["cause"], row["backoff_level"]) == ("cooldown", "failing", 1)
    assert (row["window_attempts"], row["window_failures"]) == (3, 2)
    assert table.outlook(now=T) == (0.0, "available")  # member 0 is ready
    table.block(0)
    assert table.outlook(now=T) == (pytest.approx(1), "failing")


def test_copy_member_within_one_table(impl):
    table = impl.HealthTable(2, cooldown=5)
    table.report_rate_limited(0, retry_after=7, now=T)
    table.copy_member(table, 0, 1)
    assert table.retry_after(now=T) == pytest.approx(7)
    assert [table.state(i, now=T) for i in range(2)] == ["cooldown", "cooldown"]
    table.copy_member(table, 0, 0)  # onto itself: unchanged
    assert table.snapshot(now=T)[0] == table.snapshot(now=T)[1]


def test_copy_member_index_errors(impl):
    source, table = impl.HealthTable(2), impl.HealthTable(1)
    with pytest.raises(IndexError, match="member index 2 out of range for 2 members"):
        table.copy_member(source, 2, 0)
    with pytest.raises(IndexError, match="member index 1 out of range for 1 members"):
        table.copy_member(source, 0, 1)
    with pytest.raises(IndexError, match="out of range"):
        table.copy_member(source, -1, 0)
    with pytest.raises(IndexError, match="out of range"):
        impl.HealthTable(0).copy_member(source, 0, 0)
    with pytest.raises(TypeError, match="index must be an int"):
        table.copy_member(source, "0", 0)
    with pytest.raises(TypeError, match="index must be an int"):
        table.copy_member(source, 0, True)
    with pytest.raises(TypeError, match="index must be an int"):
        table.copy_member(source, 0, 0.0)


@pytest.mark.parametrize("source", [None, 3, "table"])
def test_copy_member_takes_only_a_health_table(impl, source):
    with pytest.raises(
        TypeError, match=r"source must be a byok_core\._health(_py)?\.HealthTable, got "
    ):
        impl.HealthTable(1).copy_member(source, 0, 0)


def test_copy_member_refuses_the_other_implementation():
    compiled, pure = load("compiled"), load("pure")
    with pytest.raises(TypeError, match=r"got byok_core\._health_py\.HealthTable"):
        compiled.HealthTable(1).copy_member(pure.HealthTable(1), 0, 0)
    with pytest.raises(TypeError, match=r"got byok_core\._health\.HealthTable"):
        pure.HealthTable(1).copy_member(compiled.HealthTable(1), 0, 0)


def test_crossed_copies_in_one_table_do_not_deadlock(impl):
    """Two threads copy 0 -> 1 and 1 -> 0 at once while others report, and
    every copy and report completes.  (Under the GIL, and with the twin's
    one lock, the copies do not interleave: this checks that concurrent use
    stays correct, not the lock order itself; on free-threaded builds it
    also exercises the per-member locks.)"""
    table = impl.HealthTable(2, cooldown=0.001, max_cooldown=0.002)
    stop = threading.Event()
    errors = []

    def run(work):
        try:
            while not stop.is_set():
                work()
        except BaseException as error:  # surfaced by the main thread
            errors.append(error)

    workers = [
        threading.Thread(target=run, args=(lambda: table.copy_member(table, 0, 1),)),
        threading.Thread(target=run, args=(lambda: table.copy_member(table, 1, 0),)),
        threading.Thread(target=run, args=(lambda: table.report_error(0),)),
        threading.Thread(target=run, args=(lambda: table.report_success(1, latency=0.1),)),
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.3)
    stop.set()
    for worker in workers:
        worker.join(timeout=10)
    assert not any(worker.is_alive() for worker in workers), "a copy deadlocked"
    assert errors == []
    assert [row["inflight"] for row in table.snapshot()] == [0, 0]


# ---- the twins agree ---------------------------------------------------------------

IDS = ["k0", "k1", "k2", "k3"]
member = st.sampled_from(IDS)
step = st.one_of(
    st.tuples(st.just("pick"), st.none()),
    st.tuples(st.just("report_success"), member, st.floats(0, 5, allow_nan=False)),
    st.tuples(st.just("report_rate_limited"), member, st.none() | st.floats(0, 20)),
    st.tuples(st.just("report_error"), member),
    st.tuples(st.sampled_from(["block", "disable", "restore", "acquire"]), member),
    st.tuples(st.just("wait"), st.floats(0, 10, allow_nan=False)),
)


def play(sel, program, now):
    for op, *args in program:
        if op == "wait":
            now += args[0]
        elif op == "pick":
            sel.pick(now=now)
        elif op in ("report_success", "report_rate_limited"):
            getattr(sel, op)(args[0], args[1], now=now)
        elif op == "report_error":
            sel.report_error(args[0], now=now)
        else:
            getattr(sel, op)(args[0])
    return now


@settings(max_examples=150, deadline=None)
@given(
    before=st.lists(step, max_size=40),
    after=st.lists(step, max_size=20),
    new_ids=st.lists(st.sampled_from([*IDS, "n0", "n1"]), unique=True, max_size=6),
    new_window=st.sampled_from([20.0, 7.0, 61.5]),
)
def test_twins_inherit_alike(before, after, new_ids, new_window):
    answers = []
    for impl in (load("compiled"), load("pure")):
        options = {
            "cooldown": 0.5,
            "max_cooldown": 8,
            "failure_threshold": 2,
            "failure_rate_min_attempts": 3,
        }
        old = impl.Selector(IDS, strategy="least_used", failure_rate_window=20, **options)
        now = play(old, before, 50.0)
        new = impl.Selector(
            new_ids,
            strategy="least_used",
            max_inflight=1,
            failure_rate_window=new_window,
            **options,
        )
        carried = new.inherit(old)
        now = play(new, [s for s in after if s[0] in ("pick", "wait") or s[1] in new_ids], now)
        answers.append((carried, new.snapshot(now=now), new.outlook(now=now)))
    assert answers[0] == answers[1]
