"""The GCRA limit in Redis (byok.cluster.Limiter): one limit whatever replica
asks.  Real Redis, on its own clock: the rates here are slow enough (one unit
every 100 s) that nothing comes back during a test, and the one test of a
limit coming back waits exactly the time the limit named."""

from __future__ import annotations

import pytest
import trio

from byok.cluster import ClusterUnavailable, Limiter

from .fleet import connected

SLOW = 0.01  # a unit every 100 s


async def test_a_burst_passes_then_the_limit_says_how_long_to_wait(redis_server, prefix):
    async with connected(redis_server.url) as client:
        limiter = Limiter(lambda: client, prefix)
        for _ in range(3):
            assert await limiter.allow("rpm", rate=SLOW, burst=3) == (True, 0.0)
        allowed, wait = await limiter.allow("rpm", rate=SLOW, burst=3)
        assert not allowed
        assert 99 < wait <= 100  # one unit's time, less what passed since the first


async def test_a_cost_takes_that_many_units_and_a_refusal_takes_none(redis_server, prefix):
    async with connected(redis_server.url) as client:
        limiter = Limiter(lambda: client, prefix)
        assert (await limiter.allow("tpm", rate=SLOW, burst=5, cost=3))[0]
        allowed, wait = await limiter.allow("tpm", rate=SLOW, burst=5, cost=3)
        assert not allowed
        assert 99 < wait <= 100  # 6 units asked of 5: one unit short
        assert (await limiter.allow("tpm", rate=SLOW, burst=5, cost=2))[0]  # the refusal took none
        assert not (await limiter.allow("tpm", rate=SLOW, burst=5, cost=1))[0]
        assert await limiter.allow("tpm", rate=SLOW, burst=5, cost=0) == (True, 0.0)


async def test_replicas_share_one_limit_and_never_both_take_the_last_unit(redis_server, prefix):
    """Two replicas, each with its own connection, ask 20 times at once for a
    limit of 7: exactly 7 pass."""
    passed: list[bool] = []
    async with connected(redis_server.url) as first, connected(redis_server.url) as second:
        limiters = [Limiter(lambda: first, prefix), Limiter(lambda: second, prefix)]

        async def ask(limiter: Limiter) -> None:
            passed.append((await limiter.allow("shared", rate=SLOW, burst=7))[0])

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(ask, limiters[n % 2])
    assert len(passed) == 20
    assert passed.count(True) == 7


async def test_limits_are_apart_by_name_and_by_prefix(redis_server, prefix):
    async with connected(redis_server.url) as client:
        ours, theirs = Limiter(lambda: client, prefix), Limiter(lambda: client, prefix + "-b")
        assert (await ours.allow("a", rate=SLOW, burst=1))[0]
        assert not (await ours.allow("a", rate=SLOW, burst=1))[0]
        assert (await ours.allow("b", rate=SLOW, burst=1))[0]
        assert (await theirs.allow("a", rate=SLOW, burst=1))[0]


async def test_a_refused_request_passes_once_the_wait_is_over(redis_server, prefix):
    async with connected(redis_server.url) as client:
        limiter = Limiter(lambda: client, prefix)
        assert (await limiter.allow("fast", rate=20, burst=1))[0]
        allowed, wait = await limiter.allow("fast", rate=20, burst=1)
        assert not allowed
        assert 0 < wait <= 0.05
        await trio.sleep(wait)
        assert (await limiter.allow("fast", rate=20, burst=1))[0]


async def test_an_idle_limit_leaves_nothing_in_redis(redis_server, prefix):
    async with connected(redis_server.url) as client:
        limiter = Limiter(lambda: client, prefix)
        await limiter.allow("idle", rate=SLOW, burst=1)
        ttl = await client.pttl(f"{prefix}:rate:idle")
        assert 99_000 < ttl <= 100_001  # gone when the limit is back to empty


async def test_without_redis_the_limit_is_unavailable_at_once():
    limiter = Limiter(lambda: None, "p")
    with pytest.raises(ClusterUnavailable, match="not connected"):
        await limiter.allow("x", rate=1, burst=1)


async def test_a_redis_that_does_not_answer_makes_the_limit_unavailable(own_redis, prefix):
    own_redis.start()
    async with connected(own_redis.url) as client, connected(own_redis.url) as other:
        limiter = Limiter(lambda: client, prefix)
        assert (await limiter.allow("x", rate=1, burst=1))[0]
        await other.client_pause(3000)  # every client's commands wait 3 s: a Redis stuck
        # an answer would come after the pause: the error says it gave up before
        with pytest.raises(ClusterUnavailable, match="Redis did not answer"):
            await limiter.allow("x", rate=1, burst=1)


@pytest.mark.parametrize(
    ("rate", "burst", "cost", "says"),
    [
        (0, 1, 1, "rate must be a positive number"),
        (float("inf"), 1, 1, "rate must be a positive number"),
        (1, 1, -1, "cost must be a number of units"),
        (1, 2, 3, "a cost above the burst could never pass"),
        (1, float("nan"), 1, "a cost above the burst could never pass"),
    ],
)
async def test_bad_arguments_are_refused_before_redis_is_asked(rate, burst, cost, says):
    limiter = Limiter(lambda: None, "p")  # would raise ClusterUnavailable if asked
    with pytest.raises(ValueError, match=says):
        await limiter.allow("x", rate=rate, burst=burst, cost=cost)
