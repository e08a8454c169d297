"""Print the pinned requirements of one image flavour, read from pyproject.toml.

The Dockerfile installs dependencies in their own layer (cached until pyproject.toml
changes) and the package itself afterwards with ``--no-deps``. pyproject.toml stays the
only place a version is written; this script only picks and swaps:

* ``consumer-cpu``: core + ``consumer`` extra.
* ``consumer-gpu``: the same with ``onnxruntime`` replaced by the ``gpu`` extra's
  ``onnxruntime-gpu`` (both ship the ``onnxruntime`` module: never install both).
* ``trainer-gpu``: core + ``train`` extra with ``tensorflow-cpu`` replaced by
  ``tensorflow[and-cuda]`` at the same version (CUDA libraries come from PyPI wheels).

Example::

    python deploy/docker/requirements.py consumer-gpu pyproject.toml > requirements.txt
"""

from __future__ import annotations

import sys
import tomllib


def requirements(flavour: str, pyproject_path: str = "pyproject.toml") -> list[str]:
    with open(pyproject_path, "rb") as fh:
        project = tomllib.load(fh)["project"]
    extras = project["optional-dependencies"]
    core = list(project["dependencies"])
    if flavour == "consumer-cpu":
        return core + extras["consumer"]
    if flavour == "consumer-gpu":
        gpu = extras["gpu"]
        return core + [r for r in extras["consumer"] if not r.startswith("onnxruntime==")] + gpu
    if flavour == "trainer-gpu":
        swapped = [r.replace("tensorflow-cpu==", "tensorflow[and-cuda]==") for r in extras["train"]]
        return core + swapped
    raise SystemExit(f"unknown flavour {flavour!r}: consumer-cpu, consumer-gpu or trainer-gpu")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        raise SystemExit(__doc__)
    print("\n".join(requirements(*argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
