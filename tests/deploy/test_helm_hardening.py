"""The chart's network exposure and secret handling, on the rendered manifests:
NetworkPolicies on by default, /metrics never routed by the Ingress or HTTPRoute and
served on its own port, the trusted proxy range, database and Redis passwords as
files, images by digest in the production profiles, explicit namespaces.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import helm_python
import pytest

from collab.settings import Settings
from tests.deploy import helm_support as hs

PROFILES = hs.ci_profiles()
PRODUCTION_PROFILES = ("bundled", "cloudnativepg", "external", "external-inline")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[hs.Doc]]:
    return {name: hs.render(values) for name, values in PROFILES.items()}


def policies_for(docs: list[hs.Doc], pod_labels: dict[str, str]) -> list[hs.Doc]:
    return [
        p
        for p in hs.of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ]


def pod_labels(doc: hs.Doc) -> dict[str, str]:
    meta = doc["metadata"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]
    labels: dict[str, str] = meta["labels"]
    return labels


def workloads(docs: list[hs.Doc]) -> list[hs.Doc]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job", "Pod"}]


# --- NetworkPolicy ----------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_pod_is_covered_by_a_network_policy_by_default(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    docs = rendered[profile]
    for doc in workloads(docs):
        found = policies_for(docs, pod_labels(doc))
        assert found, f"{doc['kind']}/{doc['metadata']['name']} admits anyone"
        for policy in found:
            assert policy["spec"]["policyTypes"] == ["Ingress"]


def _rule_for_port(policy: hs.Doc, port: str | int) -> dict[str, Any]:
    (rule,) = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == port]
    return rule


def test_app_admits_the_ingress_controller_on_http_and_monitoring_on_metrics_only(
    rendered: dict[str, list[hs.Doc]],
) -> None:
    docs = rendered["default"]
    (policy,) = policies_for(docs, pod_labels(hs.app(docs)))
    assert len(policy["spec"]["ingress"]) == 2
    http = _rule_for_port(policy, "http")
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in http["from"]
        if "namespaceSelector" in peer
    }
    assert namespaces == {"ingress-nginx", "app-routing-system"}
    pods = [p["podSelector"]["matchLabels"] for p in http["from"] if "podSelector" in p]
    assert [p["app.kubernetes.io/component"] for p in pods] == ["test"]
    metrics = _rule_for_port(policy, "metrics")
    assert {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for peer in metrics["from"]
    } == {"monitoring", "kube-system"}
    for rule in (http, metrics):
        assert all(peer for peer in rule["from"]), "an empty peer admits everyone"


def test_network_policy_peers_are_configurable() -> None:
    agc = {"ipBlock": {"cidr": "10.225.0.0/24"}}
    prom = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prom"}}}
    docs = hs.render({"networkPolicy": {"ingressFrom": [agc], "metricsFrom": [prom]}})
    (policy,) = policies_for(docs, pod_labels(hs.app(docs)))
    assert agc in _rule_for_port(policy, "http")["from"]
    assert _rule_for_port(policy, "metrics")["from"] == [prom]
    assert not hs.of_kind(hs.render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


@pytest.mark.parametrize("component", ["migrate", "test"])
def test_migration_and_test_pods_admit_nothing(
    rendered: dict[str, list[hs.Doc]], component: str
) -> None:
    docs = rendered["default"]
    (pod,) = [
        d for d in workloads(docs) if pod_labels(d)["app.kubernetes.io/component"] == component
    ]
    (policy,) = policies_for(docs, pod_labels(pod))
    assert policy["spec"]["ingress"] == []


@pytest.mark.parametrize(("component", "port"), [("redis", 6379), ("postgres", 5432)])
def test_data_pods_admit_only_the_app_and_migration(
    rendered: dict[str, list[hs.Doc]], component: str, port: int
) -> None:
    docs = rendered["default"]
    (sts,) = [
        d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"].endswith(component)
    ]
    (policy,) = policies_for(docs, pod_labels(sts))
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    sources = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in rule["from"]
    }
    expected = {"server", "migrate"} | ({"postgres"} if component == "postgres" else set())
    assert sources == expected
    for peer in rule["from"]:
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == hs.RELEASE
        assert "namespaceSelector" not in peer


# --- /metrics is never routed ---------------------------------------------------------


def _service_by_name(docs: list[hs.Doc], name: str) -> hs.Doc:
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    return svc


@pytest.mark.parametrize("profile", ["bundled", "external"])
def test_ingress_sends_metrics_to_a_service_without_endpoints(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    docs = rendered[profile]
    ingress = hs.only(docs, "Ingress")
    app_service = hs.only(docs, "Service", "collab")
    for rule in ingress["spec"]["rules"]:
        paths = rule["http"]["paths"]
        deny = [p for p in paths if p["path"].startswith("/metrics")]
        assert [(p["path"], p["pathType"]) for p in deny] == [("/metrics", "Prefix")]
        target = _service_by_name(docs, deny[0]["backend"]["service"]["name"])
        assert "selector" not in target["spec"], "the deny Service must select no pod"
        for path in paths:
            if path not in deny:
                backend = path["backend"]["service"]
                assert backend["name"] == app_service["metadata"]["name"]
                assert backend["port"]["number"] == app_service["spec"]["ports"][0]["port"]


def test_routed_service_carries_only_the_http_port(rendered: dict[str, list[hs.Doc]]) -> None:
    docs = rendered["bundled"]
    app_service = hs.only(docs, "Service", "collab")
    assert [p["targetPort"] for p in app_service["spec"]["ports"]] == ["http"]
    ports = {p["name"]: p["containerPort"] for p in hs.app_container(docs)["ports"]}
    assert ports == {"http": 8000, "metrics": 9100}


def test_httproute_answers_metrics_itself_before_any_other_rule(
    rendered: dict[str, list[hs.Doc]],
) -> None:
    route = hs.only(rendered["cloudnativepg"], "HTTPRoute")
    first, *others = route["spec"]["rules"]
    assert "backendRefs" not in first
    assert {(m["path"]["type"], m["path"]["value"]) for m in first["matches"]} == {
        ("Exact", "/metrics"),
        ("PathPrefix", "/metrics"),
    }
    assert others and all(r["backendRefs"] for r in others)


def test_ingress_paths_under_metrics_are_rejected() -> None:
    hosts = [{"host": "h.example.com", "paths": [{"path": "/metrics", "pathType": "Exact"}]}]
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
        hs.render({"ingress": {"enabled": True, "hosts": hosts}})


# --- metrics on their own port ------------------------------------------------------------


@pytest.mark.parametrize("port", [9100, 9464])
def test_metrics_port_reaches_env_container_service_and_servicemonitor(port: int) -> None:
    values = {"metrics": {"port": port}, "serviceMonitor": {"enabled": True}}
    docs = hs.render(values)
    config = hs.only(docs, "ConfigMap", "-config")["data"]
    assert config["COLLAB_METRICS_PORT"] == str(port)
    ports = {p["name"]: p["containerPort"] for p in hs.app_container(docs)["ports"]}
    assert ports["metrics"] == port
    metrics_service = hs.only(docs, "Service", "-metrics")
    assert metrics_service["spec"]["ports"] == [
        {"port": port, "targetPort": "metrics", "protocol": "TCP", "name": "metrics"}
    ]
    assert metrics_service["spec"]["selector"] == hs.app(docs)["spec"]["selector"]["matchLabels"]
    monitor = hs.only(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        metrics_service["metadata"]["labels"].items()
    )
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= (
        hs.only(docs, "Service", "collab")["metadata"]["labels"].items()
    ), "the ServiceMonitor must not select the routed Service"
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("metrics", "/metrics")
    ]


def test_metrics_port_must_differ_from_the_http_port() -> None:
    with pytest.raises(helm_python.HelmRenderError):
        hs.render({"metrics": {"port": 8000}})
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
        hs.render({"config": {"extraEnv": {"COLLAB_METRICS_PORT": "8000"}}})


# --- trusted proxies ---------------------------------------------------------------------


def test_trusted_proxies_are_the_front_ends_range_only(rendered: dict[str, list[hs.Doc]]) -> None:
    for profile, docs in rendered.items():
        value = hs.only(docs, "ConfigMap", "-config")["data"]["COLLAB_TRUSTED_PROXIES"]
        assert value == "10.244.0.0/16", profile
    custom = hs.render({"config": {"trustedProxies": "10.225.0.0/24, fd00::/64"}})
    value = hs.only(custom, "ConfigMap", "-config")["data"]["COLLAB_TRUSTED_PROXIES"]
    networks = Settings(trusted_proxies=value).proxy_networks()
    assert networks == (ipaddress.ip_network("10.225.0.0/24"), ipaddress.ip_network("fd00::/64"))
    for bad in ("", "everyone", "0.0.0.0/0 ; rm", "10.0.0.0/8,0.0.0.0/0", "::/0"):
        with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
            hs.render({"config": {"trustedProxies": bad}})
    with pytest.raises((helm_python.HelmValuesError, helm_python.HelmRenderError)):
        hs.render({"config": {"extraEnv": {"COLLAB_TRUSTED_PROXIES": "0.0.0.0/0"}}})


# --- database and Redis passwords as files -------------------------------------------------


@pytest.mark.parametrize("profile", ["bundled", "cloudnativepg"])
def test_data_pods_read_passwords_from_mounted_files(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    docs = rendered[profile]
    data_sets = [d for d in docs if d["kind"] == "StatefulSet"]
    assert data_sets
    for sts in data_sets:
        spec = hs.pod_spec(sts)
        (secret_volume,) = [v for v in spec["volumes"] if "secret" in v]
        assert secret_volume["secret"]["defaultMode"] == 0o440
        for container in hs.containers(sts):
            for item in container.get("env", []):
                assert "secretKeyRef" not in item.get("valueFrom", {}), (
                    f"{sts['metadata']['name']}/{container['name']}: {item['name']}"
                )
            mounts = {m["name"]: m for m in container["volumeMounts"]}
            assert mounts[secret_volume["name"]]["readOnly"] is True
            assert mounts[secret_volume["name"]]["mountPath"] == "/run/secrets/collab"
            files = [e for e in container["env"] if e["name"].endswith("PASSWORD_FILE")]
            assert files and all(e["value"].startswith("/run/secrets/collab/") for e in files)
    redis = hs.pod_spec(hs.only(docs, "StatefulSet", "-redis"))["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "REDIS_PASSWORD_FILE" in " ".join(redis[probe]["exec"]["command"])


def test_app_secret_variables_carry_a_justified_scanner_skip(
    rendered: dict[str, list[hs.Doc]],
) -> None:
    docs = rendered["default"]
    for doc in (hs.app(docs), hs.only(docs, "Job", "-migrate")):
        reason = doc["metadata"]["annotations"]["checkov.io/skip1"]
        assert reason.startswith("CKV_K8S_35=") and len(reason) > 40


# --- images and namespaces ----------------------------------------------------------------


@pytest.mark.parametrize("profile", PRODUCTION_PROFILES)
def test_production_profiles_run_every_image_by_digest(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    for doc in workloads(rendered[profile]):
        for container in hs.containers(doc):
            assert "@sha256:" in container["image"], (doc["metadata"]["name"], container["image"])


def test_digests_win_over_tags_for_every_image() -> None:
    digest = "sha256:" + "ab" * 32
    values = {
        "image": {"digest": digest},
        "postgres": {"image": {"digest": digest}},
        "redis": {"image": {"digest": digest}},
    }
    images = {c["image"] for d in workloads(hs.render(values)) for c in hs.containers(d)}
    assert images == {
        f"example.azurecr.io/collab@{digest}",
        f"docker.io/library/postgres@{digest}",
        f"docker.io/library/redis@{digest}",
    }


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_manifest_names_the_release_namespace(
    rendered: dict[str, list[hs.Doc]], profile: str
) -> None:
    for doc in rendered[profile]:
        assert doc["metadata"].get("namespace") == hs.NAMESPACE, doc["metadata"]["name"]
