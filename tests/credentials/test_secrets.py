"""The secrets scan of short-lived keys: access and refresh tokens (read from
files, issued by the token endpoint, echoed back by it and by an upstream)
and what token commands print (on standard output, and a token-like word on
standard error) never appear in the logs, the answers, their headers, the
admin API or the metrics.

The clock is MockClock, jumping ahead only after a whole real second of
idleness: the token commands run for real, and under the usual autojump
their timeouts would pass while they start (virtual time would race ahead
as the run loop waits on them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from byok.http.server import bound_port, serve_http

from ..logged import captured_logs
from ..stack import open_stack
from .token_server import TokenServer

NOW = 1_800_000_000.0
ADMIN = "adm-cred-scan-0000000001"
FILES = {
    # label: (access, refresh), each expired: byok refreshes it first
    "good": ("sk-ant-oat01-GOOD-ACCESS-AAAA1", "sk-ant-ort01-GOOD-REFRESH-BBBB"),
    "revoked": ("sk-ant-oat01-REVOKED-ACC-CCC1", "sk-ant-ort01-REVOKED-REF-DDDD"),
    "echoed": ("oat-ECHOED-ACCESS-EEEE-1234567", "ort-ECHOED-REFRESH-FFFF-123456"),
}
PRINTED = "ya29.COMMAND-PRINTED-GGGG-0123456789"
ON_STDERR = "ya29.STDERR-WORD-HHHH-0123456789abc"


@pytest.fixture
def patient_clock() -> MockClock:
    return MockClock(autojump_threshold=1.0)


def wall() -> float:
    return NOW + trio.current_time()


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_no_token_of_a_short_lived_key_appears_anywhere(patient_clock, tmp_path: Path):
    for label, (access, refresh) in FILES.items():
        document = {"accessToken": access, "refreshToken": refresh, "expiresAt": 0}
        (tmp_path / f"{label}.json").write_text(json.dumps(document))
    shown: list[str] = []
    issued: list[str] = []
    with captured_logs() as (text_log, json_log):
        async with trio.open_nursery() as nursery:
            anthropic_tokens, openai_tokens = TokenServer(prefix="at-ant"), TokenServer()
            anthropic_tokens.accept(FILES["good"][1])
            anthropic_tokens.revoked.add(FILES["revoked"][1])  # its refusal quotes it
            openai_tokens.accept(FILES["echoed"][1])
            urls = []
            for server in (anthropic_tokens, openai_tokens):
                listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
                urls.append(f"http://127.0.0.1:{bound_port(listeners)}/oauth/token")

            def tables(upstream: str) -> dict[str, Any]:
                def oauth(label: str) -> dict[str, str]:
                    return {"oauth": str(tmp_path / f"{label}.json"), "label": label}

                return {
                    "server": {"admin_keys": [ADMIN]},
                    "providers": {
                        "claude": {
                            "kind": "anthropic",
                            "base_url": upstream,
                            "keys": [oauth("revoked"), oauth("good")],
                            "oauth": {"token_url": urls[0]},
                        },
                        "oai": {
                            "kind": "openai",
                            "base_url": f"{upstream}/v1",
                            "oauth": {"token_url": urls[1]},
                            "keys": [
                                oauth("echoed"),  # the upstream's 401 quotes its tokens
                                {
                                    "command": python(
                                        f"import sys; sys.stderr.write('denied {ON_STDERR}')"
                                        "; sys.exit(3)"
                                    ),
                                    "label": "failing",
                                },
                                {"command": python(f"print({PRINTED!r})"), "label": "cmd"},
                            ],
                        },
                    },
                    "models": {
                        "c": {"targets": ["claude/claude-x"], "strategy": "priority"},
                        "m": {"targets": ["oai/up"], "strategy": "priority", "attempts": 8},
                    },
                }

            async with open_stack(tables, {PRINTED: "cmd"}, wall=wall) as stack:

                def issue(token: str) -> None:
                    issued.append(token)
                    stack.simulator.add_key(token, "good")

                anthropic_tokens.issued = issue
                openai_tokens.issued = issued.append  # unknown upstream: echoed in its 401
                admin = {"authorization": f"Bearer {ADMIN}"}

                async def keep(method: str, path: str, **extra: Any) -> dict[str, Any]:
                    reply = await stack.client.request(method, path, **extra)
                    shown.append(reply.text)
                    shown.append(str(reply.headers))
                    return reply.json() if reply.text.startswith("{") else {}

                ask = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
                claude = {"anthropic-version": "2023-06-01", "authorization": "Bearer c"}
                for _ in range(2):
                    await keep("POST", "/v1/messages", json={**ask, "model": "c"}, headers=claude)
                    await keep("POST", "/v1/chat/completions", json={**ask, "model": "m"})
                    stream = {**ask, "model": "m", "stream": True}
                    await keep("POST", "/v1/chat/completions", json=stream)
                await keep("GET", "/v1/models")
                view = await keep("GET", "/admin/keys", headers=admin)
                await keep("GET", "/admin/stats", headers=admin)
                await keep("GET", "/metrics", headers=admin)
                await keep("POST", "/admin/reload", headers=admin)
            nursery.cancel_scope.cancel()
    states = {
        k["label"]: (k["state"], (k["reason"] or {}).get("message", ""))
        for model in view["models"]
        for target in model["targets"]
        for k in target["keys"]
    }
    # the scenario happened: each kind of token met its surface
    assert states["good"][0] == "ready"
    assert states["cmd"][0] == "ready"
    assert states["revoked"][0] == "blocked"
    assert "refused the refresh token" in states["revoked"][1]
    assert states["echoed"][0] == "blocked"
    assert "Incorrect API key provided: [redacted]" in states["echoed"][1]
    assert states["failing"][0] == "cooldown"  # a command's failure: its circuit opened
    assert "exited with status 3: denied [redacted]" in states["failing"][1]
    assert len(issued) >= 2  # tokens issued to good and to echoed
    everything = "\n".join([text_log.getvalue(), json_log.getvalue(), *shown])
    secrets = [*(t for pair in FILES.values() for t in pair), PRINTED, ON_STDERR, *issued]
    for secret in secrets:
        assert secret not in everything, secret
        assert secret[-12:] not in everything, secret  # nor a recognisable tail of it
