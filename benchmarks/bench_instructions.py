"""Instructions per request, byok against a baseline revision, under callgrind.

    python benchmarks/bench_instructions.py --baseline 306b72f            # c16, fixed and stream
    python benchmarks/bench_instructions.py --baseline HEAD~1 --pairs 3 --concurrency 1
    python benchmarks/bench_instructions.py --baseline HEAD --limits   # what limits cost
    python benchmarks/bench_instructions.py --translation --pairs 2    # what translation costs
    python benchmarks/bench_instructions.py --translation --alone-only # its own functions alone

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

--translation measures this tree alone (no --baseline): what byok's
translation between the two APIs costs.  The request is a typical chat
request, the same conversation in both APIs (CONVERSATION: a 600-byte
system prompt, a user question, the assistant's answer and a follow-up,
max_tokens 256 and a temperature; about 1.4 KB of JSON), and nginx answers
with the same text in either API (bench_proxy.py: COMPLETION or MESSAGE
whole; 18 text deltas, with OpenAI's or Anthropic's framing, as a stream;
OpenAI's stream has no usage chunk, which byok asks for when it translates).
Four targets take turns in each pair, per shape of answer:

    a  an OpenAI client (/v1/chat/completions) on an OpenAI target: native
    b  an Anthropic client (/v1/messages) on an OpenAI target: messages→chat
    c  an Anthropic client on an Anthropic target: native
    d  an OpenAI client on an Anthropic target: chat→messages

b - a is what messages→chat costs a request (translating the request, then
its answer back), d - c what chat→messages costs; b / a and d / c say how
much dearer the translated request is than the native one.  The shapes are
a whole answer ("fixed"), a stream of 18 text deltas ("stream") and one of
98 ("long": every other event the same).  A stream's translation is
F + s x deltas: s, per text delta (one chunk in, one event out), is the
growth of b - a (d - c) from the stream to the long stream over the 80
deltas more; F = (b - a) on the stream less 18 s is what a stream costs
besides its deltas (the request, the events that frame the text).  Without
"long" in --cases, ((b - a) stream - (b - a) fixed) / 18 is printed instead,
an approximation: it also counts the framing events, less the whole answer's
translation.  Every answer is checked (status 200, the answer's text or the
stream's last delta, and the stream's end), so that a failure is not
measured as a cheap request.

Then the translation alone, for every shape: b - a and d - c also hold what
byok does differently, natively, with the two clients' requests and the two
targets' answers, and a proxy run moves by about 10,000 a request; so
byok's translation functions are run on the very bodies of the proxy's run
(the stream event by event, as nginx flushes it), in one process under
callgrind, LOW then HIGH times (--alone, which this script runs itself).
Its share of b (d) is the translation's share of the translated request.
It is counted twice: with the compiled text path (translation/fast_text),
and without it (BYOK_NO_EXTENSIONS=1: the Python path, where no wheel is).
--alone-only counts these alone, without the proxy runs (so without shares).
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
from argparse import SUPPRESS
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_proxy import (  # noqa: E402
    ANTHROPIC_MODEL,
    CLIENT_KEY,
    COMPLETION,
    LONG_CHUNKS,
    MESSAGE,
    STREAM_CHUNKS,
    _anthropic_events,
    _baseline,
    _byok_config,
    _chunk,
    _nginx_conf,
    _translation_config,
)

LOW, HIGH = 200, 1200
BODIES = {
    "fixed": {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]},
    "stream": {
        "model": "bench-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello."}],
    },
}
CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"
OPENAI_HEADERS = {"authorization": f"Bearer {CLIENT_KEY}", "content-type": "application/json"}
ANTHROPIC_HEADERS = {
    "x-api-key": CLIENT_KEY,
    "anthropic-version": "2023-06-01",
    "content-type": "application/json",
}


@dataclass(frozen=True)
class Call:
    """What every client sends, and what every answer must hold (else the run fails)."""

    path: str
    headers: dict[str, str]
    body: str
    holds: tuple[bytes, ...] = ()
    ends_with: bytes = b""  # a stream's last event


# ---- --translation: a typical chat request, the same in both APIs ----------------------

SYSTEM = (
    "You are Ada, the support assistant of Northwind Books, an online bookshop. Answer in "
    "a friendly, concise tone, in the customer's language. You can explain orders, "
    "shipping, returns and the loyalty programme. Shipping within the EU takes 2-4 "
    "working days and is free above 35 EUR; elsewhere it takes 5-10 working days. Books "
    "can be returned within 30 days, unread and in their original packaging; refunds "
    "reach the customer's card within 5 working days of the parcel's arrival. Never "
    "promise a delivery date you cannot keep, never ask for card numbers, and hand the "
    "customer over to a human when they ask for one."
)
CONVERSATION = [
    (
        "user",
        "Hi! I ordered two books last Tuesday (order NW-48213) and the tracking page still "
        "says 'label created'. Is something wrong?",
    ),
    (
        "assistant",
        "Hello, and thanks for reaching out! A tracking page that still says 'label "
        "created' usually means the carrier has not scanned the parcel yet, which can take "
        "a day or two after it leaves the warehouse. Order NW-48213 was packed on "
        "Wednesday, so it should show movement soon. If nothing changes by Friday, tell me "
        "and I will open an inquiry with the carrier.",
    ),
    (
        "user",
        "Thanks. One of the books turned out to be a duplicate of a gift I got. Can I "
        "return it once it arrives, and how do I do that?",
    ),
]
SHAPES = ("fixed", "stream", "long")
DELTAS = {"stream": STREAM_CHUNKS - 2, "long": LONG_CHUNKS - 2}  # text deltas per stream
ANSWER_TEXT = b"Hello! How can I help you today?"  # nginx's whole answer, in either API


@dataclass(frozen=True)
class Way:
    """One of --translation's four targets: a client's API on a provider's."""

    letter: str
    client: str  # "chat" (OpenAI) or "messages" (Anthropic)
    kind: str  # the target's provider kind
    title: str


WAYS = [
    Way("a", "chat", "openai", "OpenAI client, OpenAI target (native)"),
    Way("b", "messages", "openai", "Anthropic client, OpenAI target (messages→chat)"),
    Way("c", "messages", "anthropic", "Anthropic client, Anthropic target (native)"),
    Way("d", "chat", "anthropic", "OpenAI client, Anthropic target (chat→messages)"),
]
# (translated, native, crossing)
CROSSINGS = [("b", "a", "messages→chat"), ("d", "c", "chat→messages")]


def chat_body(model: str, stream: bool) -> dict[str, object]:
    """CONVERSATION as an OpenAI client sends it."""
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            *({"role": role, "content": text} for role, text in CONVERSATION),
        ],
        "max_tokens": 256,
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return body


def messages_body(model: str, stream: bool) -> dict[str, object]:
    """CONVERSATION as an Anthropic client sends it."""
    body: dict[str, object] = {
        "model": model,
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": role, "content": text} for role, text in CONVERSATION],
        "temperature": 0.7,
    }
    if stream:
        body["stream"] = True
    return body


def translation_call(way: Way, shape: str) -> Call:
    """What `way`'s client sends for a `shape` answer from the model of
    bench_proxy._translation_config that has it, and what it must get."""
    model, stream = f"{way.kind}-{shape}", shape != "fixed"
    holds = (f'" tok{DELTAS[shape]}"'.encode(),) if stream else (ANSWER_TEXT,)
    if way.client == "chat":
        end = b"data: [DONE]" if stream else b""
        return Call(CHAT, OPENAI_HEADERS, json.dumps(chat_body(model, stream)), holds, end)
    end = b'data: {"type":"message_stop"}' if stream else b""
    return Call(MESSAGES, ANTHROPIC_HEADERS, json.dumps(messages_body(model, stream)), holds, end)


def _problem(call: Call, status: int, answer: bytes) -> str | None:
    """What is wrong with an answer, or None."""
    if (
        status == 200
        and all(part in answer for part in call.holds)
        and answer.rstrip().endswith(call.ends_with)
    ):
        return None
    return f"{status} {answer[:200]!r}...{answer[-200:]!r}"


def _start(
    python: Path, config: Path, port: int, out: Path, stderr: IO[str]
) -> subprocess.Popen[bytes]:
    """`byok serve` under callgrind, writing its counts to `out`."""
    return subprocess.Popen(
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
        # the usage ledger in the run's directory, not the user's data directory;
        # one hash seed for every run, as str hashes decide how dicts probe and
        # grow: with a random seed a run's count moves by 10,000 a request
        env={**os.environ, "XDG_DATA_HOME": str(out.parent / "data"), "PYTHONHASHSEED": "0"},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def instructions(
    python: Path, config: Path, port: int, requests: int, call: Call, concurrency: int, out: Path
) -> int:
    """Total instructions of one `byok serve` run that answered `requests`."""
    log = out.parent / (out.name + ".log")
    with log.open("w") as stderr:  # the child keeps its own copy
        proxy = _start(python, config, port, out, stderr)
    failures: list[str] = []
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

        def client(count: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            for _ in range(count):
                connection.request("POST", call.path, call.body, call.headers)
                answer = connection.getresponse()
                problem = _problem(call, answer.status, answer.read())
                if problem is not None:
                    failures.append(problem)
            connection.close()

        clients = [
            threading.Thread(target=client, args=(requests // concurrency,))
            for _ in range(concurrency)
        ]
        for each in clients:
            each.start()
        for each in clients:
            each.join()
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(180)
    if failures:
        said = [x for x in log.read_text().splitlines() if not x.startswith("==")]  # valgrind's
        raise SystemExit(
            f"{python}: {len(failures)} bad answers to POST {call.path}, the first: "
            f"{failures[0]}\nbyok's log ends:\n" + "\n".join(said[-15:])
        )
    return _total(out)


def _total(out: Path) -> int:
    """The instructions a callgrind run counted, from its output file."""
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    if found is None:
        raise SystemExit(f"no instruction total in {out}")
    return int(found.group(1))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --cases becomes a list of the shapes to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--baseline", metavar="REV", help="the revision to compare with (but with --translation)"
    )
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--cases", help="fixed, stream (and long, with --translation), comma-separated; default all"
    )
    parser.add_argument("--port", type=int, default=18100, help="nginx's; byok's follow")
    parser.add_argument(
        "--limits", action="store_true", help="this tree's byok with every limit configured"
    )
    parser.add_argument(
        "--translation",
        action="store_true",
        help="this tree alone: what translating between the two APIs costs",
    )
    parser.add_argument(
        "--alone-only",
        action="store_true",
        help="with --translation: the translation alone, no proxy runs (minutes, not an hour)",
    )
    # what --translation runs under callgrind for "the translation alone"
    parser.add_argument("--alone", nargs=3, metavar=("WAY", "SHAPE", "COUNT"), help=SUPPRESS)
    args = parser.parse_args(argv)
    if args.alone:
        return args
    if args.alone_only and not args.translation:
        parser.error("--alone-only goes with --translation")
    if args.translation:
        if args.baseline or args.limits:
            parser.error("--translation measures this tree alone: no --baseline or --limits")
        shapes: tuple[str, ...] = SHAPES
    else:
        if not args.baseline:
            parser.error("--baseline is required (but with --translation)")
        shapes = tuple(BODIES)
    args.cases = args.cases.split(",") if args.cases else list(shapes)
    unknown = [case for case in args.cases if case not in shapes]
    if unknown:
        parser.error(f"--cases {','.join(unknown)}: the cases are {', '.join(shapes)}")
    return args


def main() -> None:
    args = parse()
    if args.alone:
        letter, shape, count = args.alone
        translate_alone(next(w for w in WAYS if w.letter == letter), shape, int(count))
        return
    for tool in ("valgrind", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"{tool} is missing: apt-get install valgrind nginx-light")
    workdir = Path(tempfile.mkdtemp(prefix="byok-instructions-"))
    (workdir / "nginx.conf").write_text(_nginx_conf(args.port, workdir))
    nginx = subprocess.Popen(
        [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(workdir / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(
        f"instructions per request under callgrind, {args.concurrency} connection(s), "
        f"runs of {LOW} and {HIGH} requests ({time.strftime('%Y-%m-%d')})\n",
        flush=True,
    )
    try:
        time.sleep(0.5)
        if args.translation:
            translation(args, workdir)
        else:
            against_baseline(args, workdir)
    finally:
        nginx.terminate()
        nginx.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def against_baseline(args: argparse.Namespace, workdir: Path) -> None:
    """This tree's byok and the baseline's, alternating, per case."""
    baseline_name, baseline_python = _baseline(args.baseline)
    targets = {"byok": Path(sys.executable), baseline_name: baseline_python}
    config = _byok_config(f"http://127.0.0.1:{args.port}", workdir, headers=args.limits)
    configs = {name: config for name in targets}
    if args.limits:
        configs["byok"] = _byok_config(f"http://127.0.0.1:{args.port}", workdir, limits=True)
    port = args.port + 10
    for case in args.cases:
        call = Call(CHAT, OPENAI_HEADERS, json.dumps(BODIES[case]))
        per: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.pairs):
            for name, python in targets.items():
                per[name].append(_per_request(python, configs[name], port, call, args, workdir))
                port += 2
                print(f"  {case:6} {name:14} {per[name][-1]:>12,.0f}", flush=True)
        mine = statistics.median(per["byok"])
        theirs = statistics.median(per[baseline_name])
        print(
            f"{case}: byok {mine:,.0f}, {baseline_name} {theirs:,.0f} instructions per "
            f"request; byok / {baseline_name} = {mine / theirs:.3f}\n",
            flush=True,
        )


def _per_request(
    python: Path, config: Path, port: int, call: Call, args: argparse.Namespace, workdir: Path
) -> float:
    """Instructions per request: a run of HIGH requests less one of LOW, over HIGH - LOW."""
    low = instructions(python, config, port, LOW, call, args.concurrency, workdir / "cg.low")
    high = instructions(python, config, port + 1, HIGH, call, args.concurrency, workdir / "cg.hi")
    return (high - low) / (HIGH - LOW)


def translation(args: argparse.Namespace, workdir: Path) -> None:
    """The four ways (a, b, c, d) alternating, per shape; then what the crossings cost."""
    config = _translation_config(f"http://127.0.0.1:{args.port}", workdir)
    python = Path(sys.executable)
    port = args.port + 10
    medians: dict[str, dict[str, float]] = {}
    for shape in [] if args.alone_only else args.cases:
        per: dict[str, list[float]] = {way.letter: [] for way in WAYS}
        for _ in range(args.pairs):
            for way in WAYS:
                call = translation_call(way, shape)
                per[way.letter].append(_per_request(python, config, port, call, args, workdir))
                port += 2
                print(f"  {shape:6} {way.letter} {per[way.letter][-1]:>12,.0f}", flush=True)
        medians[shape] = {letter: statistics.median(each) for letter, each in per.items()}
        print(f"{shape}: {_shape_title(shape)}, instructions per request (medians)", flush=True)
        print(translation_summary(medians[shape]) + "\n", flush=True)
    per_delta = chunk_summary(medians)
    if per_delta:
        print(per_delta + "\n", flush=True)
    # in one process, so every shape: the long stream costs minutes here, not an hour;
    # with the compiled text path (fast_text), and without it as where no wheel is
    for compiled, title in [(True, ""), (False, ", the Python path alone (BYOK_NO_EXTENSIONS=1)")]:
        alone = {
            shape: {
                letter: _alone_per_request(letter, shape, workdir, compiled)
                for letter, _, _ in CROSSINGS
            }
            for shape in SHAPES
        }
        print(f"the translation alone{title}, instructions per request", flush=True)
        print(alone_summary(alone, medians) + "\n", flush=True)


def _shape_title(shape: str) -> str:
    if shape == "fixed":
        return "a whole answer"
    return f"a stream of {DELTAS[shape]} text deltas"


def translation_summary(figures: dict[str, float]) -> str:
    """One shape's medians by way, and what each crossing adds to its native request."""
    lines = [f"  {way.letter}  {way.title:50} {figures[way.letter]:>12,.0f}" for way in WAYS]
    for translated, native, crossing in CROSSINGS:
        mine, theirs = figures[translated], figures[native]
        lines.append(
            f"  {crossing}: {translated} - {native} = {mine - theirs:,.0f} per request; "
            f"{translated} / {native} = {mine / theirs:.3f} (the translation is "
            f"{(mine - theirs) / mine:.1%} of {translated})"
        )
    return "\n".join(lines)


# ---- the translation alone -------------------------------------------------------------
#
# b - a and d - c hold more than the translation: the two clients' requests
# and the two targets' answers differ in what byok does with them natively
# (a and c differ by 10,000 instructions or more).  So the translation is
# also counted alone: byok's own translation functions, in one process under
# callgrind, given the very bodies of the proxy's run (the client's request,
# nginx's answer, a stream event by event as nginx flushes them), LOW then
# HIGH times; its share is of the translated request through the proxy.


def upstream_answer(kind: str, shape: str) -> list[bytes]:
    """What nginx answers in `kind`'s API for `shape`: the whole body, or a
    stream's events (bench_proxy's locations, which flush each event)."""
    if shape == "fixed":
        return [COMPLETION.encode() if kind == "openai" else MESSAGE.encode()]
    chunks = STREAM_CHUNKS if shape == "stream" else LONG_CHUNKS
    if kind == "openai":
        events = [_chunk(n, chunks) for n in range(chunks - 1)] + ["data: [DONE]"]
    else:
        events = _anthropic_events(chunks)
    return [f"{event}\n\n".encode() for event in events]


def translate_alone(way: Way, shape: str, count: int) -> None:
    """--alone: what byok does to translate one request of `way` and its
    answer, `count` times (under callgrind, as _alone_per_request runs it):
    the request for the target, then the answer, or the stream event by
    event, for the client.  The last answer is checked as the proxy's are."""
    from byok.gateway.translation import Translation, chat_target
    from byok.providers import OPENAI

    answer = upstream_answer(way.kind, shape)
    call = translation_call(way, shape)
    body = call.body.encode()
    crossing = next(c for t, _, c in CROSSINGS if t == way.letter)
    target = chat_target(OPENAI, "gpt-4o-mini", None) if way.kind == "openai" else None
    model = "gpt-4o-mini" if way.kind == "openai" else ANTHROPIC_MODEL
    said = b""
    for _ in range(count):
        translation = Translation.of(body, call.path, crossing, target, 0)
        translation.body(model)
        if shape == "fixed":
            said = translation.answer(answer[0])
        else:
            translator = translation.stream()
            said = b"".join([translator.feed(event) for event in answer] + [translator.finish()])
    problem = _problem(call, 200, said)
    if problem is not None:
        raise SystemExit(f"--alone {way.letter} {shape}: {problem}")


def _alone_per_request(letter: str, shape: str, workdir: Path, compiled: bool = True) -> float:
    totals = []
    switch = {} if compiled else {"BYOK_NO_EXTENSIONS": "1"}
    for count in (LOW, HIGH):
        out = workdir / f"cg.alone.{letter}.{shape}.{count}"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(Path(__file__).resolve()),
                "--alone",
                letter,
                shape,
                str(count),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0", **switch},
        )
        totals.append(_total(out))
    return (totals[1] - totals[0]) / (HIGH - LOW)


def alone_summary(alone: dict[str, dict[str, float]], medians: dict[str, dict[str, float]]) -> str:
    """The translation alone per shape, its share of the translated request
    through the proxy (for the shapes run there), and per text delta: its
    growth from the stream to the long one."""
    lines = []
    more = DELTAS["long"] - DELTAS["stream"]
    for translated, _, crossing in CROSSINGS:
        for shape in SHAPES:
            figure = alone[shape][translated]
            share = ""
            if shape in medians:
                share = f", {figure / medians[shape][translated]:.1%} of {translated}"
            lines.append(f"  {crossing}, {_shape_title(shape)}: {figure:,.0f}{share}")
        per = (alone["long"][translated] - alone["stream"][translated]) / more
        lines.append(f"  {crossing}: {per:,.0f} per text delta")
    return "\n".join(lines)


def chunk_summary(medians: dict[str, dict[str, float]]) -> str:
    """What a crossing costs per text delta of a stream and per stream, from
    the shapes run (see the module's docstring); "" when they cannot tell."""
    lines = []
    short = DELTAS["stream"]
    for translated, native, crossing in CROSSINGS:

        def cost(shape: str) -> float:
            return medians[shape][translated] - medians[shape][native]  # noqa: B023

        if "stream" in medians and "long" in medians:
            more = DELTAS["long"] - short
            per = (cost("long") - cost("stream")) / more
            relayed = (medians["long"][native] - medians["stream"][native]) / more
            lines.append(
                f"{crossing}: {per:,.0f} instructions per text delta (over the {more} more "
                f"of the long stream; relaying one natively, {native}: {relayed:,.0f}); per "
                f"stream besides its deltas {cost('stream') - short * per:,.0f}"
                + (f" (a whole answer: {cost('fixed'):,.0f})" if "fixed" in medians else "")
            )
        elif "stream" in medians and "fixed" in medians:
            per = (cost("stream") - cost("fixed")) / short
            lines.append(
                f"{crossing}: about {per:,.0f} instructions per text delta "
                f"(({translated} - {native}) stream less whole answer, over {short} deltas: "
                "it also holds the stream's framing events, less the whole answer's "
                "translation; run the long case too for the delta alone)"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
