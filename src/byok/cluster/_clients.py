"""Client keys' rates and budgets, one for the whole cluster.

A client key's ``rpm`` and ``tpm`` are GCRA limits in Redis (``_limits``),
named by its label: every replica takes from the same bucket.  Its budgets
are counters per client and period, a hash per UTC day and per UTC month
(``{prefix}:spent:{label}:{period}``, fields ``tokens`` and ``cost``), that
each replica adds its answers' tokens and cost to; they expire some days
after their period ends.

Admission reads the counters with one script and compares the larger of
Redis's figure and this group's usage ledger with the budget (a Redis that
lost its data does not renew a month the ledger still remembers), then
takes the request from the rates.  Redis away (not connected, or slower than
_limits.TIMEOUT): SharedStateAway, and the proxy decides on its own group's
rates and ledger.  Adding to the counters never waits: a bounded queue feeds
one task, and what cannot be sent is dropped (the ledger still has it).

The tpm bucket takes the request's estimate, as the local one does, but is
not corrected by the answer's usage (GCRA in Redis gives nothing back): a
cluster's tpm errs on the safe side by the estimate's excess.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import cast

import coredis
import trio
from coredis.commands.script import Script
from coredis.exceptions import RedisError

from ..config import ClientKey
from ..gateway.clients import Refusal, month_of, over_budget, over_rate
from ..gateway.runtime import Live
from ._limits import TIMEOUT, ClusterUnavailable, Limiter

log = logging.getLogger("byok.cluster")

QUEUE_SIZE = 10_000  # answers' spending waiting for Redis
KEEP_DAYS = 40  # a period's counters outlive it this long

# KEYS: the day's hash, the month's; -> the day's tokens, the month's tokens and cost
READ = Script(
    script="""
local day = tonumber(redis.call("HGET", KEYS[1], "tokens")) or 0
local month = redis.call("HMGET", KEYS[2], "tokens", "cost")
return {day, tonumber(month[1]) or 0, tostring(tonumber(month[2]) or 0)}
"""
)
# KEYS: the day's hash, the month's; ARGV: tokens, cost, seconds to keep each
ADD = Script(
    script="""
for i, key in ipairs(KEYS) do
  redis.call("HINCRBY", key, "tokens", ARGV[1])
  redis.call("HINCRBYFLOAT", key, "cost", ARGV[2])
  redis.call("EXPIRE", key, ARGV[2 + i])
end
return 1
"""
)


class SharedClientLimits:
    """Live.shared_clients of a replica: see the module doc."""

    def __init__(
        self,
        live: Live,
        limiter: Limiter,
        connection: Callable[[], coredis.Redis[str] | None],
        prefix: str,
    ) -> None:
        """`connection()` gives the Redis client while it is connected, else None."""
        self._live = live
        self._limiter = limiter
        self._connection = connection
        self._prefix = prefix
        self._send, self._receive = trio.open_memory_channel[tuple[str, int, float, float]](
            QUEUE_SIZE
        )

    async def admit(self, client: ClientKey, cost: int, wall: float) -> Refusal | None:
        if client.daily_tokens or client.monthly_tokens or client.monthly_cost:
            day, month, spent = await self._read(client.label, wall)
            local = self._live.runtime.clients.spent(client, wall)
            refusal = over_budget(
                client, max(day, local[0]), max(month, local[1]), max(spent, local[2]), wall
            )
            if refusal is not None:
                return refusal
        label = client.label
        if client.rpm:
            allowed, wait = await self._limiter.allow(
                f"client:{label}:rpm", client.rpm / 60, client.rpm, 1
            )
            if not allowed:
                return over_rate(client, "rpm", wait)
        if client.tpm:
            taken = min(cost, client.tpm)
            allowed, wait = await self._limiter.allow(
                f"client:{label}:tpm", client.tpm / 60, client.tpm, taken
            )
            if not allowed:
                return over_rate(client, "tpm", wait)
        return None

    def spent(self, client: ClientKey, tokens: int, cost: float, wall: float) -> None:
        # a full queue: Redis is away this long; the ledger has it, the budget is this group's
        with contextlib.suppress(trio.WouldBlock):
            self._send.send_nowait((client.label, tokens, cost, wall))

    async def run(self) -> None:
        """Add answers' spending to the counters, until cancelled."""
        async for label, tokens, cost, wall in self._receive:
            client = self._connection()
            if client is None:
                continue  # Redis away: dropped (see the module doc)
            day, month = self._keys(label, wall)
            month_ends = month_of(wall)[1]
            keep_day = 86_400 * (KEEP_DAYS + 1)
            keep_month = math.ceil(month_ends - wall) + 86_400 * KEEP_DAYS
            try:
                with trio.fail_after(TIMEOUT):
                    await ADD(
                        keys=[day, month],
                        args=[str(tokens), repr(cost), str(keep_day), str(keep_month)],
                        client=client,
                    )
            except (RedisError, OSError, trio.TooSlowError) as error:
                log.debug("cluster: a client's spending not added: %s", error)

    async def _read(self, label: str, wall: float) -> tuple[int, int, float]:
        client = self._connection()
        if client is None:
            raise ClusterUnavailable("Redis is not connected")
        try:
            with trio.fail_after(TIMEOUT):
                day, month, cost = cast(
                    "list[int | str]",
                    await READ(keys=list(self._keys(label, wall)), client=client),
                )
        except (RedisError, OSError, trio.TooSlowError) as error:
            raise ClusterUnavailable(f"Redis did not answer: {error}") from None
        return int(day), int(month), float(cost)

    def _keys(self, label: str, wall: float) -> tuple[str, str]:
        when = datetime.fromtimestamp(wall, timezone.utc)
        base = f"{self._prefix}:spent:{label}"
        return f"{base}:{when:%Y-%m-%d}", f"{base}:{when:%Y-%m}"
