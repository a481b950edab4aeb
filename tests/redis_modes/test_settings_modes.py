"""The Redis topology settings: validation with errors naming the key, several
addresses only where a topology lists them, every address's password checked
and redacted, the sentinels' password also from a file, and the Redis
backends built for the topology the settings name (clients connect lazily, so
no Redis is needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from collab.leases import make_lease_store
from collab.leases.redis import RedisLeaseStore
from collab.presence import make_presence_store
from collab.registry import make_session_registry
from collab.registry.redis import RedisSessionRegistry
from collab.settings import Settings, SettingsError

JWT = "k7Qv2pXr9LmZ4tWb8NcF3hJd6YsGa1Ue5RiOo0Pq"
BASE = {"COLLAB_JWT_SECRET": JWT, "COLLAB_DATABASE_URL": "postgresql://u:pw8Jr@db/collab"}
SENTINELS = "redis://:pw1Xz@s1:26379,redis://:pw1Xz@s2:26379,redis://:pw1Xz@s3:26379"


def settings(**env: str) -> Settings:
    return Settings.from_env({**BASE, **{f"COLLAB_{k}": v for k, v in env.items()}})


def test_standalone_is_the_default_and_takes_one_address() -> None:
    assert settings(REDIS_URL="redis://r:6379/0").redis_mode == "standalone"
    with pytest.raises(SettingsError, match=r"COLLAB_REDIS_URL.*sentinel or cluster"):
        settings(REDIS_URL="redis://a:6379,redis://b:6379")


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"REDIS_MODE": "replicated", "REDIS_URL": "redis://a"}, "COLLAB_REDIS_MODE"),
        ({"REDIS_MODE": "sentinel", "REDIS_URL": SENTINELS}, "COLLAB_REDIS_SENTINEL_MASTER"),
        ({"REDIS_MODE": "cluster"}, "COLLAB_REDIS_MODE"),
        ({"REDIS_MODE": "cluster", "REDIS_URL": "redis://a:1,unix:///tmp/r"}, "COLLAB_REDIS_URL"),
        (
            {"REDIS_MODE": "cluster", "REDIS_URL": "redis://:x@a:1,redis://:CHANGE_ME@b:1"},
            "COLLAB_REDIS_URL",
        ),
        (
            {
                "REDIS_MODE": "sentinel",
                "REDIS_URL": SENTINELS,
                "REDIS_SENTINEL_MASTER": "m",
                "REDIS_SENTINEL_PASSWORD": "change-me",
            },
            "COLLAB_REDIS_SENTINEL_PASSWORD",
        ),
    ],
)
def test_bad_topologies_are_refused_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        settings(**env)


def test_every_address_is_redacted_and_the_sentinel_password_masked() -> None:
    s = settings(REDIS_MODE="sentinel", REDIS_URL=SENTINELS, REDIS_SENTINEL_MASTER="m",
                 REDIS_SENTINEL_PASSWORD="sPw9x")  # fmt: skip
    shown = s.redacted()
    assert "pw1Xz" not in shown["redis_url"] and shown["redis_url"].count("***") == 3
    assert shown["redis_sentinel_password"] == "***"


def test_the_sentinel_password_may_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel-password"
    secret.write_text("sPw9x\n")
    s = settings(REDIS_MODE="sentinel", REDIS_URL=SENTINELS, REDIS_SENTINEL_MASTER="m",
                 REDIS_SENTINEL_PASSWORD_FILE=str(secret))  # fmt: skip
    assert s.redis_sentinel_password == "sPw9x"


async def test_cluster_settings_build_cluster_clients_everywhere() -> None:
    s = settings(REDIS_MODE="cluster", REDIS_URL="redis://:k1@n1:7000,redis://:k1@n2:7001")
    leases, presence = make_lease_store(s), make_presence_store(s)
    registry = make_session_registry(s)
    try:
        assert isinstance(leases, RedisLeaseStore) and isinstance(leases._redis, RedisCluster)
        assert isinstance(presence._redis, RedisCluster)  # type: ignore[attr-defined]
        seeds = [(n.host, n.port) for n in leases._redis.nodes_manager.startup_nodes.values()]  # type: ignore[union-attr]
        assert sorted(seeds) == [("n1", 7000), ("n2", 7001)]
        assert isinstance(registry, RedisSessionRegistry)
    finally:
        await leases.close()
        await presence.close()


async def test_sentinel_settings_find_the_master_through_the_sentinels() -> None:
    s = settings(REDIS_MODE="sentinel", REDIS_URL=SENTINELS, REDIS_SENTINEL_MASTER="m1",
                 REDIS_SENTINEL_PASSWORD="sPw9x")  # fmt: skip
    leases = make_lease_store(s)
    try:
        assert isinstance(leases, RedisLeaseStore)
        pool = leases._redis.connection_pool
        assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "m1"
        assert pool.connection_kwargs["password"] == "pw1Xz"  # the master's, from the URLs
        sentinels = pool.sentinel_manager.sentinels
        assert [(c.connection_pool.connection_kwargs["host"],
                 c.connection_pool.connection_kwargs["port"]) for c in sentinels] == [
            ("s1", 26379), ("s2", 26379), ("s3", 26379)]  # fmt: skip
        assert all(c.connection_pool.connection_kwargs["password"] == "sPw9x" for c in sentinels)
    finally:
        await leases.close()
