"""HealthSegment in one process: selectors of one scope share their members'
records, reloads find the same slots, in-flight counts per worker, and every
wrong use says what was wrong.  test_processes.py does it across processes."""

from __future__ import annotations

import mmap
import os
import struct
import sys

import pytest

from byok_core import _region

from .conftest import load

T = 1000.0


@pytest.fixture
def segment(impl):
    with impl.HealthSegment.create(capacity=64, workers=4) as created:
        yield created


def make(impl, segment, ids=("a", "b"), scope="pool", **options):
    options.setdefault("strategy", "round_robin")
    return impl.Selector(list(ids), shared=segment, scope=scope, **options)


def row(sel, id, now=T):
    return next(r for r in sel.snapshot(now=now) if r["id"] == id)


def poke(name, word, value):
    """Write one 64-bit word of a segment's file, as damage or another
    version would leave it."""
    with open(_region.path_of(name), "r+b") as file, mmap.mmap(file.fileno(), 0) as mm:
        struct.pack_into("<q", mm, word * 8, value)


# ---- one record per (scope, id) ----------------------------------------------------


def test_a_429_through_one_handle_cools_the_key_for_another(impl, segment):
    other = impl.HealthSegment.attach(segment.name, worker=1)
    first, second = make(impl, segment), make(impl, other, ids=["b", "a"])
    assert first.report_rate_limited("a", retry_after=30, now=T) == "cooled"
    assert second.state("a", now=T + 1) == "cooldown"
    assert [second.pick(now=T + 1) for _ in range(3)] == ["b"] * 3
    assert row(second, "a", T + 10)["cooldown_remaining"] == pytest.approx(20)
    second.block("b")
    assert first.outlook(now=T + 10) == (pytest.approx(20), "rate_limited")


def test_scopes_keep_the_same_id_apart(impl, segment):
    gpt, claude = make(impl, segment, scope="gpt"), make(impl, segment, scope="claude")
    gpt.disable("a")
    assert (gpt.state("a"), claude.state("a")) == ("disabled", "ready")
    assert segment.used == 4


def test_counters_are_totals(impl, segment):
    selectors = [make(impl, segment, ids=["a"]) for _ in range(3)]
    for n, sel in enumerate(selectors):
        for _ in range(n + 1):
            assert sel.pick(now=T) == "a"
        sel.report_success("a", latency=0.5, now=T)
    sel.report_error("a", now=T)
    view = row(selectors[0], "a")
    assert (view["picks"], view["successes"], view["failures"]) == (6, 3, 1)
    assert (view["window_attempts"], view["latency_ewma"]) == (4, 0.5)


def test_a_half_open_probe_is_claimed_once_across_selectors(impl, segment):
    selectors = [make(impl, segment, ids=["a"], cooldown=1) for _ in range(4)]
    selectors[0].report_rate_limited("a", retry_after=1, now=T)
    picks = [sel.pick(now=T + 1) for sel in selectors]
    assert picks.count("a") == 1
    assert row(selectors[2], "a", T + 1)["probing"] is True
    assert selectors[3].report_success("a", now=T + 1) == "ready"
    assert [sel.pick(now=T + 1) for sel in selectors] == ["a"] * 4


def test_max_inflight_holds_over_every_handle(impl, segment):
    other = impl.HealthSegment.attach(segment.name, worker=2)
    first = make(impl, segment, ids=["a"], max_inflight=3)
    second = make(impl, other, ids=["a"], max_inflight=3)
    assert [first.acquire("a"), second.acquire("a"), second.acquire("a")] == [True] * 3
    assert not first.acquire("a")
    assert first.pick(now=T) is None  # at its cap: not available, whoever asks
    first.release("a")
    assert second.acquire("a")
    assert row(first, "a")["inflight"] == 3


def test_state_outlook_snapshot_and_impose_read_the_shared_record(impl, segment):
    first, second = make(impl, segment, ids=["a", "b"]), make(impl, segment, ids=["a", "b"])
    assert second.impose("a", "cooldown", until=T + 5, cause="failing", now=T)
    first.report_rate_limited("b", retry_after=2, now=T)
    assert first.snapshot(now=T + 1) == second.snapshot(now=T + 1)
    assert first.outlook(now=T + 1) == (pytest.approx(1), "rate_limited")
    assert first.retry_after(now=T + 1) == pytest.approx(1)
    assert [first.state(id, now=T + 2) for id in "ab"] == ["cooldown", "half_open"]
    first.restore("a")
    assert second.state("a", now=T + 2) == "ready"


def test_a_health_table_files_members_under_its_ids(impl, segment):
    table = impl.HealthTable(2, shared=segment, scope="pool", ids=["b", "a"])
    sel = make(impl, segment, ids=["a", "b"])
    table.report_rate_limited(0, retry_after=10, now=T)  # "b"
    assert (sel.state("a", now=T), sel.state("b", now=T)) == ("ready", "cooldown")
    by_number = impl.HealthTable(2, shared=segment, scope="numbers")
    by_number.disable(1)
    assert make(impl, segment, ids=["1"], scope="numbers").state("1") == "disabled"


# ---- reloads ---------------------------------------------------------------------


def test_a_reload_finds_the_same_slots(impl, segment):
    old = make(impl, segment, ids=["a", "b"], cooldown=5)
    old.report_rate_limited("a", now=T)  # cooling 5 s, level 1
    old.report_success("b", latency=0.25, now=T)
    new = make(impl, segment, ids=["c", "b", "a"], cooldown=5)
    assert segment.used == 3
    assert new.state("a", now=T + 4) == "cooldown"
    assert row(new, "a", T)["backoff_level"] == 1
    assert (row(new, "b")["successes"], row(new, "b")["latency_ewma"]) == (1, 0.25)
    assert row(new, "c")["picks"] == 0
    new.report_error("b", now=T)  # the old selector sees the new one's reports
    assert row(old, "b")["failures"] == 1


def test_inheriting_the_same_records_applies_nothing_twice(impl, segment):
    old = make(impl, segment, ids=["a", "b"], max_inflight=4)
    for _ in range(3):
        old.pick(now=T)
    old.report_success("a", now=T)
    old.report_rate_limited("b", retry_after=9, now=T)
    assert old.acquire("a")
    before = old.snapshot(now=T)
    new = make(impl, segment, ids=["b", "a"], max_inflight=4)
    assert new.inherit(old) == ["b", "a"]
    assert new.inherit(old) == ["b", "a"]
    assert new.snapshot(now=T) == [before[1], before[0]]
    new.report_success("a", now=T)
    assert row(old, "a")["successes"] == 2  # counted once, on the one record
    new.release("a")  # acquired through old: the same record, the same worker
    assert row(old, "a")["inflight"] == 0


def test_inheriting_a_private_selector_copies_into_the_segment(impl, segment):
    private = impl.Selector(["a", "b"])
    private.report_rate_limited("a", retry_after=30, now=T)
    private.report_success("b", latency=0.5, now=T)
    shared = make(impl, segment, ids=["a", "b"])
    assert shared.inherit(private) == ["a", "b"]
    peer = make(impl, segment, ids=["a", "b"])
    assert peer.state("a", now=T + 1) == "cooldown"
    assert row(peer, "b")["latency_ewma"] == 0.5


def test_inheriting_another_scope_copies_its_records(impl, segment):
    old = make(impl, segment, ids=["a"], scope="before")
    old.report_rate_limited("a", retry_after=30, now=T)
    new = make(impl, segment, ids=["a"], scope="after")
    assert new.inherit(old) == ["a"]
    new.restore("a")
    assert (new.state("a", now=T), old.state("a", now=T)) == ("ready", "cooldown")


def test_the_latest_max_inflight_is_written_into_the_record(impl, segment):
    first = make(impl, segment, ids=["a"], max_inflight=1)
    assert first.acquire("a")
    assert not first.acquire("a")
    second = make(impl, segment, ids=["a"], max_inflight=3)
    assert row(first, "a")["max_inflight"] == 3
    assert first.acquire("a")
    make(impl, segment, ids=["a"])
    assert row(first, "a")["max_inflight"] is None
    assert [second.acquire("a") for _ in range(5)] == [True] * 5


# ---- workers and reclaim -----------------------------------------------------------


def test_reclaim_gives_back_a_dead_workers_calls(impl, segment):
    dead = impl.HealthSegment.attach(segment.name, worker=3)
    mine = make(impl, segment, ids=["a", "b"], max_inflight=2)
    theirs = make(impl, dead, ids=["a", "b"], max_inflight=2)
    assert [theirs.acquire("a"), theirs.acquire("a"), theirs.acquire("b")] == [True] * 3
    assert mine.acquire("b")
    assert not mine.acquire("a")
    assert segment.reclaim(3) == 3
    assert segment.reclaim(3) == 0
    assert (row(mine, "a")["inflight"], row(mine, "b")["inflight"]) == (0, 1)
    assert mine.acquire("a")
    mine.release("b")
    with pytest.raises(ValueError, match="nothing in flight"):
        mine.release("b")  # worker 0 holds none of b's any more


def test_a_worker_releases_only_what_it_acquired(impl, segment):
    other = impl.HealthSegment.attach(segment.name, worker=1)
    first, second = make(impl, segment, ids=["a"]), make(impl, other, ids=["a"])
    assert first.acquire("a")
    with pytest.raises(ValueError, match="nothing in flight"):
        second.release("a")
    assert row(first, "a")["inflight"] == 1


@pytest.mark.parametrize(("worker", "error"), [(4, ValueError), (-1, ValueError), ("1", TypeError)])
def test_worker_indexes_are_checked(impl, segment, worker, error):
    with pytest.raises(error, match="worker must be"):
        impl.HealthSegment.attach(segment.name, worker=worker)
    with pytest.raises(error, match="worker must be"):
        segment.reclaim(worker)


# ---- the segment's life ------------------------------------------------------------


def test_the_file_is_the_users_alone_in_memory_backed_storage(impl, segment):
    path = _region.path_of(segment.name)
    assert os.path.isfile(path)
    if sys.platform != "win32":
        assert os.stat(path).st_mode & 0o777 == 0o600
    if os.path.isdir("/dev/shm"):
        assert os.path.dirname(path) == "/dev/shm"


def test_close_keeps_built_selectors_working(impl):
    segment = impl.HealthSegment.create(capacity=8)
    sel = make(impl, segment)
    segment.close()
    segment.close()
    assert segment.closed
    assert "closed" in repr(segment)
    sel.report_rate_limited("a", retry_after=5, now=T)
    assert sel.pick(now=T) == "b"
    for call in (lambda: make(impl, segment), lambda: segment.reclaim(0), lambda: segment.used):
        with pytest.raises(ValueError, match="is closed"):
            call()
    segment.unlink()


def test_the_creator_unlinks_on_leaving_its_block_an_attacher_does_not(impl):
    with impl.HealthSegment.create(capacity=8) as segment:
        with impl.HealthSegment.attach(segment.name, worker=1) as other:
            assert other.name == segment.name
        assert other.closed
        assert os.path.exists(_region.path_of(segment.name))
    assert segment.closed
    assert not os.path.exists(_region.path_of(segment.name))
    with pytest.raises(FileNotFoundError, match="no byok health segment named"):
        impl.HealthSegment.attach(segment.name)
    segment.unlink()  # gone already: nothing to do


def test_a_full_segment_names_its_capacity(impl):
    with impl.HealthSegment.create(capacity=3) as segment:
        make(impl, segment, ids=["a", "b", "c"])
        make(impl, segment, ids=["c", "b"])  # the same pairs: no new slot
        with pytest.raises(ValueError, match=r"is full: its 3 slots .* larger capacity"):
            make(impl, segment, ids=["d"])
        assert segment.used == 3


def test_the_handle_describes_itself(impl):
    with impl.HealthSegment.create(capacity=8, workers=2, worker=1) as segment:
        make(impl, segment, ids=["a"])
        assert (segment.capacity, segment.workers, segment.worker) == (8, 2, 1)
        assert repr(segment) == f"<HealthSegment {segment.name!r} 1/8 slots, worker 1>"
        with pytest.raises(TypeError, match=r"use HealthSegment.create\(\)"):
            type(segment)()


# ---- what attach() refuses ---------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../etc"])
def test_a_name_is_a_bare_file_name(impl, name):
    with pytest.raises(ValueError, match="is not a segment name"):
        impl.HealthSegment.attach(name)


def test_a_file_that_is_no_segment(impl):
    name = f"byok-test-{os.getpid()}-garbage"
    for content in (b"", b"short", b"x" * 4096):
        with open(_region.path_of(name), "wb") as file:
            file.write(content)
        try:
            with pytest.raises(ValueError, match="is not a byok health segment"):
                impl.HealthSegment.attach(name)
        finally:
            os.unlink(_region.path_of(name))


def test_another_layout_version(impl, segment):
    poke(segment.name, _region.H_VERSION, 99)
    with pytest.raises(ValueError, match="layout version 99; this byok_core reads version 2"):
        impl.HealthSegment.attach(segment.name)


def test_a_damaged_header(impl, segment):
    poke(segment.name, _region.H_CAPACITY, 1 << 40)
    with pytest.raises(ValueError, match="damaged"):
        impl.HealthSegment.attach(segment.name)


def test_the_compiled_engine_and_the_twin_never_share_a_segment():
    compiled, pure = load("compiled"), load("pure")
    for maker, other, made in [
        (compiled, pure, "the compiled engine"),
        (pure, compiled, "the pure-Python twin"),
    ]:
        with maker.HealthSegment.create(capacity=4) as segment:
            with pytest.raises(ValueError, match=f"made by {made}.* do not mix"):
                other.HealthSegment.attach(segment.name)
            with pytest.raises(TypeError, match="do not mix"):
                other.Selector(["a"], shared=segment, scope="pool")


# ---- shared= and scope= ----------------------------------------------------------


def test_shared_needs_a_scope_and_scope_needs_shared(impl, segment):
    with pytest.raises(ValueError, match="needs scope="):
        impl.Selector(["a"], shared=segment)
    with pytest.raises(ValueError, match="pass shared="):
        impl.Selector(["a"], scope="pool")
    with pytest.raises(ValueError, match="pass shared="):
        impl.HealthTable(1, ids=["a"])
    with pytest.raises(TypeError, match="scope must be a str"):
        impl.Selector(["a"], shared=segment, scope=3)
    with pytest.raises(TypeError, match="shared must be a"):
        impl.Selector(["a"], shared="byok-health-1", scope="pool")
    with pytest.raises(ValueError, match="ids has 1 entries but the table has 2"):
        impl.HealthTable(2, shared=segment, scope="pool", ids=["a"])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ({"capacity": 0}, ValueError, "capacity must be from 1"),
        ({"capacity": True}, TypeError, "capacity must be an int"),
        ({"workers": 0}, ValueError, "workers must be from 1"),
        ({"workers": 2, "worker": 2}, ValueError, "worker must be from 0 to 1"),
    ],
)
def test_create_checks_its_arguments(impl, call, error, message):
    with pytest.raises(error, match=message):
        impl.HealthSegment.create(**call)


def test_twins_agree_on_a_shared_run(both):
    traces = []
    for impl in both:
        with impl.HealthSegment.create(capacity=16, workers=2) as segment:
            other = impl.HealthSegment.attach(segment.name, worker=1)
            one = make(impl, segment, ids=["a", "b", "c"], strategy="least_inflight", seed=5)
            two = make(impl, other, ids=["c", "a"], strategy="weighted_random", seed=5)
            trace = []
            for n in range(60):
                now = T + n / 4
                first, second = one.pick(now=now), two.pick(now=now)
                trace.append((first, second, one.acquire(first) if first else None))
                if n % 7 == 0 and first:
                    trace.append(one.report_rate_limited(first, now=now))
                elif n % 5 == 0 and second:
                    trace.append(two.report_error(second, now=now))
                elif second:
                    trace.append(two.report_success(second, latency=n / 100, now=now))
                if n % 9 == 0:
                    trace.append(segment.reclaim(0))
            trace.append((one.snapshot(now=T + 20), two.outlook(now=T + 20)))
            traces.append(trace)
    assert traces[0] == traces[1]


# ---- the package -----------------------------------------------------------------


def public(cls):
    return {name for name in dir(cls) if not name.startswith("_")}


def test_twins_have_the_same_segment_surface(both):
    import inspect

    compiled, pure = (impl.HealthSegment for impl in both)
    assert public(compiled) == public(pure)
    for name in ("create", "attach", "reclaim", "close", "unlink"):
        have = inspect.signature(getattr(compiled, name)).parameters
        want = inspect.signature(getattr(pure, name)).parameters
        assert list(have) == list(want), name


@pytest.mark.parametrize(("flag", "module"), [("1", "_segment_py"), ("", "_segment")])
def test_the_package_exports_the_segment_of_the_engine_it_runs(flag, module):
    import subprocess

    code = (
        "import byok_core; seg = byok_core.HealthSegment.create(capacity=2)\n"
        "sel = byok_core.Selector(['a'], shared=seg, scope='p'); seg.unlink()\n"
        "print(type(seg).__module__, sel.pick())"
    )
    env = {**os.environ, "BYOK_NO_EXTENSIONS": flag}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [f"byok_core.{module}", "a"]


def test_the_segment_contract_ships():
    import byok_core

    shipped = set(os.listdir(byok_core.get_include()))
    assert {"_segment.pxd", "_segment.pyi"} <= shipped
