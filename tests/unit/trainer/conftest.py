"""Shared fixtures for the trainer's tests: a CLI runner and one trained synthetic run.

The synthetic run (4 classes, 64 px, narrow AlexNet) is trained once per session through
the real CLI and shared by the learning, run-folder and evaluate tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer_synthetic import write_synthetic

REPO = Path(__file__).resolve().parents[3]
SYNTHETIC_SIZE = 64


def run_trainer(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m trainer ARGS`` from the repository root; output captured as text."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run([sys.executable, "-m", "trainer", *map(str, args)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"trainer {' '.join(map(str, args))} exited {result.returncode}\n"
                             f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}")
    return result


def call_main(*args) -> int:
    """Run ``python -m trainer ARGS`` in this process (cheaper: Keras is already imported)."""
    from trainer.__main__ import main

    return main([str(arg) for arg in args])


def last_json(stdout: str) -> dict:
    """The last line of a command's stdout, parsed as JSON."""
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def synthetic_src(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "src", per_class=90, seed=7)


@pytest.fixture(scope="session")
def synthetic_h5(synthetic_src: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic-h5") / "data.h5"
    run_trainer("build-dataset", synthetic_src, "--out", out, "--input-size", SYNTHETIC_SIZE,
                "--val-fraction", "0.2", "--test-fraction", "0.1", "--workers", "2", "--no-progress")
    return out


@pytest.fixture(scope="session")
def trained_run(synthetic_h5: Path, tmp_path_factory) -> tuple[Path, dict]:
    """(run folder, the train command's JSON line)."""
    out = tmp_path_factory.mktemp("runs") / "synthetic"
    result = run_trainer("train", synthetic_h5, "--out", out, "--arch", "alexnet",
                         "--width-multiplier", "0.25", "--epochs", "15", "--batch-size", "32",
                         "--seed", "1337", timeout=600)
    return out, last_json(result.stdout)
