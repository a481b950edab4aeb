"""The Helm chart (helm/collab), checked offline: Helm's own engine renders every
ci/*-values.yaml profile, every manifest is validated against the Kubernetes
schemas of two versions (custom resources by hand), lint runs strict, and the
properties the chart promises (docs/deploy-aks.md) are asserted on the rendered objects.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import helm_python
import pytest
import yaml

from tests.deploy import helm_support as hs

PROFILES = hs.ci_profiles()
SECRETISH = re.compile(r"password|secret|token|key|url", re.IGNORECASE)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[hs.Doc]]:
    return {name: hs.render(values) for name, values in PROFILES.items()}


# --- structure ---------------------------------------------------------------


def test_every_ci_profile_is_present() -> None:
    assert {"bundled", "cloudnativepg", "external", "minimal"} <= set(PROFILES)


@pytest.mark.parametrize("kube_version", hs.KUBE_VERSIONS)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_lint_strict_is_clean(profile: str, kube_version: str) -> None:
    assert hs.lint_findings(PROFILES[profile], kube_version) == []


@pytest.mark.parametrize("kube_version", hs.KUBE_VERSIONS)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_manifest_matches_the_kubernetes_schemas(
    rendered: dict[str, list[hs.Doc]], profile: str, kube_version: str
) -> None:
    docs = rendered[profile]
    assert len(docs) >= 8
    for doc in docs:
        hs.validate(doc, kube_version)


def test_custom_resource_checks_catch_mistakes(rendered: dict[str, list[hs.Doc]]) -> None:
    cluster = hs.only(rendered["cloudnativepg"], "Cluster")
    assert hs.check_custom_resource(cluster) == []
    broken = yaml.safe_load(yaml.safe_dump(cluster))
    broken["spec"]["postgresql"]["synchronous"]["method"] = "all"
    broken["spec"]["postgresql_synchronous"] = {}
    broken["spec"]["storage"].pop("size")
    errors = hs.check_custom_resource(broken)
    assert len(errors) == 3, errors
    route = hs.only(rendered["cloudnativepg"], "HTTPRoute")
    route["spec"]["rules"][1]["timeouts"]["request"] = "forever"
    assert hs.check_custom_resource(route)


def test_names_fit_in_63_characters_and_labels_are_standard() -> None:
    long_release = "r" * 53  # Helm's longest release name
    for values in PROFILES.values():
        for doc in hs.render(values, name=long_release):
            meta = doc["metadata"]
            limit = 52 if doc["kind"] == "StatefulSet" else 63
            assert len(meta["name"]) <= limit, meta["name"]
            labels = meta["labels"]
            for key in ("name", "instance", "version", "managed-by"):
                assert f"app.kubernetes.io/{key}" in labels, (doc["kind"], key)
            assert len(labels["helm.sh/chart"]) <= 63


def test_app_service_selects_only_app_pods(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["bundled"]
    selector = hs.only(docs, "Service", "collab")["spec"]["selector"]
    matching = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
        and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert matching == [hs.app(docs)["metadata"]["name"]]


# --- the app pods ----------------------------------------------------------


def test_probes_target_the_health_endpoints(rendered: dict[str, list[hs.Doc]]) -> None:
    container = hs.app_container(rendered["default"])
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["command"][:2] == ["collab", "serve"]


@pytest.mark.parametrize(("sleep", "graceful"), [(10, 20), (5, 45.5), (30, 1)])
def test_grace_period_outlasts_prestop_sleep_plus_graceful_shutdown(
    sleep: int, graceful: float
) -> None:
    docs = hs.render(
        {
            "lifecycle": {"preStopSleepSeconds": sleep},
            "config": {"gracefulShutdownSeconds": graceful},
        }
    )
    spec = hs.pod_spec(hs.app(docs))
    assert spec["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == sleep
    assert spec["terminationGracePeriodSeconds"] > sleep + graceful
    config = hs.only(docs, "ConfigMap", "-config")["data"]
    assert float(config["COLLAB_GRACEFUL_SHUTDOWN_S"]) == graceful


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_pod_runs_restricted(rendered: dict[str, list[hs.Doc]], profile: str) -> None:
    workloads = [
        d for d in rendered[profile] if d["kind"] in {"Deployment", "StatefulSet", "Job", "Pod"}
    ]
    assert workloads
    for doc in workloads:
        spec = hs.pod_spec(doc)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] > 0
        assert spec["automountServiceAccountToken"] is False
        for container in hs.containers(doc):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys() & resources["limits"].keys()
    mounts = {m["mountPath"] for m in hs.app_container(rendered[profile])["volumeMounts"]}
    assert "/tmp" in mounts


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_app_environment(rendered: dict[str, list[hs.Doc]], profile: str) -> None:
    docs = rendered[profile]
    container = hs.app_container(docs)
    env = hs.env_of(container)
    config = hs.only(docs, "ConfigMap", "-config")["data"]
    assert config["COLLAB_MIGRATE_ON_START"] == "false"
    assert config["COLLAB_WORKERS"] == "1"
    assert env["COLLAB_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for name in ("COLLAB_JWT_SECRET", "COLLAB_DATABASE_URL", "COLLAB_REDIS_URL"):
        assert name in env, name
    url = env["COLLAB_DATABASE_URL"].get("value", "")
    if url:
        assert "target_session_attrs=read-write" in url
    # $(VAR) only expands from variables defined earlier in the list.
    seen: set[str] = set()
    for item in container["env"]:
        for ref in re.findall(r"\$\((\w+)\)", item.get("value", "")):
            assert ref in seen, f"{item['name']} uses $({ref}) before it is defined"
        seen.add(item["name"])
        if SECRETISH.search(item["name"]) and "value" in item:
            assert "$(" in item["value"], f"{item['name']} carries a literal secret"
    assert not any(SECRETISH.search(k) for k in config if k != "COLLAB_STATIC_DIR")


def test_config_checksum_rolls_pods_only_on_config_change() -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = hs.app(hs.render(values))["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/config"])

    base = checksum({})
    assert checksum({"config": {"logLevel": "debug"}}) != base
    assert checksum({"config": {"extraEnv": {"COLLAB_MAX_FRAME_BYTES": "2048"}}}) != base
    assert checksum({"ingress": {"enabled": True}}) == base


def test_topology_spread_over_zones_and_nodes(rendered: dict[str, list[hs.Doc]]) -> None:
    constraints = hs.pod_spec(hs.app(rendered["default"]))["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }


# --- scaling and disruption ----------------------------------------------------


def test_hpa_scales_on_cpu_and_scales_down_slowly(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["bundled"]
    hpa = hs.only(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    down = hpa["spec"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    assert "replicas" not in hs.app(docs)["spec"], "the HPA owns the replica count"


def test_hpa_connections_metric_is_optional(rendered: dict[str, list[hs.Doc]]) -> None:
    metrics = hs.only(rendered["cloudnativepg"], "HorizontalPodAutoscaler")["spec"]["metrics"]
    pods = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert pods == [
        {
            "metric": {"name": "collab_ws_connections"},
            "target": {"type": "AverageValue", "averageValue": "1500"},
        }
    ]


@pytest.mark.parametrize(
    ("values", "expect_pdb"),
    [
        ({"autoscaling": {"enabled": False}, "replicaCount": 1}, False),
        ({"autoscaling": {"enabled": False}, "replicaCount": 3}, True),
        ({"autoscaling": {"enabled": True, "minReplicas": 1}}, False),
        ({"autoscaling": {"enabled": True, "minReplicas": 2}}, True),
        ({"podDisruptionBudget": {"enabled": False}}, False),
    ],
)
def test_pdb_only_with_more_than_one_replica(values: dict[str, Any], expect_pdb: bool) -> None:
    pdbs = hs.of_kind(hs.render(values), "PodDisruptionBudget", "collab")
    assert len(pdbs) == int(expect_pdb)
    if pdbs:
        assert pdbs[0]["spec"]["maxUnavailable"] == 1


def test_replicas_set_when_not_autoscaling(rendered: dict[str, list[hs.Doc]]) -> None:
    assert hs.app(rendered["minimal"])["spec"]["replicas"] == 1
    assert not hs.of_kind(rendered["minimal"], "HorizontalPodAutoscaler")


# --- migrations --------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_migrations_run_in_a_hook_job(rendered: dict[str, list[hs.Doc]], profile: str) -> None:
    docs = rendered[profile]
    job = hs.only(docs, "Job", "-migrate")
    notes = job["metadata"]["annotations"]
    assert set(notes["helm.sh/hook"].split(",")) == {"post-install", "pre-upgrade"}
    assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"]
    container = hs.pod_spec(job)["containers"][0]
    assert container["command"] == ["collab", "migrate"]
    job_env = hs.env_of(container)
    app_env = hs.env_of(hs.app_container(docs))
    for name in ("COLLAB_DATABASE_URL", "COLLAB_JWT_SECRET", "COLLAB_REDIS_URL"):
        assert job_env[name] == app_env[name]


# --- secrets -----------------------------------------------------------------


BUNDLED_SECRETS = {
    "jwt-secret",
    "postgres-password",
    "replication-password",
    "database-password",
    "redis-password",
}
GENERATED_SECRETS = {
    "default": BUNDLED_SECRETS,
    "bundled": BUNDLED_SECRETS | {"bootstrap-admin-password"},
    "cloudnativepg": {"jwt-secret", "redis-password"},
    "external-inline": {"jwt-secret", "database-url", "database-read-url", "redis-url"},
}


@pytest.mark.parametrize("profile", sorted(GENERATED_SECRETS))
def test_generated_secret_is_kept_and_strong(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    secret = hs.only(rendered[profile], "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(secret["data"]) == GENERATED_SECRETS[profile]
    generated = {
        k: base64.b64decode(v).decode() for k, v in secret["data"].items() if not k.endswith("url")
    }
    for key, value in generated.items():
        assert re.fullmatch(r"[A-Za-z0-9]{48}", value), key
    assert len(set(generated.values())) == len(generated)


def test_existing_secret_replaces_the_generated_one(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["external"]
    assert not hs.of_kind(docs, "Secret")
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for c in hs.containers(hs.app(docs))
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert {r["name"] for r in refs} == {"collab-external"}
    assert {r["key"] for r in refs} >= {"jwt-secret", "database-url", "redis-url"}


def test_default_values_hold_no_secrets() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, str) and SECRETISH.search(path.rsplit(".", 1)[-1]):
            assert node == "", f"{path} has a default"

    walk(hs.chart().values, "")


BAD_VALUES = {
    "unknown mode": {"database": {"mode": "mysql"}},
    "zero replicas": {"replicaCount": 0},
    "unknown top-level key": {"replicas": 3},
    "hpa max below min": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
    "lease ttl under two heartbeats": {"config": {"heartbeatMs": 5000, "leaseTtlMs": 9000}},
    "negative graceful shutdown": {"config": {"gracefulShutdownSeconds": -1}},
    "secret in extraEnv": {"config": {"extraEnv": {"COLLAB_JWT_SECRET": "x" * 40}}},
    "non-collab extraEnv": {"config": {"extraEnv": {"PATH": "/bin"}}},
    "root user": {"securityContext": {"runAsUser": 0}},
    "bad redis persistence": {"redis": {"persistence": {"mode": "rdb"}}},
    "sync replication without standby": {"postgres": {"replicas": 1}},
    "external without urls": {"database": {"mode": "external"}},
    "external non-postgres url": {
        "database": {"mode": "external"},
        "external": {"databaseUrl": "mysql://x", "redisUrl": "redis://y"},
    },
    "probe removed": {"livenessProbe": {"httpGet": None}},
    "probe not over http": {"livenessProbe": {"exec": {"command": ["true"]}}},
    "bad image tag": {"image": {"tag": "latest please"}},
    "bad cpu quantity": {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_rejected(values: dict[str, Any]) -> None:
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
        hs.render(values)


# --- traffic -------------------------------------------------------------------


def test_ingress_has_websocket_timeouts(rendered: dict[str, list[hs.Doc]]) -> None:
    notes = hs.only(rendered["bundled"], "Ingress")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert notes["nginx.ingress.kubernetes.io/proxy-send-timeout"] == "3600"
    override = {
        "enabled": True,
        "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "7200"},
    }
    notes = hs.only(hs.render({"ingress": override}), "Ingress")["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "7200"


def test_httproute_points_at_the_service(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["cloudnativepg"]
    route = hs.only(docs, "HTTPRoute")
    service = hs.only(docs, "Service", "collab")
    backend = route["spec"]["rules"][1]["backendRefs"][0]
    assert (backend["name"], backend["port"]) == (service["metadata"]["name"], 80)
    assert route["spec"]["parentRefs"][0]["namespace"] == "gateway-system"


def test_network_policies_limit_database_access(rendered: dict[str, list[hs.Doc]]) -> None:
    policies = {p["metadata"]["name"]: p for p in hs.of_kind(rendered["bundled"], "NetworkPolicy")}
    assert len(policies) == 5
    postgres = next(p for n, p in policies.items() if n.endswith("-postgres"))
    sources = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in postgres["spec"]["ingress"][0]["from"]
    }
    assert sources == {"server", "migrate", "postgres"}
