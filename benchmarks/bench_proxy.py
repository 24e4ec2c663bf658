"""byok side by side with a bare trio forwarder (the floor) and LiteLLM's proxy.

    python benchmarks/bench_proxy.py                  # direct, floor, byok
    python benchmarks/bench_proxy.py --with-litellm   # and LiteLLM (installed on first use)
    python benchmarks/bench_proxy.py --duration 3     # a quick look
    python benchmarks/bench_proxy.py --baseline HEAD~3 --rounds 6 --only byok
    python benchmarks/bench_proxy.py --with-litellm --rounds 5 --write-readme

Needs Debian's nginx (nginx-light will do), libnginx-mod-http-echo and wrk:
    apt-get install nginx-light libnginx-mod-http-echo wrk

Everything stays on loopback.  nginx serves a fixed OpenAI chat completion, a
20-chunk SSE stream, and a slow stream with 20 ms between chunks (and, for
bench_instructions.py --translation, the same answers as Anthropic's Messages
API gives them, and streams of 100 chunks in either API); it and wrk
share core 1, and every proxy runs alone on core 0 (taskset), one process, one
worker.  Each case runs wrk for --duration seconds with a Lua script that POSTs
a chat request and prints exact percentiles.  CPU per request is the proxy's
user+system time over the case (from /proc) divided by the requests served;
RSS is read after the last case; startup is the time from exec to the first
200 answered through the proxy.  Nothing is asserted: the script prints its
figures as Markdown at the end.

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
one target.  The tables then hold the medians over the rounds, and each round's
req/s and CPU ms/request; with --baseline, per case, the median of the per-round
ratios of byok's CPU per request to the baseline's and in how many rounds byok
was the cheaper of the two.  --baseline alone implies this mode with one round;
without either option each target runs alone in turn.

--write-readme [FILE] writes the Markdown printed at the end into the README's
speed section (FILE, default this repository's README.md): everything between
the line "<!-- speed:begin ... -->" and the line "<!-- speed:end -->" is
replaced, and the begin line is stamped with a digest of the text, which
tests/test_benchmarks.py checks, so that the figures there are only ever the
ones a run printed.  The text names the date, the commit measured, the machine
and this command.  It is refused before the run on a tree with uncommitted
changes (README.md aside), so that the commit named is the code measured;
--allow-dirty measures anyway and says "+ local changes".
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "byok-bench"
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
CLIENT_KEY = "sk-client-bench"
UPSTREAM_KEYS = [f"sk-bench-upstream-{n}" for n in range(1, 5)]
PROXY_CORE, LOAD_CORE = "0", "1"
DIRECT, FLOOR, BYOK, LITELLM = "direct (nginx)", "floor (trio forwarder)", "byok", "LiteLLM"
README = HERE.parent / "README.md"
BEGIN, END = "<!-- speed:begin", "<!-- speed:end -->"  # around the README's speed section
MACHINE_NOTE = "shared with other work, so noisy"

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
LONG_CHUNKS = 100  # bench_instructions.py --translation's longer streams


def _chunk(n: int, chunks: int = STREAM_CHUNKS) -> str:
    delta = {"role": "assistant", "content": ""} if n == 0 else {"content": f" tok{n}"}
    finish = "stop" if n == chunks - 2 else None
    event = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return "data: " + json.dumps(event)


# the same answers as Anthropic's Messages API gives them, compact as it writes them
ANTHROPIC_MODEL = "claude-3-5-haiku-20241022"
_USAGE = {"input_tokens": 11, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
MESSAGE = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC_MODEL,
        "content": [{"type": "text", "text": "Hello! How can I help you today?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {**_USAGE, "output_tokens": 9},
    },
    separators=(",", ":"),
)


def _anthropic_events(chunks: int = STREAM_CHUNKS) -> list[str]:
    """The Anthropic stream of the OpenAI one of `chunks` chunks: the same
    text deltas (" tok1" to the last), between Anthropic's framing events."""
    texts = [f" tok{n}" for n in range(1, chunks - 1)]
    events: list[tuple[str, object]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench",
                    "type": "message",
                    "role": "assistant",
                    "model": ANTHROPIC_MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**_USAGE, "output_tokens": 1},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text},
                },
            )
            for text in texts
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(texts)},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}" for name, data in events
    ]


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
    def stream(delay: float, chunks: int = STREAM_CHUNKS) -> str:
        lines = []
        for n in range(chunks - 1):
            if n and delay:
                lines.append(f"echo_sleep {delay};")
            lines.append(f"echo {_nginx_quote(_chunk(n, chunks))};")
            lines.append("echo;")
            lines.append("echo_flush;")
        if delay:  # [DONE] is the 20th chunk, as late as the others: 19 gaps in all
            lines.append(f"echo_sleep {delay};")
        lines.append("echo 'data: [DONE]';")
        lines.append("echo;")
        return "\n            ".join(lines)

    def anthropic_stream(chunks: int = STREAM_CHUNKS) -> str:
        # an event's two lines in one echo (a quoted newline): two writes per
        # event, its text and the blank line, as stream() makes of a chunk
        lines = []
        for event in _anthropic_events(chunks):
            lines += [f"echo {_nginx_quote(event)};", "echo;", "echo_flush;"]
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
        # --limits: the same answers with the rate-limit headers OpenAI sends
        location = /lim/v1/chat/completions {{
            default_type application/json;
            {LIMIT_HEADERS}
            return 200 {_nginx_quote(COMPLETION)};
        }}
        location = /limsse/v1/chat/completions {{
            default_type text/event-stream;
            {LIMIT_HEADERS}
            {stream(0)}
        }}
        # bench_instructions.py --translation: Anthropic's answers, the same text
        location = /v1/messages {{
            default_type application/json;
            return 200 {_nginx_quote(MESSAGE)};
        }}
        location = /antsse/v1/messages {{
            default_type text/event-stream;
            {anthropic_stream()}
        }}
        # ...and streams of LONG_CHUNKS, to tell the cost of a chunk from that of a stream
        location = /long/v1/chat/completions {{
            default_type text/event-stream;
            {stream(0, LONG_CHUNKS)}
        }}
        location = /antlong/v1/messages {{
            default_type text/event-stream;
            {anthropic_stream(LONG_CHUNKS)}
        }}
        location = /slow/v1/chat/completions {{
            default_type text/event-stream;
            {stream(0.02)}
        }}
    }}
}}
"""


# what OpenAI tells on every answer, with limits no benchmark reaches
LIMIT_HEADERS = "\n            ".join(
    f"add_header {name} {value};"
    for name, value in (
        ("x-ratelimit-limit-requests", "30000000"),
        ("x-ratelimit-limit-tokens", "150000000000"),
        ("x-ratelimit-remaining-requests", "29999999"),
        ("x-ratelimit-remaining-tokens", "149999999000"),
        ("x-ratelimit-reset-requests", "2ms"),
        ("x-ratelimit-reset-tokens", "0s"),
    )
)
LIMITS_PATHS = {"fixed": "/lim/v1", "sse": "/limsse/v1", "slow": "/slow/v1"}
HUGE = 10**11  # a limit no benchmark reaches: configured, checked, never binding


def _nginx_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- the proxies ------------------------------------------------------------------


def _byok_config(upstream: str, workdir: Path, limits: bool = False, headers: bool = False) -> Path:
    """The config of every byok target; with `limits`, byok's own (--limits):
    every limit there is configured (key, model, client rates and budget),
    none ever reached.  With `limits` or `headers`, the upstreams send
    OpenAI's rate-limit headers (--limits gives them to both sides, so that
    the comparison is of the limits alone, not of six more headers)."""
    client = f'"{CLIENT_KEY}"'
    if limits:
        client = f'{{ key = "{CLIENT_KEY}", rpm = {HUGE}, tpm = {HUGE}, monthly_tokens = {HUGE} }}'
    lines = ["[server]", f"client_keys = [{client}]", ""]
    paths = LIMITS_PATHS if limits or headers else UPSTREAM_PATHS
    for kind, prefix in paths.items():
        lines += [f"[providers.{kind}]", 'kind = "openai"', f'base_url = "{upstream}{prefix}"']
        lines.append("keys = [")
        for n, key in enumerate(UPSTREAM_KEYS):
            own = f", rpm = {HUGE}, tpm = {HUGE}, daily_tokens = {HUGE}" if limits else ""
            lines.append(
                f'  {{ key = "{key}", label = "{kind}-{n + 1}", weight = {2 if n == 0 else 1}'
                f"{own} }},"
            )
        lines += ["]", ""]
    for kind, model in MODELS.items():
        lines += [
            f'[models."{model}"]',
            f'targets = ["{kind}/gpt-4o-mini"]',
            'strategy = "weighted_round_robin"',
        ]
        if limits:
            lines += [f"rpm = {HUGE}", f"tpm = {HUGE}", "max_inflight = 100000"]
        lines.append("")
    path = workdir / (
        "byok-limits.toml" if limits else "byok-headers.toml" if headers else "byok.toml"
    )
    path.write_text("\n".join(lines))
    return path


# bench_instructions.py --translation: a provider of each kind per shape of answer
TRANSLATION_PATHS = {
    ("openai", "fixed"): "/v1",
    ("openai", "stream"): "/sse/v1",
    ("openai", "long"): "/long/v1",
    ("anthropic", "fixed"): "",  # Anthropic's base URL is the bare host
    ("anthropic", "stream"): "/antsse",
    ("anthropic", "long"): "/antlong",
}
UPSTREAM_MODELS = {"openai": "gpt-4o-mini", "anthropic": ANTHROPIC_MODEL}


def _translation_config(upstream: str, workdir: Path) -> Path:
    """The config of bench_instructions.py --translation: per shape of answer
    (fixed, stream, long), a provider of kind openai and one of kind
    anthropic, each with the keys of _byok_config's, and the models
    "<kind>-<shape>" (openai-fixed, anthropic-stream, ...) with one target
    there.  Either API's client may ask for either model: byok translates
    when the target speaks the other API."""
    lines = ["[server]", f'client_keys = ["{CLIENT_KEY}"]', ""]
    for (kind, shape), prefix in TRANSLATION_PATHS.items():
        lines += [
            f"[providers.{kind}-{shape}]",
            f'kind = "{kind}"',
            f'base_url = "{upstream}{prefix}"',
            "keys = [",
            *(
                f'  {{ key = "{key}", label = "{kind}-{shape}-{n + 1}", '
                f"weight = {2 if n == 0 else 1} }},"
                for n, key in enumerate(UPSTREAM_KEYS)
            ),
            "]",
            "",
            f'[models."{kind}-{shape}"]',
            f'targets = ["{kind}-{shape}/{UPSTREAM_MODELS[kind]}"]',
            'strategy = "weighted_round_robin"',
            "",
        ]
    path = workdir / "byok-translation.toml"
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
    context = f"--baseline {rev}: "
    full = _git(
        repo, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}", context=context
    )
    name = f"byok@{_git(repo, 'rev-parse', '--short', full, context=context)}"
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
        _fail(f"--baseline {rev}: git archive {full} | tar -x failed")
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
    limits: bool = False,
) -> list[Target]:
    upstream = f"http://127.0.0.1:{nginx_port}"
    # byok's usage ledger goes to the run's directory, not the user's data
    # directory (a baseline from before the ledger ignores the variable)
    data = {"XDG_DATA_HOME": str(workdir / "data")}
    # --limits: the baseline against the same upstream answers, no limit configured
    plain = _byok_config(upstream, workdir, headers=limits)
    targets = [
        Target(DIRECT, [], nginx_port, direct=True),
        Target(
            FLOOR,
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
            BYOK,
            [
                sys.executable,
                "-m",
                "byok",
                "serve",
                "--config",
                str(_byok_config(upstream, workdir, limits=True) if limits else plain),
                "--port",
                str(nginx_port + 2),
            ],
            nginx_port + 2,
            data,
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
                LITELLM,
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
                    str(plain),
                    "--port",
                    str(nginx_port + 4),
                ],
                nginx_port + 4,
                data,
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


def _wait_for_200(
    target: Target, started: float, limit: float = 120.0, log: Path | None = None
) -> float:
    path, body = _path_and_body(target, "fixed")
    while time.perf_counter() - started < limit:
        try:
            if _post(target.port, path, body) == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    _fail(
        f"{target.name} gave no 200 within {limit:.0f}s" + (f"; its output: {log}" if log else "")
    )


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
        output = " ".join((run.stderr or run.stdout).split())
        _fail(f"wrk failed on {target.name}, {case.name}: {output}")
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
        "--limits",
        action="store_true",
        help="byok (not the baseline) runs with every limit configured and never reached; "
        "both against upstreams that send OpenAI's rate-limit headers: with --baseline HEAD, "
        "what limits cost",
    )
    parser.add_argument(
        "--cases",
        help="comma-separated case names to run (e.g. 'c16,stream c16'); default: all",
    )
    parser.add_argument(
        "--write-readme",
        nargs="?",
        const=README,
        type=Path,
        metavar="FILE",
        help="after the run, write the Markdown printed at the end between the "
        f"'{BEGIN} ...' and '{END}' lines of FILE (default: this repository's README.md); "
        "refused on a tree with uncommitted changes",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="let --write-readme measure a tree with uncommitted changes "
        "(the section then says '+ local changes')",
    )
    parser.add_argument(
        "--machine-note",
        default=MACHINE_NOTE,
        help=f"how the written text describes the machine's cores (default: {MACHINE_NOTE!r})",
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
    if args.limits and args.write_readme:
        parser.error("--limits measures a config of its own: the README's table is the plain one")
    # everything that can refuse the run does so before minutes of measuring
    commit = _check_write(args.write_readme, HERE.parent, args.allow_dirty)
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            _fail(f"{tool} is missing: apt-get install nginx-light libnginx-mod-http-echo wrk")
    if not Path(ECHO_MODULE).exists():
        _fail("nginx's echo module is missing: apt-get install libnginx-mod-http-echo")
    baseline = _baseline(args.baseline) if args.baseline else None
    litellm = _litellm_version(_litellm_python()) if args.with_litellm else None
    date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    load = os.getloadavg()[0]  # before nginx and the proxies add their own

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
        targets = _targets(args.port, workdir, args.with_litellm, baseline, args.limits)
        _wait_for_200(targets[0], time.perf_counter(), limit=10)
        targets = [
            t
            for t in targets
            if not args.only
            or args.only in t.name
            or t.direct
            or (baseline is not None and t.name.startswith("byok"))
        ]
        interleaved = baseline is not None or args.rounds > 1
        if interleaved:
            runs, extras = _run_interleaved(targets, args.duration, workdir, args.rounds)
        else:
            runs, extras = _run_one_by_one(targets, args.duration, workdir)
    finally:
        nginx.terminate()
        nginx.wait(5)
    markdown = speed_markdown(
        Report(
            date=date,
            commit=commit,
            machine=_machine(),
            machine_note=args.machine_note,
            load=load,
            command=shlex.join(["python", "benchmarks/bench_proxy.py", *sys.argv[1:]]),
            duration=args.duration,
            rounds=args.rounds if interleaved else None,
            runs=runs,
            extras=extras,
            baseline=baseline[0] if baseline else None,
            litellm=litellm,
        )
    )
    print()
    print(markdown, end="")
    if args.write_readme:
        write_section(args.write_readme, markdown)
        print(f"\nwrote the speed section of {args.write_readme}")


def _fail(message: str) -> NoReturn:
    """End on an expected failure: one line on stderr, exit status 2, no traceback."""
    print(f"bench_proxy.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _git(repo: Path, *arguments: str, context: str = "") -> str:
    # --no-optional-locks: `git status` would otherwise refresh the index, which others
    # working in the same tree may hold at that moment
    run = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(repo), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode:
        _fail(f"{context}git {arguments[0]}: {run.stderr.strip()}")
    return run.stdout.strip()


def commit_measured(repo: Path) -> tuple[str, bool]:
    """The short hash of HEAD in repo, and whether the tree differs from it.

    Untracked files count (a new module changes what runs); the top README.md does not:
    it holds no code, and --write-readme itself rewrites it.
    """
    head = _git(repo, "rev-parse", "--short", "HEAD")
    changes = _git(repo, "status", "--porcelain", "--", ".", ":(exclude)README.md")
    return head, bool(changes)


def _check_write(readme: Path | None, repo: Path, allow_dirty: bool) -> str:
    """The commit to name in the text; refuses a README without markers or a dirty tree."""
    head, dirty = commit_measured(repo)
    if readme is not None:
        try:
            problem = _markers_problem(readme.read_text())
        except OSError as e:
            _fail(f"--write-readme: cannot read {readme}: {e.strerror}")
        if problem:
            _fail(f"--write-readme: {readme}: {problem}")
        if dirty and not allow_dirty:
            _fail(
                f"--write-readme: the tree has changes not in {head} (git status); commit "
                "them so that the figures name the code that produced them, or pass "
                "--allow-dirty to write them as '+ local changes'"
            )
    return f"{head} + local changes" if dirty else head


def _litellm_version(python: Path) -> str:
    run = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode:
        _fail(f"LiteLLM's venv ({python.parent.parent}) is broken; delete it to reinstall")
    return run.stdout.strip()


def _start(target: Target, workdir: Path) -> tuple[subprocess.Popen[bytes] | None, float | None]:
    """Start a target's process on the proxy core; its startup time to the first 200."""
    if not target.command:
        return None, None
    path = workdir / f"{target.name.split()[0]}.log"
    log = open(path, "w")  # noqa: SIM115
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
        return process, _wait_for_200(target, started, log=path)
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
    return [c for c in CASES if c.litellm or target.name != LITELLM]


def _print_run(target: Target, case: Case, figures: Figures, note: str = "") -> None:
    cpu = f"{figures.cpu_ms:.3f} ms CPU/req" if figures.cpu_ms else ""
    print(
        f"{note}{target.name:24} {case.name:18} {figures.rps:9,.0f}/s  p50 "
        f"{figures.p50:7.2f}  p99 {figures.p99:7.2f} ms  errors {figures.errors}  {cpu}",
        flush=True,
    )


Runs = dict[str, dict[str, list[Figures]]]  # target → case → its runs, in the order run
Extras = dict[str, tuple[float | None, float | None]]  # target → (startup s, RSS MiB)


def _run_one_by_one(targets: list[Target], duration: float, workdir: Path) -> tuple[Runs, Extras]:
    """Each target alone in turn: started, every case once, stopped."""
    runs: Runs = {}
    extras: Extras = {}
    for target in targets:
        runs[target.name] = {}
        process, startup = _start(target, workdir)
        try:
            pid = process.pid if process else None
            for case in _cases(target):
                figures = _wrk(target, case, duration, workdir, pid)
                runs[target.name][case.name] = [figures]
                _print_run(target, case, figures)
                time.sleep(1)
            extras[target.name] = (startup, _rss_mib(pid) if pid else None)
        finally:
            _stop(process)
    return runs, extras


def _run_interleaved(
    targets: list[Target], duration: float, workdir: Path, rounds: int
) -> tuple[Runs, Extras]:
    """Every target started once; per case, round after round, one run of each target."""
    runs: Runs = {t.name: {} for t in targets}
    started: list[tuple[Target, subprocess.Popen[bytes] | None, float | None]] = []
    try:
        for target in targets:
            started.append((target, *_start(target, workdir)))
        for case in CASES:
            for n in range(rounds):
                for target, process, _ in started:
                    if case not in _cases(target):
                        continue
                    pid = process.pid if process else None
                    figures = _wrk(target, case, duration, workdir, pid)
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
    # a run in which no request finished has no latencies: its zeros would pull them down
    done = [f for f in runs if f.rps] or runs
    return Figures(
        rps=statistics.median(f.rps for f in runs),
        p50=statistics.median(f.p50 for f in done),
        p90=statistics.median(f.p90 for f in done),
        p99=statistics.median(f.p99 for f in done),
        errors=sum(f.errors for f in runs),
        cpu_ms=statistics.median(cpu) if cpu else None,
    )


# ---- the README's speed section ------------------------------------------------------
#
# The generator is the only writer of the figures between the markers: it replaces
# everything between them, and stamps the begin marker with a digest of what it wrote,
# so that a figure changed by hand later no longer matches (tests/test_benchmarks.py
# checks the README against its stamp).

_MARKER = re.compile(r"^<!-- speed:(begin|end)\b.*-->[ \t]*$", re.MULTILINE)
_STAMP = re.compile(r"\bdigest ([0-9a-f]{12})\b")


@dataclass
class Report:
    """One run's figures and what they were measured on: what the speed section says."""

    date: str  # UTC, ISO
    commit: str  # short hash of HEAD, "+ local changes" when the tree differed from it
    machine: str
    machine_note: str  # how the cores are described: "shared with other work, so noisy"
    load: float  # 1-minute load average as the run began
    command: str  # the command line that produced it
    duration: float  # seconds per run
    rounds: int | None  # interleaved rounds; None: each target alone in turn
    runs: Runs
    extras: Extras
    baseline: str | None = None  # "byok@<hash>" when --baseline ran
    litellm: str | None = None  # LiteLLM's version when it ran


def speed_markdown(report: Report) -> str:
    """The README's speed section for one run, in Markdown ending with a newline."""
    medians = {
        name: {case: _median(each) for case, each in cases.items()}
        for name, cases in report.runs.items()
    }
    parts = [
        _intro(report),
        _headline(report, medians),
        _ratios(medians),
        _slow(medians),
        _against_baseline(report),
        _method(report),
        _every_run(report, medians),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_section(readme: Path, markdown: str) -> None:
    """Replace the speed section of readme with markdown, stamped with its digest.

    The file is read again here, after the run, so that edits made to the rest of it
    meanwhile are kept; it is replaced in one rename.
    """
    text = readme.read_text()
    problem = _markers_problem(text)
    if problem:
        _fail(f"--write-readme: {readme}: {problem}")
    begin, end = _markers(text)
    stamp = (
        f"{BEGIN}: written by benchmarks/bench_proxy.py --write-readme, digest "
        f"{_digest(markdown)}; run it again rather than edit the figures -->"
    )
    spare = readme.with_name(readme.name + ".new")
    spare.write_text(text[: begin.start()] + stamp + "\n" + markdown + text[end.start() :])
    spare.replace(readme)


def section_problem(text: str) -> str | None:
    """What is wrong with the speed section of README text, or None if nothing.

    Wrong: the markers missing, repeated or out of order, or a section the generator
    stamped whose text no longer matches its digest (edited by hand since).
    """
    problem = _markers_problem(text)
    if problem:
        return problem
    begin, end = _markers(text)
    stamp = _STAMP.search(begin.group(0))
    if stamp and stamp.group(1) != _digest(text[begin.end() + 1 : end.start()]):
        return (
            "the speed section differs from what bench_proxy.py wrote (digest "
            f"{stamp.group(1)}): rerun `python benchmarks/bench_proxy.py --write-readme` "
            "instead of editing its figures"
        )
    return None


def _markers(text: str) -> tuple[re.Match[str], re.Match[str]]:
    begin, end = _MARKER.finditer(text)
    return begin, end


def _markers_problem(text: str) -> str | None:
    found = [m.group(1) for m in _MARKER.finditer(text)]
    if found == ["begin", "end"]:
        return None
    return (
        f"the speed section needs one line '{BEGIN} -->' and, below it, one line "
        f"'{END}'; found {', '.join(found) or 'neither'}"
    )


def _digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def _prose(text: str) -> str:
    """A paragraph wrapped as the rest of the README is, so that a rerun diffs by line."""
    return textwrap.fill(text, 78, break_long_words=False, break_on_hyphens=False)


def _intro(report: Report) -> str:
    said = _prose(
        "The proxy, one process on one core, against nginx on loopback. Measured on "
        f"{report.date} at commit {report.commit}, on {report.machine}, by:"
    )
    return f"{said}\n\n```sh\n{report.command}\n```"


def _label(name: str, report: Report) -> str:
    if name == FLOOR:
        return "bare trio forwarder (the floor)"
    if name == LITELLM and report.litellm:
        return f"LiteLLM proxy {report.litellm}"
    return name


def _headline(report: Report, medians: dict[str, dict[str, Figures]]) -> str:
    names = sorted((n for n in medians if n != DIRECT), key=lambda n: n != BYOK)
    if not names:
        return ""
    direct_c1 = medians.get(DIRECT, {}).get("c1")

    def rate(case: str) -> Callable[[str], str | None]:
        return lambda n: f"{medians[n][case].rps:,.0f}" if case in medians[n] else None

    def cpu(case: str) -> Callable[[str], str | None]:
        def cell(n: str) -> str | None:
            figures = medians[n].get(case)
            return f"{figures.cpu_ms:.3f} ms" if figures and figures.cpu_ms else None

        return cell

    def added(n: str) -> str | None:
        c1 = medians[n].get("c1")
        if c1 and c1.rps and direct_c1 and direct_c1.rps:
            return f"{c1.p50 - direct_c1.p50:.2f} ms"
        return None

    def memory(n: str) -> str | None:
        rss = report.extras.get(n, (None, None))[1]
        return f"{rss:.0f} MiB" if rss is not None else None

    def startup(n: str) -> str | None:
        seconds = report.extras.get(n, (None, None))[0]
        return f"{seconds:.2f} s" if seconds is not None else None

    rows = [
        ("chat completions/s, 1 connection", rate("c1")),
        ("chat completions/s, 16 connections", rate("c16")),
        ("chat completions/s, 64 connections", rate("c64")),
        ("20-chunk streams/s, 16 connections", rate("stream c16")),
        ("CPU per chat completion, 16 connections", cpu("c16")),
        ("CPU per 20-chunk stream, 16 connections", cpu("stream c16")),
        ("added p50 latency, one connection", added),
        ("memory after the run", memory),
        ("start to first answer", startup),
    ]
    lines = [
        "| | " + " | ".join(_label(n, report) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for title, cell in rows:
        cells = [cell(n) for n in names]
        if any(cells):
            lines.append(f"| {title} | " + " | ".join(c or "-" for c in cells) + " |")
    return "\n".join(lines)


def _times(ratio: float) -> str:
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def _ratios(medians: dict[str, dict[str, Figures]]) -> str:
    byok = medians.get(BYOK)
    others = [(n, short) for n, short in ((FLOOR, "floor"), (LITELLM, "LiteLLM")) if n in medians]
    if not byok or not others:
        return ""
    cases = list(byok)
    lines = [
        _prose(
            "byok over the others, from the same run: req/s is byok's over theirs (above "
            "1: byok serves more), CPU per request byok's over theirs (below 1: byok "
            "spends less)."
        ),
        "",
        "| | " + " | ".join(cases) + " |",
        "|---|" + "---:|" * len(cases),
    ]
    for name, short in others:
        theirs = medians[name]
        rps, cpu = [], []
        for case in cases:
            mine, other = byok[case], theirs.get(case)
            rps.append(_times(mine.rps / other.rps) if other and other.rps else "-")
            if other and other.cpu_ms and mine.cpu_ms:
                cpu.append(_times(mine.cpu_ms / other.cpu_ms))
            else:
                cpu.append("-")
        lines.append(f"| req/s, byok / {short} | " + " | ".join(rps) + " |")
        lines.append(f"| CPU per request, byok / {short} | " + " | ".join(cpu) + " |")
    return "\n".join(lines)


def _late(f: Figures) -> tuple[float, float, float]:
    """How late a slow stream's last chunk came: p50, p90, p99 in ms."""
    return f.p50 - NOMINAL_SLOW_MS, f.p90 - NOMINAL_SLOW_MS, f.p99 - NOMINAL_SLOW_MS


def _slow(medians: dict[str, dict[str, Figures]]) -> str:
    slow = [c for c in CASES if c.kind == "slow" and any(c.name in m for m in medians.values())]
    if not slow:
        return ""
    widest = slow[-1]
    text = (
        f"Slow streams, {STREAM_CHUNKS} chunks 20 ms apart ({NOMINAL_SLOW_MS} ms when "
        "nothing is late): how late each stream's last chunk arrived. "
    )
    byok = medians.get(BYOK, {}).get(widest.name)
    direct = medians.get(DIRECT, {}).get(widest.name)
    if byok and byok.rps:
        p50, p90, p99 = _late(byok)
        text += (
            f"With {widest.connections:,} concurrent streams through byok, the last chunk of "
            f"the p99 stream came {p99:,.0f} ms late (p50 {p50:,.0f} ms, p90 {p90:,.0f} ms)"
        )
        if direct and direct.rps:
            text += f"; straight from nginx, with no proxy between, {_late(direct)[2]:,.0f} ms"
        text += "."
    elif byok:
        text += (
            f"With {widest.connections:,} concurrent streams through byok, not one finished "
            "within the run."
        )
    lines = [_prose(text)]
    lines += [
        "",
        "| target | "
        + " | ".join(f"{c.connections:,} streams: p50 / p90 / p99 ms late" for c in slow)
        + " |",
        "|---|" + "---:|" * len(slow),
    ]
    for name, cases in medians.items():
        cells = [_lateness(cases.get(c.name)) for c in slow]
        if any(cell != "-" for cell in cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _lateness(figures: Figures | None) -> str:
    if figures is None:
        return "-"
    if not figures.rps:
        return "none finished"
    return " / ".join(f"{x:,.0f}" for x in _late(figures))


def _against_baseline(report: Report) -> str:
    old = report.baseline
    if not old or BYOK not in report.runs or old not in report.runs:
        return ""
    lines = [
        _prose(
            f"This tree against {old} in the same run, which is how a change to the hot "
            f"path is judged: in each round, byok's CPU per request over that of {old} "
            "(below 1: this tree is cheaper), the median of those per-round ratios, and "
            "in how many rounds this tree was the cheaper."
        ),
        "",
        f"| case | byok CPU ms/req | {old} CPU ms/req | CPU per request, byok / {old}, "
        "median of the rounds | rounds byok was cheaper | each round | req/s, byok / "
        f"{old} |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for case, new_runs in report.runs[BYOK].items():
        old_runs = report.runs[old].get(case, [])
        pairs = [(a.cpu_ms, b.cpu_ms) for a, b in zip(new_runs, old_runs) if a.cpu_ms and b.cpu_ms]
        if not pairs:
            continue
        ratios = [a / b for a, b in pairs]
        new, base = _median(new_runs), _median(old_runs)
        lines.append(
            f"| {case} | {new.cpu_ms:.3f} | {base.cpu_ms:.3f} | "
            f"{statistics.median(ratios):.3f} | {sum(r < 1 for r in ratios)} of {len(ratios)} "
            f"| {', '.join(f'{r:.3f}' for r in ratios)} | {new.rps / base.rps:.3f} |"
        )
    return "\n".join(lines)


def _method(report: Report) -> str:
    cores = os.cpu_count()
    text = (
        f"How far to trust it: {cores} cores, {report.machine_note}; the proxy under test "
        f"has core {PROXY_CORE} to itself, nginx and wrk share core {LOAD_CORE}; the "
        f"1-minute load average was {report.load:.2f} as the run began. "
    )
    if report.rounds is None:
        text += (
            f"Each target ran alone in turn, one {report.duration:g} s run per case: a "
            "single sample each, which moves with whatever else the machine is doing at "
            "that moment (`--rounds N` gives medians of interleaved rounds). "
        )
    else:
        s = "s" if report.rounds > 1 else ""
        text += (
            "Every target was started once, then the targets took turns case by case "
            f"(A B C A B C ...) for {report.rounds} round{s} of {report.duration:g} s, so "
            "that the machine's noise fell on all of them alike; each figure is the "
            f"median over the round{s}, errors are summed. "
        )
        spread = report.runs.get(BYOK, {}).get("c16", [])
        cpu = [f.cpu_ms for f in spread if f.cpu_ms is not None]
        if len(spread) > 1 and cpu:
            rates = [f.rps for f in spread]
            text += (
                f"Over the rounds, byok's req/s at c16 went from {min(rates):,.0f} to "
                f"{max(rates):,.0f}, its CPU per request from {min(cpu):.3f} to "
                f"{max(cpu):.3f} ms. "
            )
    return _prose(
        text + "CPU per request is the proxy's user + system time over a run (its process "
        "tree, from /proc) divided by the requests it served. Absolute rates are this "
        "machine's; ratios taken in one run are what carry over."
    )


def _every_run(report: Report, medians: dict[str, dict[str, Figures]]) -> str:
    title = "Every target and case" + (
        f", medians of {report.rounds} rounds" if report.rounds and report.rounds > 1 else ""
    )
    lines = [
        f"<details><summary>{title}</summary>",
        "",
        "| target | case | req/s | p50 ms | p90 ms | p99 ms | CPU ms/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cases in medians.items():
        for case, f in cases.items():
            cpu = f"{f.cpu_ms:.3f}" if f.cpu_ms is not None else "-"
            # no request finished: no latency to give
            late = f"{f.p50:.2f} | {f.p90:.2f} | {f.p99:.2f}" if f.rps else "- | - | -"
            lines.append(f"| {name} | {case} | {f.rps:,.0f} | {late} | {cpu} | {f.errors} |")
    if report.rounds and report.rounds > 1:
        lines += [
            "",
            "Each round, in the order run:",
            "",
            "| target | case | req/s each round | CPU ms/req each round |",
            "|---|---|---|---|",
        ]
        for name, each_case in report.runs.items():
            for case, runs in each_case.items():
                rps = ", ".join(f"{f.rps:,.0f}" for f in runs)
                cpu = ", ".join(f"{f.cpu_ms:.3f}" if f.cpu_ms is not None else "-" for f in runs)
                lines.append(f"| {name} | {case} | {rps} | {cpu} |")
    return "\n".join([*lines, "", "</details>"])


def _machine() -> str:
    try:
        system = platform.freedesktop_os_release()["PRETTY_NAME"] + ", "
    except (OSError, KeyError):
        system = ""
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, {system}{platform.system()} "
        f"{platform.release()} {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
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
