"""Every kustomization renders, and every object it renders is valid, offline.

Core objects are validated strictly (unknown fields rejected) against the Kubernetes OpenAPI
schemas bundled in PyPI's kubernetes-validate, for the oldest and the newest Kubernetes we
support. The custom resources (KEDA, Prometheus Operator) have no bundled schema: their
structure is checked here against the fields of their CRDs that clazzify uses, unknown keys
rejected, and their embedded HPA behaviour is validated as a real autoscaling/v2 object.
checkov then scans the rendered manifests (and the Secret template); an accepted finding is
a `checkov.io/skipN: ID=reason` annotation on the object, next to a comment saying why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .tooling import KUSTOMIZATIONS, SECRET_TEMPLATE, TOOLS_VENV, rendered, rendered_text, run, tool, yaml_file

#: Oldest and newest Kubernetes versions the manifests must be valid for.
KUBERNETES_VERSIONS = ("1.31.0", "1.37.0")

CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

# --- structure of the custom resources: {key: type | nested schema | [item schema]};
# a key starting with "!" is required. Only fields from the CRDs (KEDA 2.x, Prometheus
# Operator v1) are listed; anything else is a typo.
_STR, _INT, _BOOL, _MAP = str, int, bool, "map"
_LABELS = {"matchLabels": _MAP, "matchExpressions": [{"!key": _STR, "!operator": _STR, "values": [_STR]}]}
SCALED_OBJECT = {
    "!scaleTargetRef": {"!name": _STR, "apiVersion": _STR, "kind": _STR, "envSourceContainerName": _STR},
    "pollingInterval": _INT, "cooldownPeriod": _INT, "initialCooldownPeriod": _INT, "idleReplicaCount": _INT,
    "minReplicaCount": _INT, "maxReplicaCount": _INT,
    "fallback": {"!failureThreshold": _INT, "!replicas": _INT, "behavior": _STR},
    "advanced": {"restoreToOriginalReplicaCount": _BOOL,
                 "horizontalPodAutoscalerConfig": {"name": _STR, "behavior": _MAP},
                 "scalingModifiers": {"formula": _STR, "target": _STR, "activationTarget": _STR, "metricType": _STR}},
    "!triggers": [{"!type": _STR, "name": _STR, "!metadata": _MAP, "metricType": _STR, "useCachedMetrics": _BOOL,
                   "authenticationRef": {"!name": _STR, "kind": _STR}}],
}
TRIGGER_AUTHENTICATION = {
    "secretTargetRef": [{"!parameter": _STR, "!name": _STR, "!key": _STR}],
    "configMapTargetRef": [{"!parameter": _STR, "!name": _STR, "!key": _STR}],
    "env": [{"!parameter": _STR, "!name": _STR, "containerName": _STR}],
    "podIdentity": {"!provider": _STR, "identityId": _STR},
}
SERVICE_MONITOR = {
    "!selector": _LABELS, "!endpoints": [{
        "port": _STR, "targetPort": _STR, "path": _STR, "scheme": _STR, "interval": _STR, "scrapeTimeout": _STR,
        "honorLabels": _BOOL, "relabelings": [_MAP], "metricRelabelings": [_MAP], "tlsConfig": _MAP,
        "bearerTokenSecret": _MAP, "params": _MAP}],
    "jobLabel": _STR, "targetLabels": [_STR], "podTargetLabels": [_STR], "sampleLimit": _INT,
    "namespaceSelector": {"any": _BOOL, "matchNames": [_STR]},
}
PROMETHEUS_RULE = {
    "!groups": [{"!name": _STR, "interval": _STR, "limit": _INT,
                 "!rules": [{"alert": _STR, "record": _STR, "!expr": _STR, "for": _STR, "keep_firing_for": _STR,
                             "labels": _MAP, "annotations": _MAP}]}],
}
CRD_SPECS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION,
             "ServiceMonitor": SERVICE_MONITOR, "PrometheusRule": PROMETHEUS_RULE}


def _structure_errors(value: Any, schema: Any, where: str) -> list[str]:
    if schema == _MAP:
        return [] if isinstance(value, dict) else [f"{where}: want a mapping"]
    if isinstance(schema, type):
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        return [] if ok else [f"{where}: want {schema.__name__}, got {type(value).__name__}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: want a list"]
        return [e for i, item in enumerate(value) for e in _structure_errors(item, schema[0], f"{where}[{i}]")]
    if not isinstance(value, dict):
        return [f"{where}: want a mapping"]
    errors = []
    fields = {k.lstrip("!"): v for k, v in schema.items()}
    errors += [f"{where}.{k}: required" for k in schema if k.startswith("!") and k[1:] not in value]
    errors += [f"{where}.{k}: unknown field" for k in value if k not in fields]
    errors += [e for k, v in value.items() if k in fields for e in _structure_errors(v, fields[k], f"{where}.{k}")]
    return errors


def _core_objects(name: str) -> list[dict[str, Any]]:
    return [o for o in rendered(name) if (o["apiVersion"], o["kind"]) not in CRD_KINDS]


def _kubernetes_validate(objects: list[dict[str, Any]], tmp_path: Path, version: str) -> None:
    path = tmp_path / f"objects-{version}.yaml"
    # JSON documents are YAML documents.
    path.write_text("\n---\n".join(json.dumps(o) for o in objects) + "\n", encoding="utf-8")
    proc = run([tool(TOOLS_VENV / "bin" / "kubernetes-validate"), "-k", version, "--strict", "--quiet", path])
    assert proc.returncode == 0 and "ERROR" not in proc.stdout + proc.stderr, (
        f"kubernetes-validate {version}:\n{proc.stdout}{proc.stderr}")


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_kustomization_renders(name: str) -> None:
    objects = rendered(name)
    assert objects, f"{name} renders nothing"
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), f"{name}: duplicate objects"
    assert all(o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"), (
        f"{name}: every object is namespaced by its kustomization")
    # Built-in API groups have no dot or end in .k8s.io; anything else is a custom resource.
    groups = {(o["apiVersion"], o["kind"]): o["apiVersion"].rsplit("/", 1)[0] for o in objects if "/" in o["apiVersion"]}
    unknown = {key for key, group in groups.items() if "." in group and not group.endswith(".k8s.io")} - CRD_KINDS
    assert not unknown, f"{name}: custom resources without a structure check here: {unknown}"



@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_core_objects_validate_strictly(name: str, version: str, tmp_path: Path) -> None:
    _kubernetes_validate(_core_objects(name), tmp_path, version)


def test_secret_template_validates(tmp_path: Path) -> None:
    docs = yaml_file(SECRET_TEMPLATE)
    assert {d["metadata"]["name"] for d in docs} == {"clazzify-secrets", "clazzify-keda-kafka"}
    _kubernetes_validate(docs, tmp_path, KUBERNETES_VERSIONS[0])


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_custom_resources_have_the_crd_structure(name: str, tmp_path: Path) -> None:
    errors: list[str] = []
    behaviours = []
    for obj in rendered(name):
        if (obj["apiVersion"], obj["kind"]) not in CRD_KINDS:
            continue
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        errors += _structure_errors({k: v for k, v in obj.items() if k != "spec"},
                                    {"!apiVersion": _STR, "!kind": _STR, "!metadata": _MAP}, where)
        errors += _structure_errors(obj.get("spec"), CRD_SPECS[obj["kind"]], f"{where}.spec")
        if obj["kind"] == "ScaledObject":
            for i, trigger in enumerate(obj["spec"]["triggers"]):
                bad = {k: v for k, v in trigger["metadata"].items() if not isinstance(v, str)}
                errors += [f"{where}.spec.triggers[{i}].metadata: values must be strings: {bad}"] if bad else []
            behaviour = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
            if behaviour:
                behaviours.append(behaviour)
    assert not errors, "\n".join(errors)
    # KEDA hands `behavior` to the HPA it creates: validate it as one.
    hpas = [{"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": f"keda-{i}"},
             "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                      "maxReplicas": 2, "behavior": b}} for i, b in enumerate(behaviours)]
    if hpas:
        _kubernetes_validate(hpas, tmp_path, KUBERNETES_VERSIONS[0])


def test_checkov_passes_on_rendered_manifests(tmp_path: Path) -> None:
    for name in KUSTOMIZATIONS:
        (tmp_path / f"{name}.yaml").write_text(rendered_text(name), encoding="utf-8")
    (tmp_path / "secret.template.yaml").write_text(SECRET_TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    proc = run([tool(TOOLS_VENV / "bin" / "checkov"), "-d", tmp_path, "--framework", "kubernetes", "secrets",
                "--skip-download", "--compact", "-o", "json"])
    assert proc.stdout.strip(), f"checkov printed nothing:\n{proc.stderr}"
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    kinds = {r.get("check_type") for r in reports}
    assert "kubernetes" in kinds, f"checkov ran no kubernetes checks: {kinds}"
    failed, unexplained = [], []
    for report in reports:
        results = report.get("results", {})
        failed += [f"{c['check_id']} {c['check_name']}: {c['resource']} ({Path(c['file_path']).name})"
                   for c in results.get("failed_checks", [])]
        for c in results.get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment") or ""
            if not reason.strip():
                unexplained.append(f"{c['check_id']} on {c['resource']}")
    assert not failed, "checkov findings:\n" + "\n".join(failed)
    assert not unexplained, "checks skipped without a reason:\n" + "\n".join(unexplained)
