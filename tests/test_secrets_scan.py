"""The secrets scan: a scenario with distinctive fake keys (good, rate-limited,
revoked, one the upstream echoes back in its error, failing, streams that
break), then every surface byok shows is searched for every secret: logs in
both formats, error bodies and headers, the admin API, metrics, the
dashboard's HTML and script, and the reload answers."""

from __future__ import annotations

import httpx

from .logged import captured_logs
from .stack import Stack

ADMIN_KEY = "adm-scan-QUOKKA-5e4d3c2b1a"
CLIENT_KEY = "cli-scan-NARWHAL-0a1b2c3d4e"
UPSTREAM = {
    "sk-scan-ZEBRA-9f8e7d6c5b4a": ("zebra", {}),
    "sk-scan-OKAPI-1a2b3c4d5e6f": ("okapi", {"mode": "429", "retry_after": 30}),
    "sk-scan-TAPIR-6f5e4d3c2b1a": ("tapir", {"mode": "401"}),
    "sk-scan-LEMUR-a1b2c3d4e5f6": ("lemur", {"mode": "500"}),
    "sk-scan-GECKO-f6e5d4c3b2a1": ("gecko", {"mode": "drop", "drop_after": 2}),
}
ECHOED = "sk-scan-IBEX-0f1e2d3c4b5a"  # unknown upstream: its 401 quotes the key
ANTHROPIC = "sk-ant-scan-DINGO-7a6b5c4d3e2f"
SECRETS = [ADMIN_KEY, CLIENT_KEY, ECHOED, ANTHROPIC, *UPSTREAM]


def tables(upstream: str) -> dict:
    keys = [{"key": k, "label": label} for k, (label, _) in UPSTREAM.items()]
    keys.insert(-1, {"key": ECHOED, "label": "ibex"})  # tried before gecko, which answers
    return {
        "server": {"client_keys": [CLIENT_KEY], "admin_keys": [ADMIN_KEY], "cooldown": 30},
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": f"{upstream}/v1",
                "keys": keys,
            },
            "simant": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [{"key": ANTHROPIC, "label": "dingo"}],
            },
        },
        "models": {
            "m": {"targets": ["sim/up"], "strategy": "priority", "attempts": 8},
            "c": {"targets": ["simant/up-claude"]},
        },
    }


def test_no_secret_appears_anywhere_byok_shows():
    shown: list[str] = []
    with (
        captured_logs() as (text_log, json_log),
        Stack(tables) as stack,
        httpx.Client(base_url=stack.url, timeout=10) as client,
    ):
        for secret, (name, behaviour) in UPSTREAM.items():
            stack.simulator.add_key(secret, name, **behaviour)
        stack.simulator.add_key(ANTHROPIC, "dingo")
        auth = {"authorization": f"Bearer {CLIENT_KEY}"}
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

        def keep(reply: httpx.Response) -> httpx.Response:
            shown.append(reply.text)
            shown.append(str(reply.headers))
            return reply

        # zebra answers first (priority); then take it out to reach the others
        keep(client.post("/v1/chat/completions", json=ask, headers=auth))
        client.post("/admin/keys/zebra/disable", headers=admin)
        for _ in range(3):
            keep(client.post("/v1/chat/completions", json=ask, headers=auth))
            keep(client.post("/v1/chat/completions", json={**ask, "stream": True}, headers=auth))
        keep(client.post("/v1/messages", json={**ask, "model": "c", "max_tokens": 5}, headers=auth))
        keep(client.post("/v1/chat/completions", json=ask))  # no client key
        keep(
            client.post(
                "/v1/chat/completions",
                json=ask,
                headers={"authorization": "Bearer " + UPSTREAM_FIRST},
            )
        )
        keep(client.post("/v1/chat/completions", content=b"{", headers=auth))
        keep(client.get("/v1/models", headers=auth))

        for path in ["/admin/keys", "/admin/stats", "/metrics"]:
            keep(client.get(path, headers=admin))
        keep(client.get("/ready"))
        keep(client.get("/health"))
        keep(client.post("/admin/reload", headers=admin))

        def broken(upstream: str) -> dict:
            config = tables(upstream)
            config["providers"]["sim"]["keys"][0]["weight"] = ECHOED  # echoed by the error
            return config

        stack.build = broken
        refused = keep(client.post("/admin/reload", headers=admin))
        assert refused.status_code == 400

        login = client.post("/admin/login", data={"key": ADMIN_KEY})
        assert login.status_code == 303
        shown.append(str(login.headers))
        page = keep(client.get("/dashboard"))
        assert "app.js" in page.text
        keep(client.get("/dashboard/app.js"))
        keep(client.get("/dashboard/app.css"))
        keep(client.post("/admin/login", data={"key": "sk-scan-wrong-guess-0000"}))

        view = client.get("/admin/keys", headers=admin).json()
        states = {
            k["label"]: k["state"]
            for model in view["models"]
            for target in model["targets"]
            for k in target["keys"]
        }
    # the scenario happened: every kind of failure was met
    assert states["okapi"] == "cooldown"
    assert states["tapir"] == "blocked"
    assert states["ibex"] == "blocked"
    assert states["zebra"] == "disabled"
    everything = "\n".join([text_log.getvalue(), json_log.getvalue(), *shown])
    assert "Incorrect API key provided: [redacted]" in everything  # the echo was met, and masked
    assert "POST /v1/chat/completions model=m" in text_log.getvalue()
    for secret in SECRETS:
        assert secret not in everything, secret
        assert secret[-10:] not in everything, secret  # nor a recognisable tail of it


UPSTREAM_FIRST = next(iter(UPSTREAM))
