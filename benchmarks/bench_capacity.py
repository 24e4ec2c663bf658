"""Keys kept under their limits: upstream 429s with headroom on and off, at 90%
of the keys' capacity.

    python benchmarks/bench_capacity.py                     # on, then off: 2 x 2 minutes
    python benchmarks/bench_capacity.py --kind anthropic    # the same over /v1/messages
    python benchmarks/bench_capacity.py --rpm 600 --tpm 200000   # four equal keys
    python benchmarks/bench_capacity.py --duration 20 --only on --logs /tmp/cap

Everything runs on loopback, each run with fresh processes:

- the upstream: byok's simulated upstream (byok.cli.simulator) in a process of
  its own (this script run with --serve-upstream), N keys (--keys, 4) each
  with an rpm and a tpm, enforced as providers do (a token bucket per limit
  and key, a minute's worth, refilled continuously) and advertised in every
  answer's headers (OpenAI's x-ratelimit-*, or Anthropic's
  anthropic-ratelimit-* with --kind anthropic).  Each answer is held for a
  delay drawn uniformly from --delay (50-200 ms, seeded) after the request
  was charged, so that requests overlap as real ones do; a 429 goes back at
  once.  Two control paths of its own: POST /_bench/drain empties every key's
  buckets (below), GET /_bench/counters gives its counters and a trace of
  every request (when it was charged or refused, when answered, the key,
  the status, what its headers said was left);
- byok: `byok serve` with a generated config: one provider of the kind asked
  pointing at the upstream, its N keys (all of weight 1: byok is not told
  their limits), one model with wait_for_cooldown 30 s (a request waits for
  a key rather than fail) and 4 attempts, and `[server] headroom = true` or
  `false`;
- the load: open loop, from this process (trio and httpx2, no cap on
  connections): arrivals at --load (0.9) of the keys' summed capacity, Poisson
  by default (exponential gaps from a seeded RNG; --arrivals uniform for
  even gaps), for --duration (120) seconds, each request started at its
  arrival time whatever the others are doing.  Every request is the same small
  chat completion with max_tokens 500, so its cost is known: the simulator
  charges ceil(prompt characters / 4) + max_tokens = 508 tokens.

The keys are of four tiers by default, as keys gathered from several accounts
are: tpm 350,000, 250,000, 125,000 and 75,000 (rpm 1,000, 700, 400 and 250,
so that the tpm binds on each: 11.5, 8.2, 4.1 and 2.5 requests/s).  Together
they take 800,000 tokens a minute, 26.2 requests/s; the load is 23.6/s.
byok spreads requests evenly over keys of equal weight, 5.9/s to each: the
two small keys are asked for more than they hold for the whole run, the two
large ones have room to spare.  Without headroom byok learns of that from a
429 at a time (and the key's cooldown, the Retry-After); with it, byok
passes a key by before its 429.  --rpm and --tpm take one figure for every
key, or one per key; the capacity of the settings given is printed with the
table.

Four equal keys (--rpm 600 --tpm 200000, the same capacity) make a weaker
test: spread evenly, each key gets 90% of what it refills, and only the
first seconds after the drain (below) are close to the limits; whether byok
without headroom meets a 429 there at all is then a matter of luck.

The keys start drained (--start empty, the default).  A bucket holds a
minute's worth: started whole, it takes minutes for a key asked for more
than its share to run dry, and traffic at 90% of the refill rate never
empties an evenly used one (in two minutes it asks for 1.8 minutes' worth of
the 3 there are).  Keys in use are not whole: they carry other traffic, or a
burst just spent them.  So just before the load starts, the upstream spends
each key's buckets down to less than one request's worth (its counters start
after that); --start full leaves them whole.

Figures: requests sent; answered 2xx; client-visible failures (any other
status, a transport error, or no answer by the cap); the upstream's 429s for
its limits (its own counter); the upstream requests in all; p50 and p99 of
the 2xx answers' latency from their arrival time (waits for capacity
included); and the reduction of upstream 429s, 1 - on / off.  The run is
bounded: the load stops after --duration, stragglers get 60 s more (the
client's timeout), then every process is stopped, on Ctrl-C too.  Nothing is
asserted: the exit status is non-zero only when the script itself failed.
--json prints the figures as JSON instead of the table.  --logs DIR keeps
byok's log, its config and the upstream's trace of each run there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec
import trio
from rich import box
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_proxy import _machine, commit_measured  # noqa: E402
from byok.cli.simulator import SimulatedUpstream, estimated_tokens  # noqa: E402
from byok.http.server import Request, Response, bound_port, serve_http  # noqa: E402

CLIENT_KEY = "sk-client-capacity-bench"
MODEL = "bench"
MAX_TOKENS = 500
PROMPT = "Say hello in one short sentence."
ANTHROPIC_VERSION = "2023-06-01"
WAIT_FOR_COOLDOWN = 30.0  # byok: a request waits this long for a key rather than fail
ATTEMPTS = 4
CLIENT_TIMEOUT = WAIT_FOR_COOLDOWN + 30  # the load's own cap on one request
EVENTS_KEPT = 200  # of the upstream's 429s, the first this many in the JSON
LOOPBACK = "127.0.0.1"


def upstream_keys(keys: int) -> dict[str, str]:
    """The upstream keys (secret -> label), the same in both processes."""
    return {f"sk-capacity-bench-{n:02d}-0000": f"key-{n}" for n in range(1, keys + 1)}


def request_shape(kind: str) -> tuple[str, dict[str, Any], list[tuple[str, str]]]:
    """(path, body, headers) of every request of the load, for byok's clients."""
    messages = [{"role": "user", "content": PROMPT}]
    body = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": messages}
    if kind == "anthropic":
        headers = [("x-api-key", CLIENT_KEY), ("anthropic-version", ANTHROPIC_VERSION)]
        return "/v1/messages", body, headers
    return "/v1/chat/completions", body, [("authorization", f"Bearer {CLIENT_KEY}")]


def charge(kind: str) -> int:
    """The tokens the simulator charges one request at admission."""
    path, body, _ = request_shape(kind)
    return int(estimated_tokens(path, body))


def capacity(rpms: list[int], tpms: list[int], kind: str) -> tuple[float, str]:
    """Requests a second the keys take together, and which limit binds."""
    total, binding = 0.0, set()
    for rpm, tpm in zip(rpms, tpms):
        by_requests, by_tokens = rpm / 60, tpm / 60 / charge(kind)
        binding.add("rpm" if by_requests <= by_tokens else "tpm")
        total += min(by_requests, by_tokens)
    return total, " or ".join(sorted(binding, reverse=True))


def per_key(text: str, keys: int, name: str) -> list[int]:
    """--rpm or --tpm: one figure for every key, or one per key (a comma-separated list)."""
    try:
        figures = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--{name} takes whole numbers, one or one per key: not {text!r}"
        ) from None
    if len(figures) == 1:
        figures *= keys
    if len(figures) != keys:
        raise ValueError(f"--{name} gives {len(figures)} figures for {keys} keys (--keys)")
    if min(figures) < 1:
        raise ValueError(f"--{name}: every figure must be at least 1")
    return figures


# ---- the upstream, in its own process ------------------------------------------------


@dataclass
class Seen:
    """One request as the upstream saw it: the trace that --logs keeps."""

    at: float  # seconds since the drain (or since it started serving), charged or refused
    answered: float  # when its answer went out, after the delay
    key: str  # the key's label
    status: int
    requests_left: int | None  # what its answer's headers said was left
    tokens_left: int | None
    message: str = ""  # a 429's


class BenchUpstream:
    """The simulator with a random answer delay and the bench's control paths."""

    def __init__(
        self, simulator: SimulatedUpstream, kind: str, delay: tuple[float, float], seed: int
    ) -> None:
        self.simulator, self.kind = simulator, kind
        self.delay, self.random = delay, random.Random(seed)
        self.since = trio.current_time()
        self.limited_before = 0  # the simulator's 429 counter at the drain
        self.trace: list[Seen] = []  # since the drain
        family = (
            "anthropic-ratelimit-{}-remaining"
            if kind == "anthropic"
            else "x-ratelimit-remaining-{}"
        )
        self.left = (family.format("requests"), family.format("tokens"))

    async def __call__(self, request: Request) -> Response:
        if request.path == "/_bench/counters":
            return self._json(self.counters())
        if request.path == "/_bench/drain":
            return self._json(await self.drain())
        # Charged at arrival, answered after the delay, so that the limit
        # headers tell what was left when the request came in, as a provider's
        # do; a 429 generates nothing and goes back at once, as theirs do.
        at = trio.current_time() - self.since
        response = await self.simulator(request)
        if response.status != 429:
            await trio.sleep(self.random.uniform(*self.delay))
        self.trace.append(self._seen(request, response, at))
        return response

    async def drain(self) -> dict[str, Any]:
        """Spend every key's buckets down to less than one request's worth
        (requests of the load's own shape, straight to the simulator), then
        start the counters afresh."""
        path, body, _ = request_shape(self.kind)
        raw = msgspec.json.encode(body)
        spent: dict[str, int] = {}
        for secret, label in self.simulator.names.items():
            headers = [("content-type", "application/json"), ("authorization", f"Bearer {secret}")]
            if self.kind == "anthropic":
                headers[1:] = [("x-api-key", secret), ("anthropic-version", ANTHROPIC_VERSION)]
            spent[label] = 0
            while (await self.simulator(Request("POST", path, headers, raw))).status != 429:
                spent[label] += 1
        self.simulator.seen.clear()
        self.since = trio.current_time()
        self.limited_before = self.simulator.rate_limited
        self.trace.clear()
        return {"drained": spent}

    def counters(self) -> dict[str, Any]:
        return {
            "requests": len(self.trace),
            "answered": sum(1 for seen in self.trace if 200 <= seen.status < 300),
            "rate_limited": self.simulator.rate_limited - self.limited_before,
            "trace": [asdict(seen) for seen in self.trace],
        }

    def _seen(self, request: Request, response: Response, at: float) -> Seen:
        secret = request.header("x-api-key") or request.header("authorization")[7:]
        headers = dict(response.headers)
        message = ""
        if response.status == 429 and isinstance(response.body, bytes):
            message = str(msgspec.json.decode(response.body).get("error", {}).get("message", ""))
        requests_left, tokens_left = (headers.get(name) for name in self.left)
        return Seen(
            at=round(at, 4),
            answered=round(trio.current_time() - self.since, 4),
            key=self.simulator.names.get(secret, "?"),
            status=response.status,
            requests_left=None if requests_left is None else int(requests_left),
            tokens_left=None if tokens_left is None else int(tokens_left),
            message=message,
        )

    @staticmethod
    def _json(data: Any) -> Response:
        return Response(200, [("content-type", "application/json")], msgspec.json.encode(data))


def serve_upstream(args: argparse.Namespace) -> None:
    """--serve-upstream PORTFILE: serve the simulated keys until killed; the
    bound port goes to PORTFILE once it listens."""

    async def main() -> None:
        simulator = SimulatedUpstream()
        limits = zip(upstream_keys(args.keys).items(), args.rpms, args.tpms)
        for (secret, label), rpm, tpm in limits:
            simulator.add_key(secret, label, rpm=rpm, tpm=tpm)
        app = BenchUpstream(simulator, args.kind, _delay(args.delay), args.seed)
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(serve_http, app, LOOPBACK, 0)
            portfile = Path(args.serve_upstream)
            partial = portfile.with_suffix(".partial")
            partial.write_text(str(bound_port(listeners)))
            partial.rename(portfile)  # whole or absent: the bench polls for it

    trio.run(main)


# ---- one run: the two processes and the load ------------------------------------------


@dataclass
class Run:
    headroom: bool
    kind: str
    sent: int = 0
    answered: int = 0
    failures: int = 0  # client-visible: not 2xx, a transport error, or cut off
    upstream_429s: int = 0
    upstream_requests: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    drained: dict[str, int] = field(default_factory=dict)  # requests each key took to empty
    failure_examples: list[str] = field(default_factory=list)
    upstream_429_events: list[dict[str, Any]] = field(default_factory=list)


def one_run(args: argparse.Namespace, headroom: bool, rate: float, workdir: Path) -> Run:
    mode = "on" if headroom else "off"
    where = workdir / f"{args.kind}-headroom-{mode}"
    where.mkdir(parents=True, exist_ok=True)
    with _process(_upstream_command(args, where / "upstream.port"), where / "upstream.log") as up:
        upstream_port = _read_port(where / "upstream.port", up)
        config = where / "byok.toml"
        config.write_text(byok_config(args.kind, upstream_port, args.keys, headroom))
        port = _free_port()
        command = [sys.executable, "-m", "byok", "serve", "--config", str(config)]
        with _process([*command, "--port", str(port)], where / "byok.log") as byok:
            _wait_ready(port, byok, where / "byok.log")
            _say(f"headroom {mode}: upstream on port {upstream_port}, byok on {port}")
            run = Run(headroom=headroom, kind=args.kind)
            if args.start == "empty":
                run.drained = _control(upstream_port, "POST", "/_bench/drain")["drained"]
            _say(f"headroom {mode}: {rate:.2f} requests/s for {args.duration:g} s")
            trio.run(drive, run, port, rate, args)
            counters = _control(upstream_port, "GET", "/_bench/counters")
    run.upstream_429s = counters["rate_limited"]
    run.upstream_requests = counters["requests"]
    trace = counters["trace"]
    refused = sorted((seen for seen in trace if seen["status"] == 429), key=lambda s: s["at"])
    run.upstream_429_events = refused[:EVENTS_KEPT]
    (where / "upstream-trace.json").write_text("[\n" + ",\n".join(map(json.dumps, trace)) + "\n]\n")
    _say(
        f"headroom {mode}: sent {run.sent}, answered {run.answered}, failures {run.failures}, "
        f"upstream 429s {run.upstream_429s}"
    )
    return run


def byok_config(kind: str, upstream_port: int, keys: int, headroom: bool) -> str:
    base = f"http://{LOOPBACK}:{upstream_port}" + ("/v1" if kind == "openai" else "")
    lines = [
        "[server]",
        f'client_keys = ["{CLIENT_KEY}"]',
        f"headroom = {'true' if headroom else 'false'}",
        "",
        "[providers.sim]",
        f'kind = "{kind}"',
        f'base_url = "{base}"',
        "keys = [",
        *(f'  {{ key = "{s}", label = "{label}" }},' for s, label in upstream_keys(keys).items()),
        "]",
        "",
        f"[models.{MODEL}]",
        'targets = ["sim/sim-model"]',
        f"wait_for_cooldown = {WAIT_FOR_COOLDOWN:g}",
        f"attempts = {ATTEMPTS}",
        "",
    ]
    return "\n".join(lines)


async def drive(run: Run, port: int, rate: float, args: argparse.Namespace) -> None:
    """The open-loop load: each request starts at its arrival time, whatever
    the others do; the figures go into `run`."""
    path, body, headers = request_shape(args.kind)
    raw = msgspec.json.encode(body)
    headers = [*headers, ("content-type", "application/json")]
    arrivals = schedule(rate, args.duration, args.arrivals, args.seed)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(CLIENT_TIMEOUT)
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        url = f"http://{LOOPBACK}:{port}{path}"
        start = trio.current_time()

        async def one(at: float) -> None:
            try:
                reply = await client.post(url, content=raw, headers=headers)
            except httpx.HTTPError as error:
                _fail(run, at, f"{type(error).__name__}: {error}")
                return
            if 200 <= reply.status_code < 300:
                run.answered += 1
                latencies.append(trio.current_time() - start - at)
            else:
                _fail(run, at, f"{reply.status_code} {reply.text[:200]}")

        with trio.move_on_after(args.duration + CLIENT_TIMEOUT + 5):
            async with trio.open_nursery() as nursery:
                for at in arrivals:
                    await trio.sleep_until(start + at)
                    run.sent += 1
                    nursery.start_soon(one, at)
        unanswered = run.sent - run.answered - run.failures  # cut off by the cap
        if unanswered:
            run.failures += unanswered
            run.failure_examples.append(f"{unanswered} requests unanswered at the cap")
    if latencies:
        latencies.sort()
        run.p50_ms = _percentile(latencies, 0.50) * 1000
        run.p99_ms = _percentile(latencies, 0.99) * 1000


def schedule(rate: float, duration: float, arrivals: str, seed: int) -> list[float]:
    """Seconds from the start at which each request is sent."""
    if arrivals == "uniform":
        return [n / rate for n in range(math.ceil(duration * rate))]
    rng, at, times = random.Random(seed), 0.0, list[float]()
    while True:
        at += rng.expovariate(rate)
        if at >= duration:
            return times
        times.append(at)


def _fail(run: Run, at: float, what: str) -> None:
    run.failures += 1
    if len(run.failure_examples) < 10:
        run.failure_examples.append(f"at {at:.2f} s: {what}")


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


# ---- processes -------------------------------------------------------------------------


def _upstream_command(args: argparse.Namespace, portfile: Path) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve-upstream",
        str(portfile),
        "--kind",
        args.kind,
        "--keys",
        str(args.keys),
        "--rpm",
        args.rpm,
        "--tpm",
        args.tpm,
        "--delay",
        args.delay,
        "--seed",
        str(args.seed),
    ]


@contextmanager
def _process(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in a session of its own (Ctrl-C reaches this script, which
    stops it), stopped when the block ends however it ends."""
    env = {**os.environ, "NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _read_port(portfile: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if portfile.exists():
            return int(portfile.read_text())
        if process.poll() is not None:
            raise RuntimeError(f"the upstream ended before it listened: see {portfile.parent}")
        time.sleep(0.02)
    raise RuntimeError("the upstream did not listen within 30 s")


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    url = f"http://{LOOPBACK}:{port}/ready"
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"byok serve ended before it was ready:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("byok serve was not ready within 60 s")


def _control(port: int, method: str, path: str) -> Any:
    reply = httpx.request(method, f"http://{LOOPBACK}:{port}{path}", timeout=120, trust_env=False)
    reply.raise_for_status()
    return reply.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _delay(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low) / 1000, float(high or low) / 1000


def _interrupted(error: BaseException) -> bool:
    """Ctrl-C, alone or in the exception group of a trio nursery."""
    if isinstance(error, KeyboardInterrupt):
        return True
    inner: tuple[BaseException, ...] = getattr(error, "exceptions", ())
    return bool(inner) and all(_interrupted(each) for each in inner)


def _figures(figures: list[int]) -> str:
    if len(set(figures)) == 1:
        return f"{figures[0]:,}"
    return "/".join(f"{figure:,}" for figure in figures)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the report ------------------------------------------------------------------------


def reduction(runs: list[Run]) -> float | None:
    """1 - on / off of the upstream 429s; None without both runs, or none off."""
    on = next((r for r in runs if r.headroom), None)
    off = next((r for r in runs if not r.headroom), None)
    if on is None or off is None or off.upstream_429s == 0:
        return None
    return 1 - on.upstream_429s / off.upstream_429s


def print_table(runs: list[Run], header: list[str]) -> None:
    for line in header:
        print(line)
    table = Table(box=box.MARKDOWN)
    for column in (
        "headroom",
        "sent",
        "answered 2xx",
        "client-visible failures",
        "upstream 429s",
        "upstream requests",
        "p50 ms",
        "p99 ms",
    ):
        table.add_column(column, justify="left" if column == "headroom" else "right")
    for run in runs:
        table.add_row(
            "on" if run.headroom else "off",
            f"{run.sent:,}",
            f"{run.answered:,}",
            f"{run.failures:,}",
            f"{run.upstream_429s:,}",
            f"{run.upstream_requests:,}",
            "-" if run.p50_ms is None else f"{run.p50_ms:,.0f}",
            "-" if run.p99_ms is None else f"{run.p99_ms:,.0f}",
        )
    Console(width=120).print(table)
    share = reduction(runs)
    if share is not None:
        print(f"upstream 429s with headroom on: {share:.1%} fewer than off")
    elif len(runs) == 2:
        print("upstream 429s: none with headroom off, so no reduction to state")
    for run in runs:
        mode = "on" if run.headroom else "off"
        for example in run.failure_examples[:5]:
            print(f"headroom {mode}, failure {example[:160]}")
        events = run.upstream_429_events
        if events:
            times = sorted(e["at"] for e in events)
            keys = ", ".join(sorted({e["key"] for e in events}))
            more = " ..." if run.upstream_429s > len(events) else ""
            print(
                f"headroom {mode}: upstream 429s from {times[0]:g} s to {times[-1]:g}{more} s "
                f"into the load, on {keys}"
            )
            if run.headroom:  # each of them, for a diagnosis
                print("  at (s): " + ", ".join(f"{t:g}" for t in times[:40]) + more)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load per run")
    parser.add_argument("--load", type=float, default=0.9, help="share of the keys' capacity")
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument(
        "--rpm", default="1000,700,400,250", help="each key's requests a minute: one or one per key"
    )
    parser.add_argument(
        "--tpm", default="350000,250000,125000,75000", help="each key's tokens a minute, as --rpm"
    )
    parser.add_argument("--kind", choices=("openai", "anthropic"), default="openai")
    parser.add_argument("--only", choices=("on", "off"), help="one run: headroom on or off")
    parser.add_argument(
        "--start",
        choices=("empty", "full"),
        default="empty",
        help="the keys' buckets when the load starts (see the module's docstring)",
    )
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson")
    parser.add_argument("--delay", default="50-200", help="the answers' delay, ms: LOW-HIGH")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--logs", type=Path, help="keep each run's logs and config in this folder")
    parser.add_argument("--serve-upstream", metavar="PORTFILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    try:
        low, high = _delay(args.delay)
    except ValueError:
        parser.error(f"--delay takes milliseconds as LOW-HIGH (e.g. 50-200), not {args.delay!r}")
    if not 0 <= low <= high:
        parser.error("--delay: LOW-HIGH with 0 <= LOW <= HIGH")
    for name in ("duration", "load", "keys"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be above 0")
    try:
        args.rpms = per_key(args.rpm, args.keys, "rpm")
        args.tpms = per_key(args.tpm, args.keys, "tpm")
    except ValueError as error:
        parser.error(str(error))
    if args.serve_upstream:
        serve_upstream(args)
        return

    rate_whole, binding = capacity(args.rpms, args.tpms, args.kind)
    rate = args.load * rate_whole
    commit, dirty = commit_measured(HERE.parent)
    header = [
        "$ " + shlex.join(["python", "benchmarks/bench_capacity.py", *sys.argv[1:]]),
        f"{time.strftime('%Y-%m-%d')}, commit {commit}{' + local changes' if dirty else ''}, "
        f"{_machine()}",
        f"{args.kind}: {args.keys} keys of rpm {_figures(args.rpms)} and tpm "
        f"{_figures(args.tpms)}, "
        f"{charge(args.kind)} tokens a request: capacity {rate_whole:.2f} requests/s "
        f"(the {binding} binds); load {args.load:.0%} = {rate:.2f}/s, {args.arrivals} arrivals, "
        f"{args.duration:g} s per run; keys start {args.start}; answers in {args.delay} ms",
    ]
    modes = [args.only == "on"] if args.only else [True, False]
    workdir = args.logs or Path(tempfile.mkdtemp(prefix="byok-capacity-"))
    runs: list[Run] = []
    try:
        for headroom in modes:
            runs.append(one_run(args, headroom, rate, workdir))
    except BaseException as error:
        if not _interrupted(error):
            raise
        _say("interrupted: every process of the run was stopped")
        raise SystemExit(128 + 2) from None  # as a shell reports a command that SIGINT ended
    finally:
        if args.logs is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        result = {
            "command": header[0][2:],
            "about": header[1],
            "settings": header[2],
            "capacity_per_s": rate_whole,
            "rate_per_s": rate,
            "binding": binding,
            "runs": [asdict(run) for run in runs],
            "reduction": reduction(runs),
        }
        print(json.dumps(result, indent=1))
    else:
        print_table(runs, header)


if __name__ == "__main__":
    main()
