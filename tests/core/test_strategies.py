"""What each strategy picks, and in which order order() lists the members."""

from __future__ import annotations

import collections

import pytest

T = 100.0  # a fixed monotonic time: nothing here depends on the clock


def picks(sel, count, key=None, now=T):
    return [sel.pick(key=key, now=now) for _ in range(count)]


# ---- round robin ------------------------------------------------------------


def test_round_robin_cycles_in_definition_order(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="round_robin")
    assert picks(sel, 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_round_robin_is_the_default(impl):
    sel = impl.Selector(["a", "b"])
    assert sel.strategy == "round_robin"
    assert picks(sel, 4) == ["a", "b", "a", "b"]


def test_round_robin_skips_a_cooling_member_and_stays_even(impl):
    sel = impl.Selector(["a", "b", "c"], cooldown=60, max_cooldown=60)
    sel.report_rate_limited("b", now=T)
    got = picks(sel, 6)
    assert got == ["a", "c", "a", "c", "a", "c"]


def test_single_member_is_picked_every_time(impl):
    sel = impl.Selector(["only"])
    assert picks(sel, 3) == ["only"] * 3


def test_round_robin_order_rotates_from_the_next_position(impl):
    sel = impl.Selector(["a", "b", "c", "d"])
    assert sel.order(now=T) == ["a", "b", "c", "d"]
    assert sel.order(now=T) == ["b", "c", "d", "a"]
    assert sel.pick(now=T) == "c"
    sel.disable("d")
    assert sel.order(now=T) == ["a", "b", "c"]


# ---- smooth weighted round robin -----------------------------------------------


def test_smooth_weighted_round_robin_5_1_1(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin", weights=[5, 1, 1])
    assert "".join(picks(sel, 14)) == "aabacaa" * 2


def test_weights_as_mapping_default_to_one(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin", weights={"a": 5})
    assert "".join(picks(sel, 7)) == "aabacaa"


def test_smooth_weighted_round_robin_3_1(impl):
    sel = impl.Selector(["a", "b"], strategy="weighted_round_robin", weights=[3, 1])
    got = picks(sel, 400)
    assert got.count("a") == 300
    # smooth: never more than three a's in a row
    assert "aaaa" not in "".join(got)


@pytest.mark.parametrize("weights", [[1, 1, 1], [2, 3, 5], [10, 1], [7, 7, 1, 3]])
def test_smooth_weighted_round_robin_spreads_exactly(impl, weights):
    """Over one period every member gets exactly its weight, and within any
    window a member is never more than one pick off its fair share."""
    ids = [f"k{i}" for i in range(len(weights))]
    sel = impl.Selector(ids, strategy="weighted_round_robin", weights=weights)
    total = sum(weights)
    got = picks(sel, total * 3)
    for i, w in zip(ids, weights):
        assert got.count(i) == 3 * w
    for end in range(1, len(got) + 1):
        window = collections.Counter(got[:end])
        for i, w in zip(ids, weights):
            assert abs(window[i] - end * w / total) < 1 + 1e-9


def test_weighted_round_robin_skips_unavailable_and_keeps_ratio(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin", weights=[2, 1, 1])
    sel.block("a")
    got = picks(sel, 10)
    assert got.count("b") == got.count("c") == 5


def test_weighted_round_robin_order_head_matches_pick(impl):
    ordered = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin", weights=[5, 1, 1])
    picked = impl.Selector(["a", "b", "c"], strategy="weighted_round_robin", weights=[5, 1, 1])
    for _ in range(14):
        order = ordered.order(now=T)
        assert order[0] == picked.pick(now=T)
        assert sorted(order) == ["a", "b", "c"]


# ---- random -----------------------------------------------------------------------


def test_random_with_seed_is_reproducible(impl):
    a = impl.Selector(list("abcdef"), strategy="random", seed=42)
    b = impl.Selector(list("abcdef"), strategy="random", seed=42)
    c = impl.Selector(list("abcdef"), strategy="random", seed=43)
    first = picks(a, 50)
    assert first == picks(b, 50)
    assert first != picks(c, 50)


def test_random_is_roughly_uniform(impl):
    sel = impl.Selector(list("abcd"), strategy="random", seed=7)
    counts = collections.Counter(picks(sel, 8000))
    for member in "abcd":
        assert 1800 < counts[member] < 2200  # expected 2000, sd ~39


def test_weighted_random_distribution(impl):
    sel = impl.Selector(["heavy", "light"], strategy="weighted_random", weights=[3, 1], seed=1)
    counts = collections.Counter(picks(sel, 8000))
    assert 5800 < counts["heavy"] < 6200  # expected 6000, sd ~39


def test_weighted_random_skips_rate_limited(impl):
    sel = impl.Selector(
        ["a", "b"], strategy="weighted_random", weights=[9, 1], seed=3, cooldown=60, max_cooldown=60
    )
    sel.report_rate_limited("a", now=T)
    assert set(picks(sel, 50)) == {"b"}


def test_weighted_random_order_includes_all_and_favours_the_heavy(impl):
    sel = impl.Selector(["heavy", "light"], strategy="weighted_random", weights=[9, 1], seed=5)
    heads = collections.Counter()
    for _ in range(2000):
        order = sel.order(now=T)
        assert sorted(order) == ["heavy", "light"]
        heads[order[0]] += 1
    assert 1700 < heads["heavy"] < 1900  # expected 1800, sd ~13


def test_random_order_is_a_permutation_with_uniform_head(impl):
    sel = impl.Selector(list("abc"), strategy="random", seed=11)
    heads = collections.Counter()
    for _ in range(3000):
        order = sel.order(now=T)
        assert sorted(order) == ["a", "b", "c"]
        heads[order[0]] += 1
    for member in "abc":
        assert 850 < heads[member] < 1150


# ---- priority ---------------------------------------------------------------------


def test_priority_fills_the_first_member(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="priority")
    assert picks(sel, 3) == ["a", "a", "a"]


def test_priority_falls_through_cooled_members(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="priority", cooldown=60, max_cooldown=60)
    sel.report_rate_limited("a", now=T)
    assert sel.pick(now=T) == "b"
    sel.report_rate_limited("b", now=T)
    assert sel.pick(now=T) == "c"
    sel.report_rate_limited("c", now=T)
    assert sel.pick(now=T) is None


def test_priority_order_is_definition_order_regardless_of_weight(impl):
    sel = impl.Selector(
        ["primary", "secondary", "tertiary"], strategy="priority", weights=[1, 10, 5]
    )
    assert sel.order(now=T) == ["primary", "secondary", "tertiary"]


def test_mixed_states_leave_only_the_ready_member(impl):
    sel = impl.Selector(["a", "b", "c", "d"], strategy="priority", cooldown=60, max_cooldown=60)
    sel.disable("a")
    sel.block("b")
    sel.report_rate_limited("c", now=T)
    assert sel.pick(now=T) == "d"
    assert sel.order(now=T) == ["d"]


# ---- least used, least in flight, latency -------------------------------------------


def test_least_used_picks_the_lowest_count(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="least_used")
    assert picks(sel, 6) == ["a", "b", "c", "a", "b", "c"]
    sel.disable("a")
    sel.disable("b")
    assert picks(sel, 3) == ["c", "c", "c"]
    sel.restore("a")
    # a has two picks, c has five: a catches up first
    assert picks(sel, 3) == ["a", "a", "a"]


def test_least_inflight_prefers_idle_members(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="least_inflight")
    assert sel.acquire("a")
    assert sel.acquire("a")
    assert sel.acquire("b")
    assert sel.pick(now=T) == "c"
    assert sel.acquire("c")
    assert sel.acquire("c")
    assert sel.pick(now=T) == "b"
    assert sel.order(now=T) == ["b", "a", "c"]  # in flight 1, 2, 2; a has fewer picks


def test_least_inflight_ties_spread_by_picks(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="least_inflight")
    assert picks(sel, 6) == ["a", "b", "c", "a", "b", "c"]


def test_latency_tries_unsampled_first_then_the_fastest(impl):
    sel = impl.Selector(["slow", "fast", "new"], strategy="latency")
    sel.report_success("slow", latency=0.9, now=T)
    sel.report_success("fast", latency=0.1, now=T)
    assert sel.pick(now=T) == "new"
    sel.report_success("new", latency=0.5, now=T)
    assert picks(sel, 3) == ["fast"] * 3
    assert sel.order(now=T) == ["fast", "new", "slow"]


def test_latency_ewma_follows_the_samples(impl):
    sel = impl.Selector(["a"], strategy="latency", latency_alpha=0.5)
    sel.report_success("a", latency=1.0, now=T)
    sel.report_success("a", latency=0.0, now=T)
    sel.report_success("a", latency=0.0, now=T)
    assert sel.snapshot(now=T)[0]["latency_ewma"] == pytest.approx(0.25)


def test_latency_moves_away_from_a_slowing_member(impl):
    sel = impl.Selector(["a", "b"], strategy="latency")
    sel.report_success("a", latency=0.1, now=T)
    sel.report_success("b", latency=0.2, now=T)
    assert sel.pick(now=T) == "a"
    for _ in range(5):
        sel.report_success("a", latency=1.0, now=T)
    assert sel.pick(now=T) == "b"


# ---- sticky -------------------------------------------------------------------------


def test_sticky_keeps_a_key_on_its_member(impl):
    sel = impl.Selector([f"k{i}" for i in range(8)], strategy="sticky")
    for key in ["alice", "bob", b"carol", "dave"]:
        first = sel.pick(key=key, now=T)
        assert picks(sel, 20, key=key) == [first] * 20


def test_sticky_key_maps_the_same_in_both_twins_and_across_instances(both):
    ids = [f"k{i}" for i in range(16)]
    compiled, pure = (impl.Selector(ids, strategy="sticky") for impl in both)
    keys = [f"user-{n}" for n in range(200)]
    assert [compiled.pick(key=k, now=T) for k in keys] == [pure.pick(key=k, now=T) for k in keys]


def test_sticky_spreads_keys_by_weight(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="sticky", weights=[2, 1, 1])
    counts = collections.Counter(sel.pick(key=f"key-{n}", now=T) for n in range(8000))
    assert 3700 < counts["a"] < 4300
    assert 1750 < counts["b"] < 2250
    assert 1750 < counts["c"] < 2250


def test_sticky_moves_only_the_keys_of_a_member_that_leaves(impl):
    ids = [f"k{i}" for i in range(10)]
    sel = impl.Selector(ids, strategy="sticky", cooldown=60, max_cooldown=60)
    keys = [f"session-{n}" for n in range(5000)]
    before = {k: sel.pick(key=k, now=T) for k in keys}
    sel.report_rate_limited("k3", now=T)
    after = {k: sel.pick(key=k, now=T) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "k3" for k in moved)
    assert "k3" not in after.values()
    assert 350 < len(moved) < 650  # about 1/n of the keys: expected 500
    sel.restore("k3")
    assert {k: sel.pick(key=k, now=T) for k in keys} == before


def test_sticky_order_is_the_rendezvous_ranking(impl):
    sel = impl.Selector([f"k{i}" for i in range(5)], strategy="sticky")
    order = sel.order(key="user-1", now=T)
    assert sorted(order) == [f"k{i}" for i in range(5)]
    assert order[0] == sel.pick(key="user-1", now=T)
    sel.disable(order[0])
    assert sel.pick(key="user-1", now=T) == order[1]


def test_sticky_without_key_is_smooth_weighted_round_robin(impl):
    sel = impl.Selector(["a", "b", "c"], strategy="sticky", weights=[5, 1, 1])
    assert "".join(picks(sel, 7)) == "aabacaa"


def test_sticky_key_must_be_text_or_bytes(impl):
    sel = impl.Selector(["a"], strategy="sticky")
    with pytest.raises(TypeError, match="str or bytes"):
        sel.pick(key=42)


# ---- every strategy -----------------------------------------------------------------

ALL = [
    "round_robin",
    "weighted_round_robin",
    "random",
    "weighted_random",
    "priority",
    "least_used",
    "least_inflight",
    "latency",
    "sticky",
    "headroom",
]


@pytest.mark.parametrize("strategy", ALL)
def test_empty_selector_picks_none(impl, strategy):
    sel = impl.Selector([], strategy=strategy)
    assert len(sel) == 0
    assert sel.pick(now=T) is None
    assert sel.pick(key="k", now=T) is None
    assert sel.order(now=T) == []
    assert sel.retry_after(now=T) is None
    assert sel.snapshot(now=T) == []


@pytest.mark.parametrize("strategy", ALL)
def test_every_strategy_never_picks_an_unavailable_member(impl, strategy):
    sel = impl.Selector(list("abcdef"), strategy=strategy, seed=9, cooldown=60, max_cooldown=60)
    sel.block("a")
    sel.disable("b")
    sel.report_rate_limited("c", now=T)
    for n in range(60):
        assert sel.pick(key=f"u{n}", now=T) in {"d", "e", "f"}
        assert set(sel.order(key=f"u{n}", now=T)) == {"d", "e", "f"}


@pytest.mark.parametrize("strategy", ALL)
def test_order_counts_as_one_pick(impl, strategy):
    sel = impl.Selector(list("abcd"), strategy=strategy, seed=2)
    sel.order(now=T)
    sel.order(key="x", now=T)
    assert sum(m["picks"] for m in sel.snapshot(now=T)) == 2


@pytest.mark.parametrize("strategy", ALL)
def test_all_unavailable_gives_none_and_empty_order(impl, strategy):
    sel = impl.Selector(["a", "b"], strategy=strategy, cooldown=5)
    sel.report_rate_limited("a", now=T)
    sel.report_rate_limited("b", now=T)
    assert sel.pick(now=T) is None
    assert sel.order(now=T) == []
    assert sel.retry_after(now=T) == pytest.approx(5.0)


def test_strategies_are_listed_and_named():
    import byok_core

    assert list(byok_core.STRATEGIES) == ALL
