"""The chart's Redis topologies: the bundled Redis in Sentinel mode (the
production profiles' default) and the external Redis's modes. The app's
settings are built from the rendered environment and validated by the server's
own ``Settings``, so a topology the server would refuse cannot render."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python
import pytest

from collab.settings import Settings
from tests.deploy import helm_support as hs

REDIS = "notes-collab-redis"
DOMAIN = f"{REDIS}.{hs.NAMESPACE}.svc"


@pytest.fixture(scope="module")
def bundled() -> list[hs.Doc]:
    return hs.render(hs.ci_profiles()["bundled"])


def _app_settings(docs: list[hs.Doc], secrets: dict[str, str]) -> Settings:
    """The server's settings from the app container's environment, with the
    Secret's values put where the pod would have them."""
    env: dict[str, str] = {}
    for name, item in hs.env_of(hs.app_container(docs)).items():
        if "value" in item:
            env[name] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif "secretKeyRef" in item.get("valueFrom", {}):
            key = item["valueFrom"]["secretKeyRef"]["key"]
            if key in secrets:
                env[name] = secrets[key]
    return Settings.from_env({k: v for k, v in env.items() if k.startswith("COLLAB_")})


SECRETS = {
    "jwt-secret": "k7Qv2pXr9LmZ4tWb8NcF3hJd6YsGa1Ue5RiOo0Pq",
    "database-password": "dbpw4Zq8", "redis-password": "rpw9Xk2L",
    "redis-url": "rediss://:key7Hq@cache.redis.cache.windows.net:6380/0",
    "database-url": "postgresql://u:pw8Jr@db.postgres.database.azure.com:5432/collab",
    "password": "cnpgPw3Tz", "bootstrap-admin-password": "adm1nPw-Qz7Lk2",
}  # fmt: skip


@pytest.mark.parametrize("profile", ["bundled", "cloudnativepg"])
def test_production_profiles_run_redis_behind_three_sentinels(profile: str) -> None:
    docs = hs.render(hs.ci_profiles()[profile])
    sts = hs.only(docs, "StatefulSet", "-redis")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert [c["name"] for c in hs.containers(sts)] == ["redis", "sentinel"]
    settings = _app_settings(docs, SECRETS)
    assert settings.redis_mode == "sentinel"
    assert settings.redis_sentinel_master == "collab"
    assert settings.redis_sentinel_password == SECRETS["redis-password"]
    assert settings.redis_url.split(",") == [
        f"redis://:{SECRETS['redis-password']}@{REDIS}-{i}.{DOMAIN}:26379" for i in range(3)
    ]


def test_default_values_keep_one_standalone_redis() -> None:
    docs = hs.render({})
    assert hs.only(docs, "StatefulSet", "-redis")["spec"]["replicas"] == 1
    assert not hs.of_kind(docs, "PodDisruptionBudget", "-redis")
    settings = _app_settings(docs, SECRETS)
    assert settings.redis_mode == "standalone"
    assert settings.redis_url == f"redis://:{SECRETS['redis-password']}@{DOMAIN}:6379/0"


def test_sentinel_pods_find_each_other_by_name(bundled: list[hs.Doc]) -> None:
    svc = hs.only(bundled, "Service", "-redis")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in svc["spec"]["ports"]} == {6379, 26379}
    sts = hs.only(bundled, "StatefulSet", "-redis")
    assert sts["spec"]["serviceName"] == REDIS
    pdb = hs.only(bundled, "PodDisruptionBudget", "-redis")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_sentinel_network_policy_admits_the_app_and_the_redis_pods(bundled: list[hs.Doc]) -> None:
    (policy,) = [d for d in hs.of_kind(bundled, "NetworkPolicy", "-redis")]
    (rule,) = policy["spec"]["ingress"]
    assert {p["port"] for p in rule["ports"]} == {6379, 26379}
    sources = {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]}
    assert sources == {"server", "migrate", "redis"}


def _script_variables(name: str) -> set[str]:
    """The variables a script reads and has no default for."""
    text = (hs.CHART_DIR / "files" / name).read_text()
    names = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", text))
    defaulted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", text))
    return names - defaulted - {"REDISCLI_AUTH"}


@pytest.mark.parametrize(
    ("container", "script"),
    [("redis", "redis-start.sh"), ("sentinel", "redis-sentinel-start.sh")],
)
def test_start_scripts_get_every_variable_they_read(
    bundled: list[hs.Doc], container: str, script: str
) -> None:
    sts = hs.only(bundled, "StatefulSet", "-redis")
    (c,) = [c for c in hs.containers(sts) if c["name"] == container]
    assert c["command"] == ["sh", f"/etc/redis/{script}"]
    config = hs.only(bundled, "ConfigMap", "-redis")["data"]
    assert config[script] == (hs.CHART_DIR / "files" / script).read_text()
    env = hs.env_of(c)
    missing = _script_variables(script) - set(env)
    assert not missing, missing
    assert env["REDIS_REPLICAS"]["value"] == "3"
    assert env["REDIS_DOMAIN"]["value"] == DOMAIN
    assert env["REDIS_PASSWORD_FILE"]["value"].startswith("/run/secrets/collab/")


def test_sentinel_config_and_master_write_guard(bundled: list[hs.Doc]) -> None:
    conf = hs.only(bundled, "ConfigMap", "-redis")["data"]["redis.conf"]
    assert "maxmemory-policy noeviction" in conf
    assert "min-replicas-to-write 1" in conf


@pytest.mark.parametrize(
    ("mode", "extra"),
    [("standalone", {}), ("cluster", {}), ("sentinel", {"redisSentinelMaster": "m1"})],
)
def test_external_redis_modes_reach_the_app(mode: str, extra: dict[str, Any]) -> None:
    values = hs.ci_profiles()["external"] | {
        "external": {"databaseUrl": "", "databaseReadUrl": "", "redisUrl": "",
                     "redisMode": mode, "redisSentinelMaster": "", **extra},
    }  # fmt: skip
    docs = hs.render(values)
    env = hs.env_of(hs.app_container(docs))
    assert env["COLLAB_REDIS_MODE"]["value"] == mode
    assert ("COLLAB_REDIS_SENTINEL_MASTER" in env) == (mode == "sentinel")
    assert not hs.of_kind(docs, "StatefulSet", "-redis")


BAD = {
    "quorum above the sentinels": {"redis": {"mode": "sentinel", "sentinel": {"quorum": 4}}},
    "fewer than three sentinels": {"redis": {"mode": "sentinel", "sentinel": {"replicas": 2}}},
    "unknown bundled mode": {"redis": {"mode": "cluster"}},
    "external sentinel without a master": {
        "database": {"mode": "external"}, "secrets": {"existingSecret": "s"},
        "external": {"redisMode": "sentinel"},
    },
}  # fmt: skip


@pytest.mark.parametrize("values", BAD.values(), ids=BAD.keys())
def test_bad_redis_values_are_rejected(values: dict[str, Any]) -> None:
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
        hs.render(values)


def test_the_scripts_are_posix_sh() -> None:
    for name in ("redis-start.sh", "redis-sentinel-start.sh"):
        assert Path(hs.CHART_DIR / "files" / name).read_text().startswith("#!/bin/sh\n")
