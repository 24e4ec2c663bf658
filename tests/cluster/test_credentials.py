"""One refresh of an OAuth credential across replicas, through a real Redis:
two replicas on two hosts (two copies of the account's credential file, no
host lock in common) find its token expired at once; one spends the refresh
token, the other takes what it left in Redis, and both files end with the
new tokens (the refresh token rotates: a second refresh would be refused).
Real clock: Redis and the token endpoint answer on loopback in milliseconds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio

from byok.cluster._credentials import SharedCredentials
from byok.credentials import Credentials, OAuthClient, OAuthFile, Use
from byok.credentials.shared import SharedTokens
from byok.http.server import bound_port, serve_http
from byok.http.upstream import Upstream

from ..credentials.token_server import TokenServer
from .fleet import connected


def replica(tmp_path: Path, host: str, token_url: str, client, prefix: str) -> tuple:
    """A replica's store of one credential, its file a copy of its own."""
    directory = tmp_path / host
    directory.mkdir()
    path = directory / "credentials.json"
    expired = {"access_token": "at-0", "refresh_token": "rt-0", "expires_at": time.time() - 5}
    path.write_text(json.dumps(expired))
    source = OAuthFile(str(path), OAuthClient(token_url, "cli"))
    credentials = Credentials()
    credentials.adopt([Use("claude", "max", source, None)])
    credentials.share(SharedCredentials(lambda: client, prefix, time.time))
    return credentials, source, path


async def test_replicas_refresh_a_credential_once_and_share_its_tokens(
    redis_server, prefix, tmp_path
):
    async with (
        trio.open_nursery() as nursery,
        connected(redis_server.url) as first_client,
        connected(redis_server.url) as second_client,
    ):
        server = TokenServer()
        server.accept("rt-0")
        server.delay = 0.3  # the other replica waits on the cluster's lock meanwhile
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        replicas = [
            replica(tmp_path, "host-a", url, first_client, prefix),
            replica(tmp_path, "host-b", url, second_client, prefix),
        ]
        upstream = Upstream()
        got: list[str] = []

        async def renew(credentials: Credentials, source: OAuthFile) -> None:
            got.append(await credentials.token(upstream, source))

        async with trio.open_nursery() as renewing:
            for credentials, source, _ in replicas:
                renewing.start_soon(renew, credentials, source)
        assert len(server.grants) == 1
        assert got == ["at-sim-access-0001-QWERTYUIOPASDFGH"] * 2
        for _, _, path in replicas:
            written = json.loads(path.read_text())
            assert written["access_token"] == "at-sim-access-0001-QWERTYUIOPASDFGH"
            assert written["refresh_token"] == "at-sim-refresh-0001-ZXCVBNMLKJHGFDSA"
        # the lock is gone, the tokens stay for the replicas that renew later
        assert await first_client.get(f"{prefix}:credential:claude/max:lock") is None
        kept = json.loads(await first_client.get(f"{prefix}:credential:claude/max") or "{}")
        assert kept["refresh"] == "at-sim-refresh-0001-ZXCVBNMLKJHGFDSA"
        assert 3500 < await first_client.ttl(f"{prefix}:credential:claude/max") - 86400 <= 3600
        # a third replica that starts late, its copy spent: it takes them too
        late, source, path = replica(tmp_path, "host-c", url, second_client, prefix)
        assert await late.token(upstream, source) == "at-sim-access-0001-QWERTYUIOPASDFGH"
        assert json.loads(path.read_text())["refresh_token"].startswith("at-sim-refresh-0001")
        assert len(server.grants) == 1
        await upstream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_replica_refreshes_alone_while_redis_is_away(tmp_path, prefix):
    async with trio.open_nursery() as nursery:
        server = TokenServer()
        server.accept("rt-0")
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        credentials, source, _ = replica(tmp_path, "host-a", url, None, prefix)
        upstream = Upstream()
        assert await credentials.token(upstream, source) == "at-sim-access-0001-QWERTYUIOPASDFGH"
        assert len(server.grants) == 1
        await upstream.aclose()
        nursery.cancel_scope.cancel()


async def test_tokens_of_another_chain_are_never_taken(redis_server, prefix, tmp_path):
    """A replica whose `max` file is another account's (or a chain that went
    its own way) finds tokens in Redis it does not descend from: it refreshes
    its own, and its file never gets the other account's tokens."""
    async with trio.open_nursery() as nursery, connected(redis_server.url) as client:
        server = TokenServer()
        server.accept("rt-0")
        listeners = await nursery.start(serve_http, server, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{bound_port(listeners)}/oauth/token"
        shared = SharedCredentials(lambda: client, prefix, time.time)
        other = SharedTokens("at-OTHER", "rt-OTHER", time.time() + 3600, time.time(), ("ab" * 16,))
        await shared.publish("claude/max", other)
        credentials, source, path = replica(tmp_path, "host-a", url, client, prefix)
        upstream = Upstream()
        assert await credentials.token(upstream, source) == "at-sim-access-0001-QWERTYUIOPASDFGH"
        assert len(server.grants) == 1
        assert "OTHER" not in path.read_text()
        kept = json.loads(await client.get(f"{prefix}:credential:claude/max") or "{}")
        assert kept["refresh"] == "at-sim-refresh-0001-ZXCVBNMLKJHGFDSA"  # its own, now
        assert len(kept["lineage"]) == 1  # the digest of rt-0, never rt-0 itself
        assert "rt-0" not in json.dumps(kept["lineage"])
        await upstream.aclose()
        nursery.cancel_scope.cancel()
