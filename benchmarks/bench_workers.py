"""byok with one worker process and with several: throughput, CPU per request,
start-up and memory per worker; and what sharing the health table and the
counters costs a request.

    python benchmarks/bench_workers.py                    # 1 and 2 workers, 5 rounds of 5 s
    python benchmarks/bench_workers.py --workers 1,2,4 --rounds 3 --duration 3

Needs nginx-light, libnginx-mod-http-echo and wrk (as bench_proxy.py).  The
upstream is bench_proxy.py's nginx with its fixed chat completion; byok is
`byok serve --workers N` with bench_proxy.py's config.  nginx and wrk are
not pinned: with as many workers as cores, the proxy, nginx and wrk share
every core, which is what such a box allows, so read req/s as what the whole
machine does, and CPU per request as the proxy's cost.  Targets take turns
round by round (A B A B ...) so that noise falls on all alike; figures are
medians over the rounds.  Nothing is asserted: the script prints figures.

The cost of sharing is measured apart, in this process, where it is not
drowned in the noise of a whole proxy: per request the proxy makes one
order(), one acquire() and release() and one report on its pool's Selector;
their time with the pool's records in a HealthSegment is set against the
same calls on a private table, and each worker's snapshot of its counters
(written once a second) is timed at a realistic size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_proxy import (  # noqa: E402
    CLIENT_KEY,
    WRK_SCRIPT,
    _byok_config,
    _cpu_seconds,
    _nginx_conf,
    _post,
    _tree,
)


def start(workers: int, config: Path, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """`byok serve --workers N`: the process, and its time from exec to the first 200."""
    command = [sys.executable, "-m", "byok", "serve", "--config", str(config), "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "hi"}]})
    while time.perf_counter() - started < 120:
        try:
            if _post(port, "/v1/chat/completions", body) == 200:
                return process, time.perf_counter() - started
        except OSError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"byok serve --workers {workers} ended before its first answer")
        time.sleep(0.005)
    process.kill()
    raise SystemExit(f"byok serve --workers {workers} gave no 200 within 120 s")


def rss_per_process(pid: int) -> list[float]:
    """MiB of each process of the tree under `pid` (the supervisor first)."""
    sizes = []
    for each in _tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sizes


def load(
    port: int, duration: float, connections: int, script: Path, pid: int
) -> tuple[float, float]:
    """wrk for `duration`: req/s and the proxy tree's CPU ms per request."""
    before = _cpu_seconds(pid)
    run = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
    )
    cpu = _cpu_seconds(pid) - before
    line = next((x for x in run.stdout.splitlines() if x.startswith("WRK ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {run.stderr or run.stdout}")
    requests, micros, errors, statuses, *_ = (int(v) for v in line.split()[1:])
    if errors or statuses:
        print(f"  ({errors + statuses} errors in this run)")
    return requests / (micros / 1e6), cpu * 1000 / max(requests, 1)


def sharing_cost(rounds: int = 7) -> None:
    """ns per request of the engine calls, shared against private, and the
    time of one snapshot of a worker's counters."""
    import timeit

    from byok.telemetry.ledger import Ledger
    from byok.telemetry.metrics import Metrics
    from byok_core import COMPILED, HealthSegment, Selector

    ids = [f"key-{n}" for n in range(4)]
    segment = HealthSegment.create(capacity=4096, workers=2)
    try:
        private = Selector(ids, strategy="weighted_round_robin", weights=[2, 1, 1, 1])
        shared = Selector(
            ids,
            strategy="weighted_round_robin",
            weights=[2, 1, 1, 1],
            shared=segment,
            scope="openai/gpt-4o-mini",
        )

        def request(selector: Selector) -> None:
            now = time.monotonic()
            member = selector.order(now=now)[0]
            selector.acquire(member)
            selector.release(member)
            selector.report_success(member, latency=0.2, now=now)

        per: dict[str, list[float]] = {"private": [], "shared": []}
        for _ in range(rounds):
            for name, selector in (("private", private), ("shared", shared)):
                seconds = min(timeit.repeat(lambda s=selector: request(s), number=20_000, repeat=3))
                per[name].append(seconds / 20_000 * 1e9)
        mine, theirs = statistics.median(per["shared"]), statistics.median(per["private"])
        engine = "compiled" if COMPILED else "pure Python"
        print(
            f"engine calls of one request ({engine}): private {theirs:,.0f} ns, "
            f"shared {mine:,.0f} ns; sharing adds {mine - theirs:,.0f} ns a request"
        )
    finally:
        segment.close()
        segment.unlink()

    metrics, ledger = Metrics(lambda: []), Ledger()
    for model in range(10):  # 10 models x 8 keys: a larger fleet than most
        for key in range(8):
            metrics.request(f"m{model}", "/v1/chat/completions", 200, 0.0003)
            metrics.attempt("openai", f"k{key}", "ok")
            metrics.first_byte("openai", 0.2)
            metrics.tokens("openai", f"k{key}", f"m{model}", f"openai/m{model}", 10, 5)
            ledger.used("openai", f"k{key}", 10, 5)
            ledger.answered(200)
    seconds = min(timeit.repeat(lambda: (metrics.export(), ledger.export()), number=200, repeat=5))
    print(
        f"a worker's snapshot of its counters (80 keys x models): {seconds / 200 * 1e6:,.0f} us, "
        "written once a second"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=18200, help="nginx's; byok's follow")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install nginx-light wrk")
    workdir = Path(tempfile.mkdtemp(prefix="byok-workers-"))
    (workdir / "nginx.conf").write_text(_nginx_conf(args.port, workdir))
    nginx = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(workdir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = _byok_config(f"http://127.0.0.1:{args.port}", workdir)
    body = {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]}
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(json.dumps(body)), key=CLIENT_KEY))
    running: dict[int, tuple[subprocess.Popen[bytes], int]] = {}
    print(
        f"byok serve --workers N, {os.cpu_count()} cores, wrk -c{args.connections}, "
        f"{args.rounds} rounds of {args.duration:g} s ({time.strftime('%Y-%m-%d')})\n"
    )
    try:
        time.sleep(0.5)
        for n, workers in enumerate(counts):
            port = args.port + 10 + n
            process, startup = start(workers, config, port)
            running[workers] = (process, port)
            sizes = rss_per_process(process.pid)
            if workers > 1:
                supervisor, each = sizes[0], statistics.median(sizes[1:])
                memory = f"supervisor {supervisor:.0f} MiB, each worker {each:.0f} MiB"
            else:
                memory = f"{sizes[0]:.0f} MiB"
            print(f"{workers} worker(s): first answer {startup:.2f} s after exec; {memory}")
        print()
        figures: dict[int, list[tuple[float, float]]] = {w: [] for w in counts}
        for _ in range(args.rounds):
            for workers in counts:
                process, port = running[workers]
                figures[workers].append(
                    load(port, args.duration, args.connections, script, process.pid)
                )
        print("| workers | req/s (median) | CPU ms/request | req/s each round |")
        print("|---:|---:|---:|---|")
        for workers in counts:
            rates = [f[0] for f in figures[workers]]
            cpu = statistics.median(f[1] for f in figures[workers])
            each = ", ".join(f"{r:,.0f}" for r in rates)
            print(f"| {workers} | {statistics.median(rates):,.0f} | {cpu:.3f} | {each} |")
        if 1 in figures and len(counts) > 1:
            one = statistics.median(f[0] for f in figures[1])
            for workers in counts:
                if workers != 1:
                    many = statistics.median(f[0] for f in figures[workers])
                    print(f"\n{workers} workers / 1 worker, req/s: {many / one:.2f}x")
        print()
        sharing_cost()
    finally:
        for process, _ in running.values():
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
