"""GET /metrics as Prometheus scrapes it, over a real socket: its own keys
(metrics_keys) or none (metrics_public), no *_created series, and one model
label for requests and tokens."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest

from ..stack import open_stack

ADMIN_KEY = "adm-met-ADMINKEY-0001"
METRICS_KEY = "met-met-SCRAPERKEY-0001"
CLIENT_KEY = "cli-met-CLIENTKEY-0001"
SECRETS = {"sk-met-ALPHA-0001": "alpha", "sk-met-BRAVO-0002": "bravo"}
ANTHROPIC_SECRET = "sk-ant-met-CLAUDE-0003"
ALL_SECRETS = {**SECRETS, ANTHROPIC_SECRET: "claude"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
SCRAPER = {"authorization": f"Bearer {METRICS_KEY}"}
CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


def tables_with(**server: Any) -> Any:
    def tables(upstream: str) -> dict[str, Any]:
        return {
            "server": {"client_keys": [CLIENT_KEY], **server},
            "providers": {
                "sim": {
                    "kind": "openai",
                    "base_url": f"{upstream}/v1",
                    "keys": [{"key": k, "label": v} for k, v in SECRETS.items()],
                },
                "simant": {
                    "kind": "anthropic",
                    "base_url": upstream,
                    "keys": [{"key": ANTHROPIC_SECRET, "label": "claude"}],
                },
            },
            "models": {
                "m": {"targets": ["sim/up"], "fallbacks": ["c"]},
                "c": {"targets": ["simant/up-claude"]},
            },
        }

    return tables


WITH_METRICS_KEY = tables_with(admin_keys=[ADMIN_KEY], metrics_keys=[METRICS_KEY])


def samples(text: str, family: str) -> list[dict[str, str]]:
    """The labels of each sample of `family` on a scraped page."""
    found = []
    for line in text.splitlines():
        if line.startswith(family + "{"):
            found.append(dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])))
    return found


async def test_prometheus_scrapes_with_a_metrics_key_that_opens_nothing_else():
    async with open_stack(WITH_METRICS_KEY) as stack:
        c = stack.client
        scraped = await c.get("/metrics", headers=SCRAPER)
        assert scraped.status_code == 200
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "# TYPE byok_requests_total counter" in scraped.text
        assert (await c.get("/metrics", headers={"x-api-key": METRICS_KEY})).status_code == 200
        assert (await c.get("/metrics", headers=ADMIN)).status_code == 200  # admins may look

        wrong = await c.get("/metrics", headers=CLIENT)  # a client key is not a metrics key
        assert wrong.status_code == 401
        assert wrong.json()["error"]["message"] == "wrong metrics key"
        bare = await c.get("/metrics")
        assert bare.status_code == 401
        assert "metrics_keys" in bare.json()["error"]["message"]

        # the metrics key opens /metrics and nothing else
        assert (await c.get("/admin/keys", headers=SCRAPER)).status_code == 401
        assert (await c.get("/admin/models", headers=SCRAPER)).status_code == 401
        assert (await c.post("/admin/reload", headers=SCRAPER)).status_code == 401
        assert (await c.post("/admin/keys/alpha/disable", headers=SCRAPER)).status_code == 401
        asked = {"model": "m", "messages": MESSAGES}
        reply = await c.post("/v1/chat/completions", json=asked, headers=SCRAPER)
        assert reply.status_code == 401
        signed_in = await c.post("/admin/login", data={"key": METRICS_KEY})
        assert signed_in.status_code == 401  # the sign-in form again: no session
        assert "set-cookie" not in signed_in.headers
        assert METRICS_KEY not in scraped.text


async def test_the_dashboards_session_opens_metrics_too():
    async with open_stack(WITH_METRICS_KEY) as stack:
        signed_in = await stack.client.post("/admin/login", data={"key": ADMIN_KEY})
        assert signed_in.status_code == 303
        assert (await stack.client.get("/metrics")).status_code == 200  # the cookie


async def test_metrics_public_needs_no_key_and_opens_nothing_else():
    async with open_stack(tables_with(metrics_public=True)) as stack:
        scraped = await stack.client.get("/metrics")
        assert scraped.status_code == 200
        assert "byok_key_state" in scraped.text
        assert (await stack.client.get("/admin/keys")).status_code == 403  # still off


async def test_without_metrics_keys_admin_keys_or_metrics_public_metrics_are_off():
    async with open_stack(tables_with()) as stack:
        reply = await stack.client.get("/metrics", headers=SCRAPER)
        assert reply.status_code == 403
        message = reply.json()["error"]["message"]
        assert "metrics_keys" in message
        assert "metrics_public = true" in message


async def test_no_created_series_and_other_registries_keep_theirs():
    async with open_stack(WITH_METRICS_KEY, ALL_SECRETS) as stack:
        asked = {"model": "m", "messages": MESSAGES}
        assert (
            await stack.client.post("/v1/chat/completions", json=asked, headers=CLIENT)
        ).status_code == 200
        await stack.client.post("/admin/reload", headers=ADMIN)
        text = (await stack.client.get("/metrics", headers=SCRAPER)).text
    assert "byok_requests_total{" in text
    assert "byok_proxy_overhead_seconds_count{" in text
    assert "byok_config_reloads_total{" in text
    assert "_created" not in text
    # byok's filter is its own: another registry in the process keeps its series
    mine = CollectorRegistry()
    Counter("elsewhere", "a counter of another library", registry=mine).inc()
    assert b"elsewhere_created" in generate_latest(mine)


async def test_tokens_and_requests_share_the_public_model_label():
    """m's own keys are out, so its fallback c (on the Anthropic provider)
    answers: its tokens count for m, the model asked for, as its request
    does; `target` says which upstream served them.  A stream's tokens
    (counted by the relay) are labelled the same way."""
    async with open_stack(WITH_METRICS_KEY, ALL_SECRETS) as stack:
        c = stack.client
        for label in SECRETS.values():
            await c.post(f"/admin/keys/{label}/disable", headers=ADMIN)
        asked = {"model": "m", "messages": MESSAGES}
        reply = await c.post("/v1/chat/completions", json=asked, headers=CLIENT)
        assert reply.status_code == 200
        assert reply.headers["x-byok-key"] == "claude"
        streamed = {"model": "c", "max_tokens": 10, "stream": True, "messages": MESSAGES}
        async with c.stream("POST", "/v1/messages", json=streamed, headers=CLIENT) as stream:
            assert stream.status_code == 200
            await stream.aread()
        text = (await c.get("/metrics", headers=SCRAPER)).text
    requested = {s["model"] for s in samples(text, "byok_requests_total")}
    tokens = samples(text, "byok_tokens_total")
    assert requested == {"m", "c"}
    assert {s["model"] for s in tokens} == requested
    assert {(s["model"], s["target"]) for s in tokens} == {
        ("m", "simant/up-claude"),
        ("c", "simant/up-claude"),
    }
    assert all(s["provider"] == "simant" and s["key"] == "claude" for s in tokens)
