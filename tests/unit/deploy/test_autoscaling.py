"""Autoscaling agrees with deploy/k8s/capacity.yaml, the one place its numbers are written."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.metrics import Metrics
from consumer.settings import env_name

from .promql_check import exported_names, metric_names_in
from .tooling import OVERLAYS, REPO, capacity, objects, one, yaml_file


def _consumer_config(name: str) -> dict[str, str]:
    return next(o for o in objects(name, "ConfigMap") if o["metadata"]["name"].startswith("clazzify-config"))["data"]


def _autoscalers(name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return objects(name, "ScaledObject"), objects(name, "HorizontalPodAutoscaler")


def test_capacity_is_consistent() -> None:
    envs = capacity()
    assert set(envs) == set(OVERLAYS)
    for env, c in envs.items():
        assert 1 <= c["min_replicas"] <= c["max_replicas"] <= c["partitions"], (
            f"{env}: more consumers than partitions would sit idle")
        assert c["per_pod_images_per_second"] > 0 and c["target_drain_seconds"] > 0


@pytest.mark.parametrize("name", OVERLAYS)
def test_exactly_one_autoscaler_drives_the_deployment(name: str) -> None:
    keda, hpas = _autoscalers(name)
    assert len(keda) + len(hpas) == 1, f"{name}: KEDA and an HPA must not both scale the Deployment"
    target = keda[0]["spec"]["scaleTargetRef"] if keda else hpas[0]["spec"]["scaleTargetRef"]
    assert target["name"] == one(name, "Deployment", "clazzify")["metadata"]["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_keda_scaled_object_follows_capacity(name: str) -> None:
    keda, _ = _autoscalers(name)
    if not keda:
        assert name != "prod", "prod scales with KEDA"
        return
    c = capacity()[name]
    spec = keda[0]["spec"]
    assert spec["maxReplicaCount"] <= c["partitions"], "maxReplicaCount <= partitions"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (c["min_replicas"], c["max_replicas"])
    [trigger] = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert int(meta["lagThreshold"]) == c["per_pod_images_per_second"] * c["target_drain_seconds"], (
        "lagThreshold = per-pod images/s x target drain seconds (capacity.yaml)")
    assert meta["allowIdleConsumers"] == "false"
    config = _consumer_config(name)
    assert meta["topic"] == config[env_name("input_topic")] == c["input_topic"]
    assert meta["consumerGroup"] == config[env_name("group_id")]
    assert meta["bootstrapServers"] == config[env_name("kafka_bootstrap")]
    auth = one(name, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    template = {d["metadata"]["name"]: d["stringData"] for d in yaml_file(REPO / "deploy/k8s/base/secret.template.yaml")}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["key"] in template[ref["name"]], f"Secret {ref['name']} template lacks {ref['key']}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_hpa_scales_on_backlog_seconds(name: str) -> None:
    _, hpas = _autoscalers(name)
    if not hpas:
        return
    c = capacity()[name]
    spec = hpas[0]["spec"]
    assert spec["maxReplicas"] <= c["partitions"], "maxReplicas <= partitions"
    assert (spec["minReplicas"], spec["maxReplicas"]) == (c["min_replicas"], c["max_replicas"])
    [metric] = spec["metrics"]
    assert metric["type"] == "Pods"
    name_ = metric["pods"]["metric"]["name"]
    assert name_ == "clazzify_backlog_seconds"
    assert name_ in exported_names(Metrics().registry), "the HPA's metric is exported by the consumer"
    assert float(metric["pods"]["target"]["averageValue"]) == c["target_drain_seconds"]


def test_adapter_rule_serves_the_hpa_metric() -> None:
    [doc] = yaml_file(REPO / "deploy/prometheus/adapter-rules.yaml")
    [rule] = doc["rules"]["custom"]
    assert rule["name"]["as"] == "clazzify_backlog_seconds"
    assert metric_names_in(rule["seriesQuery"]) == {"clazzify_backlog_seconds"}
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
