"""byok side by side with a bare trio forwarder (the floor) and LiteLLM's proxy.

    python benchmarks/bench_proxy.py                  # direct, floor, byok
    python benchmarks/bench_proxy.py --with-litellm   # and LiteLLM (installed on first use)
    python benchmarks/bench_proxy.py --duration 3     # a quick look
    python benchmarks/bench_proxy.py --baseline HEAD~3 --rounds 6 --only byok

Needs Debian's nginx (nginx-light will do), libnginx-mod-http-echo and wrk:
    apt-get install nginx-light libnginx-mod-http-echo wrk

Everything stays on loopback.  nginx serves a fixed OpenAI chat completion, a
20-chunk SSE stream, and a slow stream with 20 ms between chunks; it and wrk
share core 1, and every proxy runs alone on core 0 (taskset), one process, one
worker.  Each case runs wrk for --duration seconds with a Lua script that POSTs
a chat request and prints exact percentiles.  CPU per request is the proxy's
user+system time over the case (from /proc) divided by the requests served;
RSS is read after the last case; startup is the time from exec to the first
200 answered through the proxy.  Nothing is asserted: the script prints
figures, and the ratios under the table.

"direct" is wrk against nginx itself: the upstream's own ceiling, to show that
it is not what limits the proxies.  The slow-stream cases (250 and 1,000
concurrent streams, 20 chunks 20 ms apart) measure how late chunks arrive: a
stream's time less the nominal 380 ms is the delay of its last chunk, and the
direct row shows how much of that the upstream and wrk add on their own.

--baseline REV adds byok at a git revision of this repository as one more
target, "byok@<short hash>": the revision is exported (git archive) into
CACHE/baseline/<full hash>/src and installed into a venv beside it, made once
per hash with this interpreter and the versions of the dependencies installed
here (pip freeze as constraints), then reused.  It is started as byok is, with
the same config.  --only always keeps byok and the baseline.

--rounds N (default 1) starts every target once at the start (all on core 0;
the idle ones cost nothing) and, case by case, runs the targets' wrk runs
interleaved round by round (A B A B ...), so that the machine's noise falls on
every target alike.  CPU per request is still taken over exactly one wrk run of
one target.  The table then holds the medians over the rounds, followed by each
round's req/s and CPU ms/request and, with --baseline, per case the ratio of
byok's median CPU per request to the baseline's, the median of the per-round
ratios (each byok run against the baseline run right after it) and in how many
rounds byok was the cheaper of the two.  --baseline alone implies this mode
with one round; without either option each target runs alone in turn, as
before.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "byok-bench"
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
CLIENT_KEY = "sk-client-bench"
UPSTREAM_KEYS = [f"sk-bench-upstream-{n}" for n in range(1, 5)]
PROXY_CORE, LOAD_CORE = "0", "1"

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20},
    }
)
STREAM_CHUNKS = 20


def _chunk(n: int) -> str:
    delta = {"role": "assistant", "content": ""} if n == 0 else {"content": f" tok{n}"}
    finish = "stop" if n == STREAM_CHUNKS - 2 else None
    event = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(event)


@dataclass(frozen=True)
class Case:
    name: str
    connections: int
    kind: str  # "fixed", "sse" or "slow"
    litellm: bool = True  # LiteLLM is left out of the slow case: 1,000 streams


CASES = [
    Case("c1", 1, "fixed"),
    Case("c16", 16, "fixed"),
    Case("c64", 64, "fixed"),
    Case("stream c16", 16, "sse"),
    Case("slow stream c250", 250, "slow", litellm=False),
    Case("slow stream c1000", 1000, "slow", litellm=False),
]
NOMINAL_SLOW_MS = (STREAM_CHUNKS - 1) * 20  # a slow stream's length when nothing is late
MODELS = {"fixed": "bench", "sse": "bench-stream", "slow": "bench-slow"}
UPSTREAM_PATHS = {"fixed": "/v1", "sse": "/sse/v1", "slow": "/slow/v1"}


# ---- the upstream ---------------------------------------------------------------


def _nginx_conf(port: int, workdir: Path) -> str:
    def stream(delay: float) -> str:
        lines = []
        for n in range(STREAM_CHUNKS - 1):
            if n and delay:
                lines.append(f"echo_sleep {delay};")
            lines.append(f"echo {_nginx_quote(_chunk(n))};")
            lines.append("echo;")
            lines.append("echo_flush;")
        lines.append("echo 'data: [DONE]';")
        lines.append("echo;")
        return "\n            ".join(lines)

    return f"""
load_module {ECHO_MODULE};
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {workdir}/body;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{
            default_type application/json;
            return 200 {_nginx_quote(COMPLETION)};
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            {stream(0)}
        }}
        location = /slow/v1/chat/completions {{
            default_type text/event-stream;
            {stream(0.02)}
        }}
    }}
}}
"""


def _nginx_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- the proxies ------------------------------------------------------------------


def _byok_config(upstream: str, workdir: Path) -> Path:
    lines = [
        "[server]",
        f'client_keys = ["{CLIENT_KEY}"]',
        "",
    ]
    for kind, prefix in UPSTREAM_PATHS.items():
        lines += [f"[providers.{kind}]", 'kind = "openai"', f'base_url = "{upstream}{prefix}"']
        lines.append("keys = [")
        for n, key in enumerate(UPSTREAM_KEYS):
            lines.append(
                f'  {{ key = "{key}", label = "{kind}-{n + 1}", weight = {2 if n == 0 else 1} }},'
            )
        lines += ["]", ""]
    for kind, model in MODELS.items():
        lines += [
            f'[models."{model}"]',
            f'targets = ["{kind}/gpt-4o-mini"]',
            'strategy = "weighted_round_robin"',
            "",
        ]
    path = workdir / "byok.toml"
    path.write_text("\n".join(lines))
    return path


def _litellm_config(upstream: str, workdir: Path) -> Path:
    lines = ["model_list:"]
    for kind, model in MODELS.items():
        for key in UPSTREAM_KEYS:
            lines += [
                f"  - model_name: {model}",
                "    litellm_params:",
                "      model: openai/gpt-4o-mini",
                f"      api_base: {upstream}{UPSTREAM_PATHS[kind]}",
                f"      api_key: {key}",
            ]
    lines += [
        "router_settings:",
        "  routing_strategy: simple-shuffle",
        "litellm_settings:",
        "  telemetry: false",
        "general_settings:",
        f"  master_key: {CLIENT_KEY}",
    ]
    path = workdir / "litellm.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _litellm_python() -> Path:
    venv = CACHE / "litellm"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        print(f"installing litellm[proxy] into {venv} (once)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return python


@dataclass
class Target:
    name: str
    command: list[str]
    port: int
    env: dict[str, str] | None = None
    direct: bool = False  # wrk talks to nginx itself
    cwd: Path | None = None  # a baseline runs outside this tree, so `-m byok` finds its own


def _baseline(rev: str) -> tuple[str, Path]:
    """byok at REV, a revision of this repository: its name and the python of its venv.

    Exported and installed once per commit under CACHE/baseline/<full hash>, with this
    interpreter and the dependency versions installed here, then reused.
    """
    repo = HERE.parent

    def git(*arguments: str) -> str:
        run = subprocess.run(
            ["git", "-C", str(repo), *arguments], capture_output=True, text=True, check=False
        )
        if run.returncode:
            raise SystemExit(f"--baseline {rev}: git {arguments[0]}: {run.stderr.strip()}")
        return run.stdout.strip()

    full = git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    name = f"byok@{git('rev-parse', '--short', full)}"
    home = CACHE / "baseline" / full
    python = home / "venv" / "bin" / "python"
    done = home / "installed"
    if done.exists() and python.exists():
        return name, python
    print(f"building {name} into {home} (once per commit)...", flush=True)
    shutil.rmtree(home, ignore_errors=True)
    source = home / "src"
    source.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", full], stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(source)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait() or untar.returncode:
        raise SystemExit(f"--baseline {rev}: git archive {full} | tar -x failed")
    # the same versions of trio, httptools, msgspec... as the byok measured beside it
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    pins = [x for x in freeze if "==" in x and not x.lower().startswith(("byok", "-e", "#"))]
    (home / "constraints.txt").write_text("\n".join(pins) + "\n")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(home / "constraints.txt"),
            str(source),
        ],
        check=True,
    )
    done.write_text(full + "\n")
    return name, python


def _targets(
    nginx_port: int,
    workdir: Path,
    with_litellm: bool,
    baseline: tuple[str, Path] | None = None,
) -> list[Target]:
    upstream = f"http://127.0.0.1:{nginx_port}"
    targets = [
        Target("direct (nginx)", [], nginx_port, direct=True),
        Target(
            "floor (trio forwarder)",
            [
                sys.executable,
                str(HERE / "trio_forwarder.py"),
                "--port",
                str(nginx_port + 1),
                "--upstream",
                f"127.0.0.1:{nginx_port}",
            ],
            nginx_port + 1,
        ),
        Target(
            "byok",
            [
                sys.executable,
                "-m",
                "byok",
                "serve",
                "--config",
                str(_byok_config(upstream, workdir)),
                "--port",
                str(nginx_port + 2),
            ],
            nginx_port + 2,
        ),
    ]
    if with_litellm:
        python = _litellm_python()
        env = {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "DISABLE_SCHEMA_UPDATE": "True",
        }
        targets.append(
            Target(
                "LiteLLM",
                [
                    str(python.parent / "litellm"),
                    "--config",
                    str(_litellm_config(upstream, workdir)),
                    "--port",
                    str(nginx_port + 3),
                    "--num_workers",
                    "1",
                    "--host",
                    "127.0.0.1",
                ],
                nginx_port + 3,
                env,
            )
        )
    if baseline:
        name, python = baseline
        targets.append(
            Target(
                name,
                [
                    str(python),
                    "-m",
                    "byok",
                    "serve",
                    "--config",
                    str(workdir / "byok.toml"),
                    "--port",
                    str(nginx_port + 4),
                ],
                nginx_port + 4,
                cwd=python.parent.parent.parent,
            )
        )
    return targets


def _path_and_body(target: Target, kind: str) -> tuple[str, str]:
    body = {
        "model": MODELS[kind],
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": kind != "fixed",
    }
    if target.name.startswith(("direct", "floor")):
        return UPSTREAM_PATHS[kind] + "/chat/completions", json.dumps(body)
    return "/v1/chat/completions", json.dumps(body)


# ---- measuring --------------------------------------------------------------------


def _post(port: int, path: str, body: str, timeout: float = 5.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            path,
            body,
            {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _wait_for_200(target: Target, started: float, limit: float = 120.0) -> float:
    path, body = _path_and_body(target, "fixed")
    while time.perf_counter() - started < limit:
        try:
            if _post(target.port, path, body) == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"{target.name} gave no 200 within {limit:.0f}s")


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            pids += _tree(int(child))
    return pids


def _cpu_seconds(pid: int) -> float:
    ticks = 0
    for each in _tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    kib = 0
    for each in _tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kib += int(line.split()[1])
        except OSError:
            continue
    return kib / 1024


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass
class Figures:
    rps: float
    p50: float  # ms
    p90: float
    p99: float
    errors: int
    cpu_ms: float | None  # per request


def _wrk(target: Target, case: Case, duration: float, workdir: Path, pid: int | None) -> Figures:
    path, body = _path_and_body(target, case.kind)
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body), key=CLIENT_KEY))
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{case.connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{target.port}{path}",
    ]
    cpu_before = _cpu_seconds(pid) if pid else 0.0
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"wrk failed on {target.name}, {case.name}: {run.stderr or run.stdout}")
    output = run.stdout
    cpu = _cpu_seconds(pid) - cpu_before if pid else None
    line = next(x for x in output.splitlines() if x.startswith("WRK "))
    requests, micros, errors, statuses, p50, p90, p99 = (int(v) for v in line.split()[1:])
    return Figures(
        rps=requests / (micros / 1e6),
        p50=p50 / 1000,
        p90=p90 / 1000,
        p99=p99 / 1000,
        errors=errors + statuses,
        cpu_ms=None if cpu is None or not requests else cpu * 1000 / requests,
    )


# ---- the run ----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--with-litellm", action="store_true")
    parser.add_argument(
        "--only", help="run only targets whose name contains this (byok and a baseline stay)"
    )
    parser.add_argument("--port", type=int, default=18000, help="first of five ports")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run byok at this git revision (a cached venv per commit), as byok@<hash>",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="start all targets at once and interleave their runs of each case over N rounds",
    )
    parser.add_argument(
        "--cases",
        help="comma-separated case names to run (e.g. 'c16,stream c16'); default: all",
    )
    args = parser.parse_args()
    if args.cases:
        wanted = [name.strip() for name in args.cases.split(",")]
        unknown = [name for name in wanted if name not in {c.name for c in CASES}]
        if unknown:
            parser.error(f"no case {unknown[0]!r}; cases: {', '.join(c.name for c in CASES)}")
        CASES[:] = [c for c in CASES if c.name in wanted]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(
                f"{tool} is missing: apt-get install nginx-light libnginx-mod-http-echo wrk"
            )
    if not Path(ECHO_MODULE).exists():
        raise SystemExit("nginx's echo module is missing: apt-get install libnginx-mod-http-echo")
    baseline = _baseline(args.baseline) if args.baseline else None

    workdir = Path(tempfile.mkdtemp(prefix="byok-bench-"))
    (workdir / "nginx.conf").write_text(_nginx_conf(args.port, workdir))
    nginx = subprocess.Popen(
        [
            "taskset",
            "-c",
            LOAD_CORE,
            shutil.which("nginx") or "/usr/sbin/nginx",
            "-c",
            str(workdir / "nginx.conf"),
            "-e",
            str(workdir / "nginx-error.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = _targets(args.port, workdir, args.with_litellm, baseline)
        _wait_for_200(targets[0], time.perf_counter(), limit=10)
        targets = [
            t
            for t in targets
            if not args.only
            or args.only in t.name
            or t.direct
            or (baseline is not None and t.name.startswith("byok"))
        ]
        if baseline is None and args.rounds == 1:
            results, extras = _run_one_by_one(targets, args.duration, workdir)
            runs = None
        else:
            runs, extras = _run_interleaved(targets, args.duration, workdir, args.rounds)
            results = {
                name: {case: _median(each) for case, each in cases.items()}
                for name, cases in runs.items()
            }
    finally:
        nginx.terminate()
        nginx.wait(5)
    _report(results, extras, args.duration, args.rounds if runs else None)
    if runs:
        _report_rounds(runs, baseline[0] if baseline else None)


def _start(target: Target, workdir: Path) -> tuple[subprocess.Popen[bytes] | None, float | None]:
    """Start a target's process on the proxy core; its startup time to the first 200."""
    if not target.command:
        return None, None
    log = open(workdir / f"{target.name.split()[0]}.log", "w")  # noqa: SIM115
    env = {**os.environ, **(target.env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(
        ["taskset", "-c", PROXY_CORE, *target.command],
        stdout=log,
        stderr=log,
        env=env,
        cwd=target.cwd,
    )
    try:
        return process, _wait_for_200(target, started)
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _cases(target: Target) -> list[Case]:
    return [c for c in CASES if c.litellm or target.name != "LiteLLM"]


def _print_run(target: Target, case: Case, figures: Figures, note: str = "") -> None:
    cpu = f"{figures.cpu_ms:.3f} ms CPU/req" if figures.cpu_ms else ""
    print(
        f"{note}{target.name:24} {case.name:18} {figures.rps:9,.0f}/s  p50 "
        f"{figures.p50:7.2f}  p99 {figures.p99:7.2f} ms  errors {figures.errors}  {cpu}",
        flush=True,
    )


def _run_one_by_one(
    targets: list[Target], duration: float, workdir: Path
) -> tuple[dict[str, dict[str, Figures]], dict[str, tuple[float | None, float | None]]]:
    """Each target alone in turn: started, every case, stopped."""
    results: dict[str, dict[str, Figures]] = {}
    extras: dict[str, tuple[float | None, float | None]] = {}  # startup s, RSS MiB
    for target in targets:
        results[target.name] = {}
        process, startup = _start(target, workdir)
        try:
            pid = process.pid if process else None
            for case in _cases(target):
                figures = _wrk(target, case, duration, workdir, pid)
                results[target.name][case.name] = figures
                _print_run(target, case, figures)
                time.sleep(1)
            extras[target.name] = (startup, _rss_mib(pid) if pid else None)
        finally:
            _stop(process)
    return results, extras


def _run_interleaved(
    targets: list[Target], duration: float, workdir: Path, rounds: int
) -> tuple[dict[str, dict[str, list[Figures]]], dict[str, tuple[float | None, float | None]]]:
    """Every target started once; per case, round after round, one run of each target."""
    runs: dict[str, dict[str, list[Figures]]] = {t.name: {} for t in targets}
    started: list[tuple[Target, subprocess.Popen[bytes] | None, float | None]] = []
    try:
        for target in targets:
            started.append((target, *_start(target, workdir)))
        for case in CASES:
            for n in range(rounds):
                for target, process, _ in started:
                    if case not in _cases(target):
                        continue
                    figures = _wrk(target, case, duration, workdir, process and process.pid)
                    runs[target.name].setdefault(case.name, []).append(figures)
                    _print_run(target, case, figures, f"round {n + 1}/{rounds}  ")
                    time.sleep(1)
        extras = {t.name: (startup, _rss_mib(p.pid) if p else None) for t, p, startup in started}
    finally:
        for _, process, _ in started:
            _stop(process)
    return runs, extras


def _median(runs: list[Figures]) -> Figures:
    cpu = [f.cpu_ms for f in runs if f.cpu_ms is not None]
    return Figures(
        rps=statistics.median(f.rps for f in runs),
        p50=statistics.median(f.p50 for f in runs),
        p90=statistics.median(f.p90 for f in runs),
        p99=statistics.median(f.p99 for f in runs),
        errors=sum(f.errors for f in runs),
        cpu_ms=statistics.median(cpu) if cpu else None,
    )


def _report_rounds(runs: dict[str, dict[str, list[Figures]]], baseline: str | None) -> None:
    print()
    print("Each round, in the order run:")
    print()
    print("| target | case | req/s each round | CPU ms/req each round |")
    print("|---|---|---|---|")
    for name, cases in runs.items():
        for case, each in cases.items():
            rps = ", ".join(f"{f.rps:,.0f}" for f in each)
            cpu = ", ".join(f"{f.cpu_ms:.3f}" if f.cpu_ms is not None else "-" for f in each)
            print(f"| {name} | {case} | {rps} | {cpu} |")
    if baseline is None or "byok" not in runs or baseline not in runs:
        return
    print()
    print(
        f"byok / {baseline}: 'CPU ratio' is byok's median CPU per request over the "
        "baseline's (> 1: byok costs more); 'paired' is the median of the per-round "
        "ratios, each byok run against the baseline run right after it; 'byok cheaper': "
        "rounds in which byok used less CPU per request."
    )
    print()
    print(
        f"| case | byok req/s | {baseline} req/s | req/s ratio | byok CPU ms/req "
        f"| {baseline} CPU ms/req | CPU ratio | paired | per-round CPU ratios | byok cheaper |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for case, new in runs["byok"].items():
        old = runs[baseline].get(case)
        if not old:
            continue
        a, b = _median(new), _median(old)
        pairs = [
            (x.cpu_ms, y.cpu_ms)
            for x, y in zip(new, old)
            if x.cpu_ms is not None and y.cpu_ms  # both measured
        ]
        if a.cpu_ms is None or not b.cpu_ms or not pairs:
            continue
        ratios = [x / y for x, y in pairs]
        each = ", ".join(f"{r:.3f}" for r in ratios)
        cheaper = sum(r < 1 for r in ratios)
        print(
            f"| {case} | {a.rps:,.0f} | {b.rps:,.0f} | {a.rps / b.rps:.3f} | {a.cpu_ms:.3f} "
            f"| {b.cpu_ms:.3f} | {a.cpu_ms / b.cpu_ms:.3f} | {statistics.median(ratios):.3f} "
            f"| {each} | {cheaper}/{len(pairs)} |"
        )


def _report(
    results: dict[str, dict[str, Figures]],
    extras: dict[str, tuple[float | None, float | None]],
    duration: float,
    rounds: int | None = None,
) -> None:
    print()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}; "
        f"proxies on core {PROXY_CORE}, nginx and wrk on core {LOAD_CORE}; "
        f"{duration:g} s per case"
        + (
            f"; {rounds} interleaved round{'s' if rounds > 1 else ''}, medians "
            "(errors summed over the rounds)"
            if rounds
            else ""
        )
    )
    print()
    print("| target | case | req/s | p50 ms | p90 ms | p99 ms | CPU ms/req | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, cases in results.items():
        for case, f in cases.items():
            cpu = f"{f.cpu_ms:.3f}" if f.cpu_ms is not None else "-"
            print(
                f"| {name} | {case} | {f.rps:,.0f} | {f.p50:.2f} | {f.p90:.2f} | {f.p99:.2f} "
                f"| {cpu} | {f.errors} |"
            )
    print()
    print("| target | startup to first 200 | RSS after the run |")
    print("|---|---:|---:|")
    for name, (startup, rss) in extras.items():
        if startup is not None and rss is not None:
            print(f"| {name} | {startup:.2f} s | {rss:.0f} MiB |")
    byok = results.get("byok")
    if not byok:
        return
    print()
    for other in ("floor (trio forwarder)", "LiteLLM"):
        if other in results:
            ratios = [
                f"{c} {byok[c].rps / f.rps:.2f}x"
                for c, f in results[other].items()
                if c in byok and f.rps
            ]
            print(f"byok / {other}: " + ", ".join(ratios))
    if "c16" in byok and "c64" in byok:
        print(f"byok c64 / c16: {byok['c64'].rps / byok['c16'].rps:.2f}x")
    direct = results.get("direct (nginx)", {})
    if "c1" in direct and "c1" in byok:
        print(f"byok added p50 at c1: {byok['c1'].p50 - direct['c1'].p50:.2f} ms")
    for slow in (c for c in results.get("direct (nginx)", {}) if c.startswith("slow")):
        for name, cases in results.items():
            if slow in cases:
                t = cases[slow]
                print(
                    f"{slow}, {name}: last chunk later than the nominal {NOMINAL_SLOW_MS} ms by "
                    f"p50 {t.p50 - NOMINAL_SLOW_MS:.1f} ms, p90 {t.p90 - NOMINAL_SLOW_MS:.1f} ms, "
                    f"p99 {t.p99 - NOMINAL_SLOW_MS:.1f} ms"
                )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
