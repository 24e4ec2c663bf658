"""OAuth credential files as keys, through the proxy, against a simulated
token endpoint and upstream on loopback: refresh before expiry, on expiry,
on a 401 (a clock behind the provider's), single-flight under 50 requests,
the write-back's shape and mode, the file watch, a revoked refresh token,
a malformed file.

Everything runs under MockClock (autojump): the credentials' wall clock is
the virtual one too (NOW plus trio's time), so expiries and margins pass in
virtual seconds, exactly."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from byok.http.server import bound_port, serve_http

from ..stack import LiveStack, open_stack
from .token_server import TokenServer

NOW = 1_800_000_000.0  # the virtual wall clock at trio time 0
ADMIN = "adm-oauth-test-key-0001"
STATIC = "sk-static-fallback-0001"
ASK = {"model": "c", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def wall() -> float:
    return NOW + trio.current_time()


def claude_file(path: Path, access: str, refresh: str, expires_at: float) -> None:
    document = {
        "claudeAiOauth": {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": int(expires_at * 1000),
            "scopes": ["user:inference"],
            "subscriptionType": "max",
        }
    }
    path.write_text(json.dumps(document, indent=2))


def read_file(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["claudeAiOauth"]


@dataclass
class OAuthStack:
    stack: LiveStack
    tokens: TokenServer
    path: Path

    async def ask(self, **headers: str) -> httpx.Response:
        return await self.stack.client.post(
            "/v1/messages",
            json=ASK,
            headers={
                "authorization": "Bearer client",
                "anthropic-version": "2023-06-01",
                **headers,
            },
        )

    async def key_view(self, label: str = "max") -> dict[str, Any]:
        answer = await self.stack.client.get(
            "/admin/keys", headers={"authorization": f"Bearer {ADMIN}"}
        )
        keys = answer.json()["models"][0]["targets"][0]["keys"]
        return next(k for k in keys if k["label"] == label)

    def bearers(self) -> list[str]:
        """The credential each upstream request of the test carried."""
        return [seen.key for seen in self.stack.simulator.seen]


@asynccontextmanager
async def oauth_stack(
    tmp_path: Path,
    *,
    access: str = "sk-ant-oat01-OLD-ACCESS-000000",
    refresh: str = "sk-ant-ort01-FIRST-REFRESH-0000",
    expires_in: float = 3600,
    margin: float = 300,
    fallback: bool = False,
    tables: Callable[[dict[str, Any]], None] = lambda t: None,
) -> AsyncIterator[OAuthStack]:
    """The proxy with one Anthropic provider whose key `max` is an OAuth
    file (and a static key `static` after it with `fallback`), the token
    endpoint accepting `refresh`, the upstream accepting what it issues."""
    path = tmp_path / ".credentials.json"
    claude_file(path, access, refresh, NOW + expires_in)
    async with trio.open_nursery() as nursery:
        tokens = TokenServer()
        tokens.accept(refresh)
        listeners = await nursery.start(serve_http, tokens, "127.0.0.1", 0)
        token_url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"

        def build(upstream: str) -> dict[str, Any]:
            keys: list[dict[str, Any]] = [{"oauth": str(path), "label": "max"}]
            if fallback:
                keys.append({"key": STATIC, "label": "static"})
            built = {
                "server": {"admin_keys": [ADMIN], "revalidate_blocked": 60},
                "providers": {
                    "claude": {
                        "kind": "anthropic",
                        "base_url": upstream,
                        "keys": keys,
                        "oauth": {"token_url": token_url, "refresh_margin": margin},
                    }
                },
                "models": {"c": {"targets": ["claude/claude-x"], "strategy": "priority"}},
            }
            tables(built)
            return built

        async with open_stack(build, {STATIC: "static"}, wall=wall) as stack:
            tokens.issued = lambda token: stack.simulator.add_key(token, "max")
            yield OAuthStack(stack, tokens, path)
        nursery.cancel_scope.cancel()


async def test_an_expired_token_is_refreshed_first_and_written_back_in_its_shape(
    autojump_clock, tmp_path
):
    async with oauth_stack(tmp_path, expires_in=-10) as s:
        answer = await s.ask(**{"anthropic-beta": "prompt-caching-2024-07-31"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-byok-key"] == "max"
        assert len(s.tokens.grants) == 1
        grant = s.tokens.grants[0]
        assert grant.form == "json"  # as Claude Code posts it
        assert grant.fields == {
            "grant_type": "refresh_token",
            "refresh_token": "sk-ant-ort01-FIRST-REFRESH-0000",
            "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",  # the kind's default
        }
        seen = s.stack.simulator.seen[-1]
        assert seen.headers["authorization"] == "Bearer at-sim-access-0001-QWERTYUIOPASDFGH"
        assert "x-api-key" not in seen.headers  # an OAuth token goes as a Bearer
        # the client's beta flags and the OAuth one, joined
        assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31,oauth-2025-04-20"
        written = read_file(s.path)
        assert written["accessToken"] == "at-sim-access-0001-QWERTYUIOPASDFGH"
        assert written["refreshToken"] == "at-sim-refresh-0001-ZXCVBNMLKJHGFDSA"
        assert written["expiresAt"] == int((grant_time(grant.at) + 3600) * 1000)
        assert written["scopes"] == ["user:inference"]  # the rest as it was
        assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
        view = (await s.key_view())["credential"]
        assert view["type"] == "oauth"
        assert view["file"] == str(s.path)
        assert view["expires_in"] == 3600 - (trio.current_time() - grant.at)
        assert view["error"] is None


def grant_time(at: float) -> float:
    return NOW + at


async def test_a_token_is_refreshed_within_its_margin_without_a_request_waiting(
    autojump_clock, tmp_path
):
    async with oauth_stack(tmp_path, expires_in=600, margin=300) as s:
        await trio.sleep(290)
        assert s.tokens.grants == []  # not yet: 310 s left
        await trio.sleep(20)
        assert len(s.tokens.grants) == 1  # the background look, once a second
        assert 300 <= s.tokens.grants[0].at <= 301
        assert read_file(s.path)["accessToken"] == "at-sim-access-0001-QWERTYUIOPASDFGH"
        answer = await s.ask()
        assert answer.status_code == 200
        assert s.bearers() == ["at-sim-access-0001-QWERTYUIOPASDFGH"]


async def test_a_401_before_expiry_renews_the_token_and_sends_once_more(autojump_clock, tmp_path):
    # this host's clock is behind the provider's: the file's token is valid
    # by ours, expired by the upstream's, which answers 401
    async with oauth_stack(tmp_path, expires_in=1800) as s:
        s.stack.simulator.add_key("sk-ant-oat01-OLD-ACCESS-000000", "max", mode="401")
        answer = await s.ask()
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-byok-key"] == "max"
        assert s.bearers() == [
            "sk-ant-oat01-OLD-ACCESS-000000",  # 401
            "at-sim-access-0001-QWERTYUIOPASDFGH",  # the same attempt, renewed
        ]
        assert [seen.status for seen in s.stack.simulator.seen] == [401, 200]
        assert len(s.tokens.grants) == 1
        assert s.stack.state("claude", "claude-x", "max") == "ready"  # not the key's fault
        assert (await s.ask()).status_code == 200
        assert len(s.tokens.grants) == 1


async def test_fifty_concurrent_requests_share_one_refresh(autojump_clock, tmp_path):
    async with oauth_stack(tmp_path, expires_in=-1) as s:
        s.tokens.delay = 0.5  # long enough for all fifty to find the token expired
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await s.ask()).status_code)

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
        assert statuses == [200] * 50
        assert len(s.tokens.grants) == 1
        assert set(s.bearers()) == {"at-sim-access-0001-QWERTYUIOPASDFGH"}


async def test_a_revoked_refresh_token_blocks_the_key_until_a_new_sign_in(
    autojump_clock, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="byok")
    async with oauth_stack(tmp_path, expires_in=-1, fallback=True) as s:
        s.tokens.revoked.add("sk-ant-ort01-FIRST-REFRESH-0000")
        answer = await s.ask()
        assert answer.status_code == 200
        assert answer.headers["x-byok-key"] == "static"  # the next key served it
        view = await s.key_view()
        assert view["state"] == "blocked"
        message = view["reason"]["message"]
        assert "refused the refresh token (400, invalid_grant" in message
        assert "sign in again" in message
        assert "FIRST-REFRESH" not in message  # the endpoint echoed it: taken out
        assert view["credential"]["error"].startswith("the token endpoint")
        assert view["credential"]["blocks"] is True
        assert view["revalidate_at"] is not None  # re-validated like any blocked key
        assert (await s.ask()).headers["x-byok-key"] == "static"
        assert len(s.tokens.grants) == 1  # a blocked key is not asked again per request
        # the operator signs in again with the vendor's CLI: the file changes
        s.tokens.accept("sk-ant-ort01-SIGNED-IN-AGAIN-00")
        s.stack.simulator.add_key("sk-ant-oat01-SIGNED-IN-ACCESS-0", "max")
        claude_file(
            s.path,
            "sk-ant-oat01-SIGNED-IN-ACCESS-0",
            "sk-ant-ort01-SIGNED-IN-AGAIN-00",
            wall() + 3600,
        )
        await trio.sleep(1.5)
        assert (await s.key_view())["state"] == "ready"
        answer = await s.ask()
        assert answer.headers["x-byok-key"] == "max"
        assert s.bearers()[-1] == "sk-ant-oat01-SIGNED-IN-ACCESS-0"
        logged = caplog.text
        assert "FIRST-REFRESH" not in logged
        assert "SIGNED-IN" not in logged
        assert "blocked: credential: the token endpoint" in logged
        assert "its credential file holds a new token; back to ready" in logged


async def test_a_refresh_by_the_vendors_cli_is_picked_up_without_a_restart(
    autojump_clock, tmp_path
):
    async with oauth_stack(tmp_path) as s:
        s.stack.simulator.add_key("sk-ant-oat01-OLD-ACCESS-000000", "max")
        assert (await s.ask()).status_code == 200
        s.stack.simulator.add_key("sk-ant-oat01-BY-THE-CLI-0000000", "max")
        claude_file(
            s.path, "sk-ant-oat01-BY-THE-CLI-0000000", "sk-ant-ort01-CLI-000", wall() + 7200
        )
        await trio.sleep(1.5)
        assert (await s.ask()).status_code == 200
        assert s.bearers()[-1] == "sk-ant-oat01-BY-THE-CLI-0000000"
        assert s.tokens.grants == []
        assert (await s.key_view())["credential"]["expires_in"] == 7200 - 1.5


async def test_a_malformed_file_is_logged_and_blocks_the_key_once_its_token_is_needed(
    autojump_clock, tmp_path, caplog
):
    async with oauth_stack(tmp_path, expires_in=120, margin=0, fallback=True) as s:
        s.stack.simulator.add_key("sk-ant-oat01-OLD-ACCESS-000000", "max")
        s.path.write_text('{"claudeAiOauth": {"accessToken": "sk-ant-oat01-HALF')
        await trio.sleep(1.5)
        assert "is not JSON (line 1, column 35)" in caplog.text
        assert "HALF" not in caplog.text
        assert (await s.ask()).headers["x-byok-key"] == "max"  # its token is still good
        await trio.sleep(120)
        answer = await s.ask()
        assert answer.headers["x-byok-key"] == "static"
        view = await s.key_view()
        assert view["state"] == "blocked"
        assert "is not JSON" in view["reason"]["message"]
        assert s.tokens.grants == []  # the refresh token is in a file that cannot be read


async def test_a_blocked_credential_is_re_validated_like_any_blocked_key(autojump_clock, tmp_path):
    async with oauth_stack(tmp_path, expires_in=-1, fallback=True) as s:
        s.tokens.revoked.add("sk-ant-ort01-FIRST-REFRESH-0000")
        assert (await s.ask()).headers["x-byok-key"] == "static"
        assert (await s.key_view())["state"] == "blocked"
        s.tokens.revoked.clear()  # the endpoint takes the refresh token again
        await trio.sleep(59)
        assert (await s.key_view())["state"] == "blocked"
        assert len(s.tokens.grants) == 1  # the backoff holds off any other try
        await trio.sleep(2)  # revalidate_blocked: the check renews the token and lists models
        view = await s.key_view()
        assert view["state"] == "ready"
        assert view["credential"]["error"] is None
        assert len(s.tokens.grants) == 2
        assert (await s.ask()).headers["x-byok-key"] == "max"
