"""A real `byok serve` process operated as a person would: JSON logs with
request ids, SIGHUP reloads (good and bad files), `byok status` against it."""

from __future__ import annotations

import json
import signal
import sys
import time

import httpx
import pytest

from ..stack import Stack
from .test_cli import byok, free_port, serving, stop

ADMIN_KEY = "adm-cli-ADMINKEY-7777"
KEYS = {"sk-cli-ONE-1111": "one", "sk-cli-TWO-2222": "two", "sk-cli-THREE-3333": "three"}


def config_text(port: int, upstream: str, labels: list[str]) -> str:
    keys = ", ".join(
        f'{{ key = "{secret}", label = "{label}" }}'
        for secret, label in KEYS.items()
        if label in labels
    )
    return (
        f'[server]\nport = {port}\nshutdown_grace = 2\nadmin_keys = ["{ADMIN_KEY}"]\n'
        f'[providers.sim]\nkind = "openai"\nbase_url = "{upstream}/v1"\nkeys = [{keys}]\n'
        '[models.m]\ntargets = ["sim/up"]\nstrategy = "round_robin"\n'
    )


def wait_for(check, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while True:
        try:
            found = check()
            if found:
                return found
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def generation(url: str) -> int:
    view = httpx.get(f"{url}/admin/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    return int(view.json()["config"]["generation"])


def refused_reloads(url: str) -> int:
    metrics = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}).text
    for line in metrics.splitlines():
        if line.startswith('byok_config_reloads_total{result="error"}'):
            return int(float(line.split()[-1]))
    return 0


@pytest.fixture
def simulated():
    """The simulated upstream (the stack's own proxy goes unused) with KEYS."""
    with Stack(lambda upstream: {"providers": {"x": {"kind": "openai", "keys": ["k"]}}}) as sim:
        for secret, label in KEYS.items():
            sim.simulator.add_key(secret, label)
        yield sim


@pytest.mark.skipif(
    sys.platform == "win32",
    reason="Windows has no SIGHUP; reload through POST /admin/reload runs on every platform: "
    "tests/ops/test_admin.py::test_reload_keeps_health_adds_new_keys_and_reports_changes",
)
def test_serve_with_json_logs_sighup_reload_and_status(tmp_path, simulated):
    sim = simulated
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "byok.toml"
    config.write_text(config_text(port, sim.upstream_url, ["one", "two"]))
    with serving("--config", str(config), "--log-format", "json") as process:
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, "serve did not start")
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": "cli-req-7"},
        )
        assert reply.status_code == 200
        assert reply.headers["x-request-id"] == "cli-req-7"

        config.write_text(config_text(port, sim.upstream_url, ["one", "two", "three"]))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: generation(url) == 2, "SIGHUP did not reload")

        config.write_text(config.read_text().replace('"sim/up"', '"nowhere/up"'))
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: refused_reloads(url) == 1, "the bad reload was not counted")
        assert generation(url) == 2  # the bad file changed nothing
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert httpx.post(f"{url}/v1/chat/completions", json=ask).status_code == 200

        status = byok("status", "--url", url, env={"BYOK_ADMIN_KEY": ADMIN_KEY})
        assert status.returncode == 0, status.stderr
        for label in ("one", "two", "three"):
            assert label in status.stdout
        assert "ready" in status.stdout
        stderr = stop(process)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "request_id", "message"} <= set(e) for e in lines)
    served = [e for e in lines if e.get("request_id") == "cli-req-7"]
    assert len(served) == 1
    assert served[0]["model"] == "m"
    assert served[0]["status"] == 200
    assert served[0]["key"] in ("one", "two")
    refused = [e for e in lines if "reload refused" in e["message"]]
    assert len(refused) == 1
    assert f"{config}: [models.m] targets[0]: no provider 'nowhere'" in refused[0]["message"]
    assert any("config reloaded" in e["message"] and "1 new" in e["message"] for e in lines)
    for secret in [*KEYS, ADMIN_KEY]:
        assert secret not in stderr


def test_text_logs_carry_the_request_id(tmp_path, simulated):
    port = free_port()
    config = tmp_path / "byok.toml"
    config.write_text(config_text(port, simulated.upstream_url, ["one"]))
    with serving("--config", str(config)) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, "serve did not start")
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": "text-req-9"},
        )
        stderr = stop(process)
    line = next(line for line in stderr.splitlines() if "[text-req-9]" in line)
    assert "INFO byok.proxy [text-req-9] POST /v1/chat/completions model=m key=one" in line
