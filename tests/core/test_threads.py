"""Many threads at once: counts add up and a blocked member is never picked.

Under the GIL this interleaves calls; on free-threaded CPython (the cp313t and
cp314t wheels run this file too) the threads truly race in the engine.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading

import pytest

from byok_core import STRATEGIES

THREADS = 16
ROUNDS = 1500
TICK = 1e-5  # virtual seconds per engine call


def hammer(sel, ids, seed, tally, errors, start, ticks):
    """Cooldowns and probe timeouts run on a virtual clock that every engine
    call moves on (`ticks`, shared by the threads): how long a member stays
    out is counted in calls, not in the machine's time, so the liveness
    bound holds however busy the machine is and however the threads are
    scheduled."""
    rng = random.Random(seed)

    def now():
        return next(ticks) * TICK

    counts = {"picks": 0, "successes": 0, "failures": 0, "acquired": 0}
    try:
        start.wait(timeout=30)
        for n in range(ROUNDS):
            choice = sel.pick(key=f"user{n % 11}" if n % 2 else None, now=now())
            if choice is None:
                continue
            counts["picks"] += 1
            assert choice != "blocked", "a blocked member was picked"
            if sel.acquire(choice):
                counts["acquired"] += 1
                roll = rng.random()
                if roll < 0.9:
                    sel.report_success(choice, latency=rng.random() / 10, now=now())
                    counts["successes"] += 1
                elif roll < 0.95:
                    sel.report_rate_limited(choice, retry_after=0.0, now=now())
                    counts["failures"] += 1
                else:
                    sel.report_error(choice, now=now())
                    counts["failures"] += 1
                sel.release(choice)
            if n % 100 == 0:
                order = sel.order(now=now())
                counts["picks"] += 1 if order else 0
                assert "blocked" not in order
                sel.snapshot(now=now())
                sel.retry_after(now=now())
    except BaseException as error:  # surfaced by the main thread
        errors.append(error)
    tally.append(counts)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_many_threads_keep_the_books(impl, strategy):
    ids = [f"k{i}" for i in range(6)] + ["blocked"]
    sel = impl.Selector(
        ids, strategy=strategy, seed=1, cooldown=0.001, max_cooldown=0.002, probe_timeout=0.005
    )
    sel.block("blocked")
    tally, errors = [], []
    start = threading.Barrier(THREADS)
    ticks = itertools.count()
    workers = [
        threading.Thread(target=hammer, args=(sel, ids, seed, tally, errors, start, ticks))
        for seed in range(THREADS)
    ]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert not any(worker.is_alive() for worker in workers), "a worker hung"
    assert not errors, errors[0]
    snapshot = {view["id"]: view for view in sel.snapshot(now=next(ticks) * TICK)}
    assert sum(v["picks"] for v in snapshot.values()) == sum(t["picks"] for t in tally)
    assert sum(v["successes"] for v in snapshot.values()) == sum(t["successes"] for t in tally)
    assert sum(v["failures"] for v in snapshot.values()) == sum(t["failures"] for t in tally)
    assert all(v["inflight"] == 0 for v in snapshot.values())
    assert snapshot["blocked"]["picks"] == 0
    assert snapshot["blocked"]["state"] == "blocked"
    # liveness: members cool and come back all the time, but the engine never sticks
    assert sum(t["picks"] for t in tally) > THREADS * ROUNDS // 10


def test_concurrent_acquire_never_exceeds_the_cap(impl):
    sel = impl.Selector(["a"], max_inflight=3)
    peak, held, lock = [0], [0], threading.Lock()
    errors = []

    def worker():
        try:
            for _ in range(2000):
                if sel.acquire("a"):
                    with lock:
                        held[0] += 1
                        peak[0] = max(peak[0], held[0])
                    with lock:
                        held[0] -= 1
                    sel.release("a")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert peak[0] <= 3
    assert sel.snapshot()[0]["inflight"] == 0


def test_only_one_of_many_threads_wins_the_probe(impl):
    for _round in range(20):
        sel = impl.Selector(["a"], cooldown=1)
        sel.report_rate_limited("a", now=10.0)
        winners = []
        start = threading.Barrier(8)

        def contend(sel=sel, winners=winners, start=start):
            start.wait(timeout=30)
            if sel.pick(now=11.0) == "a":
                winners.append(1)

        threads = [threading.Thread(target=contend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert len(winners) == 1
