"""`byok serve` with [cluster]: a real process that takes Redis's key states
before it listens, and listens at once when Redis is away."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import trio

from byok.cluster import serve_cluster
from byok.config import from_dict
from byok.gateway.runtime import Live

from ..cli.running import running
from ..cli.test_cli import free_port
from ..cli.test_operating_cli import wait_for
from .conftest import RedisServer
from .fleet import ADMIN, ADMIN_KEY, SECRETS, tables


def config_file(tmp_path: Path, redis: str, prefix: str) -> tuple[Path, int]:
    port = free_port()
    keys = ", ".join(f'{{ key = "{k}", label = "{v}" }}' for k, v in SECRETS.items())
    path = tmp_path / "byok.toml"
    path.write_text(
        f'[server]\nport = {port}\nshutdown_grace = 1\nadmin_keys = ["{ADMIN_KEY}"]\n'
        f'[providers.sim]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nkeys = [{keys}]\n'
        '[models.m]\ntargets = ["sim/up"]\n'
        f'[cluster]\nredis = "{redis}"\nprefix = "{prefix}"\nreplica = "served"\n'
    )
    return path, port


def another_replica_disables(redis: str, prefix: str, label: str) -> None:
    """A replica in this process disables `label`, as its operator would, and
    stops once Redis holds it."""

    async def main() -> None:
        config = from_dict(tables("http://127.0.0.1:9", redis, prefix, "other"), "test")
        assert config.cluster is not None
        live = Live(config)
        async with trio.open_nursery() as nursery:
            replica = await nursery.start(serve_cluster, live, config.cluster)
            assert live.credentials.shared is not None  # refreshes under the cluster's lock
            live.runtime.router.pool("sim", "up").selector.disable(label)
            live.key_changed("sim", label, None, "disabled")
            held: dict[str, str] = {}

            async def look() -> None:
                while not held:
                    assert replica.client is not None
                    held.update(await replica.client.hgetall(f"{prefix}:keys"))
                    await trio.sleep(0.01)

            with trio.fail_after(10):
                await look()
            nursery.cancel_scope.cancel()

    trio.run(main)


def key_states(port: int) -> dict[str, str]:
    view = httpx.get(f"http://127.0.0.1:{port}/admin/keys", headers=ADMIN).json()
    [model] = view["models"]
    return {k["label"]: k["state"] for k in model["targets"][0]["keys"]}


def test_serve_takes_the_cluster_states_before_it_listens(redis_server, prefix, tmp_path):
    another_replica_disables(redis_server.url, prefix, "bravo")
    config, port = config_file(tmp_path, redis_server.url, prefix)
    with running("serve", "--config", str(config)) as (process, _, err):
        lines = err.until(lambda line: "listening on" in line, "the listening line")
        synced = [n for n, line in enumerate(lines) if "shares key states" in line]
        assert len(synced) == 1, lines
        assert "replica served" in lines[synced[0]]
        assert "(1 key state(s) taken from it)" in lines[synced[0]]
        assert synced[0] < len(lines) - 1  # before the listening line
        # the first answer it gives already knows
        assert key_states(port) == {"alpha": "ready", "bravo": "disabled", "charlie": "ready"}
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=ADMIN).text
        assert "byok_cluster_connected 1.0" in metrics
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0


def test_serve_listens_at_once_when_redis_is_away_and_says_so(own_redis: RedisServer, tmp_path):
    config, port = config_file(tmp_path, own_redis.url, "away")  # nothing listens there yet
    with running("serve", "--config", str(config)) as (process, _, err):
        lines = err.until(lambda line: "listening on" in line, "the listening line")
        said = [line for line in lines if "cluster:" in line]
        assert len(said) == 1, lines
        assert "unreachable" in said[0]
        assert "serving on this replica's key states" in said[0]
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
        own_redis.start()

        def connected() -> bool:
            page = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=ADMIN).text
            return "byok_cluster_connected 1.0" in page

        wait_for(connected, "serve did not connect to Redis once it was there")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert "shares key states through Redis" in err.rest()
