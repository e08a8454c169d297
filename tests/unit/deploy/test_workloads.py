"""What the rendered workloads promise: locked-down pods, real settings, health, drain, GPUs."""

from __future__ import annotations

import re
from typing import Any

import pytest

from consumer import settings as settings_mod
from consumer.settings import SECRET_FIELDS, Settings, env_name

from .tooling import KUSTOMIZATIONS, OVERLAYS, SECRET_TEMPLATE, objects, one, pod_spec, rendered, workloads, yaml_file

#: Settings with no safe default in production: every consumer must be given them.
REQUIRED_SETTINGS = ("kafka_bootstrap", "database_url", "model_path")
#: Ports the consumer's NetworkPolicy may open for egress: DNS, Kafka, PostgreSQL, HTTPS
#: (object store), MinIO (dev).
EGRESS_PORTS = {53, 9092, 9093, 5432, 443, 9000}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return spec.get("initContainers", []) + spec["containers"]


def _consumer(name: str) -> dict[str, Any]:
    return one(name, "Deployment", "clazzify")


def _config(name: str, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment: ConfigMaps from envFrom, then env (secret refs excluded)."""
    env: dict[str, str] = {}
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objects(name, "ConfigMap")}
    for source in container.get("envFrom", []):
        assert "secretRef" not in source, "secrets are mounted as files, never envFrom"
        ref = source["configMapRef"]["name"]
        assert ref in maps, f"{name}: envFrom names ConfigMap {ref}, which is not rendered"
        env.update(maps[ref])
    for var in container.get("env", []):
        assert "secretKeyRef" not in var.get("valueFrom", {}), f"{var['name']}: secrets as files, not env"
        env[var["name"]] = var.get("value", "<fieldRef>")
    return env


def _clazzify_containers(name: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(w, c) for w in workloads(name) for c in _containers(w) if c["name"] in ("consumer", "migrate")]


def _drain_timeout(env: dict[str, str]) -> float:
    raw = env.get(env_name("drain_timeout_s"))
    return float(raw) if raw is not None else float(Settings.model_fields["drain_timeout_s"].default)


# ----------------------------------------------------------------------------- security
@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_pods_are_locked_down(name: str) -> None:
    for obj in workloads(name):
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        spec = pod_spec(obj)
        pod_sc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, f"{where}: no API token"
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert not any("hostPath" in v for v in spec.get("volumes", [])), where
        assert pod_sc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for c in _containers(obj):
            sc = c.get("securityContext", {})
            cw = f"{where} container {c['name']}"
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, cw
            assert sc.get("runAsUser", pod_sc.get("runAsUser", 0)) != 0, f"{cw}: numeric non-root uid"
            assert sc.get("readOnlyRootFilesystem") is True, f"{cw}: read-only root filesystem"
            assert sc.get("allowPrivilegeEscalation") is False, f"{cw}: no privilege escalation"
            assert sc.get("privileged", False) is False, cw
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{cw}: drop ALL capabilities"
            assert not sc.get("capabilities", {}).get("add"), f"{cw}: adds no capability"
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            assert "/tmp" in mounts and "emptyDir" in volumes[mounts["/tmp"]], f"{cw}: writable /tmp emptyDir"


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_every_container_has_resources(name: str) -> None:
    for obj in workloads(name):
        for c in _containers(obj):
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    assert what in res.get(kind, {}), f"{name}: {c['name']} needs {kind}.{what}"


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize("name", OVERLAYS)
def test_every_clazzify_variable_is_a_real_setting(name: str) -> None:
    fields = set(Settings.model_fields)
    known = {env_name(f) for f in fields} | {env_name(f) + "_FILE" for f in SECRET_FIELDS}
    for obj, container in _clazzify_containers(name):
        env = _config(name, container)
        unknown = sorted(k for k in env if k.startswith(settings_mod.ENV_PREFIX) and k not in known)
        assert not unknown, (f"{name}: {obj['metadata']['name']} sets {unknown}, which are not consumer "
                             "settings (consumer/settings.py); secrets only as <NAME>_FILE")
        # The values must be valid too: build the Settings the pod would (files stand in for secrets).
        environ = {k: v for k, v in env.items() if k.startswith(settings_mod.ENV_PREFIX) and not k.endswith("_FILE")}
        environ |= {k[: -len("_FILE")]: "from-a-file" for k in env if k.endswith("_FILE") and k in known}
        settings_mod.load(environ=environ)


@pytest.mark.parametrize("name", OVERLAYS)
def test_required_settings_are_provided(name: str) -> None:
    container = next(c for c in _containers(_consumer(name)) if c["name"] == "consumer")
    env = _config(name, container)
    for field in REQUIRED_SETTINGS:
        var = env_name(field)
        given = var in env or (field in SECRET_FIELDS and var + "_FILE" in env)
        assert given, f"{name}: the consumer needs {var}{' (or _FILE)' if field in SECRET_FIELDS else ''}"
    for field in REQUIRED_SETTINGS:
        assert field in Settings.model_fields, f"{field} is no longer a setting: update REQUIRED_SETTINGS"
    migrate = next(c for w, c in _clazzify_containers(name) if c["name"] == "migrate")
    assert env_name("database_url") + "_FILE" in _config(name, migrate)


@pytest.mark.parametrize("name", OVERLAYS)
def test_secret_files_are_mounted_from_known_keys(name: str) -> None:
    template_keys = {d["metadata"]["name"]: set(d["stringData"]) for d in yaml_file(SECRET_TEMPLATE)}
    rendered_keys = {o["metadata"]["name"]: set(o.get("data", {})) | set(o.get("stringData", {}))
                     for o in objects(name, "Secret")}
    for obj, container in _clazzify_containers(name):
        env = _config(name, container)
        volumes = {v["name"]: v for v in pod_spec(obj).get("volumes", [])}
        for var, path in env.items():
            if not var.endswith("_FILE"):
                continue
            mount = next((m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
            assert mount and mount.get("readOnly"), f"{name}: {var}={path} is not on a read-only mount"
            secret = volumes[mount["name"]]["secret"]
            key = next(i["key"] for i in secret["items"] if i["path"] == path[len(mount["mountPath"]) + 1:])
            # The generated Secret of an overlay (name with hash suffix), else the template's.
            keys = rendered_keys.get(secret["secretName"]) or template_keys.get(secret["secretName"])
            assert keys is not None, f"{name}: Secret {secret['secretName']} is neither rendered nor templated"
            assert key in keys, f"{name}: Secret {secret['secretName']} has no key {key}"


# ----------------------------------------------------------------------- health, drain
@pytest.mark.parametrize("name", OVERLAYS)
def test_probes_point_at_health_endpoints(name: str) -> None:
    container = next(c for c in _containers(_consumer(name)) if c["name"] == "consumer")
    env = _config(name, container)
    port = int(env.get(env_name("metrics_port"), Settings.model_fields["metrics_port"].default))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{name}: {probe} must GET {path}"
        assert ports.get(get["port"], get["port"]) == port, f"{name}: {probe} must hit CLAZZIFY_METRICS_PORT {port}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_grace_period_covers_the_drain(name: str) -> None:
    deployment = _consumer(name)
    container = next(c for c in _containers(deployment) if c["name"] == "consumer")
    drain = _drain_timeout(_config(name, container))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
    # Margin for the offset commit and the client close after the drain.
    assert grace >= pre_stop + drain + 5, (
        f"{name}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + 5")


# ------------------------------------------------------------------------------- GPUs
def test_prod_requests_one_gpu_and_dev_none() -> None:
    for name, want in (("prod", 1), ("dev", None)):
        container = next(c for c in _containers(_consumer(name)) if c["name"] == "consumer")
        res = container["resources"]
        assert res.get("limits", {}).get("nvidia.com/gpu") == want, name
        assert res.get("requests", {}).get("nvidia.com/gpu") == want, name
    prod_env = _config("prod", next(c for c in _containers(_consumer("prod")) if c["name"] == "consumer"))
    assert "CUDAExecutionProvider" in prod_env[env_name("providers")]
    assert re.search(r"-gpu(@|$)", next(c for c in _containers(_consumer("prod")))["image"])
    trainer = one("training", "Job", "clazzify-train")
    assert pod_spec(trainer)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize("name", OVERLAYS)
def test_thread_pools_fit_the_cpu_limit(name: str) -> None:
    # os.cpu_count() sees the node's cores, not the pod's limit: pools must be set explicitly.
    container = next(c for c in _containers(_consumer(name)) if c["name"] == "consumer")
    env = _config(name, container)
    cpu = container["resources"]["limits"]["cpu"]
    cores = float(cpu[:-1]) / 1000 if str(cpu).endswith("m") else float(cpu)
    for field in ("decode_workers", "intra_op_threads"):
        value = int(env.get(env_name(field), "0"))
        assert 0 < value <= max(cores, 1), f"{name}: {env_name(field)}={value} with a {cpu}-CPU limit"


# ------------------------------------------------------------------- wiring and labels
def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", OVERLAYS)
def test_selectors_find_their_pods(name: str) -> None:
    deployment = _consumer(name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    service = one(name, "Service", "clazzify")
    assert _matches(service["spec"]["selector"], pod_labels)
    assert _matches(one(name, "PodDisruptionBudget", "clazzify")["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = one(name, "ServiceMonitor", "clazzify")
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= service_ports
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "clazzify", 'queries use job="clazzify"'
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


@pytest.mark.parametrize("name", sorted(KUSTOMIZATIONS))
def test_network_policy_covers_every_pod_and_limits_egress(name: str) -> None:
    policies = objects(name, "NetworkPolicy")
    for obj in workloads(name):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies if _matches(p["spec"]["podSelector"].get("matchLabels", {}), labels)]
        assert covering, f"{name}: no NetworkPolicy selects {obj['kind']}/{obj['metadata']['name']}"
        for policy in covering:
            assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            for rule in policy["spec"].get("egress", []):
                assert rule.get("to"), f"{name}: an egress rule without `to` allows every destination"
                ports = {p["port"] for p in rule.get("ports", [])}
                assert ports and ports <= EGRESS_PORTS, f"{name}: egress ports {ports}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_jobs_run_the_consumer_image(name: str) -> None:
    image = next(c for c in _containers(_consumer(name)))["image"]
    migrate = one(name, "Job", "clazzify-migrate")
    assert pod_spec(migrate)["containers"][0]["image"] == image, "schema and consumer versions move together"
    assert pod_spec(migrate)["containers"][0]["args"] == ["migrate"]


def test_model_comes_from_a_read_only_volume_in_prod() -> None:
    deployment = _consumer("prod")
    container = next(c for c in _containers(deployment) if c["name"] == "consumer")
    model_path = _config("prod", container)[env_name("model_path")]
    mount = next(m for m in container["volumeMounts"] if model_path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["readOnly"] is True


def test_every_overlay_renders_the_consumer() -> None:
    for name in OVERLAYS:
        assert any(o["kind"] == "Deployment" for o in rendered(name))
