"""Subscription accounts' quota windows, through the proxy: a 429 that says
a window of hours or days is spent cools the key until the window resets
(not for its shorter retry-after), the next key serves meanwhile, and the
admin view and the log name the window and when it resets.  MockClock: the
hours pass in virtual time."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import trio

from ..stack import open_stack

ADMIN = "adm-quota-windows-0001"
KEYS = {"sk-ant-max-account-0001": "max", "sk-ant-pro-account-0002": "pro"}
MAX, PRO = KEYS


def tables(kind: str) -> Any:
    def build(upstream: str) -> dict[str, Any]:
        base_url = upstream if kind == "anthropic" else f"{upstream}/v1"
        return {
            "server": {"admin_keys": [ADMIN]},
            "providers": {
                "sub": {
                    "kind": kind,
                    "base_url": base_url,
                    "keys": [{"key": k, "label": v} for k, v in KEYS.items()],
                }
            },
            "models": {"m": {"targets": ["sub/up"], "strategy": "priority"}},
        }

    return build


@pytest.mark.parametrize(
    ("kind", "delay_header", "hours", "window"),
    [("anthropic", "anthropic-window", 1, "five_hour"), ("openai", "codex-window", 2, "7d")],
)
async def test_a_spent_window_cools_the_key_until_it_resets(
    autojump_clock, caplog, kind, delay_header, hours, window
):
    caplog.set_level(logging.INFO, logger="byok")
    async with open_stack(tables(kind), KEYS) as stack:
        seconds = hours * 3600
        stack.simulator.set(MAX, mode="429", retry_after=seconds, delay_header=delay_header)
        if kind == "anthropic":
            path, ask = "/v1/messages", {"max_tokens": 5}
        else:
            path, ask = "/v1/chat/completions", {}
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **ask}
        headers = {"anthropic-version": "2023-06-01"}
        answer = await stack.client.post(path, json=ask, headers=headers)
        assert answer.headers["x-byok-key"] == "pro"
        keys = await stack.client.get("/admin/keys", headers={"authorization": f"Bearer {ADMIN}"})
        view = next(
            k for k in keys.json()["models"][0]["targets"][0]["keys"] if k["label"] == "max"
        )
        assert view["state"] == "cooldown"
        assert view["cooldown_remaining"] == pytest.approx(seconds, abs=2)  # not the retry-after
        assert view["quota"]["window"] == window
        assert view["quota"]["resets_at"] == pytest.approx(time.time() + seconds, abs=5)
        said = rf"cooling for \d+\.\ds: its {window} quota window is spent until 20\d\d-"
        assert re.search(said, caplog.text)
        stack.simulator.set(MAX)  # the window resets
        await trio.sleep(seconds - 60)
        answer = await stack.client.post(path, json=ask, headers=headers)
        assert answer.headers["x-byok-key"] == "pro"  # an hour short of its reset: cooling
        await trio.sleep(61)
        answer = await stack.client.post(path, json=ask, headers=headers)
        assert answer.headers["x-byok-key"] == "max"
