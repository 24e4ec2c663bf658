"""Instructions per request, byok against a baseline revision, under callgrind.

    python benchmarks/bench_instructions.py --baseline 306b72f            # c16, fixed and stream
    python benchmarks/bench_instructions.py --baseline HEAD~1 --pairs 3 --concurrency 1
    python benchmarks/bench_instructions.py --baseline HEAD --limits   # what limits cost

Why: on a shared, noisy machine the CPU time per request of bench_proxy.py
moves by 10-30% from round to round, more than a change to the hot path is
worth.  valgrind's callgrind counts the instructions the proxy executes,
which do not depend on what else the machine is doing.  Each target (this
tree's byok, and byok at --baseline, built as bench_proxy.py builds it) runs
`byok serve` under callgrind in front of nginx on loopback; a client sends
LOW, then in a second run HIGH requests over --concurrency keep-alive
connections; the difference of the two runs' totals over HIGH - LOW is the
instructions per request, without the start-up.  Targets alternate in
--pairs pairs.  With --limits, this tree's byok runs with every limit
configured and none reached, the baseline with none, both against upstreams
that send OpenAI's rate-limit headers (bench_proxy.py --limits).
Needs valgrind, nginx-light and libnginx-mod-http-echo.
Nothing is asserted: the script prints figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_proxy import CLIENT_KEY, _baseline, _byok_config, _nginx_conf  # noqa: E402

LOW, HIGH = 200, 1200
BODIES = {
    "fixed": {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]},
    "stream": {
        "model": "bench-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello."}],
    },
}


def instructions(
    python: Path, config: Path, port: int, requests: int, body: str, concurrency: int, out: Path
) -> int:
    """Total instructions of one `byok serve` run that answered `requests`."""
    proxy = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            str(python),
            "-m",
            "byok",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        cwd=str(out.parent),  # not this tree: `-m byok` must find the target's own byok
        # the usage ledger in the run's directory, not the user's data directory
        env={**os.environ, "XDG_DATA_HOME": str(out.parent / "data")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                probe.request("GET", "/health")
                probe.getresponse().read()
                probe.close()
                break
            except OSError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise SystemExit(f"{python}: byok serve did not start") from None
                time.sleep(0.5)
        failures: list[str] = []

        def client(count: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            headers = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}
            for _ in range(count):
                connection.request("POST", "/v1/chat/completions", body, headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    failures.append(str(answer.status))
            connection.close()

        clients = [
            threading.Thread(target=client, args=(requests // concurrency,))
            for _ in range(concurrency)
        ]
        for each in clients:
            each.start()
        for each in clients:
            each.join()
        if failures:
            raise SystemExit(f"{python}: answers other than 200: {failures[:5]}")
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(180)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if found is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", metavar="REV", required=True)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cases", default="fixed,stream", help="fixed, stream or both")
    parser.add_argument("--port", type=int, default=18100, help="nginx's; byok's follow")
    parser.add_argument(
        "--limits", action="store_true", help="this tree's byok with every limit configured"
    )
    args = parser.parse_args()
    for tool in ("valgrind", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install valgrind nginx-light")
    baseline_name, baseline_python = _baseline(args.baseline)
    targets = {"byok": Path(sys.executable), baseline_name: baseline_python}
    workdir = Path(tempfile.mkdtemp(prefix="byok-instructions-"))
    (workdir / "nginx.conf").write_text(_nginx_conf(args.port, workdir))
    nginx = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(workdir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = _byok_config(f"http://127.0.0.1:{args.port}", workdir, headers=args.limits)
    configs = {name: config for name in targets}
    if args.limits:
        configs["byok"] = _byok_config(f"http://127.0.0.1:{args.port}", workdir, limits=True)
    port = args.port + 10
    print(
        f"instructions per request under callgrind, {args.concurrency} connection(s), "
        f"runs of {LOW} and {HIGH} requests ({time.strftime('%Y-%m-%d')})\n",
        flush=True,
    )
    try:
        time.sleep(0.5)
        for case in args.cases.split(","):
            body = json.dumps(BODIES[case])
            per: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.pairs):
                for name, python in targets.items():
                    conf = configs[name]
                    low = instructions(
                        python, conf, port, LOW, body, args.concurrency, workdir / "cg.low"
                    )
                    high = instructions(
                        python, conf, port + 1, HIGH, body, args.concurrency, workdir / "cg.hi"
                    )
                    port += 2
                    per[name].append((high - low) / (HIGH - LOW))
                    print(f"  {case:6} {name:14} {per[name][-1]:>12,.0f}", flush=True)
            mine = statistics.median(per["byok"])
            theirs = statistics.median(per[baseline_name])
            print(
                f"{case}: byok {mine:,.0f}, {baseline_name} {theirs:,.0f} instructions per "
                f"request; byok / {baseline_name} = {mine / theirs:.3f}\n",
                flush=True,
            )
    finally:
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
