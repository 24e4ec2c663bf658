"""How long a 429 at one replica takes to reach another through Redis.

    python benchmarks/bench_cluster.py                   # 500 events, one every 10 ms
    python benchmarks/bench_cluster.py --events 1000 --interval 2
    python benchmarks/bench_cluster.py --redis redis://127.0.0.1:6379/0   # a Redis of yours

Two replicas, as two hosts would run them, on loopback: replica A in this
process (the simulated upstream, the proxy, its cluster task), replica B in a
child process (its cluster task and engine), and a redis-server that this
script starts in a temporary directory (or the one --redis names).  Key alpha
answers 429 with `Retry-After: 600`, key bravo answers: each request through
A cools alpha and is served by bravo, and then A's operator restores alpha
(which B hears of too), so that the next request meets the 429 again.  The
clock starts when A's runtime tells its key listeners (the moment the
reporter has decided, before the cluster queues the event) and stops when B
has applied the cooldown to its own engine (B's log record of it); both are
time.time() on one machine.  It prints the percentiles of the difference.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import trio

from byok.app import App
from byok.cli.simulator import SimulatedUpstream
from byok.cluster import serve_cluster
from byok.config import from_dict
from byok.gateway.routing import Pool
from byok.gateway.runtime import Live
from byok.http.server import bound_port, serve_http

PREFIX = "bench-cluster"


SECRETS = {"sk-bench-cluster-alpha": "alpha", "sk-bench-cluster-bravo": "bravo"}
ALPHA = next(iter(SECRETS))


def tables(upstream: str, redis: str, replica: str) -> dict[str, Any]:
    return {
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
            }
        },
        "models": {"m": {"targets": ["sim/up"], "strategy": "priority"}},
        "cluster": {"redis": redis, "prefix": PREFIX, "replica": replica},
    }


# ---- replica B: a child process that says when it applied each event -------------------


class _Applied(logging.Handler):
    """B's log line of each cooldown it applied, as its time on stdout."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("%s cooling"):
            print(repr(record.created), flush=True)


def replica_b(redis: str) -> None:
    async def main() -> None:
        config = from_dict(tables("http://127.0.0.1:9", redis, "B"), "bench B")
        assert config.cluster is not None
        live = Live(config)
        async with trio.open_nursery() as nursery:
            replica = await nursery.start(serve_cluster, live, config.cluster)
            print("ready" if replica.connected else "no redis", flush=True)
            # until the parent closes stdin
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
            nursery.cancel_scope.cancel()

    logger = logging.getLogger("byok.cluster")
    logger.addHandler(_Applied())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    trio.run(main)


# ---- the run ----------------------------------------------------------------------------


def redis_version() -> str:
    said = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    found = [word[2:] for word in said.split() if word.startswith("v=")]
    return f"redis-server {found[0]}" if found else "redis-server"


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit(
            "bench_cluster: redis-server not found; apt-get install redis-server, or --redis URL"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            cwd=directory,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        sys.exit("bench_cluster: redis-server did not start")
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.kill()
            process.wait()


def run(redis: str, events: int, interval: float) -> list[float]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--replica-b", "--redis", redis],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdin is not None
    if child.stdout.readline().strip() != "ready":
        sys.exit("bench_cluster: replica B could not reach Redis")
    applied: list[float] = []
    done = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            applied.append(float(line))
            if len(applied) == events:
                done.set()

    threading.Thread(target=read, daemon=True).start()
    decided: list[float] = []

    def heard(provider: str, label: str, pool: Pool | None, what: str) -> None:
        if what == "cooled":
            decided.append(time.time())

    async def main() -> None:
        simulator = SimulatedUpstream()
        for secret, name in SECRETS.items():
            simulator.add_key(secret, name)
        simulator.set(ALPHA, mode="429", retry_after=600)
        async with trio.open_nursery() as nursery:
            upstream = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
            url = f"http://127.0.0.1:{bound_port(upstream)}"
            app = App(from_dict(tables(url, redis, "A"), "bench A"))
            live = app.live
            config = live.runtime.config
            assert config.cluster is not None
            live.key_listeners.insert(0, heard)  # before the cluster's: the clock starts
            await nursery.start(serve_cluster, live, config.cluster)
            listeners = await nursery.start(serve_http, app, "127.0.0.1", 0)
            ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound_port(listeners)}") as c:
                for _ in range(events):
                    reply = await c.post("/v1/chat/completions", json=ask)
                    assert reply.headers.get("x-byok-key") == "bravo", reply.text
                    await trio.sleep(interval)
                    # as the operator's restore: alpha meets its 429 again next time
                    live.runtime.router.pool("sim", "up").selector.restore("alpha")
                    live.key_changed("sim", "alpha", None, "restored")
            await trio.to_thread.run_sync(done.wait, 30)
            nursery.cancel_scope.cancel()
            await app.aclose()

    logging.getLogger("byok").setLevel(logging.ERROR)  # the cooldown lines of A: 1 each
    trio.run(main)
    child.stdin.close()
    child.wait(30)
    if len(applied) != len(decided):
        sys.exit(f"bench_cluster: B applied {len(applied)} of {len(decided)} events")
    return [(b - a) * 1000 for a, b in zip(decided, applied)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500, help="429s at replica A (500)")
    parser.add_argument("--interval", type=float, default=10, help="ms between them (10)")
    parser.add_argument("--redis", help="a Redis URL to use instead of starting redis-server")
    parser.add_argument("--replica-b", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replica_b:
        replica_b(args.redis)
        return
    with contextlib.nullcontext(args.redis) if args.redis else redis_server() as url:
        delays = sorted(run(url, args.events, args.interval / 1000))
    where = "the Redis of --redis" if args.redis else redis_version()
    quantiles = statistics.quantiles(delays, n=100, method="inclusive")
    print(
        f"propagation of a 429 from replica A to replica B, {where} on loopback, "
        f"{len(delays)} events {args.interval:g} ms apart ({os.cpu_count()} cores):"
    )
    print(
        f"  p50 {quantiles[49]:.2f} ms   p90 {quantiles[89]:.2f} ms   "
        f"p99 {quantiles[98]:.2f} ms   max {delays[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
