"""Credential refreshes across replicas, in Redis (byok.credentials.shared).

    {prefix}:credential:{name}:lock   a random token, SET NX PX: the replica
                                      that refreshes holds it (it expires by
                                      itself if that replica dies)
    {prefix}:credential:{name}        the latest tokens a replica got, JSON,
                                      kept for a day past their expiry

`name` is the provider and label of the credential's first key, the same on
every replica of one config.  The tokens are secrets at rest in Redis: the
Redis of a cluster is as trusted as the hosts of its replicas (use a
password, and rediss:// across networks).  Every call is bounded: a Redis
that does not answer is SharedUnavailable, and the replica refreshes alone.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import coredis
import trio
from coredis.commands.script import Script
from coredis.exceptions import RedisError
from coredis.tokens import PureToken

from ..credentials.shared import SharedTokens, SharedUnavailable

LOCK_TTL = 60.0  # seconds a lock outlives a replica that died holding it
LOCK_WAIT = 75.0  # seconds to wait for another replica's refresh, at most
POLL = 0.1
TIMEOUT = 2.0  # any one call
KEPT_PAST_EXPIRY = 86400  # seconds the latest tokens stay in Redis past their expiry
# deleted only by the replica that holds it: a lock that expired and was
# taken by another replica is not this one's to release
RELEASE = Script(
    script="""
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"""
)


class SharedCredentials:
    def __init__(
        self,
        connection: Callable[[], coredis.Redis[str] | None],
        prefix: str,
        wall: Callable[[], float],
    ) -> None:
        """`connection()` gives the Redis client while connected, else None;
        `wall` the wall clock the tokens' expiries are on."""
        self._connection = connection
        self._prefix = prefix
        self._wall = wall

    def _client(self) -> coredis.Redis[str]:
        client = self._connection()
        if client is None:
            raise SharedUnavailable("Redis is not connected")
        return client

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        client = self._client()
        key = f"{self._prefix}:credential:{name}:lock"
        mine = secrets.token_hex(16)
        with trio.move_on_after(LOCK_WAIT) as waiting:
            while True:
                try:
                    with trio.fail_after(TIMEOUT):
                        taken = await client.set(
                            key, mine, condition=PureToken.NX, px=int(LOCK_TTL * 1000)
                        )
                except (RedisError, OSError, trio.TooSlowError) as error:
                    raise SharedUnavailable(f"Redis did not answer: {error}") from None
                if taken:
                    break
                await trio.sleep(POLL)
        if waiting.cancelled_caught:
            raise SharedUnavailable(f"another replica held the lock of {name} for too long")
        try:
            yield
        finally:
            # a release that fails leaves the lock to expire by itself
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(TIMEOUT),
                contextlib.suppress(RedisError, OSError),
            ):
                await RELEASE(keys=[key], args=[mine], client=client)

    async def latest(self, name: str) -> SharedTokens | None:
        client = self._client()
        try:
            with trio.fail_after(TIMEOUT):
                found = await client.get(f"{self._prefix}:credential:{name}")
        except (RedisError, OSError, trio.TooSlowError) as error:
            raise SharedUnavailable(f"Redis did not answer: {error}") from None
        if not found:
            return None
        try:
            said = json.loads(found)
            return SharedTokens(
                str(said["access"]),
                str(said["refresh"]),
                None if said["expires_at"] is None else float(said["expires_at"]),
                float(said["obtained_at"]),
                tuple(str(digest) for digest in said["lineage"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # not this version's: refreshed anew, and overwritten

    async def publish(self, name: str, tokens: SharedTokens) -> None:
        client = self._client()
        value = json.dumps(
            {
                "access": tokens.access,
                "refresh": tokens.refresh,
                "expires_at": tokens.expires_at,
                "obtained_at": tokens.obtained_at,
                "lineage": list(tokens.lineage),
            }
        )
        expires = tokens.expires_at if tokens.expires_at is not None else self._wall()
        kept = max(int(expires - self._wall()), 0) + KEPT_PAST_EXPIRY
        try:
            with trio.fail_after(TIMEOUT):
                await client.set(f"{self._prefix}:credential:{name}", value, ex=kept)
        except (RedisError, OSError, trio.TooSlowError) as error:
            raise SharedUnavailable(f"Redis did not answer: {error}") from None
