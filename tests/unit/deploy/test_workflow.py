"""The GitHub Actions workflow: actionlint-clean (with shellcheck on its scripts), and it
runs `make test` on pushes and builds and pushes the images on version tags."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from .tooling import REPO, TOOLS_BIN, TOOLS_VENV, tool, yaml_file

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


def _workflow() -> dict[str, Any]:
    return yaml_file(WORKFLOW)[0]


def _triggers(wf: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean true.
    return wf.get("on") or wf.get("true") or wf[True]


def test_actionlint_is_clean() -> None:
    shellcheck = tool(TOOLS_VENV / "bin" / "shellcheck")
    env = os.environ | {"PATH": f"{shellcheck.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(tool(TOOLS_BIN / "actionlint")), "-no-color", *sorted(map(str, WORKFLOW.parent.glob("*.y*ml")))],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False)
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"


def test_tests_run_on_every_push_and_pull_request() -> None:
    wf = _workflow()
    triggers = _triggers(wf)
    assert "push" in triggers and "pull_request" in triggers
    steps = wf["jobs"]["test"]["steps"]
    assert any(s.get("run", "").strip().startswith("make test") for s in steps), "the test job runs `make test`"


def test_images_are_built_and_pushed_on_tags_only() -> None:
    wf = _workflow()
    triggers = _triggers(wf)
    assert any(t.startswith("v") for t in triggers["push"]["tags"])
    job = wf["jobs"]["image"]
    assert job["needs"] == "test", "no image without green tests"
    assert "startsWith(github.ref, 'refs/tags/v')" in job["if"]
    assert job["permissions"]["packages"] == "write" and wf["permissions"] == {"contents": "read"}
    build = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/build-push-action"))
    assert build["with"]["push"] is True
    targets = {m["target"] for m in job["strategy"]["matrix"]["include"]}
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert targets and all(f" AS {t}\n" in dockerfile for t in targets), "matrix targets are Dockerfile stages"


def test_every_job_has_a_timeout() -> None:
    for name, job in _workflow()["jobs"].items():
        assert 0 < job.get("timeout-minutes", 0) <= 60, f"job {name}: timeout-minutes"


def test_ci_actions_are_versioned() -> None:
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            if "uses" in step:
                assert "@" in step["uses"], f"{step['uses']}: pin a version"
