"""Nanoseconds per call of the selection engine, compiled against its twin.

    python benchmarks/bench_core.py            # the full table (a few minutes)
    python benchmarks/bench_core.py --quick    # fewer repeats, 8 and 64 members
    python benchmarks/bench_core.py --sharing  # compiled: private table vs shared segment

Each figure is the median over several repeats of a timed loop of one call
(the loop's own cost, a few ns, is included).  The engine reads the clock
itself (now=None), as it does in the proxy.  Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
import timeit

from byok_core import STRATEGIES, _segment, _selector, _selector_py

TWINS = {"compiled": _selector.Selector, "pure": _selector_py.Selector}


def per_call_ns(stmt: str, names: dict, repeats: int, budget: float) -> float:
    # A statement string calling a bound method: no lambda frame in the figure.
    timer = timeit.Timer(stmt, globals=names)
    number, _ = timer.autorange()  # enough calls for about 0.2 s
    number = max(1, int(number * budget / 0.2))
    runs = timer.repeat(repeat=repeats, number=number)
    return statistics.median(runs) / number * 1e9


def make(cls, strategy: str, size: int, **options):
    ids = [f"key-{i:04d}" for i in range(size)]
    weights = [1 + (i % 5) for i in range(size)]
    selector = cls(
        ids, strategy=strategy, weights=weights, seed=1, cooldown=60, max_cooldown=60, **options
    )
    return selector, ids


def bench_strategy(cls, strategy: str, size: int, repeats: int, budget: float) -> dict[str, float]:
    sel, ids = make(cls, strategy, size)
    key = "conversation-42" if strategy == "sticky" else None
    limited, _ = make(cls, strategy, size)
    names = {
        "pick": sel.pick,
        "order": sel.order,
        "report_success": sel.report_success,
        "report_rate_limited": limited.report_rate_limited,
        "key": key,
        "member": ids[0],
    }
    return {
        "pick": per_call_ns("pick(key)", names, repeats, budget),
        "order": per_call_ns("order(key)", names, repeats, budget),
        "report_success": per_call_ns("report_success(member, 0.2)", names, repeats, budget),
        "report_rate_limited": per_call_ns(
            "report_rate_limited(member, 1.0)", names, repeats, budget
        ),
    }


def sharing(strategy: str, size: int, repeats: int, budget: float, segment) -> dict[str, tuple]:
    """ns per call of a private selector and of one whose table lives in a
    shared segment, timed in alternating rounds (a noisy machine drifts
    between rounds; pairs are what can be compared)."""
    cls = TWINS["compiled"]
    private, ids = make(cls, strategy, size)
    shared, _ = make(cls, strategy, size, shared=segment, scope=f"{strategy}/{size}")
    key = "conversation-42" if strategy == "sticky" else None
    # 429s go to selectors of their own: they leave their first member cooling
    limited = {
        "private": make(cls, strategy, size)[0],
        "shared": make(cls, strategy, size, shared=segment, scope=f"{strategy}/{size}/429")[0],
    }
    statements = {
        "pick": "pick(key)",
        "order": "order(key)",
        "report_success": "report_success(member, 0.2)",
        "report_rate_limited": "report_rate_limited(member, 1.0)",
        "acquire+release": "acquire(member); release(member)",
    }
    figures = {}
    for call, stmt in statements.items():
        timers = {}
        for mode, sel in (("private", private), ("shared", shared)):
            names = {
                "pick": sel.pick,
                "order": sel.order,
                "report_success": sel.report_success,
                "report_rate_limited": limited[mode].report_rate_limited,
                "acquire": sel.acquire,
                "release": sel.release,
                "key": key,
                "member": ids[0],
            }
            timers[mode] = timeit.Timer(stmt, globals=names)
        number, _ = timers["private"].autorange()
        number = max(1, int(number * budget / 0.2))
        runs: dict[str, list[float]] = {"private": [], "shared": []}
        for repeat in range(repeats):
            for mode in ("private", "shared") if repeat % 2 else ("shared", "private"):
                runs[mode].append(timers[mode].timeit(number) / number * 1e9)
        figures[call] = (statistics.median(runs["private"]), statistics.median(runs["shared"]))
    return figures


def threaded(cls, threads: int, seconds: float) -> float:
    """Pick + report_success pairs per second, summed over all threads."""
    sel, _ = make(cls, "weighted_round_robin", 8)
    stop = time.perf_counter() + seconds
    done = [0] * threads

    def work(slot: int) -> None:
        count = 0
        while time.perf_counter() < stop:
            for _ in range(200):
                sel.report_success(sel.pick())
            count += 200
        done[slot] = count

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / seconds


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.platform()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, 8 and 64 members")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    parser.add_argument(
        "--sharing",
        action="store_true",
        help="only the compiled engine, its table private against in a shared segment",
    )
    args = parser.parse_args()
    sizes = args.sizes or ([8, 64] if args.quick else [8, 64, 1024])
    repeats, budget = (3, 0.05) if args.quick else (7, 0.2)

    gil = "GIL" if getattr(sys, "_is_gil_enabled", lambda: True)() else "free-threaded"
    print(f"# byok_core benchmark: Python {platform.python_version()} ({gil}),")
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, {cpu_model()}")
    if args.sharing:
        print_sharing(args.strategies, sizes, max(repeats, 9), budget)
        return
    print("# ns per call, median of repeats; ratio = pure / compiled\n")
    print("| strategy | members | call | compiled ns | pure ns | ratio |")
    print("|---|---:|---|---:|---:|---:|")
    for strategy in args.strategies:
        for size in sizes:
            fast = bench_strategy(TWINS["compiled"], strategy, size, repeats, budget)
            slow = bench_strategy(TWINS["pure"], strategy, size, max(3, repeats // 2), budget / 2)
            for call, ns in fast.items():
                print(
                    f"| {strategy} | {size} | {call} | {ns:,.0f} | {slow[call]:,.0f} "
                    f"| {slow[call] / ns:,.0f}x |",
                    flush=True,
                )

    print("\n| threads | compiled pick+report/s | pure pick+report/s |")
    print("|---:|---:|---:|")
    for threads in (1, 2, 4):
        seconds = 0.5 if args.quick else 2.0
        fast = threaded(TWINS["compiled"], threads, seconds)
        slow = threaded(TWINS["pure"], threads, seconds)
        print(f"| {threads} | {fast:,.0f} | {slow:,.0f} |", flush=True)


def print_sharing(strategies: list[str], sizes: list[int], repeats: int, budget: float) -> None:
    print("# compiled engine: ns per call, median of alternating rounds;")
    print("# shared = the selector's table in a HealthSegment (shared memory)\n")
    print("| strategy | members | call | private ns | shared ns | shared / private |")
    print("|---|---:|---|---:|---:|---:|")
    ratios = []
    with _segment.HealthSegment.create(capacity=2 * len(strategies) * sum(sizes)) as segment:
        for strategy in strategies:
            for size in sizes:
                for call, (private, shared) in sharing(
                    strategy, size, repeats, budget, segment
                ).items():
                    ratios.append(shared / private)
                    print(
                        f"| {strategy} | {size} | {call} | {private:,.0f} | {shared:,.0f} "
                        f"| {shared / private:.3f} |",
                        flush=True,
                    )
    print(f"\ngeometric mean of shared / private: {statistics.geometric_mean(ratios):.3f}")


if __name__ == "__main__":
    main()
