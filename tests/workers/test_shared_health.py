"""The workers of a group keep their keys' health in one table: a key that
the upstream rate-limited through one worker gets no request through any
worker until its Retry-After has passed, and a worker started again after
kill -9 finds it cooling too.  Real processes; the simulated upstream's
log of requests is the witness (its clock, like every byok's, is
time.monotonic())."""

from __future__ import annotations

import os
import signal
import time

from .group import (
    KEYS,
    answered,
    chat,
    client,
    config_text,
    from_each,
    group,
    keys,
    linux_only,
    wait_until,
)

ONE, TWO, _ = KEYS
pytestmark = linux_only


def arrivals(simulated, secret: str) -> list[float]:
    """When each request for `secret` reached the upstream."""
    return [seen.at for seen in simulated.simulator.seen if seen.key == secret]


def key_view(reply, label: str) -> dict:
    views = reply.json()["models"][0]["targets"][0]["keys"]
    return next(view for view in views if view["label"] == label)


def test_a_key_rate_limited_through_one_worker_rests_in_every_worker(tmp_path, simulated):
    retry_after = 10.0  # room for the requests below on a slow machine
    simulated.simulator.set(ONE, mode="429", retry_after=retry_after)
    config = tmp_path / "byok.toml"
    # priority: every worker asks "one" first whenever it is ready
    config.write_text(config_text(simulated.upstream_url, ["one", "two"], strategy="priority"))
    with group(config) as workers:
        oai = client(workers.url)
        first = chat(oai)
        assert first.headers["x-byok-key"] == "two"
        assert first.headers["x-byok-attempts"] == "2"  # "one" answered 429 first
        [limited] = arrivals(simulated, ONE)
        until = limited + retry_after

        # within the Retry-After, each worker serves with "two" without asking "one"
        replies = from_each(lambda: chat(oai), lambda reply: reply.headers["x-byok-key"] == "two")
        assert time.monotonic() < until, "the requests took longer than the Retry-After"
        assert arrivals(simulated, ONE) == [limited]
        # and each worker's admin API shows the one table: cooling, one 429 in all
        views = from_each(lambda: keys(workers.url), lambda reply: True)
        for reply in views.values():
            view = key_view(reply, "one")
            assert view["state"] == "cooldown"
            assert view["rate_limits"] == 1
            assert 0 < view["cooldown_remaining"] <= retry_after

        # once it has passed, "one" serves again, and not a moment before
        simulated.simulator.set(ONE)

        def one_serves() -> bool:
            time.sleep(0.1)
            return chat(oai).headers["x-byok-key"] == "one"

        wait_until(one_serves, "the key back after its Retry-After", seconds=retry_after + 20)
    later = arrivals(simulated, ONE)[1:]
    assert later
    assert min(later) >= until
    assert {answered(reply) for reply in replies.values()} == {0, 1}


def test_a_worker_started_again_finds_the_key_still_cooling(tmp_path, simulated):
    simulated.simulator.set(ONE, mode="429", retry_after=60)
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one", "two"], strategy="priority"))
    with group(config) as workers:
        oai = client(workers.url)
        assert chat(oai).headers["x-byok-key"] == "two"
        victim = workers.pids[0]
        os.kill(victim, signal.SIGKILL)
        workers.line(rf"worker 0 \(pid {victim}\) was killed by SIGKILL", "the crash")
        workers.started(0)
        # the new worker 0 and worker 1: both with "two", "one" never asked again
        from_each(lambda: chat(oai), lambda reply: reply.headers["x-byok-key"] == "two")
        assert len(arrivals(simulated, ONE)) == 1
        assert len(arrivals(simulated, TWO)) >= 3
