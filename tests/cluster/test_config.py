"""The [cluster] table: where Redis is, checked up front, its password a secret."""

from __future__ import annotations

import pytest

from byok.config import ConfigError, Redactor, from_dict, load

PROVIDERS = {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "keys": ["sk-c-1111"]}}
URL = "redis://byok:pw-CLUSTER-secret-1@redis.internal:6380/2"


def with_cluster(cluster: dict, environ: dict | None = None):
    return from_dict({"providers": PROVIDERS, "cluster": cluster}, "byok.toml", environ=environ)


def test_a_config_without_cluster_has_none():
    assert from_dict({"providers": PROVIDERS}).cluster is None


def test_the_table_from_a_file_with_the_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BYOK_TEST_REDIS_URL", URL)
    path = tmp_path / "byok.toml"
    path.write_text(
        '[providers.sim]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'keys = ["sk-c-1111"]\n'
        '[cluster]\nredis = "env:BYOK_TEST_REDIS_URL"\nprefix = "team-a"\nreplica = "eu-1"\n'
    )
    cluster = load(path).cluster
    assert cluster is not None
    assert (cluster.redis, cluster.prefix, cluster.replica) == (URL, "team-a", "eu-1")


def test_the_url_from_a_file_and_the_defaults(tmp_path):
    secret = tmp_path / "redis-url"
    secret.write_text("rediss://redis.internal:6379\n")
    cluster = with_cluster({"redis": f"file:{secret}"}).cluster
    assert cluster is not None
    assert (cluster.redis, cluster.prefix, cluster.replica) == (
        "rediss://redis.internal:6379",
        "byok",
        None,
    )


def test_the_password_never_shows_and_is_redacted_like_a_key():
    config = with_cluster({"redis": URL})
    assert config.cluster is not None
    assert config.cluster.redis_shown == "redis://byok:***@redis.internal:6380/2"
    assert "pw-CLUSTER-secret-1" not in repr(config.cluster)
    described = config.describe()
    shown = "cluster: redis://byok:***@redis.internal:6380/2, prefix 'byok', replica hostname:pid"
    assert shown in described
    assert "pw-CLUSTER-secret-1" not in described
    redact = Redactor(config.secrets())
    assert redact("AUTH failed for pw-CLUSTER-secret-1") == "AUTH failed for [redacted]"
    plain = with_cluster({"redis": "redis://h:1"}).cluster
    assert plain is not None
    assert plain.redis_shown == "redis://h:1"


@pytest.mark.parametrize(
    "url",
    [
        "http://pw-CLUSTER-secret-1@redis.internal",
        "redis://",
        "redis://:pw-CLUSTER-secret-1@redis.internal:99999",
        "redis://:pw-CLUSTER-secret-1@redis.internal/x",
        "unix://",
        "pw-CLUSTER-secret-1",
    ],
)
def test_a_bad_url_is_located_and_never_shown(url):
    with pytest.raises(ConfigError) as caught:
        with_cluster({"redis": url})
    message = str(caught.value)
    assert message.startswith("byok.toml: [cluster] redis: expected a Redis URL: redis://")
    assert "pw-CLUSTER-secret-1" not in message


@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        ({}, "byok.toml: [cluster] redis: missing"),
        ({"redis": "env:BYOK_NOT_SET_ANYWHERE"}, "environment variable BYOK_NOT_SET_ANYWHERE"),
        ({"redis": "redis://h", "prefix": "a b"}, "[cluster] prefix: expected 1 to 64 letters"),
        ({"redis": "redis://h", "prefix": ""}, "[cluster] prefix: expected 1 to 64 letters"),
        ({"redis": "redis://h", "replica": ""}, "[cluster] replica: expected a name"),
        ({"redis": "redis://h", "channel": "x"}, "[cluster] channel: unknown field"),
    ],
)
def test_other_mistakes_are_located(cluster, says):
    with pytest.raises(ConfigError) as caught:
        with_cluster(cluster, environ={})
    assert says in str(caught.value)
