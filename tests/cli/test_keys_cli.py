"""`byok keys check` and `byok status` as a person runs them: real processes,
real sockets, the simulated upstream on loopback."""

from __future__ import annotations

import copy
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trio

from byok.cli.keys import Progress
from byok.cli.simulator import SimulatedUpstream
from byok.cli.tables import format_table
from byok.config import fingerprint
from byok.http.server import Request, Response, bound_port, serve_http
from byok.providers import ANTHROPIC_ENDPOINTS, MODELS_PATH, OPENAI_ENDPOINTS

from .test_cli import byok, free_port

VALID = "sk-test-VALIDKEY-0001"
REVOKED = "sk-test-REVOKEDKEY-0002"  # the simulator answers 401
UNKNOWN = "sk-test-UNKNOWNKEY-0003"  # the simulator never heard of it: 401
BUSY = "sk-test-BUSYKEY-0004"  # 429
BROKEN = "sk-test-BROKENKEY-0005"  # 500
HANGING = "sk-test-HANGINGKEY-0006"  # never answers
DEAD = "sk-test-DEADKEY-0007"  # its provider's port is closed
CLAUDE = "sk-ant-test-VALIDKEY-0008"
CLAUDE_REVOKED = "sk-ant-test-REVOKEDKEY-0009"
CLAUDE_OVERLOADED = "sk-ant-test-OVERLOADEDKEY-0010"  # 529
ADMIN_KEY = "adm-test-ADMINKEY-0011"
SECRETS = [
    VALID,
    REVOKED,
    UNKNOWN,
    BUSY,
    BROKEN,
    HANGING,
    DEAD,
    CLAUDE,
    CLAUDE_REVOKED,
    CLAUDE_OVERLOADED,
]


class RealPaths:
    """The simulator at the paths the real APIs serve, and a 404 in OpenAI's
    shape elsewhere, as api.openai.com answers `GET /models` (the simulator
    itself answers a listing at any path that ends in /models)."""

    PATHS = frozenset({MODELS_PATH, *OPENAI_ENDPOINTS, *ANTHROPIC_ENDPOINTS})

    def __init__(self, simulator: SimulatedUpstream) -> None:
        self.simulator = simulator

    async def __call__(self, request: Request) -> Response:
        if request.path in self.PATHS:
            return await self.simulator(request)
        error = {"message": f"Invalid URL ({request.method} {request.path})", "type": "invalid"}
        body = json.dumps({"error": error}).encode()
        return Response(404, [("content-type", "application/json")], body)


class Simulated:
    """The simulated upstream alone (at the real APIs' paths), on loopback,
    in a trio thread of its own."""

    def __init__(self) -> None:
        self.simulator = SimulatedUpstream()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    def __enter__(self) -> Simulated:
        self._thread.start()
        assert self._ready.wait(10), "the simulated upstream did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(10)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            app = RealPaths(self.simulator)
            listeners = await nursery.start(serve_http, app, "127.0.0.1", 0)
            self.url = f"http://127.0.0.1:{bound_port(listeners)}"
            self._ready.set()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Simulated]:
    with Simulated() as running:
        sim = running.simulator
        sim.add_key(VALID)
        sim.add_key(REVOKED, mode="401")
        sim.add_key(BUSY, mode="429", every=5, retry_after=7)  # `every` is ignored for listings
        sim.add_key(BROKEN, mode="500")
        sim.add_key(HANGING, mode="hang")
        sim.add_key(CLAUDE)
        sim.add_key(CLAUDE_REVOKED, mode="401")
        sim.add_key(CLAUDE_OVERLOADED, mode="529")
        yield running


def keys_toml(**providers: tuple[str, str, list[tuple[str, str]]]) -> str:
    """[providers.NAME] tables: kind, base_url, (label, secret) pairs."""
    tables = []
    for name, (kind, base_url, keys) in providers.items():
        entries = ", ".join(f'{{ key = "{secret}", label = "{label}" }}' for label, secret in keys)
        tables.append(
            f'[providers.{name}]\nkind = "{kind}"\nbase_url = "{base_url}"\nkeys = [{entries}]\n'
        )
    return "\n".join(tables)


ROW = re.compile(r"^(\S+)\s+(\S+)\s+(fp-[0-9a-f]{8})\s+([a-z-]+(?: \(\d{3}\))?)(?:\s|$)")


def verdicts(stdout: str) -> dict[str, str]:
    """label -> verdict as printed, such as `invalid (401)`."""
    found = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match:
            found[match[1]] = match[4]
    return found


def assert_no_secret(*texts: str) -> None:
    for secret in [*SECRETS, ADMIN_KEY]:
        for text in texts:
            assert secret not in text


def test_keys_check_gives_each_key_its_verdict(upstream, tmp_path):
    dead = free_port()  # nobody listens there
    config = tmp_path / "byok.toml"
    config.write_text(
        keys_toml(
            openai=(
                "openai",
                f"{upstream.url}/v1",
                [
                    ("oai-valid", VALID),
                    ("oai-revoked", REVOKED),
                    ("oai-unknown", UNKNOWN),
                    ("oai-busy", BUSY),
                    ("oai-broken", BROKEN),
                    ("oai-hanging", HANGING),
                ],
            ),
            anthropic=(
                "anthropic",
                upstream.url,
                [
                    ("claude-valid", CLAUDE),
                    ("claude-revoked", CLAUDE_REVOKED),
                    ("claude-overloaded", CLAUDE_OVERLOADED),
                ],
            ),
            gone=("openai_compatible", f"http://127.0.0.1:{dead}/v1", [("gone-1", DEAD)]),
        )
    )
    chats_before = len(upstream.simulator.seen)
    result = byok("keys", "check", "--config", str(config), "--timeout", "1")
    assert result.returncode == 1, result.stdout + result.stderr  # invalid keys fail the check
    assert verdicts(result.stdout) == {
        "oai-valid": "valid (200)",
        "oai-revoked": "invalid (401)",
        "oai-unknown": "invalid (401)",
        "oai-busy": "rate-limited (429)",
        "oai-broken": "error (500)",
        "oai-hanging": "unreachable",
        "claude-valid": "valid (200)",
        "claude-revoked": "invalid (401)",
        "claude-overloaded": "error (529)",
        "gone-1": "unreachable",
    }
    assert "2 valid, 3 invalid, 1 rate-limited, 2 unreachable, 2 error" in result.stdout
    assert "no answer within 1s" in result.stdout  # the hanging key
    assert "cannot connect to 127.0.0.1" in result.stdout  # the closed port
    for secret in SECRETS:
        assert fingerprint(secret) in result.stdout
    assert_no_secret(result.stdout, result.stderr)
    # stderr is not a terminal: no progress bar, one closing line
    assert re.fullmatch(r"checked 10 keys in \d+\.\d s\n", result.stderr), result.stderr
    # the listings are not chat requests: the simulator did not count them
    assert len(upstream.simulator.seen) == chats_before


def test_keys_check_passes_when_no_key_is_invalid(upstream, tmp_path):
    """Rate-limited and unreachable keys are reported, but do not fail the check;
    the keys come from the environment when no --config is given."""
    result = byok(
        "keys",
        "check",
        env={
            "OPENAI_API_KEYS": f"{VALID},{BUSY}",
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "ANTHROPIC_API_KEY": CLAUDE,
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout) == {
        "openai-1": "valid (200)",
        "openai-2": "rate-limited (429)",
        "anthropic-1": "unreachable",
    }
    assert "1 valid, 0 invalid, 1 rate-limited, 1 unreachable, 0 error" in result.stdout
    assert "rate-limited keys are valid" in result.stdout
    assert_no_secret(result.stdout, result.stderr)


def test_keys_check_fails_when_a_listing_is_not_found_and_says_why(upstream, tmp_path):
    """A base URL without /v1 passes the config check but every request
    through it would 404: the listing's 404 fails the check, with its cause."""
    config = tmp_path / "byok.toml"
    config.write_text(
        keys_toml(
            bare=("openai", upstream.url, [("bare-1", VALID)]),  # no /v1
            right=("openai_compatible", f"{upstream.url}/v1", [("right-1", VALID)]),
            other=("openai_compatible", f"{upstream.url}/v2", [("other-1", VALID)]),
            claude=("anthropic", f"{upstream.url}/v1", [("claude-1", CLAUDE)]),  # /v1/v1/models
        )
    )
    result = byok("keys", "check", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert verdicts(result.stdout) == {
        "bare-1": "error (404)",
        "right-1": "valid (200)",
        "other-1": "error (404)",
        "claude-1": "error (404)",
    }
    notes = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert notes["bare-1"].endswith(
        "the models listing answered 404: the base URL probably lacks /v1"
    )
    assert notes["other-1"].endswith(  # it has a version: maybe there is no listing
        "the models listing answered 404: is the base URL right? (or this server lists no models)"
    )
    assert notes["claude-1"].endswith(
        "the models listing answered 404: the base URL probably should not end in /v1"
    )
    assert (
        "1 valid, 0 invalid, 0 rate-limited, 0 unreachable, 3 error; "
        "failed: 3 listings not found (404)"
    ) in result.stdout
    assert_no_secret(result.stdout, result.stderr)


def test_keys_check_from_the_environment_fails_on_a_base_url_without_v1(upstream):
    result = byok(
        "keys",
        "check",
        env={"OPENAI_API_KEYS": f"{VALID},{REVOKED}", "OPENAI_BASE_URL": upstream.url},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert verdicts(result.stdout) == {"openai-1": "error (404)", "openai-2": "error (404)"}
    assert "the base URL probably lacks /v1" in result.stdout
    assert "; failed: 2 listings not found (404)" in result.stdout
    fixed = byok(
        "keys",
        "check",
        env={"OPENAI_API_KEYS": f"{VALID},{REVOKED}", "OPENAI_BASE_URL": f"{upstream.url}/v1"},
    )
    assert fixed.returncode == 1  # the revoked key still fails it
    assert "; failed: 1 invalid\n" in fixed.stdout
    assert "404" not in fixed.stdout


def test_keys_check_help_says_what_fails_it():
    result = byok("keys", "check", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "Exit status 1 if a key is invalid or a models listing answers 404" in text
    assert "without /v1" in text


def test_keys_check_without_keys_says_what_to_set():
    result = byok("keys", "check")
    assert result.returncode == 2
    assert "OPENAI_API_KEY" in result.stderr


def test_progress_bar_redraws_in_place_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    progress = Progress(screen, 4)
    progress.update(0)
    progress.update(3)
    progress.finish()
    drawn = screen.getvalue()
    assert drawn.startswith("\rchecking 0/4 keys [....................]")
    assert "\rchecking 3/4 keys [###############.....]" in drawn
    assert re.search(r"\rchecked 4 keys in \d+\.\d s *\n$", drawn)
    piped = io.StringIO()
    quiet = Progress(piped, 4)
    quiet.update(2)
    assert piped.getvalue() == ""  # nothing until the end
    quiet.finish()
    assert re.fullmatch(r"checked 4 keys in \d+\.\d s\n", piped.getvalue())


def test_simulated_listing_follows_the_key_behaviour(upstream):
    """The simulator's models listing answers as the key behaves, every time."""
    url = f"{upstream.url}/v1/models"
    bearer = {"authorization": f"Bearer {VALID}"}
    assert httpx.get(url, headers=bearer).status_code == 200
    for _ in range(2):  # `every` does not apply: always 429
        busy = httpx.get(url, headers={"authorization": f"Bearer {BUSY}"})
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "7"
    assert httpx.get(url, headers={"authorization": f"Bearer {BROKEN}"}).status_code == 500
    anthropic = {"x-api-key": CLAUDE_REVOKED, "anthropic-version": "2023-06-01"}
    revoked = httpx.get(url, headers=anthropic)
    assert revoked.status_code == 401
    assert revoked.json()["type"] == "error"  # Anthropic's shape of error
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers={"authorization": f"Bearer {HANGING}"}, timeout=0.3)


# ---- byok status -----------------------------------------------------------------

VIEW = {
    "now": 1763884800.0,
    "config": {"source": "byok.toml", "generation": 2, "loaded_at": 1763884700.0},
    "models": [
        {
            "name": "gpt-4o-mini",
            "passthrough": False,
            "strategy": "weighted_round_robin",
            "fallbacks": ["claude-haiku"],
            "targets": [
                {
                    "provider": "openai",
                    "kind": "openai",
                    "model": "gpt-4o-mini",
                    "keys": [
                        {
                            "label": "openai-1",
                            "provider": "openai",
                            "fingerprint": "fp-1a2b3c4d",
                            "weight": 1,
                            "state": "cooldown",
                            "cooldown_remaining": 12.5,
                            "reason": {
                                "status": 429,
                                "message": "Rate limit reached",
                                "at": 1763884790.2,
                            },
                            "consecutive_failures": 1,
                            "picks": 10,
                            "successes": 9,
                            "failures": 1,
                            "rate_limits": 1,
                            "inflight": 0,
                            "latency_ewma_ms": 310.5,
                            "tokens": {"input": 1200, "output": 340},
                        },
                        {
                            "label": "openai-2",
                            "provider": "openai",
                            "fingerprint": "fp-5e6f7a8b",
                            "weight": 1,
                            "state": "blocked",
                            "cooldown_remaining": 0.0,
                            "reason": {"status": 401, "message": "key revoked", "at": 1763884700.0},
                            "consecutive_failures": 1,
                            "picks": 1,
                            "successes": 0,
                            "failures": 1,
                            "rate_limits": 0,
                            "inflight": 0,
                            "latency_ewma_ms": None,
                            "tokens": {"input": 0, "output": 0},
                        },
                        {
                            "label": "openai-3",
                            "provider": "openai",
                            "fingerprint": "fp-9c0d1e2f",
                            "weight": 2,
                            "state": "ready",
                            "cooldown_remaining": 0.0,
                            "reason": {"status": None, "message": "timed out", "at": 1763884000.0},
                            "consecutive_failures": 0,
                            "picks": 25,
                            "successes": 24,
                            "failures": 1,
                            "rate_limits": 0,
                            "inflight": 2,
                            "latency_ewma_ms": 95.0,
                            "tokens": {"input": 52000, "output": 8000},
                        },
                    ],
                }
            ],
        },
        {
            "name": "*",
            "passthrough": True,
            "strategy": "weighted_round_robin",
            "fallbacks": [],
            "targets": [
                {
                    "provider": "anthropic",
                    "kind": "anthropic",
                    "model": "*",
                    "keys": [
                        {
                            "label": "anthropic-1",
                            "provider": "anthropic",
                            "fingerprint": "fp-00aa11bb",
                            "weight": 1,
                            "state": "half_open",
                            "cooldown_remaining": 0.0,
                            "reason": {"status": None, "message": "connection refused", "at": 0},
                            "consecutive_failures": 3,
                            "picks": 4,
                            "successes": 1,
                            "failures": 3,
                            "rate_limits": 0,
                            "inflight": 1,
                            "latency_ewma_ms": 1500.0,
                            "tokens": {"input": 10, "output": 20},
                        }
                    ],
                }
            ],
        },
    ],
}


def rows_by_label(table: str) -> dict[str, list[str]]:
    """Each key row split on runs of two or more spaces (cells hold single spaces)."""
    labels = {"openai-1", "openai-2", "openai-3", "anthropic-1"}
    rows = {}
    for line in table.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in labels:
            rows[cells[0]] = cells
    return rows


def test_format_table_shows_a_spent_quota_window_and_when_it_resets():
    view = copy.deepcopy(VIEW)
    key = view["models"][0]["targets"][0]["keys"][0]
    key["quota"] = {"window": "five_hour", "resets_at": view["now"] + 17940}
    reason = rows_by_label(format_table(view))["openai-1"][-1]
    assert reason == "429 Rate limit reached, 10s ago; five_hour window resets in 4h59m"


def test_format_table_shows_states_back_in_and_reasons():
    table = format_table(VIEW)
    lines = table.splitlines()
    assert lines[0] == "config: byok.toml, generation 2, loaded 1m40s ago"
    assert "model gpt-4o-mini (weighted_round_robin; fallbacks: claude-haiku)" in lines
    assert "  openai/gpt-4o-mini" in lines
    assert "model * (passthrough; weighted_round_robin)" in lines
    header = next(line for line in lines if "back in" in line)
    for column in ("state", "picks", "ok", "failed", "in flight", "latency", "tokens in"):
        assert column in header
    rows = rows_by_label(table)
    # label, state, back in, picks, ok, failed, in flight, latency, tokens in, out, reason
    assert rows["openai-1"] == [
        "openai-1",
        "cooldown",
        "12.5s",
        "10",
        "9",
        "1",
        "0",
        "310ms",
        "1200",
        "340",
        "429 Rate limit reached, 10s ago",
    ]
    assert rows["openai-2"][1:3] == ["blocked", "-"]
    assert rows["openai-2"][7] == "-"  # never answered: no latency
    assert rows["openai-2"][-1] == "401 key revoked, 1m40s ago"
    # a ready key shows no reason, even if it failed once
    assert rows["openai-3"][1:] == ["ready", "-", "25", "24", "1", "2", "95ms", "52.0k", "8000"]
    assert "timed out" not in table
    assert rows["anthropic-1"][1] == "half_open"
    assert rows["anthropic-1"][-1].startswith("connection refused, ")
    # the columns line up: every key row has its state where the header has it
    state_at = header.index("state")
    for line in lines:
        if line.strip().split(" ")[0] in rows:
            assert line[state_at - 1] == " "
            assert line[state_at] != " "


def test_status_when_nothing_listens():
    url = f"http://127.0.0.1:{free_port()}"
    result = byok("status", "--url", url)
    assert result.returncode == 2
    assert f"byok status: nothing answers at {url}: is byok serve running?" in result.stderr
    assert result.stdout == ""


class AdminAPI(BaseHTTPRequestHandler):
    """/admin/keys as docs/admin-api.md has it; /off/admin/keys as a proxy
    without admin_keys answers it."""

    def do_GET(self) -> None:
        if self.path == "/off/admin/keys":
            self._send(403, {"error": {"message": "the admin API is off", "type": "forbidden"}})
        elif self.path != "/admin/keys":
            self._send(404, {"error": {"message": "not found", "type": "not_found"}})
        elif self.headers.get("authorization") != f"Bearer {ADMIN_KEY}":
            self._send(401, {"error": {"message": "admin key needed", "type": "unauthorized"}})
        else:
            self._send(200, VIEW)

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def admin_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AdminAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_status_without_admin_key_says_how_to_pass_one(admin_api):
    result = byok("status", "--url", admin_api)
    assert result.returncode == 2
    assert "byok status:" in result.stderr
    assert "(401)" in result.stderr
    assert "--admin-key" in result.stderr
    assert "BYOK_ADMIN_KEY" in result.stderr
    assert "admin_keys" in result.stderr
    assert "[server]" in result.stderr
    wrong = byok("status", "--url", admin_api, "--admin-key", "adm-wrong-key")
    assert wrong.returncode == 2
    assert "refused the admin key (401)" in wrong.stderr
    assert "adm-wrong-key" not in wrong.stderr
    off = byok("status", "--url", f"{admin_api}/off", env={"BYOK_ADMIN_KEY": ADMIN_KEY})
    assert off.returncode == 2
    assert "(403)" in off.stderr
    assert "admin_keys are set in the proxy's [server] table" in off.stderr
    assert_no_secret(result.stderr, wrong.stderr, off.stderr)


def test_status_prints_the_table_with_the_key_from_the_environment(admin_api):
    result = byok("status", "--url", admin_api + "/", env={"BYOK_ADMIN_KEY": ADMIN_KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == format_table(VIEW)
    assert "429 Rate limit reached" in result.stdout
    assert_no_secret(result.stdout, result.stderr)
    flag = byok("status", "--url", admin_api, "--admin-key", ADMIN_KEY)
    assert flag.returncode == 0, flag.stderr
    assert flag.stdout == result.stdout


def test_status_names_a_server_that_is_not_byok(admin_api):
    result = byok("status", "--url", f"{admin_api}/elsewhere", "--admin-key", ADMIN_KEY)
    assert result.returncode == 2
    assert "answered 404" in result.stderr
