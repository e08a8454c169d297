"""Shared helpers of the deploy tests: where the ops tools are, and how to call them.

The validators live outside the application's virtual environment (``make ops-tools``
installs them into ``.venv-tools/`` and ``.tools/bin/``), so every one of them, PyYAML
included, runs as a subprocess. A missing tool FAILS the test with the command that installs
it: these checks are the only proof of the deploy files that exists without a cluster.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TOOLS_VENV = REPO / ".venv-tools"
TOOLS_BIN = REPO / ".tools" / "bin"
TOOLS_PYTHON = TOOLS_VENV / "bin" / "python"

K8S = REPO / "deploy" / "k8s"
#: Every kustomization that is applied on its own, by name.
KUSTOMIZATIONS = {
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
    "training": K8S / "training",
}
#: The overlays that run the consumer, by the environment name used in capacity.yaml.
OVERLAYS = ("dev", "prod")
SECRET_TEMPLATE = K8S / "base" / "secret.template.yaml"
CAPACITY = K8S / "capacity.yaml"
INSTALL_HINT = "run `make -f mk/ops.mk ops-tools` (or `make ops-tools`) to install the ops validators"


def tool(path: Path) -> Path:
    """The tool's path, or a test failure that says how to install it (never a skip)."""
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing: {INSTALL_HINT}", pytrace=False)
    return path


def run(args: list[str | Path], *, input_text: str | None = None, timeout: float = 300,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a tool; output is captured as text and returned whatever the exit code."""
    return subprocess.run([str(a) for a in args], input=input_text, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, check=False)


def yaml_documents(text: str) -> list[Any]:
    """Parse a multi-document YAML stream (with the tools environment's PyYAML)."""
    proc = run([tool(TOOLS_PYTHON), "-c",
                "import json, sys, yaml; "
                "json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)"],
               input_text=text)
    if proc.returncode != 0:
        pytest.fail(f"YAML does not parse:\n{proc.stderr}", pytrace=False)
    return json.loads(proc.stdout)


@lru_cache(maxsize=None)
def _yaml_file(path: str) -> str:
    return json.dumps(yaml_documents(Path(path).read_text(encoding="utf-8")))


def yaml_file(path: Path) -> list[Any]:
    """A YAML file's documents (parsed once per test session)."""
    return json.loads(_yaml_file(str(path)))


@lru_cache(maxsize=None)
def _render(name: str) -> tuple[str, str]:
    proc = run([tool(TOOLS_BIN / "kustomize"), "build", KUSTOMIZATIONS[name]])
    if proc.returncode != 0:
        pytest.fail(f"kustomize build {name} failed:\n{proc.stderr}", pytrace=False)
    return proc.stdout, json.dumps(yaml_documents(proc.stdout))


def rendered_text(name: str) -> str:
    """`kustomize build` output of one kustomization (rendered once per session)."""
    return _render(name)[0]


def rendered(name: str) -> list[dict[str, Any]]:
    """The objects of one rendered kustomization (a fresh copy each call)."""
    return json.loads(_render(name)[1])


def objects(name: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered(name) if o["kind"] == kind]


def one(name: str, kind: str, obj_name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects(name, kind) if obj_name is None or o["metadata"]["name"] == obj_name]
    assert len(found) == 1, f"{name}: expected one {kind} {obj_name or ''}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a workload (Deployment, Job, ...)."""
    return obj["spec"]["template"]["spec"]


def workloads(name: str) -> list[dict[str, Any]]:
    return [o for o in rendered(name) if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")]


def capacity() -> dict[str, Any]:
    return yaml_file(CAPACITY)[0]["environments"]
