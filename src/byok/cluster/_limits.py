"""Rate limits that hold across replicas: GCRA, checked atomically in Redis.

The generic cell rate algorithm keeps one number per limit, its theoretical
arrival time (TAT): when the limit would be back to empty if nothing more
came.  A request of `cost` units moves it `cost` emission intervals (1/rate)
later; the request passes if the new TAT is at most `burst` intervals ahead
of now, else it is refused with the time until it would pass, and nothing is
taken.  One script, one key, Redis's own clock: every replica sees the same
limit whatever its host's clock says, and two replicas can never both take
the last unit.  The key expires when the limit is back to empty, so idle
limits cost Redis nothing.

The capacity limits of byok (requests and tokens per minute, budgets) call
``Limiter.allow``; when Redis cannot be reached it raises
``ClusterUnavailable`` at once, and the caller falls back to its own limits:
nothing on the request path waits for a Redis that is away.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import coredis
import trio
from coredis.commands.script import Script
from coredis.exceptions import RedisError

from ..gateway.clients import SharedStateAway

# KEYS[1]: the limit's TAT, in microseconds of Redis's clock
# ARGV: the emission interval and the burst tolerance (microseconds), the cost
GCRA = Script(
    script="""
local interval, tolerance, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = math.max(tonumber(redis.call("GET", KEYS[1])) or now, now)
local after = tat + cost * interval
local allowed_at = after - tolerance
if allowed_at > now then
  return {0, math.ceil(allowed_at - now)}
end
redis.call("SET", KEYS[1], string.format("%.0f", after), "PX", math.ceil((after - now) / 1000) + 1)
return {1, 0}
"""
)

TIMEOUT = 1.0  # a limit check slower than this counts as Redis being away


class ClusterUnavailable(SharedStateAway):
    """Redis cannot answer now: decide on local state instead."""


class Limiter:
    """Named rate limits shared by every replica of one Redis and prefix."""

    def __init__(self, connection: Callable[[], coredis.Redis[str] | None], prefix: str) -> None:
        """`connection()` gives the Redis client while it is connected, else None."""
        self._connection = connection
        self._prefix = prefix

    async def allow(
        self, name: str, rate: float, burst: float, cost: float = 1.0
    ) -> tuple[bool, float]:
        """Take `cost` units from the limit `name` (`rate` units a second, up
        to `burst` at once) if it has them: (True, 0.0); else nothing is taken
        and (False, seconds until it would have them).  ClusterUnavailable
        when Redis is not connected or does not answer within TIMEOUT."""
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of units a second; got {rate!r}")
        if not (cost >= 0 and math.isfinite(cost)):
            raise ValueError(f"cost must be a number of units, 0 or more; got {cost!r}")
        if not (burst >= cost and math.isfinite(burst)):
            raise ValueError(
                f"burst ({burst!r}) must be a number at least the cost ({cost!r}): "
                "a cost above the burst could never pass"
            )
        client = self._connection()
        if client is None:
            raise ClusterUnavailable("Redis is not connected")
        interval = 1e6 / rate
        key = f"{self._prefix}:rate:{name}"
        try:
            with trio.fail_after(TIMEOUT):
                args = [repr(interval), repr(burst * interval), repr(cost)]
                answer = cast("list[int]", await GCRA(keys=[key], args=args, client=client))
        except (RedisError, OSError, trio.TooSlowError) as error:
            raise ClusterUnavailable(f"Redis did not answer: {error}") from None
        allowed, wait = answer
        return bool(allowed), int(wait) / 1e6
