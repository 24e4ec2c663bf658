"""The credential store on its own: one refresh across two processes' stores
on one file (the workers of a group), the backoff after a refresh that
failed, a token command's ttl, a file with no way to refresh.  The token
endpoint is the simulated one, reached by byok's own upstream client."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from byok.credentials import (
    CredentialError,
    Credentials,
    OAuthClient,
    OAuthFile,
    TokenCommand,
    Use,
)
from byok.http.server import bound_port, serve_http
from byok.http.upstream import Upstream

from .token_server import TokenServer

NOW = 1_800_000_000.0


def wall() -> float:
    return NOW + trio.current_time()


@asynccontextmanager
async def token_endpoint() -> AsyncIterator[tuple[TokenServer, str]]:
    async with trio.open_nursery() as nursery:
        server = TokenServer()
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        yield server, f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        nursery.cancel_scope.cancel()


def oauth_file(tmp_path: Path, token_url: str, expires_at: float) -> OAuthFile:
    path = tmp_path / "credentials.json"
    document = {"access_token": "at-old", "refresh_token": "rt-1", "expires_at": expires_at}
    path.write_text(json.dumps(document))
    return OAuthFile(str(path), OAuthClient(token_url, "cli-id", scope="inference"))


def store(source: OAuthFile | TokenCommand, clock=wall) -> Credentials:
    credentials = Credentials(clock)
    credentials.adopt([Use("p", "k", source, None)])
    return credentials


async def test_two_workers_stores_on_one_file_refresh_it_once(autojump_clock, tmp_path):
    async with token_endpoint() as (server, url):
        server.accept("rt-1")
        server.delay = 1.0  # the second worker waits on the lock meanwhile
        source = oauth_file(tmp_path, url, NOW - 5)
        first, second = store(source), store(source)
        upstream = Upstream()
        got: list[str] = []

        async def renew(credentials: Credentials) -> None:
            got.append(await credentials.token(upstream, source))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(renew, first)
            nursery.start_soon(renew, second)
        await upstream.aclose()
        assert len(server.grants) == 1
        assert server.grants[0].fields["scope"] == "inference"
        assert server.grants[0].form == "form"  # RFC 6749's, unless a kind says JSON
        assert got == ["at-sim-access-0001-QWERTYUIOPASDFGH"] * 2
        written = json.loads(Path(source.path).read_text())
        assert written["refresh_token"] == "at-sim-refresh-0001-ZXCVBNMLKJHGFDSA"
        assert written["expires_at"] == int(NOW + 1.0 + 3600)


async def test_a_refresh_that_failed_waits_its_backoff_unless_forced(autojump_clock, tmp_path):
    async with token_endpoint() as (server, url):
        server.accept("rt-1")
        server.mode = "500"
        source = oauth_file(tmp_path, url, NOW - 5)
        credentials = store(source)
        upstream = Upstream()
        with pytest.raises(CredentialError, match="answered 500, server_error") as caught:
            await credentials.token(upstream, source)
        assert not caught.value.blocks  # may pass: the key counts a failure
        with pytest.raises(CredentialError):
            await credentials.token(upstream, source)
        assert len(server.grants) == 1  # within the backoff: the same error, no new call
        server.mode = "ok"
        await trio.sleep(30)
        assert await credentials.token(upstream, source) == "at-sim-access-0001-QWERTYUIOPASDFGH"
        assert len(server.grants) == 2
        server.mode = "no_access"
        await trio.sleep(3600)
        with pytest.raises(CredentialError, match="without an access_token"):
            await credentials.token(upstream, source)
        with pytest.raises(CredentialError):
            await credentials.token(upstream, source, force=True)  # re-validation asks anyway
        assert len(server.grants) == 4
        view = credentials.view(source)
        assert view is not None
        assert view["error"].endswith("answered without an access_token")
        await upstream.aclose()


async def test_a_file_without_a_token_endpoint_is_never_refreshed_here(autojump_clock, tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"access_token": "at-old", "refresh_token": "rt", "expires_in": 0}))
    source = OAuthFile(str(path), None)
    with pytest.raises(CredentialError, match="no token endpoint to refresh it") as caught:
        await store(source).token(Upstream(), source)
    assert caught.value.blocks


async def test_a_command_token_is_kept_for_its_ttl_then_the_command_runs_again(tmp_path):
    # trio's real clock (the command runs for real); the wall clock is a dial
    counter = tmp_path / "runs"
    code = (
        f"import pathlib; p = pathlib.Path({str(counter)!r}); "
        "n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); print(f'token-{n}')"
    )
    dial = [NOW]
    source = TokenCommand((sys.executable, "-c", code), ttl=600)
    credentials = store(source, lambda: dial[0])
    upstream = Upstream()
    assert await credentials.token(upstream, source) == "token-1"
    dial[0] += 599
    assert await credentials.token(upstream, source) == "token-1"
    assert counter.read_text() == "1"
    dial[0] += 1
    assert await credentials.token(upstream, source) == "token-2"
    credential = credentials._by_source[source]
    dial[0] += 600 - 60
    assert credential.due(dial[0])  # renewed in the background from its last minute
    assert "token-2" in credentials.book.secrets  # the redactor's book holds what it printed
