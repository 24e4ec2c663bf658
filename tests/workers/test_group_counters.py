"""Whichever worker answers, /metrics and the admin API count the whole
group, and a worker started again after kill -9 loses none of the counts.
Real processes; each worker shares its counts about once a second, so the
checks poll (bounded), they never sleep a fixed time."""

from __future__ import annotations

import os
import re
import signal

import httpx

from .group import ADMIN, chat, client, config_text, from_each, group, keys, linux_only

pytestmark = linux_only
SERVED = re.compile(
    r'^byok_requests_total\{endpoint="/v1/chat/completions",model="m",'
    r'status="200"\} (\S+)$',
    re.M,
)


def scrape(url: str) -> httpx.Response:
    return httpx.get(f"{url}/metrics", headers=ADMIN, timeout=20)


def served(reply: httpx.Response) -> float:
    found = SERVED.search(reply.text)
    return float(found.group(1)) if found else 0.0


def tokens(reply: httpx.Response) -> int:
    views = reply.json()["models"][0]["targets"][0]["keys"]
    return sum(view["tokens"]["input"] + view["tokens"]["output"] for view in views)


def test_every_worker_counts_the_whole_group_and_a_restart_loses_nothing(tmp_path, simulated):
    config = tmp_path / "byok.toml"
    config.write_text(config_text(simulated.upstream_url, ["one", "two"]))
    with group(config) as workers:
        oai = client(workers.url)
        replies = [chat(oai) for _ in range(12)]
        usage = sum(r.parse().usage.total_tokens for r in replies)
        assert {r.headers["x-byok-worker"] for r in replies} == {"0", "1"}  # both served
        from_each(lambda: scrape(workers.url), lambda reply: served(reply) == 12)
        from_each(lambda: keys(workers.url), lambda reply: tokens(reply) == usage)

        victim = workers.pids[0]
        os.kill(victim, signal.SIGKILL)
        workers.line(rf"worker 0 \(pid {victim}\) was killed by SIGKILL", "the crash")
        workers.started(0)
        # the new worker 0 took over what the old one left: totals never went down
        from_each(lambda: scrape(workers.url), lambda reply: served(reply) == 12)
        chat(oai)
        from_each(lambda: scrape(workers.url), lambda reply: served(reply) == 13)
        from_each(lambda: keys(workers.url), lambda reply: tokens(reply) > usage)
