"""Replicas behind one Redis: what one learns about a key, the others honour.

Two or three replicas of byok (tests/cluster/fleet.py) in front of one
simulated upstream, and a real redis-server (conftest.py).  The upstream's
request log proves what a replica did not send."""

from __future__ import annotations

import logging
import socket

import trio

from .conftest import RedisServer
from .fleet import ALPHA, BRAVO, WAIT, Node, eventually, open_fleet


async def test_a_429_at_one_replica_is_honoured_by_the_other(redis_server, prefix):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")
        fleet.simulator.set(ALPHA, mode="429", retry_after=300)
        reply = await a.ask()
        assert reply.status_code == 200
        assert reply.headers["x-byok-key"] == "bravo"  # alpha answered 429, bravo served
        assert a.state("alpha") == "cooldown"
        await eventually(lambda: b.state("alpha") == "cooldown", "B cools alpha")
        # the same deadline, give or take the trip: B cools it for A's 300 s
        assert 290 < b.remaining("alpha") <= 300
        fleet.simulator.set(ALPHA)  # alpha would answer now: B must not ask it
        tried = fleet.simulator.requests_for(ALPHA)
        for _ in range(5):
            reply = await b.ask()
            assert reply.status_code == 200
            assert reply.headers["x-byok-key"] == "bravo"
        assert fleet.simulator.requests_for(ALPHA) == tried


async def test_an_operator_disable_at_one_replica_disables_the_key_at_the_other(
    redis_server, prefix
):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")
        await a.act("alpha", "disable")
        await eventually(lambda: b.state("alpha") == "disabled", "B disables alpha")
        tried = fleet.simulator.requests_for(ALPHA)
        assert (await b.ask()).headers["x-byok-key"] == "bravo"
        assert fleet.simulator.requests_for(ALPHA) == tried
        await b.act("alpha", "enable")  # either replica's operator: every replica follows
        await eventually(lambda: a.state("alpha") == "ready", "A enables alpha")
        assert b.state("alpha") == "ready"
        assert (await a.ask()).headers["x-byok-key"] == "alpha"


async def test_an_operator_restore_wins_over_a_cooldown_and_a_block(redis_server, prefix):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")
        fleet.simulator.set(ALPHA, mode="429", retry_after=300)
        await a.ask()
        await eventually(lambda: b.state("alpha") == "cooldown", "B cools alpha")
        fleet.simulator.set(ALPHA)
        await b.act("alpha", "restore")
        await eventually(lambda: a.state("alpha") == "ready", "A restores alpha")
        assert (await a.ask()).headers["x-byok-key"] == "alpha"

        fleet.simulator.set(BRAVO, mode="401")
        await a.act("alpha", "disable")  # so that the next request tries bravo
        assert (await a.ask()).headers["x-byok-key"] == "charlie"
        await eventually(lambda: b.state("bravo") == "blocked", "B blocks bravo")
        await a.act("bravo", "restore")
        await eventually(lambda: b.state("bravo") == "ready", "B restores bravo")


async def test_a_block_is_re_validated_once_for_every_replica(redis_server, prefix):
    """B asks a blocked key again only every 10 minutes; A every second: A's
    check, when the key works again, brings it back on B as well."""
    async with open_fleet(redis_server.url, prefix) as fleet:
        a = await fleet.start("A", revalidate_blocked=1)
        b = await fleet.start("B", revalidate_blocked=600)
        fleet.simulator.set(ALPHA, mode="401")
        assert (await a.ask()).headers["x-byok-key"] == "bravo"
        await eventually(lambda: b.state("alpha") == "blocked", "B blocks alpha")
        # B asks the key again itself, on its own schedule
        assert b.app.live.revalidator.next_check("sim", "alpha") is not None
        fleet.simulator.set(ALPHA)
        await eventually(lambda: b.state("alpha") == "ready", "A's check restores alpha on B")
        assert a.state("alpha") == "ready"


async def test_a_replica_started_later_loads_the_state_before_it_serves(redis_server, prefix):
    async with open_fleet(redis_server.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")
        fleet.simulator.set(ALPHA, mode="429", retry_after=300)
        await a.ask()
        await b.act("bravo", "disable")
        await eventually(lambda: a.state("bravo") == "disabled", "A disables bravo")
        fleet.simulator.set(ALPHA)
        tried = {secret: fleet.simulator.requests_for(secret) for secret in (ALPHA, BRAVO)}
        c = await fleet.start("C")
        # no wait: start() returned once C had synced, before it listened
        assert c.state("alpha") == "cooldown"
        assert 290 < c.remaining("alpha") <= 300
        assert c.state("bravo") == "disabled"
        assert (await c.ask()).headers["x-byok-key"] == "charlie"
        assert {s: fleet.simulator.requests_for(s) for s in (ALPHA, BRAVO)} == tried


async def test_redis_killed_mid_load_costs_no_request_and_the_states_converge_when_back(
    own_redis: RedisServer, prefix, caplog
):
    caplog.set_level(logging.INFO, logger="byok.cluster")
    own_redis.start()
    answers: list[int] = []
    inflight = {"A": 0, "B": 0}
    gates = {"A": trio.Event(), "B": trio.Event()}  # set: that replica's load runs
    async with open_fleet(own_redis.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")

        async def load(node: Node) -> None:
            while True:
                # checked again after each wait: a wait can end after the gate was replaced
                while not gates[node.name].is_set():
                    await gates[node.name].wait()
                inflight[node.name] += 1
                answers.append((await node.ask()).status_code)
                inflight[node.name] -= 1
                await trio.sleep(0.01)

        for node in (a, b):
            gates[node.name].set()
            fleet.nursery.start_soon(load, node)
        await eventually(lambda: len(answers) >= 20, "the load runs")

        own_redis.kill()
        await eventually(lambda: not (a.replica.connected or b.replica.connected), "Redis gone")
        assert await a.metric("byok_cluster_connected") == 0
        assert await b.metric("byok_cluster_connected") == 0
        served = len(answers)
        await eventually(lambda: len(answers) >= served + 20, "both serve on without Redis")

        # while Redis is away: a 429 at A that only A sees (B's load waits),
        # and an operator's disable at B
        gates["B"] = trio.Event()
        await eventually(lambda: inflight["B"] == 0, "B's load pauses")
        fleet.simulator.set(ALPHA, mode="429", retry_after=300)
        await eventually(lambda: a.state("alpha") == "cooldown", "A cools alpha")
        fleet.simulator.set(ALPHA)
        await b.act("charlie", "disable")
        assert b.state("alpha") == "ready"
        assert a.state("charlie") == "ready"
        gates["B"].set()

        own_redis.start()  # empty: a restarted Redis kept nothing
        await eventually(lambda: b.state("alpha") == "cooldown", "B hears of A's 429")
        await eventually(lambda: a.state("charlie") == "disabled", "A hears of B's disable")
        assert 280 < b.remaining("alpha") <= 300
        assert await a.metric("byok_cluster_connected") == 1
        assert await b.metric("byok_cluster_connected") == 1
        # a replica that starts now finds both states in Redis
        c = await fleet.start("C")
        assert (c.state("alpha"), c.state("charlie")) == ("cooldown", "disabled")

    assert len(answers) > 40
    assert set(answers) == {200}  # not one request failed, on either replica
    said = [r.getMessage() for r in caplog.records if r.name == "byok.cluster"]
    away = [line for line in said if "unreachable" in line]
    assert len(away) == 2, away  # once per replica
    back = [line for line in said if "shares key states" in line and " after " in line]
    assert len(back) == 2, back


async def test_a_redis_that_lost_its_data_gets_every_state_back_from_the_replicas(
    own_redis: RedisServer, prefix
):
    own_redis.start()
    async with open_fleet(own_redis.url, prefix) as fleet:
        a = await fleet.start("A")
        fleet.simulator.set(ALPHA, mode="429", retry_after=300)
        await a.ask()
        await a.act("bravo", "disable")
        with trio.fail_after(WAIT):  # both in Redis, long before it goes
            while a.replica.client is None or await a.replica.client.hlen(f"{prefix}:keys") < 2:
                await trio.sleep(0.01)
        own_redis.kill()
        await eventually(lambda: not a.replica.connected, "A sees Redis gone")
        own_redis.start()  # empty: nothing of A's is queued, A publishes all it holds
        await eventually(lambda: a.replica.connected, "A is back")
        c = await fleet.start("C")
        assert (c.state("alpha"), c.state("bravo")) == ("cooldown", "disabled")
        assert 280 < c.remaining("alpha") <= 300


async def test_a_redis_that_stops_answering_is_noticed_and_costs_no_request(
    own_redis: RedisServer, prefix, caplog
):
    """Redis paused (every client's commands wait, as behind a silent network):
    each replica says so once, serves on, and connects again once it answers."""
    caplog.set_level(logging.INFO, logger="byok.cluster")
    own_redis.start()
    answers: list[int] = []
    async with open_fleet(own_redis.url, prefix) as fleet:
        a, b = await fleet.start("A"), await fleet.start("B")
        with socket.create_connection(("127.0.0.1", own_redis.port)) as connection:
            connection.sendall(b"CLIENT PAUSE 5000 ALL\r\n")
            assert connection.recv(16) == b"+OK\r\n"
        with trio.fail_after(WAIT):  # the heartbeat notices within 3 s
            while a.replica.connected or b.replica.connected:
                answers.append((await a.ask()).status_code)
                answers.append((await b.ask()).status_code)
                await trio.sleep(0.05)
        assert await a.metric("byok_cluster_connected") == 0
        await eventually(lambda: a.replica.connected and b.replica.connected, "both back")
        await a.act("alpha", "disable")
        await eventually(lambda: b.state("alpha") == "disabled", "B hears of A again")
    assert answers
    assert set(answers) == {200}
    said = [r.getMessage() for r in caplog.records if r.name == "byok.cluster"]
    away = [line for line in said if "unreachable" in line]
    assert len(away) == 2, away
    assert all("no answer within" in line for line in away)
    back = [line for line in said if "shares key states" in line and " after " in line]
    assert len(back) == 2, back


async def test_a_replica_that_finds_no_redis_serves_at_once_and_catches_up(
    own_redis: RedisServer, prefix, caplog
):
    caplog.set_level(logging.INFO, logger="byok.cluster")
    async with open_fleet(own_redis.url, prefix) as fleet:
        a = await fleet.start("A")
        assert not a.replica.connected
        assert (await a.ask()).status_code == 200
        assert await a.metric("byok_cluster_connected") == 0
        # one line, and the refusal's: it did not wait for SYNC_TIMEOUT ("did not answer")
        [said] = [r.getMessage() for r in caplog.records if r.name == "byok.cluster"]
        assert "unreachable" in said
        assert "serving on this replica's key states" in said
        await a.act("bravo", "disable")  # queued meanwhile
        own_redis.start()
        await eventually(lambda: a.replica.connected, "A connects")
        b = await fleet.start("B")
        assert b.state("bravo") == "disabled"


async def test_no_secret_reaches_redis_or_the_log(tmp_path, prefix, caplog):
    caplog.set_level(logging.INFO)
    password = "pw-REDIS-secret-77"
    server = RedisServer(tmp_path, password=password)
    server.start()
    try:
        async with open_fleet(server.url, prefix) as fleet:
            a, b = await fleet.start("A"), await fleet.start("B")
            fleet.simulator.set(ALPHA, mode="429", retry_after=300)
            await a.ask()
            await a.act("bravo", "disable")
            await eventually(lambda: b.state("bravo") == "disabled", "B disables bravo")
            client = b.replica.client
            assert client is not None
            stored = await client.hgetall(f"{prefix}:keys")
            server.kill()
            await eventually(lambda: not a.replica.connected, "A sees Redis gone")
    finally:
        server.kill()
    assert len(stored) == 2
    text = " ".join([*stored.keys(), *stored.values()])
    assert "alpha" in text
    assert "fp-" in text
    logged = caplog.text
    assert "redis://:***@127.0.0.1" in logged
    for secret in [*fleet.simulator.keys, password]:
        assert secret not in text
        assert secret not in logged
