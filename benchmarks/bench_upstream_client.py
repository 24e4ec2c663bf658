"""The upstream HTTP client on the proxy's hot path: httpx, httpx2, httpcore and
byok's own (byok.http.upstream), on trio, over plain TCP and over TLS.

    python benchmarks/bench_upstream_client.py [--requests 3000] [--concurrency 16]

Needs Debian's nginx (nginx-light will do) and openssl.  nginx serves a fixed
OpenAI chat completion on loopback, over HTTP and over HTTPS with a
self-signed certificate made for the run, on core 1; this process runs the
clients on core 0, one pooled client each, `--concurrency` tasks sending
POSTs and reading the whole answer.  Rounds interleave the clients so that
noise on this shared machine hits all alike; the table gives the median
requests/s and the median CPU time per request of this process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from byok.http.upstream import Upstream

BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}'
HEADERS = [("authorization", "Bearer sk-bench"), ("content-type", "application/json")]
REPLY = '{"id":"chatcmpl-bench","object":"chat.completion","choices":[]}'
Send = Callable[[str], Awaitable[None]]


def _nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    (workdir / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {workdir}/body;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{port + 1} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location / {{ default_type application/json; return 200 '{REPLY}'; }}
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen(
        ["taskset", "-c", "1", nginx, "-c", str(workdir / "nginx.conf"), "-e", "/dev/null"]
    )


async def _clients(tls: ssl.SSLContext, concurrency: int) -> dict[str, tuple[Send, object]]:
    import httpcore
    import httpx
    import httpx2

    clients: dict[str, tuple[Send, object]] = {}
    for name, module in (("httpx", httpx), ("httpx2", httpx2)):
        limits = module.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = module.AsyncClient(limits=limits, timeout=30, verify=tls, trust_env=False)

        async def send_httpx(url: str, client: httpx.AsyncClient = client) -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            assert response.status_code == 200, response.status_code

        clients[name] = (send_httpx, client)
    pool = httpcore.AsyncConnectionPool(max_connections=concurrency, ssl_context=tls)

    async def send_httpcore(url: str) -> None:
        response = await pool.request("POST", url, headers=HEADERS, content=BODY)
        assert response.status == 200, response.status

    clients["httpcore"] = (send_httpcore, pool)
    upstream = Upstream(max_connections=concurrency, ssl_context=tls)

    async def send_byok(url: str) -> None:
        base = url.rsplit("/", 1)[0]
        response = await upstream.send(base, "POST", url, HEADERS, BODY)
        assert response.status == 200, response.status
        await response.read()

    clients["byok.http.upstream"] = (send_byok, upstream)
    return clients


async def _round(send: Send, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send(url)

    await send(url)  # connections warm
    cpu, wall = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return requests / wall, cpu * 1e6 / requests


async def main(requests: int, concurrency: int, rounds: int, port: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="byok-bench-client-"))
    nginx = _nginx(workdir, port)
    try:
        await trio.sleep(0.5)
        tls = ssl.create_default_context(cafile=str(workdir / "cert.pem"))
        clients = await _clients(tls, concurrency)
        urls = {
            "http": f"http://127.0.0.1:{port}/v1/chat/completions",
            "https": f"https://127.0.0.1:{port + 1}/v1/chat/completions",
        }
        figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(rounds):
            for scheme, url in urls.items():
                for name, (send, _client) in clients.items():
                    result = await _round(send, url, requests, concurrency)
                    figures.setdefault((name, scheme), []).append(result)
        print(f"concurrency {concurrency}, {requests} requests a round, medians of {rounds} rounds")
        print()
        print("| client | scheme | req/s | CPU µs/request |")
        print("|---|---|---:|---:|")
        for (name, scheme), results in figures.items():
            rate = statistics.median(r for r, _ in results)
            cpu = statistics.median(c for _, c in results)
            print(f"| {name} | {scheme} | {rate:,.0f} | {cpu:,.0f} |")
        for _send, client in clients.values():
            await client.aclose()  # type: ignore[attr-defined]
    finally:
        nginx.terminate()
        nginx.wait(5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=18100, help="HTTP; HTTPS on the next")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    trio.run(main, args.requests, args.concurrency, args.rounds, args.port)
