"""The Dockerfile: linted (hadolint), scanned (checkov), and held to what the consumer needs."""

from __future__ import annotations

import json
import re
import sys

import pytest

from .tooling import REPO, TOOLS_VENV, run, tool

DOCKERFILE = REPO / "Dockerfile"
CONSUMER_TARGETS = ("consumer-cpu", "consumer-gpu")

#: The CUDA major version PyPI's onnxruntime-gpu wheel is built for, per ORT minor version
#: (its metadata: 1.31.1 requires nvidia-cuda-runtime~=13.0 and nvidia-cudnn-cu13~=9.0).
#: Bumping onnxruntime-gpu in pyproject.toml fails test_gpu_base_matches_onnxruntime_gpu until
#: the new version's CUDA/cuDNN line is checked and added here.
ORT_GPU_CUDA_MAJOR = {"1.31": 13}


def _text() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def _args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", _text(), flags=re.M))


def _stage(name: str) -> str:
    """The instructions of one build stage."""
    parts = re.split(r"^(FROM .*)$", _text(), flags=re.M)
    for head, body in zip(parts[1::2], parts[2::2]):
        if re.search(rf"\bAS {re.escape(name)}\s*$", head):
            return head + body
    raise AssertionError(f"no stage {name!r} in the Dockerfile")


def _instruction(stage: str, keyword: str) -> str:
    """One instruction with its continuation lines joined."""
    lines = stage.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(keyword + " "))
    out = [lines[start]]
    while out[-1].endswith("\\"):
        start += 1
        out.append(lines[start])
    return " ".join(ln.rstrip("\\").strip() for ln in out)


def test_hadolint_is_clean() -> None:
    proc = run([tool(TOOLS_VENV / "bin" / "hadolint"), "--no-color", DOCKERFILE])
    assert proc.returncode == 0, f"hadolint findings:\n{proc.stdout}{proc.stderr}"


def test_checkov_dockerfile_passes() -> None:
    """Every skip carries its reason in a `# checkov:skip=ID: why` comment in the Dockerfile."""
    proc = run([tool(TOOLS_VENV / "bin" / "checkov"), "--framework", "dockerfile", "-f", DOCKERFILE,
                "--skip-download", "--compact", "-o", "json"])
    report = json.loads(proc.stdout)
    results = report["results"]
    failed = [f"{c['check_id']} {c['check_name']} (line {c['file_line_range']})" for c in results["failed_checks"]]
    assert not failed, "checkov findings in the Dockerfile:\n" + "\n".join(failed)
    for skipped in results["skipped_checks"]:
        reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
        assert reason.strip(), f"{skipped['check_id']} skipped without a reason"


def test_base_images_are_pinned_tags() -> None:
    # checkov's CKV_DOCKER_7 cannot see through `FROM ${ARG}`; this is the check it skips.
    args = _args()
    for name in ("PYTHON_IMAGE", "CUDA_IMAGE"):
        image = args[name]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}={image} needs an explicit version tag"
    for line in re.findall(r"^FROM (\S+)", _text(), flags=re.M):
        assert line.startswith("${") or ":" in line, f"FROM {line} has no tag"


def test_gpu_base_matches_onnxruntime_gpu() -> None:
    if sys.version_info < (3, 11):
        pytest.fail("needs tomllib")
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    gpu = [r for r in pyproject["project"]["optional-dependencies"]["gpu"] if r.startswith("onnxruntime-gpu==")]
    assert len(gpu) == 1, "the gpu extra pins onnxruntime-gpu"
    minor = ".".join(gpu[0].split("==")[1].split(".")[:2])
    assert minor in ORT_GPU_CUDA_MAJOR, (
        f"onnxruntime-gpu {minor}: look up the CUDA/cuDNN its PyPI wheel needs "
        "(pip install --dry-run --report) and add it to ORT_GPU_CUDA_MAJOR")
    cuda_image = _args()["CUDA_IMAGE"]
    m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-cudnn-runtime-ubuntu\d+\.\d+", cuda_image)
    assert m, f"CUDA_IMAGE={cuda_image}: want an nvidia/cuda X.Y.Z-cudnn-runtime image (cuDNN 9 bundled)"
    assert int(m.group(1)) == ORT_GPU_CUDA_MAJOR[minor], (
        f"onnxruntime-gpu {minor} is built for CUDA {ORT_GPU_CUDA_MAJOR[minor]}.x, the base has CUDA {m.group(1)}")


@pytest.mark.parametrize("target", CONSUMER_TARGETS)
def test_consumer_stage_runs_as_non_root_with_healthcheck(target: str) -> None:
    stage = _stage(target)
    users = re.findall(r"^USER (\S+)", stage, flags=re.M)
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0", (
        f"{target}: the last USER must be a numeric non-root uid (Kubernetes runAsNonRoot checks it)")
    health = _instruction(stage, "HEALTHCHECK")
    assert "/healthz" in health and "urllib.request" in health, "HEALTHCHECK probes /healthz with Python"
    assert re.search(r'^ENTRYPOINT \["python", "-m", "consumer"\]', stage, flags=re.M)
    assert "CLAZZIFY_MODEL_PATH=/models/model.onnx" in stage
    assert re.search(r"^COPY \$\{MODEL_DIR\}/ /models/", stage, flags=re.M), "model baked only via MODEL_DIR"
    # Read-only root filesystem: nothing may need to write outside /tmp.
    assert "PYTHONDONTWRITEBYTECODE=1" in stage and "HOME=/tmp" in stage


def test_model_is_mounted_by_default() -> None:
    default = _args()["MODEL_DIR"]
    folder = REPO / default
    assert folder.is_dir() and not list(folder.glob("*.onnx")), "the default MODEL_DIR holds no model"


def test_consumer_images_install_no_tensorflow_and_one_onnxruntime() -> None:
    sys.path.insert(0, str(REPO / "deploy" / "docker"))
    try:
        import requirements as reqs  # deploy/docker/requirements.py
    finally:
        sys.path.pop(0)
    for flavour in ("consumer-cpu", "consumer-gpu"):
        names = [re.split(r"[=<>\[]", r, maxsplit=1)[0].lower() for r in reqs.requirements(flavour, str(REPO / "pyproject.toml"))]
        assert not [n for n in names if n.startswith(("tensorflow", "keras", "tf2onnx"))], flavour
        runtimes = [n for n in names if n in ("onnxruntime", "onnxruntime-gpu")]
        assert runtimes == (["onnxruntime"] if flavour == "consumer-cpu" else ["onnxruntime-gpu"]), (flavour, runtimes)
    trainer = reqs.requirements("trainer-gpu", str(REPO / "pyproject.toml"))
    assert any(r.startswith("tensorflow[and-cuda]==") for r in trainer)
    assert not any(r.startswith(("confluent-kafka", "tensorflow-cpu")) for r in trainer)


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [ln.strip() for ln in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "*", "allow-list: exclude everything, then re-include what the build copies"
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", _text(), flags=re.M))
    sources = {s.rstrip("/") for line in copied for s in line.split() if not s.startswith("${")}
    included = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    for src in sources:
        assert any(src == inc or src.startswith(inc + "/") for inc in included), (
            f"COPY {src} is not re-included in .dockerignore")
