"""Token commands as keys, through the proxy: the printed token goes as a
Bearer authorization (whatever the kind's own header), with the key's extra
headers; a command that fails counts a failure of its key, one that prints
no token blocks it, each with its reason, and the next key serves.  The
clock jumps only after a real second of idleness: the commands run for real
(see test_secrets.py)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from trio.testing import MockClock

from ..stack import open_stack

TOKEN = "ya29.VERTEX-LIKE-TOKEN-0123456789"
STATIC = "sk-ant-static-command-test-01"


@pytest.fixture
def patient_clock() -> MockClock:
    return MockClock(autojump_threshold=1.0)


def tables(upstream: str) -> dict[str, Any]:
    return {
        "server": {"admin_keys": ["adm-command-keys-000001"]},
        "providers": {
            "claude": {
                "kind": "anthropic",
                "base_url": upstream,
                "keys": [
                    {"command": [sys.executable, "-c", "import sys; sys.exit(2)"], "label": "bad"},
                    {"command": [sys.executable, "-c", "pass"], "label": "empty"},
                    {
                        "command": [sys.executable, "-c", f"print({TOKEN!r})"],
                        "label": "gcloud",
                        "ttl": 3000,
                        "headers": {"x-goog-user-project": "my-project"},
                    },
                    {"key": STATIC, "label": "static"},
                ],
            }
        },
        "models": {"c": {"targets": ["claude/claude-x"], "strategy": "priority"}},
    }


async def test_a_command_key_serves_with_its_token_as_a_bearer(patient_clock):
    async with open_stack(tables, {TOKEN: "gcloud", STATIC: "static"}) as stack:
        ask = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"anthropic-version": "2023-06-01"}
        answer = await stack.client.post("/v1/messages", json=ask, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-byok-key"] == "gcloud"
        seen = stack.simulator.seen[-1]
        assert seen.headers["authorization"] == f"Bearer {TOKEN}"
        assert "x-api-key" not in seen.headers
        assert seen.headers["x-goog-user-project"] == "my-project"
        assert stack.view("claude", "claude-x", "bad")["failures"] == 1
        assert stack.state("claude", "claude-x", "bad") == "ready"  # gcloud fails so offline too
        assert stack.state("claude", "claude-x", "empty") == "blocked"
        keys = await stack.client.get(
            "/admin/keys", headers={"authorization": "Bearer adm-command-keys-000001"}
        )
        views = {k["label"]: k for k in keys.json()["models"][0]["targets"][0]["keys"]}
        assert views["bad"]["reason"]["message"] == (
            f"credential: token command {sys.executable} exited with status 2"
        )
        assert views["empty"]["reason"]["message"] == (
            f"credential: token command {sys.executable} printed nothing"
        )
        assert views["empty"]["credential"]["blocks"] is True
        assert views["gcloud"]["credential"]["type"] == "command"
        assert views["gcloud"]["credential"]["program"] == sys.executable
        assert views["gcloud"]["credential"]["expires_in"] == pytest.approx(3000, abs=5)
        assert views["static"]["credential"] is None
