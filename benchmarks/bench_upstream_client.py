"""Requests per second through each candidate upstream client, on trio.

    python benchmarks/bench_upstream_client.py [--requests 2000] [--concurrency 16]

Both clients talk to the same simulated upstream on loopback (byok's own h11
server, which is the bottleneck here: the figures compare the clients with
each other; they are not the ceiling of either).  Each client runs as the
proxy runs it: one pooled AsyncClient on trio.  Rounds interleave the two
clients, so that noise on this shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import trio

from byok.server import bound_port, serve_http
from byok.simulator import SimulatedUpstream

BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
CLIENTS = ("httpx", "httpx2")


async def run_client(module_name: str, url: str, requests: int, concurrency: int) -> float:
    module = importlib.import_module(module_name)
    limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": "Bearer sk-bench", "content-type": "application/json"}
    async with module.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                response = await client.post("/v1/chat/completions", content=BODY, headers=headers)
                assert response.status_code == 200, response.status_code

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        return requests / (time.perf_counter() - started)


async def main(requests: int, concurrency: int, rounds: int) -> None:
    simulator = SimulatedUpstream()
    simulator.add_key("sk-bench", "bench")
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(serve_http, simulator, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}"
        figures: dict[str, list[float]] = {name: [] for name in CLIENTS}
        for _ in range(rounds):
            for name in CLIENTS:
                simulator.seen.clear()
                figures[name].append(await run_client(name, url, requests, concurrency))
        print(f"| client | median req/s, {rounds} rounds, concurrency {concurrency} | each round |")
        print("|---|---:|---|")
        for name, values in figures.items():
            shown = ", ".join(f"{v:,.0f}" for v in values)
            print(f"| {name} | {statistics.median(values):,.0f} | {shown} |")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trio.run(main, args.requests, args.concurrency, args.rounds)
