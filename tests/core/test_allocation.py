"""The compiled pick path allocates nothing but the reference it returns.

Two probes: tracemalloc's peak shows any transient allocation (the pure twin,
which builds lists on every pick, peaks 500+ bytes above where it ends; the
compiled engine only by the 48-byte loop iterator), and the count of live
blocks shows any leak.
"""

from __future__ import annotations

import itertools
import sys
import tracemalloc

import pytest

from byok_core import STRATEGIES

LOOP_ITERATOR = 64  # itertools.repeat, allocated by the measuring loop itself


def calls(pick, success, key, count):
    for _ in itertools.repeat(None, count):
        success(pick(key), 0.1)


def transient_bytes(pick, success, key, count) -> int:
    """How far allocations peaked above where they ended, over `count` calls."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        calls(pick, success, key, count)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - current


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_pick_and_report_allocate_nothing(strategy):
    from byok_core._selector import Selector

    sel = Selector([f"key-{i}" for i in range(16)], strategy=strategy, seed=1)
    key = "conversation-7" if strategy == "sticky" else None
    pick, success = sel.pick, sel.report_success
    calls(pick, success, key, 1000)  # warm up any caches the interpreter keeps

    assert transient_bytes(pick, success, key, 2000) <= LOOP_ITERATOR

    before = sys.getallocatedblocks()
    calls(pick, success, key, 20000)
    assert sys.getallocatedblocks() - before < 50  # a leak per call would show 20000


def test_the_probe_sees_the_twin_allocate():
    from byok_core._selector_py import Selector

    sel = Selector([f"key-{i}" for i in range(16)])
    assert transient_bytes(sel.pick, sel.report_success, None, 200) > LOOP_ITERATOR
