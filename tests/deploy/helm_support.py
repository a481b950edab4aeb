"""Offline tooling for the Helm chart tests: render with Helm's own engine
(helm-python-sdk binds the Go SDK), validate against Kubernetes schemas, and
check the fields of custom resources whose CRD schemas are not bundled.

No cluster and no helm binary are needed. Offline, `lookup` returns nothing, so
the generated Secret always shows fresh values here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "collab"
KUBE_VERSIONS = ("1.30", "1.33")
RELEASE = "notes"
NAMESPACE = "collab"

Doc = dict[str, Any]


@functools.cache
def chart() -> helm_python.Chart:
    """The chart, loaded once per test session."""
    return helm_python.Chart.load(CHART_DIR)


def ci_profiles() -> dict[str, dict[str, Any]]:
    """Every ``ci/*-values.yaml`` by file stem, plus ``default`` (no overrides)."""
    profiles: dict[str, dict[str, Any]] = {"default": {}}
    for path in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        profiles[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text()) or {}
    return profiles


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> list[Doc]:
    """All manifests the chart renders (hooks and test pods included, NOTES.txt not)."""
    rendered = chart().render(values or {}, name=name, namespace=namespace)
    docs: list[Doc] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def only(docs: list[Doc], kind: str, name_suffix: str = "") -> Doc:
    """The one manifest of ``kind`` whose name ends with ``name_suffix``."""
    found = of_kind(docs, kind, name_suffix)
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[names(found)]}"
    return found[0]


def of_kind(docs: list[Doc], kind: str, name_suffix: str = "") -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]


def names(docs: list[Doc]) -> list[str]:
    return [f"{d['kind']}/{d['metadata']['name']}" for d in docs]


def pod_spec(doc: Doc) -> Doc:
    """The pod spec inside a workload or a bare Pod."""
    spec: Doc = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
    return spec


def containers(doc: Doc) -> Iterator[Doc]:
    spec = pod_spec(doc)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def lint_findings(values: dict[str, Any], kube_version: str) -> list[dict[str, Any]]:
    """``helm lint --strict`` findings of severity warning (2) or error (3)."""
    report = helm_python.lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version=f"v{kube_version}.0"
    )
    return [m for m in report["messages"] if m["severity"] >= 2]


# --- Kubernetes schemas ------------------------------------------------------


def validate(doc: Doc, kube_version: str) -> None:
    """Validate against the Kubernetes schemas, or by hand for known custom resources.

    Raises AssertionError (hand checks) or kubernetes_validate.ValidationError.
    """
    group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
    if group in CUSTOM_RESOURCES:
        errors = check_custom_resource(doc)
        assert not errors, f"{doc['kind']}/{doc['metadata']['name']}: {errors}"
        # The embedded ObjectMeta is standard: check it through a ConfigMap.
        meta_only = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
        kubernetes_validate.validate(meta_only, kube_version, strict=True)
        return
    kubernetes_validate.validate(doc, kube_version, strict=True)


# --- custom resources, checked by hand -------------------------------------
#
# A spec is a Python type (str, int, bool), a compiled regex (a string matching it),
# a tuple of allowed literal values, a dict (closed: unknown keys are errors; keys
# listed in REQUIRED must be there), a one-element list (every item matches), or ANY.

ANY = object()
REQUIRED = "__required__"

_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
_PROM_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_SELECTOR = {"matchLabels": {str: str}, "matchExpressions": [ANY]}

_PARENT_REF = {
    REQUIRED: ["name"],
    "group": str,
    "kind": str,
    "namespace": str,
    "name": str,
    "sectionName": str,
    "port": int,
}
_HTTP_ROUTE = {
    REQUIRED: ["parentRefs"],
    "parentRefs": [_PARENT_REF],
    "hostnames": [str],
    "rules": [
        {
            "name": str,
            "matches": [
                {
                    "path": {"type": ("Exact", "PathPrefix", "RegularExpression"), "value": str},
                    "headers": [ANY],
                    "queryParams": [ANY],
                    "method": str,
                }
            ],
            "filters": [ANY],
            "backendRefs": [
                {
                    REQUIRED: ["name", "port"],
                    "group": str,
                    "kind": str,
                    "name": str,
                    "namespace": str,
                    "port": int,
                    "weight": int,
                    "filters": [ANY],
                }
            ],
            "timeouts": {"request": _DURATION, "backendRequest": _DURATION},
            "sessionPersistence": ANY,
        }
    ],
}
_SERVICE_MONITOR = {
    REQUIRED: ["selector", "endpoints"],
    "jobLabel": str,
    "targetLabels": [str],
    "podTargetLabels": [str],
    "sampleLimit": int,
    "selector": _LABEL_SELECTOR,
    "namespaceSelector": {"any": bool, "matchNames": [str]},
    "endpoints": [
        {
            "port": str,
            "targetPort": ANY,
            "path": re.compile(r"^/"),
            "scheme": ("http", "https"),
            "interval": _PROM_DURATION,
            "scrapeTimeout": _PROM_DURATION,
            "honorLabels": bool,
            "relabelings": [ANY],
            "metricRelabelings": [ANY],
            "tlsConfig": ANY,
        }
    ],
}
_QUANTITIES = {str: (str, int)}
_CNPG_CLUSTER = {
    REQUIRED: ["instances", "storage"],
    "description": str,
    "instances": int,
    "imageName": str,
    "imagePullPolicy": ("Always", "IfNotPresent", "Never"),
    "primaryUpdateStrategy": ("supervised", "unsupervised"),
    "primaryUpdateMethod": ("switchover", "restart"),
    "inheritedMetadata": {"labels": {str: str}, "annotations": {str: str}},
    "postgresql": {
        "parameters": {str: str},
        "synchronous": {
            REQUIRED: ["method", "number"],
            "method": ("any", "first"),
            "number": int,
            "dataDurability": ("required", "preferred"),
            "maxStandbyNamesFromCluster": int,
            "standbyNamesPre": [str],
            "standbyNamesPost": [str],
        },
        "pg_hba": [str],
        "pg_ident": [str],
        "shared_preload_libraries": [str],
    },
    "bootstrap": {
        "initdb": {
            "database": str,
            "owner": str,
            "secret": {REQUIRED: ["name"], "name": str},
            "dataChecksums": bool,
            "encoding": str,
            "postInitSQL": [str],
            "postInitApplicationSQL": [str],
        }
    },
    "storage": {
        REQUIRED: ["size"],
        "storageClass": str,
        "size": str,
        "resizeInUseVolumes": bool,
        "pvcTemplate": ANY,
    },
    "walStorage": ANY,
    "resources": {"requests": _QUANTITIES, "limits": _QUANTITIES},
    "affinity": {
        "enablePodAntiAffinity": bool,
        "topologyKey": str,
        "podAntiAffinityType": ("preferred", "required"),
        "nodeSelector": {str: str},
        "tolerations": [ANY],
        "nodeAffinity": ANY,
        "additionalPodAntiAffinity": ANY,
        "additionalPodAffinity": ANY,
    },
    "topologySpreadConstraints": [ANY],
    "monitoring": {
        "enablePodMonitor": bool,
        "disableDefaultQueries": bool,
        "customQueriesConfigMap": [ANY],
        "customQueriesSecret": [ANY],
    },
    "priorityClassName": str,
    "enablePDB": bool,
    "backup": ANY,
}

CUSTOM_RESOURCES: dict[str, dict[tuple[str, str], Any]] = {
    "gateway.networking.k8s.io": {("v1", "HTTPRoute"): _HTTP_ROUTE},
    "monitoring.coreos.com": {("v1", "ServiceMonitor"): _SERVICE_MONITOR},
    "azmonitoring.coreos.com": {("v1", "ServiceMonitor"): _SERVICE_MONITOR},
    "postgresql.cnpg.io": {("v1", "Cluster"): _CNPG_CLUSTER},
}


def check_custom_resource(doc: Doc) -> list[str]:
    """Errors in a custom resource's top level and ``spec`` (empty list when fine)."""
    group, version = doc["apiVersion"].split("/")
    spec = CUSTOM_RESOURCES.get(group, {}).get((version, doc["kind"]))
    if spec is None:
        return [f"no hand-written check for {doc['apiVersion']} {doc['kind']}"]
    errors = _check({"apiVersion": str, "kind": str, "metadata": ANY, "spec": spec}, doc, "")
    if not _DNS_LABEL.match(doc["metadata"]["name"]) or len(doc["metadata"]["name"]) > 63:
        errors.append(f"metadata.name {doc['metadata']['name']!r} is not a DNS label")
    return errors


def _check(spec: Any, value: Any, at: str) -> list[str]:
    if spec is ANY:
        return []
    if isinstance(spec, type):
        ok = isinstance(value, spec) and not (spec is int and isinstance(value, bool))
        return [] if ok else [f"{at or '.'}: expected {spec.__name__}, got {value!r}"]
    if isinstance(spec, re.Pattern):
        matched = isinstance(value, str) and spec.match(value) is not None
        return [] if matched else [f"{at}: {value!r} does not match {spec.pattern}"]
    if isinstance(spec, tuple):
        if all(isinstance(s, type) for s in spec):
            return [] if isinstance(value, spec) else [f"{at}: unexpected type {value!r}"]
        return [] if value in spec else [f"{at}: {value!r} not one of {spec}"]
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{at}: expected a list"]
        return [e for i, item in enumerate(value) for e in _check(spec[0], item, f"{at}[{i}]")]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{at}: expected an object"]
        if len(spec) == 1 and isinstance(next(iter(spec)), type):  # a map {str: type}
            key_type, value_spec = next(iter(spec.items()))
            return [
                e
                for k, v in value.items()
                for e in _check(key_type, k, f"{at}.<key>") + _check(value_spec, v, f"{at}.{k}")
            ]
        errors = [f"{at}.{k}: required" for k in spec.get(REQUIRED, []) if k not in value]
        for key, item in value.items():
            if key not in spec or key == REQUIRED:
                errors.append(f"{at}.{key}: unknown field")
            else:
                errors.extend(_check(spec[key], item, f"{at}.{key}"))
        return errors
    raise TypeError(f"bad spec {spec!r}")


def app(docs: list[Doc]) -> Doc:
    """The app Deployment."""
    return only(docs, "Deployment")


def app_container(docs: list[Doc]) -> Doc:
    container: Doc = pod_spec(app(docs))["containers"][0]
    return container
