"""Which HTTP server side for the proxy: byok's server (llhttp on trio) against
hypercorn's trio worker, serving the same fixed chat completion.

    python benchmarks/bench_server.py [--seconds 5] [--connections 16] [--rounds 3]

Needs wrk (Debian: apt-get install wrk) and hypercorn (pip install hypercorn).
Each server runs in its own process pinned to CPU 0 (taskset), wrk on CPU 1,
loopback only, bounded in time; rounds interleave the servers.  Prints
requests/s and wrk's latency percentiles.  Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
)
LUA = """wrk.method = "POST"
wrk.body = '{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
wrk.headers["content-type"] = "application/json"
"""


def serve_byok(port: int) -> None:
    import trio

    from byok.http.server import Request, Response, serve_http

    async def app(request: Request) -> Response:
        return Response(200, [("content-type", "application/json")], REPLY)

    trio.run(serve_http, app, "127.0.0.1", port)


def serve_hypercorn(port: int) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":  # hypercorn waits for these answers
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": REPLY})

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    trio.run(serve, app, config)


SERVERS = {"byok server (llhttp)": "byok", "hypercorn trio worker": "hypercorn"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def measure(kind: str, seconds: int, connections: int, script: str) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, __file__, "--serve", kind, "--port", str(port)]
    )
    try:
        wait_for(port)
        out = subprocess.run(
            [
                "taskset",
                "-c",
                "1",
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script,
                f"http://127.0.0.1:{port}/v1/chat/completions",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        server.terminate()
        server.wait(10)
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        figures[f"p{pct}"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=["byok", "hypercorn"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        (serve_byok if args.serve == "byok" else serve_hypercorn)(args.port)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(LUA)
    try:
        results: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
        for _ in range(args.rounds):
            for name, kind in SERVERS.items():
                results[name].append(measure(kind, args.seconds, args.connections, lua.name))
    finally:
        os.unlink(lua.name)
    columns = f"req/s (median of {args.rounds}) | p50 ms | p90 ms | p99 ms | each round req/s"
    print(f"| server | {columns} |")
    print("|---|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        rounds = ", ".join(f"{r['rps']:,.0f}" for r in runs)
        print(
            f"| {name} | {med['rps']:,.0f} | {med['p50']:.2f} | {med['p90']:.2f} "
            f"| {med['p99']:.2f} | {rounds} |"
        )


if __name__ == "__main__":
    main()
