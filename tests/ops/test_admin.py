"""The admin API on loopback: probes, the key table, operator actions,
metrics, hot reload (also under load), request ids and trace context."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import httpx
import pytest
import trio

from byok.config import from_dict

from ..stack import LiveStack, Stack, open_stack

ADMIN_KEY = "adm-test-ADMINKEY-0001"
CLIENT_KEY = "cli-test-CLIENTKEY-0001"
SECRETS = {"sk-adm-ALPHA-0001": "alpha", "sk-adm-BRAVO-0002": "bravo"}
ANTHROPIC_SECRET = "sk-ant-adm-CLAUDE-0003"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def tables(upstream: str) -> dict:
    return {
        "server": {
            "client_keys": [CLIENT_KEY],
            "admin_keys": [ADMIN_KEY],
            "cooldown": 30,
        },
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": k, "label": label} for k, label in SECRETS.items()],
            },
            "simant": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [{"key": ANTHROPIC_SECRET, "label": "claude"}],
            },
        },
        "models": {
            "m": {"targets": ["sim/up"], "strategy": "round_robin", "fallbacks": ["c"]},
            "c": {"targets": ["simant/up-claude"]},
        },
    }


def start(build=tables) -> Stack:
    stack = Stack(build)
    running = stack.__enter__()
    for secret, name in {**SECRETS, ANTHROPIC_SECRET: "claude"}.items():
        running.simulator.add_key(secret, name)
    return running


@pytest.fixture
def stack():
    running = start()
    yield running
    running.__exit__(None, None, None)


@pytest.fixture
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as c:
        yield c


def ask(client: httpx.Client, **extra) -> httpx.Response:
    return client.post("/v1/chat/completions", json={**ASK, **extra}, headers=CLIENT)


def key_view(client: httpx.Client, label: str, target: str = "sim/up") -> dict:
    for model in client.get("/admin/keys", headers=ADMIN).json()["models"]:
        for t in model["targets"]:
            if f"{t['provider']}/{t['model']}" == target:
                for key in t["keys"]:
                    if key["label"] == label:
                        return key
    raise AssertionError(f"no key {label} under {target}")


# ---- who may ask -----------------------------------------------------------------


def test_health_and_ready_need_no_key(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "why": []}


async def model_views(stack: LiveStack) -> dict[str, dict]:
    reply = await stack.client.get("/admin/models", headers=ADMIN)
    assert reply.status_code == 200
    return {m["name"]: m for m in reply.json()["models"]}


async def test_a_model_without_a_usable_key_leaves_ready_200_and_admin_models_says_why(
    autojump_clock,
):
    """Every key of m and of its fallback c is out: the process still serves
    (other models, other replicas), so /ready stays 200; /admin/models and
    /admin/keys say that m is out, why, and when its soonest key returns."""
    async with open_stack(tables, {**SECRETS, ANTHROPIC_SECRET: "claude"}) as stack:
        c = stack.client
        await c.post("/admin/keys/alpha/disable", headers=ADMIN)
        await c.post("/admin/keys/claude/disable", headers=ADMIN)
        stack.simulator.set("sk-adm-BRAVO-0002", mode="429", retry_after=20)
        assert (await c.post("/v1/chat/completions", json=ASK, headers=CLIENT)).status_code == 429
        await trio.sleep(5)
        ready = await c.get("/ready")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "why": []}
        models = await model_views(stack)
        assert models["m"] == {
            "name": "m",
            "passthrough": False,
            "available": False,
            "why": "rate_limited",
            "retry_after": pytest.approx(15),  # 20 s from the 429, 5 s ago
            "targets": ["sim/up", "simant/up-claude"],
        }
        assert models["c"]["why"] == "blocked_or_disabled"  # no key comes back by itself
        assert models["c"]["retry_after"] is None
        view = (await c.get("/admin/keys", headers=ADMIN)).json()["models"]
        assert view[0]["name"] == "m"
        assert view[0]["availability"]["why"] == "rate_limited"
        await c.post("/admin/keys/claude/enable", headers=ADMIN)  # m falls back to c again
        models = await model_views(stack)
        assert models["m"]["available"] is True
        assert models["m"]["why"] is None
        assert models["m"]["retry_after"] == 0.0
        await c.post("/admin/keys/claude/disable", headers=ADMIN)
        assert not (await model_views(stack))["m"]["available"]
        await trio.sleep(16)  # bravo's 20 s are over: it may take a request again
        assert (await model_views(stack))["m"]["available"] is True


async def test_admin_models_needs_an_admin_key(autojump_clock):
    async with open_stack(tables) as stack:
        assert (await stack.client.get("/admin/models")).status_code == 401
        assert (await stack.client.get("/admin/models", headers=CLIENT)).status_code == 401


async def test_ready_is_503_while_draining(autojump_clock):
    async with open_stack(tables) as stack:
        stack.app.admin.draining = True  # as serve() sets it on SIGINT/SIGTERM
        ready = await stack.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["why"][0].startswith("draining")
        assert (await stack.client.get("/health")).status_code == 200


def test_admin_routes_want_the_admin_key(client):
    for method, path in [
        ("GET", "/admin/keys"),
        ("GET", "/admin/models"),
        ("GET", "/admin/stats"),
        ("POST", "/admin/keys/alpha/disable"),
        ("POST", "/admin/reload"),
    ]:
        assert client.request(method, path).status_code == 401, path
        wrong = client.request(method, path, headers=CLIENT)  # a client key is not an admin key
        assert wrong.status_code == 401, path
        assert wrong.json()["error"]["message"] == "wrong admin key"
    assert client.get("/admin/keys", headers={"x-api-key": ADMIN_KEY}).status_code == 200


def test_the_admin_key_does_not_open_the_llm_endpoints(client):
    reply = client.post("/v1/chat/completions", json=ASK, headers=ADMIN)
    assert reply.status_code == 401


def test_without_admin_keys_the_admin_api_is_off_even_on_loopback():
    def no_admin(upstream: str) -> dict:
        config = tables(upstream)
        del config["server"]["admin_keys"]
        return config

    with Stack(no_admin) as stack, httpx.Client(base_url=stack.url) as client:
        reply = client.get("/admin/keys", headers=ADMIN)
        assert reply.status_code == 403
        assert "set admin_keys in [server]" in reply.json()["error"]["message"]
        assert client.get("/dashboard").status_code == 403
        assert client.get("/health").status_code == 200


def test_unknown_admin_path_and_wrong_method(client):
    assert client.get("/admin/nothing", headers=ADMIN).status_code == 404
    reply = client.get("/admin/reload", headers=ADMIN)
    assert reply.status_code == 405
    assert "takes POST" in reply.json()["error"]["message"]


# ---- the key table ---------------------------------------------------------------


def test_key_table_shows_state_reason_counters_and_tokens(stack, client):
    assert ask(client).status_code == 200  # alpha
    stack.simulator.set("sk-adm-BRAVO-0002", mode="429", retry_after=20)
    assert ask(client).headers["x-byok-key"] == "alpha"  # bravo 429s, alpha answers
    with client.stream(
        "POST", "/v1/chat/completions", json={**ASK, "stream": True}, headers=CLIENT
    ) as r:
        r.read()
    alpha, bravo = key_view(client, "alpha"), key_view(client, "bravo")
    assert alpha["state"] == "ready"
    assert alpha["fingerprint"].startswith("fp-")
    assert alpha["successes"] == 3
    assert alpha["latency_ewma_ms"] > 0
    # the simulator's usage: 5 prompt tokens, 5 completion tokens per answer
    assert alpha["tokens"] == {"input": 15, "output": 15}
    assert bravo["state"] == "cooldown"
    assert 18 < bravo["cooldown_remaining"] <= 20
    assert bravo["reason"]["status"] == 429
    assert bravo["reason"]["message"] == "Rate limit reached"
    assert bravo["rate_limits"] == 1
    assert bravo["tokens"] == {"input": 0, "output": 0}


def test_anthropic_stream_tokens_come_from_its_events(client):
    body = {"model": "c", "max_tokens": 10, "stream": True, "messages": ASK["messages"]}
    with client.stream("POST", "/v1/messages", json=body, headers=CLIENT) as reply:
        reply.read()
    claude = key_view(client, "claude", "simant/up-claude")
    assert claude["tokens"] == {"input": 5, "output": 5}


def one_key_two_models(upstream: str) -> dict:
    return {
        "server": {"client_keys": [CLIENT_KEY], "admin_keys": [ADMIN_KEY]},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": [{"key": "sk-adm-ALPHA-0001", "label": "alpha"}],
            }
        },
        "models": {"m": {"targets": ["sim/up"]}, "n": {"targets": ["sim/up2"]}},
    }


async def test_a_keys_row_under_each_model_shows_the_tokens_it_spent_there(autojump_clock):
    """One key behind two models: its row under each shows what it spent
    for that model's target; key_tokens, the same under both, its total."""
    async with open_stack(one_key_two_models, {"sk-adm-ALPHA-0001": "alpha"}) as stack:
        stack.simulator.set("sk-adm-ALPHA-0001", chunks=7)  # 5 tokens in, 7 out per answer
        for model in ("m", "n", "n", "n"):
            reply = await stack.client.post(
                "/v1/chat/completions", json={**ASK, "model": model}, headers=CLIENT
            )
            assert reply.status_code == 200
        keys = (await stack.client.get("/admin/keys", headers=ADMIN)).json()
    rows = {
        (model["name"], f"{target['provider']}/{target['model']}"): key
        for model in keys["models"]
        for target in model["targets"]
        for key in target["keys"]
    }
    assert set(rows) == {("m", "sim/up"), ("n", "sim/up2")}
    under_m, under_n = rows["m", "sim/up"], rows["n", "sim/up2"]
    assert under_m["label"] == under_n["label"] == "alpha"
    assert under_m["tokens"] == {"input": 5, "output": 7}
    assert under_n["tokens"] == {"input": 15, "output": 21}
    total = {"input": 20, "output": 28}
    assert under_m["key_tokens"] == under_n["key_tokens"] == total


def test_stats_count_requests_and_errors(stack, client):
    for secret in SECRETS:
        stack.simulator.set(secret, mode="500")
    stack.simulator.set(ANTHROPIC_SECRET, mode="500")
    assert ask(client).status_code == 502
    stack.simulator.set("sk-adm-ALPHA-0001")
    stats = client.get("/admin/stats", headers=ADMIN).json()
    assert stats["bucket_seconds"] == 5
    assert len(stats["buckets"]) == 120
    assert sum(b["requests"] for b in stats["buckets"]) == 1
    assert sum(b["errors"] for b in stats["buckets"]) == 1
    assert sum(b["failed_attempts"] for b in stats["buckets"]) == 3


# ---- operator actions ------------------------------------------------------------


def test_disable_takes_a_key_out_at_once_and_enable_brings_it_back(stack, client):
    reply = client.post("/admin/keys/alpha/disable", headers=ADMIN)
    assert reply.json() == {
        "label": "alpha",
        "provider": "sim",
        "action": "disable",
        "states": {"sim/up": "disabled"},
    }
    keys = {ask(client).headers["x-byok-key"] for _ in range(6)}
    assert keys == {"bravo"}
    assert stack.simulator.requests_for("sk-adm-ALPHA-0001") == 0
    client.post("/admin/keys/alpha/enable", headers=ADMIN)
    keys = {ask(client).headers["x-byok-key"] for _ in range(4)}
    assert keys == {"alpha", "bravo"}


def test_enable_leaves_a_blocked_key_blocked_and_restore_brings_it_back(stack, client):
    stack.simulator.set("sk-adm-ALPHA-0001", mode="401")
    ask(client)
    assert key_view(client, "alpha")["state"] == "blocked"
    reply = client.post("/admin/keys/alpha/enable", headers=ADMIN)
    assert reply.json()["states"] == {"sim/up": "blocked"}
    stack.simulator.set("sk-adm-ALPHA-0001")
    reply = client.post("/admin/keys/alpha/restore", headers=ADMIN)
    assert reply.json()["states"] == {"sim/up": "ready"}
    assert "alpha" in {ask(client).headers["x-byok-key"] for _ in range(2)}


def test_unknown_and_ambiguous_labels():
    def twins(upstream: str) -> dict:
        config = tables(upstream)
        config["providers"]["simant"]["keys"][0]["label"] = "alpha"  # same label, other provider
        return config

    stack = start(twins)
    try:
        with httpx.Client(base_url=stack.url) as client:
            missing = client.post("/admin/keys/zulu/disable", headers=ADMIN)
            assert missing.status_code == 404
            assert "no key labelled 'zulu'" in missing.json()["error"]["message"]
            both = client.post("/admin/keys/alpha/disable", headers=ADMIN)
            assert both.status_code == 409
            assert "?provider=NAME" in both.json()["error"]["message"]
            one = client.post("/admin/keys/alpha/disable?provider=simant", headers=ADMIN)
            assert one.json()["states"] == {"simant/up-claude": "disabled"}
            assert key_view(client, "alpha")["state"] == "ready"
    finally:
        stack.__exit__(None, None, None)


# ---- metrics -----------------------------------------------------------------------


def test_metrics_in_prometheus_text(stack, client):
    ask(client)
    stack.simulator.set("sk-adm-BRAVO-0002", mode="429", retry_after=20)
    ask(client)
    reply = client.get("/metrics", headers=ADMIN)
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    expected = [
        'byok_requests_total{endpoint="/v1/chat/completions",model="m",status="200"} 2.0',
        'byok_attempts_total{key="alpha",outcome="success",provider="sim"} 2.0',
        'byok_attempts_total{key="bravo",outcome="rate_limited",provider="sim"} 1.0',
        'byok_cooldowns_total{key="bravo",provider="sim"} 1.0',
        'byok_key_state{key="bravo",model="m",provider="sim",state="cooldown"} 1.0',
        'byok_key_state{key="alpha",model="m",provider="sim",state="ready"} 1.0',
        'byok_tokens_total{key="alpha",kind="output",model="m",provider="sim",'
        'target="sim/up"} 10.0',
        'byok_proxy_overhead_seconds_count{endpoint="/v1/chat/completions"} 2.0',
        'byok_upstream_first_byte_seconds_count{provider="sim"} 3.0',
    ]
    for line in expected:
        assert line in text, line


# ---- reload ------------------------------------------------------------------------


def test_reload_keeps_health_adds_new_keys_and_reports_changes(stack, client):
    stack.simulator.set("sk-adm-BRAVO-0002", mode="429", retry_after=20)
    ask(client)
    ask(client)
    client.post("/admin/keys/alpha/disable", headers=ADMIN)
    before = key_view(client, "bravo")
    stack.simulator.add_key("sk-adm-CHARLIE-0004", "charlie")

    def grown(upstream: str) -> dict:
        config = tables(upstream)
        config["providers"]["sim"]["keys"].append(
            {"key": "sk-adm-CHARLIE-0004", "label": "charlie"}
        )
        config["server"]["port"] = 1  # needs a restart: reported, not applied
        return config

    stack.build = grown
    reply = client.post("/admin/reload", headers=ADMIN)
    assert reply.status_code == 200
    summary = reply.json()
    assert summary["generation"] == 2
    assert (summary["kept_keys"], summary["new_keys"], summary["removed_keys"]) == (3, 1, 0)
    assert summary["restart_needed"] == ["port"]
    bravo = key_view(client, "bravo")
    assert bravo["state"] == "cooldown"
    assert 0 <= before["cooldown_remaining"] - bravo["cooldown_remaining"] < 2
    assert bravo["rate_limits"] == 1  # counters came along
    assert key_view(client, "alpha")["state"] == "disabled"
    assert key_view(client, "charlie")["state"] == "ready"
    assert {ask(client).headers["x-byok-key"] for _ in range(3)} == {"charlie"}


def test_an_invalid_reload_changes_nothing_and_says_where(stack, client):
    def broken(upstream: str) -> dict:
        config = tables(upstream)
        config["models"]["m"]["targets"] = ["sim"]
        return config

    stack.build = broken
    reply = client.post("/admin/reload", headers=ADMIN)
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "nothing changed" in message
    assert '[models.m] targets[0]: expected "provider/upstream-model"' in message
    assert client.get("/admin/keys", headers=ADMIN).json()["config"]["generation"] == 1
    assert ask(client).status_code == 200
    assert (
        'byok_config_reloads_total{result="error"} 1.0'
        in client.get("/metrics", headers=ADMIN).text
    )


def test_a_new_secret_under_an_old_label_starts_ready(stack, client):
    stack.simulator.set("sk-adm-BRAVO-0002", mode="429", retry_after=20)
    ask(client)
    ask(client)
    assert key_view(client, "bravo")["state"] == "cooldown"
    stack.simulator.add_key("sk-adm-BRAVO-NEW-0005", "bravo2")

    def rotated(upstream: str) -> dict:
        config = copy.deepcopy(tables(upstream))
        config["providers"]["sim"]["keys"][1]["key"] = "sk-adm-BRAVO-NEW-0005"
        return config

    stack.build = rotated
    summary = client.post("/admin/reload", headers=ADMIN).json()
    assert (summary["kept_keys"], summary["new_keys"], summary["removed_keys"]) == (2, 1, 0)
    bravo = key_view(client, "bravo")
    assert bravo["state"] == "ready"
    assert bravo["reason"] is None


def test_reload_under_load_loses_no_request(stack):
    """Four clients send requests (and streams) while the config is reloaded
    twenty times, alternating between two key sets: every request succeeds."""
    stack.simulator.add_key("sk-adm-CHARLIE-0004", "charlie")
    for secret in SECRETS:
        stack.simulator.set(secret, delay=0.005)

    def alternate(n: int):
        def build(upstream: str) -> dict:
            config = tables(upstream)
            if n % 2:
                config["providers"]["sim"]["keys"].append(
                    {"key": "sk-adm-CHARLIE-0004", "label": "charlie"}
                )
            return config

        return build

    failures: list[str] = []
    done = 0
    stop = threading.Event()

    def load() -> None:
        nonlocal done
        with httpx.Client(base_url=stack.url, timeout=10) as c:
            for n in range(400):  # bounded: stops after 400 requests or at the stop signal
                if stop.is_set():
                    return
                if n % 4:
                    reply = ask(c)
                    body = reply.text
                else:
                    with c.stream(
                        "POST", "/v1/chat/completions", json={**ASK, "stream": True}, headers=CLIENT
                    ) as reply:
                        body = reply.read().decode()
                    if "[DONE]" not in body:
                        failures.append(f"stream cut short: {body[-80:]}")
                if reply.status_code != 200:
                    failures.append(f"{reply.status_code}: {body[:200]}")
                done += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for worker in workers:
        worker.start()
    with httpx.Client(base_url=stack.url, timeout=10) as admin:
        for n in range(20):
            stack.build = alternate(n + 1)
            assert admin.post("/admin/reload", headers=ADMIN).status_code == 200
            time.sleep(0.05)
    stop.set()
    for worker in workers:
        worker.join(30)
    assert failures == []
    assert done >= 20
    with httpx.Client(base_url=stack.url) as c:
        assert key_view(c, "alpha")["state"] == "ready"
        assert c.get("/admin/keys", headers=ADMIN).json()["config"]["generation"] == 21


# ---- request ids and trace context -------------------------------------------------------


def test_request_ids_are_taken_or_made(client):
    mine = client.post(
        "/v1/chat/completions", json=ASK, headers={**CLIENT, "x-request-id": "trace-me.42"}
    )
    assert mine.headers["x-request-id"] == "trace-me.42"
    made = ask(client)
    assert len(made.headers["x-request-id"]) == 16
    odd = client.post(
        "/v1/chat/completions", json=ASK, headers={**CLIENT, "x-request-id": "bad id\twith space"}
    )
    assert odd.headers["x-request-id"] != "bad id\twith space"
    refused = client.post("/v1/chat/completions", json=ASK, headers={"x-request-id": "r-401"})
    assert refused.status_code == 401
    assert refused.headers["x-request-id"] == "r-401"
    assert client.get("/health", headers={"x-request-id": "h-1"}).headers["x-request-id"] == "h-1"


def test_trace_context_reaches_the_upstream(stack, client):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {**CLIENT, "traceparent": parent, "tracestate": "vendor=opaque"}
    assert client.post("/v1/chat/completions", json=ASK, headers=headers).status_code == 200
    seen = stack.simulator.seen[-1].headers
    assert seen["traceparent"] == parent
    assert seen["tracestate"] == "vendor=opaque"
    assert CLIENT_KEY not in str(seen)  # the client's credential stays behind


def test_the_upstreams_request_id_is_kept_under_its_own_name(client):
    reply = client.post(
        "/v1/chat/completions", json=ASK, headers={**CLIENT, "x-request-id": "mine"}
    )
    assert reply.headers.get_list("x-request-id") == ["mine"]
    assert reply.headers["x-upstream-request-id"].startswith("req_sim_")


def test_tokens_are_read_from_a_gzipped_answer(stack, client):
    for secret in SECRETS:
        stack.simulator.set(secret, gzip=True)
    reply = client.post(
        "/v1/chat/completions", json=ASK, headers={**CLIENT, "accept-encoding": "gzip"}
    )
    assert reply.headers["content-encoding"] == "gzip"  # relayed as the upstream sent it
    assert reply.json()["usage"]["completion_tokens"] == 5  # httpx inflates it
    assert key_view(client, reply.headers["x-byok-key"])["tokens"] == {"input": 5, "output": 5}


async def swap_while_in_flight(stack: LiveStack, build: Any) -> httpx.Response:
    """One request whose answer is on its way while a reload swaps `build` in
    (virtual time: the answer comes 0.5 s after the request, the swap at 0.2 s)."""
    replies: list[httpx.Response] = []

    async def request() -> None:
        replies.append(await stack.client.post("/v1/chat/completions", json=ASK, headers=CLIENT))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request)
        await trio.sleep(0.2)
        stack.build = build
        stack.app.live.swap(from_dict(build(stack.upstream_url), "test"))
    return replies[0]


async def test_a_key_removed_by_a_reload_can_still_fail_its_request_in_flight(autojump_clock):
    """alpha's request is in flight when a reload removes alpha; its 401 then
    arrives: the request goes on to bravo (no 500), and nothing breaks."""

    def without_alpha(upstream: str) -> dict:
        config = tables(upstream)
        config["providers"]["sim"]["keys"] = config["providers"]["sim"]["keys"][1:]
        return config

    async with open_stack(tables, {**SECRETS, ANTHROPIC_SECRET: "claude"}) as stack:
        stack.simulator.set("sk-adm-ALPHA-0001", mode="401", delay=0.5)
        reply = await swap_while_in_flight(stack, without_alpha)
        assert reply.status_code == 200
        assert reply.headers["x-byok-key"] == "bravo"


async def test_a_429_that_lands_after_a_reload_cools_the_key_in_the_new_pool(autojump_clock):
    def grown(upstream: str) -> dict:
        config = tables(upstream)
        config["providers"]["sim"]["keys"].append(
            {"key": "sk-adm-CHARLIE-0004", "label": "charlie"}
        )
        return config

    secrets = {**SECRETS, ANTHROPIC_SECRET: "claude", "sk-adm-CHARLIE-0004": "charlie"}
    async with open_stack(tables, secrets) as stack:
        stack.simulator.set("sk-adm-ALPHA-0001", mode="429", retry_after=20, delay=0.5)
        old = stack.selector("sim", "up")
        reply = await swap_while_in_flight(stack, grown)  # alpha's pool is rebuilt
        assert reply.status_code == 200
        assert stack.selector("sim", "up") is not old
        alpha = stack.view("sim", "up", "alpha")
        assert alpha["state"] == "cooldown"
        assert alpha["cooldown_remaining"] == pytest.approx(20)  # from when the 429 came


def test_passthrough_models_share_one_metrics_label():
    def passthrough(upstream: str) -> dict:
        return {
            "server": {"admin_keys": [ADMIN_KEY]},
            "providers": {
                "openai": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [{"key": "sk-adm-ALPHA-0001", "label": "alpha"}],
                    "passthrough": True,
                }
            },
        }

    with Stack(passthrough) as stack, httpx.Client(base_url=stack.url) as client:
        stack.simulator.add_key("sk-adm-ALPHA-0001", "alpha")
        for name in ("any-model-1", "any-model-2"):
            assert (
                client.post("/v1/chat/completions", json={**ASK, "model": name}).status_code == 200
            )
        text = client.get("/metrics", headers=ADMIN).text
        view = client.get("/admin/keys", headers=ADMIN).json()
    assert 'byok_requests_total{endpoint="/v1/chat/completions",model="*",status="200"} 2.0' in text
    tokens = (
        'byok_tokens_total{key="alpha",kind="input",model="*",provider="openai",target="openai/*"}'
    )
    assert f"{tokens} 10.0" in text
    assert "any-model" not in text
    assert view["models"][0]["name"] == "*"
    assert view["models"][0]["passthrough"] is True
