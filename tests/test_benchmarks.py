"""The README's speed section: written by benchmarks/bench_proxy.py and only by it.

The benchmark itself needs nginx, wrk and minutes of a quiet machine, so it is not
run here; what is tested is what turns its figures into the README's text, and the
README against the digest the generator stamped on it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_proxy", ROOT / "benchmarks/bench_proxy.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


bench = _load()
Figures = bench.Figures


def _fig(rps: float, p50: float, cpu_ms: float | None, errors: int = 0) -> Any:
    return Figures(rps=rps, p50=p50, p90=p50 * 1.2, p99=p50 * 1.5, errors=errors, cpu_ms=cpu_ms)


def _report(**changes: object) -> Any:
    """A run of every target over c1, c16 and the 1,000 slow streams, two rounds."""
    runs = {
        "direct (nginx)": {
            "c1": [_fig(38_000, 0.02, None)] * 2,
            "c16": [_fig(55_000, 0.2, None)] * 2,
            "slow stream c1000": [_fig(1_500, 600, None, errors=1)] * 2,
        },
        "floor (trio forwarder)": {
            "c1": [_fig(2_000, 0.42, 0.5)] * 2,
            "c16": [_fig(2_000, 6.0, 0.4)] * 2,
            "slow stream c1000": [_fig(300, 2_000, 3.0)] * 2,
        },
        "byok": {
            "c1": [_fig(2_500, 0.37, 0.4)] * 2,
            "c16": [_fig(2_900, 5.0, 0.3), _fig(3_100, 5.0, 0.3)],
            "slow stream c1000": [_fig(950, 500, 1.0)] * 2,
        },
        "LiteLLM": {"c1": [_fig(80, 11.5, 12.0)] * 2, "c16": [_fig(100, 190, 12.0)] * 2},
    }
    fields: dict[str, object] = {
        "date": "2026-12-02",
        "commit": "cb4bfc7",
        "machine": "AMD EPYC, 2 cores, Linux 6.1 x86_64, CPython 3.11.7",
        "machine_note": bench.MACHINE_NOTE,
        "load": 0.57,
        "command": "python benchmarks/bench_proxy.py --with-litellm --rounds 2 --write-readme",
        "duration": 10.0,
        "rounds": 2,
        "runs": runs,
        "extras": {
            "direct (nginx)": (None, None),
            "floor (trio forwarder)": (0.18, 40.0),
            "byok": (0.26, 57.0),
            "LiteLLM": (8.27, 462.0),
        },
        "litellm": "1.52.0",
    }
    return bench.Report(**{**fields, **changes})


def _flat(text: str) -> str:
    """The text with its prose unwrapped, to look for a sentence in it."""
    return " ".join(text.split())


README_TEXT = """# project

## Speed

<!-- speed:begin -->
| old | 3,207 |
<!-- speed:end -->

After the section.
"""


def test_the_readme_speed_section_is_the_one_the_generator_wrote() -> None:
    assert bench.section_problem((ROOT / "README.md").read_text()) is None


def test_the_section_replaces_only_the_text_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    markdown = bench.speed_markdown(_report())
    bench.write_section(readme, markdown)
    text = readme.read_text()
    assert text.startswith("# project\n\n## Speed\n\n<!-- speed:begin: written by ")
    assert text.endswith(markdown + "<!-- speed:end -->\n\nAfter the section.\n")
    assert "| old | 3,207 |" not in text
    assert bench.section_problem(text) is None


def test_a_figure_edited_by_hand_after_the_run_is_caught(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    bench.write_section(readme, bench.speed_markdown(_report()))
    edited = readme.read_text().replace("| 3,000 |", "| 3,300 |", 1)
    assert edited != readme.read_text()
    problem = bench.section_problem(edited)
    assert problem is not None
    assert "rerun `python benchmarks/bench_proxy.py --write-readme`" in problem


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("# no section\n", "found neither"),
        ("<!-- speed:end -->\n<!-- speed:begin -->\n", "found end, begin"),
        ("<!-- speed:begin -->\n<!-- speed:begin -->\n<!-- speed:end -->\n", "begin, begin, end"),
    ],
)
def test_markers_missing_repeated_or_out_of_order_are_named(text: str, found: str) -> None:
    problem = bench.section_problem(text)
    assert problem is not None
    assert found in problem


def test_the_section_names_date_commit_machine_command_and_litellm_version() -> None:
    text = bench.speed_markdown(_report(commit="cb4bfc7 + local changes"))
    assert all(len(line) <= 78 for line in text.splitlines() if not line.startswith("|"))
    flat = _flat(text)
    assert "Measured on 2026-12-02 at commit cb4bfc7 + local changes, on AMD EPYC, 2 cores" in flat
    assert "```sh\npython benchmarks/bench_proxy.py --with-litellm --rounds 2" in text
    assert "| | byok | bare trio forwarder (the floor) | LiteLLM proxy 1.52.0 |" in text


def test_the_headline_table_holds_medians_startup_and_memory() -> None:
    text = bench.speed_markdown(_report())
    assert "| chat completions/s, 16 connections | 3,000 | 2,000 | 100 |" in text
    assert "| CPU per chat completion, 16 connections | 0.300 ms | 0.400 ms | 12.000 ms |" in text
    assert "| added p50 latency, one connection | 0.35 ms | 0.40 ms | 11.48 ms |" in text
    assert "| memory after the run | 57 MiB | 40 MiB | 462 MiB |" in text
    assert "| start to first answer | 0.26 s | 0.18 s | 8.27 s |" in text


def test_ratios_of_req_s_and_cpu_per_request_against_floor_and_litellm() -> None:
    text = bench.speed_markdown(_report())
    assert "| | c1 | c16 | slow stream c1000 |" in text
    assert "| req/s, byok / floor | 1.25x | 1.50x | 3.17x |" in text
    assert "| CPU per request, byok / floor | 0.80x | 0.75x | 0.33x |" in text
    # LiteLLM is not run on the slow streams: no ratio there
    assert "| req/s, byok / LiteLLM | 31x | 30x | - |" in text
    assert "| CPU per request, byok / LiteLLM | 0.033x | 0.025x | - |" in text


def test_the_lateness_of_1000_slow_streams_is_stated_plainly() -> None:
    text = bench.speed_markdown(_report())
    # p99 of byok's streams 750 ms, less the 380 ms the stream takes when nothing is late
    assert (
        "With 1,000 concurrent streams through byok, the last chunk of the p99 stream came "
        "370 ms late (p50 120 ms, p90 220 ms); straight from nginx, with no proxy between, "
        "520 ms."
    ) in _flat(text)
    assert "| byok | 120 / 220 / 370 |" in text


def test_the_slow_stream_takes_the_nominal_time_the_lateness_is_counted_from() -> None:
    conf = bench._nginx_conf(18000, Path("/nowhere"))
    slow = conf.split("location = /slow/v1/chat/completions {", 1)[1]  # the last location
    assert slow.count("echo_sleep 0.02;") * 20 == bench.NOMINAL_SLOW_MS == 380
    assert slow.count("echo_flush;") + 1 == bench.STREAM_CHUNKS  # and [DONE]


def test_a_case_in_which_no_request_finished_shows_no_latency() -> None:
    report = _report()
    report.runs["floor (trio forwarder)"]["slow stream c1000"] = [
        Figures(rps=0, p50=0, p90=0, p99=0, errors=0, cpu_ms=None)
    ] * 2
    report.runs["byok"]["slow stream c1000"] = [
        Figures(rps=0, p50=0, p90=0, p99=0, errors=0, cpu_ms=None),
        _fig(950, 500, 1.0),
    ]
    text = bench.speed_markdown(report)
    assert "| floor (trio forwarder) | slow stream c1000 | 0 | - | - | - | - | 0 |" in text
    assert "| floor (trio forwarder) | none finished |" in text
    # the latencies of the run that finished streams, not pulled down by the one that did not
    assert "| byok | 120 / 220 / 370 |" in text


def test_the_method_and_the_noise_are_stated() -> None:
    text = bench.speed_markdown(_report())
    flat = _flat(text)
    assert "2 cores, shared with other work, so noisy" in flat
    assert "load average was 0.57 as the run began" in flat
    assert "for 2 rounds of 10 s" in flat
    assert "byok's req/s at c16 went from 2,900 to 3,100, its CPU per request from 0.300" in flat
    assert "| byok | c16 | 2,900, 3,100 | 0.300, 0.300 |" in text
    alone = bench.speed_markdown(_report(rounds=None))
    assert "Each target ran alone in turn, one 10 s run per case" in _flat(alone)
    assert "Each round" not in alone


def test_a_baseline_is_judged_by_the_per_round_cpu_ratio() -> None:
    report = _report(baseline="byok@000b3b5")
    report.runs["byok"]["c16"] = [_fig(3_000, 5, 0.30), _fig(3_000, 5, 0.33), _fig(3_000, 5, 0.27)]
    report.runs["byok@000b3b5"] = {
        "c16": [_fig(2_500, 6, 0.33), _fig(2_500, 6, 0.30), _fig(2_500, 6, 0.30)]
    }
    text = bench.speed_markdown(report)
    # rounds: 0.30/0.33, 0.33/0.30, 0.27/0.30 = 0.909, 1.100, 0.900
    assert "| c16 | 0.300 | 0.300 | 0.909 | 2 of 3 | 0.909, 1.100, 0.900 | 1.200 |" in text
    assert "byok@000b3b5" not in bench.speed_markdown(_report())


def _git(repo: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "README.md").write_text(README_TEXT)
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "one")
    return tmp_path


def test_local_changes_to_code_count_and_the_readme_does_not(repo: Path) -> None:
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert bench.commit_measured(repo) == (head, False)
    (repo / "README.md").write_text(README_TEXT + "more\n")
    assert bench.commit_measured(repo) == (head, False)
    (repo / "new.py").write_text("")
    assert bench.commit_measured(repo) == (head, True)


def test_write_readme_is_refused_on_a_dirty_tree_in_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(SystemExit) as exit_:
        bench._check_write(repo / "README.md", repo, allow_dirty=False)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pass --allow-dirty" in err
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert bench._check_write(repo / "README.md", repo, allow_dirty=True) == (
        f"{head} + local changes"
    )


# ---- bench_capacity.py: headroom on and off at 90% of the keys' capacity ----------------


def _load_capacity() -> ModuleType:
    path = ROOT / "benchmarks/bench_capacity.py"
    spec = importlib.util.spec_from_file_location("bench_capacity", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


capacity_bench = _load_capacity()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("headroom", [True, False])
def test_the_capacity_bench_config_is_one_byok_accepts(
    tmp_path: Path, kind: str, headroom: bool
) -> None:
    from byok.config import load

    path = tmp_path / "byok.toml"
    path.write_text(capacity_bench.byok_config(kind, 9, 3, headroom))
    config = load(path)
    assert config.server.headroom is headroom
    provider = config.providers["sim"]
    assert (provider.kind, len(provider.keys)) == (kind, 3)
    assert config.models["bench"].retry.wait_for_cooldown == 30


def test_the_capacity_bench_load_is_seeded_and_at_the_rate_asked() -> None:
    poisson = capacity_bench.schedule(20.0, 60.0, "poisson", seed=1)
    assert poisson == capacity_bench.schedule(20.0, 60.0, "poisson", seed=1)
    assert 1100 < len(poisson) < 1300  # 1,200 expected; seeded, so always the same count
    assert poisson == sorted(poisson)
    assert poisson[-1] < 60
    assert capacity_bench.schedule(4.0, 1.0, "uniform", seed=1) == [0.0, 0.25, 0.5, 0.75]
    # 508 tokens a request: 200,000 tpm bind before 600 rpm, 60 rpm before 200,000 tpm
    rate, binding = capacity_bench.capacity([600] * 4, [200_000] * 4, "openai")
    assert binding == "tpm"
    assert rate == pytest.approx(4 * 200_000 / 60 / 508)
    assert capacity_bench.capacity([60, 600], [200_000, 200_000], "openai") == (
        pytest.approx(1 + 200_000 / 60 / 508),
        "tpm or rpm",
    )
    assert capacity_bench.per_key("250", 3, "rpm") == [250, 250, 250]
    assert capacity_bench.per_key("1,2,3", 3, "rpm") == [1, 2, 3]
    with pytest.raises(ValueError, match="gives 2 figures for 3 keys"):
        capacity_bench.per_key("1,2", 3, "tpm")


def test_the_capacity_bench_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    """A few seconds of light load, headroom on: it ran, stopped its processes
    and reported; no figure is judged (they depend on the machine's timing)."""
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/bench_capacity.py"),
            *("--duration", "2", "--only", "on", "--load", "0.2", "--json"),
            *("--logs", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    (only,) = report["runs"]
    assert only["headroom"] is True
    assert only["sent"] == len(capacity_bench.schedule(report["rate_per_s"], 2.0, "poisson", 1))
    assert only["sent"] == only["answered"] + only["failures"]
    assert set(only["drained"]) == {"key-1", "key-2", "key-3", "key-4"}
    assert report["command"].startswith("python benchmarks/bench_capacity.py --duration 2")
    log = (tmp_path / "openai-headroom-on" / "byok.log").read_text()
    assert "sk-capacity-bench" not in log + run.stdout + run.stderr  # no secret shown


# ---- bench_instructions.py --translation: what crossing the APIs costs -----------------


def _load_instructions() -> ModuleType:
    path = ROOT / "benchmarks/bench_instructions.py"
    spec = importlib.util.spec_from_file_location("bench_instructions", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)  # its `from bench_proxy import` finds the one loaded above
    return module


instructions_bench = _load_instructions()


def test_the_instructions_bench_takes_translation_without_a_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parse = instructions_bench.parse
    assert parse(["--translation"]).cases == ["fixed", "stream", "long"]
    assert parse(["--translation", "--cases", "fixed,stream"]).cases == ["fixed", "stream"]
    assert parse(["--baseline", "HEAD"]).cases == ["fixed", "stream"]
    assert parse(["--translation", "--alone-only"]).alone_only is True
    for argv, said in [
        (["--baseline", "HEAD", "--alone-only"], "--alone-only goes with --translation"),
        ([], "--baseline is required"),
        (["--translation", "--baseline", "HEAD"], "measures this tree alone"),
        (["--translation", "--limits"], "measures this tree alone"),
        (["--baseline", "HEAD", "--cases", "long"], "--cases long: the cases are fixed, stream"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            parse(argv)
        assert exit_.value.code == 2
        assert said in capsys.readouterr().err


def test_the_translation_config_routes_each_way_as_it_is_named(tmp_path: Path) -> None:
    from byok.config import load
    from byok.gateway.routing import Router

    router = Router(load(bench._translation_config("http://127.0.0.1:9", tmp_path)))
    crossings = {"a": None, "b": "messages→chat", "c": None, "d": "chat→messages"}
    for shape in instructions_bench.SHAPES:
        for way in instructions_bench.WAYS:
            call = instructions_bench.translation_call(way, shape)
            model = json.loads(call.body)["model"]
            dialect = "openai" if call.path == "/v1/chat/completions" else "anthropic"
            (only,) = router.routes(model, dialect, call.path)
            assert only.crossing == crossings[way.letter]
            assert only.pool.provider.kind == way.kind
            prefix = bench.TRANSLATION_PATHS[(way.kind, shape)]
            assert only.pool.provider.base_url == f"http://127.0.0.1:9{prefix}"


def test_the_conversation_is_the_same_in_both_apis_and_typical_in_size() -> None:
    from byok.gateway.translation import Translation, chat_target
    from byok.providers import OPENAI

    chat = instructions_bench.chat_body("m", stream=False)
    messages = instructions_bench.messages_body("m", stream=False)
    assert 1024 < len(json.dumps(chat)) < 2048
    assert 1024 < len(json.dumps(messages)) < 2048
    target = chat_target(OPENAI, "m", None)
    there = Translation.of(
        json.dumps(messages).encode(), "/v1/messages", "messages→chat", target, 0
    )
    assert json.loads(there.body("m"))["messages"] == chat["messages"]
    back = Translation.of(
        json.dumps(chat).encode(), "/v1/chat/completions", "chat→messages", None, 0
    )
    sent = json.loads(back.body("m"))
    assert (sent["system"], sent["messages"]) == (messages["system"], messages["messages"])


@pytest.mark.parametrize("shape", ["fixed", "stream", "long"])
def test_the_upstreams_answers_translate_to_what_the_bench_checks(shape: str) -> None:
    """nginx's answers in each API, through byok's own translations, pass the
    checks each call makes (and the native answers pass them as they are)."""
    from byok.gateway.translation import Translation, chat_target
    from byok.providers import OPENAI

    stream = shape != "fixed"
    # what nginx sends: the whole body, or each event and a blank line
    answers = {
        kind: b"".join(instructions_bench.upstream_answer(kind, shape))
        for kind in ("openai", "anthropic")
    }
    ways = {way.letter: way for way in instructions_bench.WAYS}
    for letter, crossing in [
        ("a", None),
        ("b", "messages→chat"),
        ("c", None),
        ("d", "chat→messages"),
    ]:
        way = ways[letter]
        call = instructions_bench.translation_call(way, shape)
        answer = answers[way.kind]
        if crossing is not None:
            target = chat_target(OPENAI, "gpt-4o-mini", None) if way.kind == "openai" else None
            translation = Translation.of(call.body.encode(), call.path, crossing, target, 0)
            if stream:
                translator = translation.stream()
                answer = translator.feed(answer) + translator.finish()
            else:
                answer = translation.answer(answer)
        assert instructions_bench._problem(call, 200, answer) is None, (letter, answer[-300:])
        assert instructions_bench._problem(call, 502, answer) is not None
        if stream:  # a stream cut before its end is caught
            cut = answer[: answer.rindex(b"\n\n", 0, len(answer) - 2)]
            assert instructions_bench._problem(call, 200, cut) is not None


def test_the_stream_locations_send_every_event_of_their_api() -> None:
    conf = bench._nginx_conf(18000, Path("/nowhere"))
    antsse = conf.split("location = /antsse/v1/messages {", 1)[1].split("}\n", 1)[0]
    assert antsse.count("echo_flush;") == len(bench._anthropic_events()) == bench.STREAM_CHUNKS + 4
    long = conf.split("location = /long/v1/chat/completions {", 1)[1].split("}\n", 1)[0]
    assert long.count("echo_flush;") + 1 == bench.LONG_CHUNKS  # and [DONE]


def test_the_cost_of_a_delta_is_the_growth_of_the_translations_cost_over_more_deltas() -> None:
    medians = {
        "fixed": {"a": 1_000_000, "b": 1_100_000, "c": 1_000_000, "d": 1_120_000},
        "stream": {"a": 1_200_000, "b": 1_380_000, "c": 1_250_000, "d": 1_450_000},
        "long": {"a": 2_000_000, "b": 2_820_000, "c": 2_050_000, "d": 2_890_000},
    }
    text = instructions_bench.chunk_summary(medians)
    # b - a: 180,000 on 18 deltas, 820,000 on 98: 640,000 over 80 more, 8,000 each;
    # 180,000 - 18 x 8,000 = 36,000 besides them; a relays one in 800,000 / 80
    assert (
        "messages→chat: 8,000 instructions per text delta (over the 80 more of the long "
        "stream; relaying one natively, a: 10,000); per stream besides its deltas 36,000 "
        "(a whole answer: 100,000)"
    ) in text
    assert "chat→messages: 8,000 instructions per text delta" in text
    del medians["long"]
    rough = instructions_bench.chunk_summary(medians)
    assert "messages→chat: about 4,444 instructions per text delta" in rough  # 80,000 / 18
    assert instructions_bench.chunk_summary({"fixed": medians["fixed"]}) == ""
    summary = instructions_bench.translation_summary(medians["fixed"])
    assert "messages→chat: b - a = 100,000 per request; b / a = 1.100" in summary
    assert "chat→messages: d - c = 120,000 per request; d / c = 1.120" in summary


@pytest.mark.parametrize("letter", ["b", "d"])
@pytest.mark.parametrize("shape", ["fixed", "stream", "long"])
def test_the_translation_alone_translates_the_bench_bodies_and_checks_them(
    letter: str, shape: str
) -> None:
    """--alone runs byok's translation on the very bodies of the proxy's
    run; it fails loudly on an answer the proxy's check would refuse."""
    way = next(w for w in instructions_bench.WAYS if w.letter == letter)
    instructions_bench.translate_alone(way, shape, 2)  # raises SystemExit on a bad answer
    events = instructions_bench.upstream_answer(way.kind, shape)
    assert len(events) == (
        1
        if shape == "fixed"
        else {"stream": bench.STREAM_CHUNKS, "long": bench.LONG_CHUNKS}[shape]
        + (0 if way.kind == "openai" else 4)
    )


def test_the_translation_alone_is_told_per_request_share_and_delta() -> None:
    alone = {
        "fixed": {"b": 60_000.0, "d": 70_000.0},
        "stream": {"b": 400_000.0, "d": 500_000.0},
        "long": {"b": 400_000.0 + 80 * 16_000, "d": 500_000.0 + 80 * 17_000},
    }
    said = instructions_bench.alone_summary(alone, {"fixed": {"b": 600_000.0, "d": 700_000.0}})
    assert "messages→chat, a whole answer: 60,000, 10.0% of b" in said
    assert "chat→messages, a whole answer: 70,000, 10.0% of d" in said
    assert "messages→chat: 16,000 per text delta" in said
    assert "chat→messages: 17,000 per text delta" in said
    assert "a stream of 18 text deltas: 400,000\n" in said  # not run through the proxy: no share
