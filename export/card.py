"""What the model file says about itself: ``metadata_props`` and the ``model.json`` card.

The consumer learns everything about a model from the file (DESIGN contract 2),
through these ``metadata_props`` keys (all values are strings):

==================  ===========================================================
``labels``          JSON list of label names, in output order
``input_size``      the square input side, e.g. ``"227"``
``model_version``   ``sha256:<16 hex>`` content digest of the graph, or ``--version``
``dataset_digest``  the training data digest (``"unknown"`` when nobody said)
``trained_at``      ISO-8601 UTC
``metrics``         JSON of the run's headline metrics (only with a run folder)
``precision``       ``"fp32"`` or ``"fp16"``
``producer``        ``clazzify-export <v>; tf2onnx <v>; tensorflow <v>; keras <v>``
``normalization``   ``"in-model"`` or the spec the exporter put in the graph
``arch``            the trainer's architecture name, when known
``graph_optimization``  the ONNX Runtime level of an offline-optimised file
==================  ===========================================================

``model.json`` beside the files repeats all of that and adds the parity
results, every file's sha256 and size, the opset and the producer versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from consumer.contract import (META_DATASET_DIGEST, META_INPUT_SIZE, META_LABELS,
                               META_METRICS, META_MODEL_VERSION, META_PRECISION,
                               META_TRAINED_AT)

META_PRODUCER = "producer"
META_NORMALIZATION = "normalization"
META_ARCH = "arch"
META_GRAPH_OPTIMIZATION = "graph_optimization"

CARD_FILE = "model.json"
CARD_SCHEMA = "clazzify.model-card/1"
PRODUCER_NAME = "clazzify-export"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Identity:
    """Everything the metadata says that is not about one particular file."""

    labels: list[str]
    input_size: int
    dataset_digest: str
    trained_at: str
    normalization: str
    metrics: dict[str, Any] | None = None
    arch: str | None = None


def export_version() -> str:
    """This exporter's version (the installed ``clazzify`` distribution, else the package's)."""
    from importlib import metadata

    try:
        return metadata.version("clazzify")
    except metadata.PackageNotFoundError:
        from export import __version__

        return __version__


def producer_versions() -> dict[str, str]:
    """Versions of everything that shaped the file (imported modules only, no new imports)."""
    import sys

    versions = {PRODUCER_NAME: export_version(), "python": platform.python_version()}
    for name in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
                 "onnxconverter_common", "numpy"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__version__", None):
            versions[name] = str(module.__version__)
    return versions


def content_digest(proto: onnx.ModelProto) -> str:
    """``sha256:<16 hex>`` of the graph alone: metadata, producer and node names excluded.

    Intermediate names are replaced by their order of appearance, so two exports
    of the same weights give the same version even if a converter numbers its
    nodes differently.
    """
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    del model.metadata_props[:]
    model.producer_name = model.producer_version = model.doc_string = model.domain = ""
    graph = model.graph
    graph.name = graph.doc_string = ""
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def canon(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for index, node in enumerate(graph.node):
        node.name = f"n{index}"
        node.doc_string = ""
        node.input[:] = [canon(n) for n in node.input]
        node.output[:] = [canon(n) for n in node.output]
    for tensor in graph.initializer:
        tensor.name = canon(tensor.name)
    for value in graph.value_info:
        value.name = canon(value.name)
    initializers = sorted(graph.initializer, key=lambda t: t.name)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    value_info = sorted(graph.value_info, key=lambda v: v.name)
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    digest = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    return f"sha256:{digest[:16]}"


def metadata_props(identity: Identity, *, version: str, precision: str,
                   optimization: str | None = None,
                   producer: dict[str, str] | None = None) -> dict[str, str]:
    """The ``metadata_props`` of one model file, as an ordered str → str mapping."""
    props = {
        META_LABELS: json.dumps(identity.labels, ensure_ascii=False),
        META_INPUT_SIZE: str(identity.input_size),
        META_MODEL_VERSION: version,
        META_DATASET_DIGEST: identity.dataset_digest,
        META_TRAINED_AT: identity.trained_at,
        META_PRECISION: precision,
        META_NORMALIZATION: identity.normalization,
    }
    if identity.metrics is not None:
        props[META_METRICS] = json.dumps(identity.metrics, sort_keys=True)
    if identity.arch:
        props[META_ARCH] = identity.arch
    if optimization:
        props[META_GRAPH_OPTIMIZATION] = optimization
    versions = producer or producer_versions()
    props[META_PRODUCER] = "; ".join(f"{k} {versions[k]}" for k in
                                     (PRODUCER_NAME, "tf2onnx", "tensorflow", "keras")
                                     if k in versions)
    return props


def stamp(proto: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace ``proto``'s metadata with ``props`` and name this exporter as its producer."""
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    versions = producer_versions()
    proto.producer_name = PRODUCER_NAME
    proto.producer_version = versions[PRODUCER_NAME]
    if "tf2onnx" in versions:
        proto.producer_version += f" (tf2onnx {versions['tf2onnx']})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_file_mode() -> int:
    """0o666 less the umask: what ``open()`` would give (temp files are created 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as pretty JSON to ``path`` via a temp file and a rename."""
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                         prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            json.dump(payload, handle, indent=2, sort_keys=False, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, default_file_mode())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
