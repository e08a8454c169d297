"""DESIGN contract 2 on an exported file: names, dtypes, dynamic batch, metadata, card."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from consumer import contract
from export import card
from tests.unit.export.conftest import LABELS, RUN

EXACT_KEYS = {"labels", "input_size", "model_version", "dataset_digest", "trained_at",
              "metrics", "precision", "producer", "normalization", "arch"}


def _session(path: Any) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_names_dtypes_and_symbolic_batch(exported: Any) -> None:
    session = _session(exported.out / "model.onnx")
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("image", "tensor(uint8)", ["N", 227, 227, 3])
    assert (out.name, out.type, out.shape) == ("scores", "tensor(float)", ["N", len(LABELS)])
    assert (contract.INPUT_NAME, contract.OUTPUT_NAME) == ("image", "scores")


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_gives_probabilities(exported: Any, batch: int) -> None:
    session = _session(exported.out / "model.onnx")
    images = np.random.default_rng(batch).integers(0, 256, (batch, 227, 227, 3), np.uint8)
    (scores,) = session.run(["scores"], {"image": images})
    assert scores.shape == (batch, len(LABELS)) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert (scores >= 0).all()


def test_metadata_keys_and_values(exported: Any) -> None:
    meta = _session(exported.out / "model.onnx").get_modelmeta().custom_metadata_map
    assert set(meta) == EXACT_KEYS
    for key in contract.REQUIRED_METADATA:
        assert meta[key]
    assert json.loads(meta[contract.META_LABELS]) == LABELS
    assert meta[contract.META_INPUT_SIZE] == "227"
    assert meta[contract.META_DATASET_DIGEST] == RUN["dataset_digest"]
    assert meta[contract.META_TRAINED_AT] == RUN["trained_at"]
    assert meta[contract.META_PRECISION] == "fp32"
    assert meta["arch"] == RUN["arch"]
    assert meta["normalization"] == "in-model"
    assert json.loads(meta[contract.META_METRICS]) == {
        "test.accuracy": 0.91, "test.macro_f1": 0.88, "val_loss": 0.31}  # scalars only
    assert meta["producer"].startswith("clazzify-export ") and "tf2onnx 1.17" in meta["producer"]


def test_model_version_is_the_graph_digest(exported: Any) -> None:
    proto = onnx.load(str(exported.out / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["model_version"].startswith("sha256:") and len(meta["model_version"]) == 23
    # The digest ignores metadata and producer, so it can be recomputed from the file.
    assert card.content_digest(proto) == meta["model_version"]


def test_model_version_is_stable_across_conversions(run_dir: Any) -> None:
    from export import convert, source

    model = source.load_keras(run_dir / "model.keras")
    first = convert.keras_to_onnx(model, input_size=227, num_classes=4)
    second = convert.keras_to_onnx(model, input_size=227, num_classes=4)
    assert card.content_digest(first) == card.content_digest(second)
    onnx.checker.check_model(first, full_check=True)
    assert {o.version for o in first.opset_import if o.domain in ("", "ai.onnx")} == {18}


def test_model_card(exported: Any) -> None:
    doc = json.loads((exported.out / "model.json").read_text())
    assert doc["schema"] == "clazzify.model-card/1"
    assert doc["labels"] == LABELS and doc["input_size"] == 227 and doc["opset"] == 18
    assert doc["metrics"] == {"test.accuracy": 0.91, "test.macro_f1": 0.88, "val_loss": 0.31}
    assert doc["source"]["run"] == {"epochs": 3}
    assert doc["holdout"]["synthetic"] is True and "synthetic" in doc["holdout"]["note"]
    for name in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime",
                 "onnxconverter_common", "clazzify-export"):
        assert doc["producer"][name]
    files = {f["path"]: f for f in doc["files"]}
    assert set(files) == {"model.onnx", "model.opt.onnx", "model.fp16.onnx"}
    for name, entry in files.items():
        data = (exported.out / name).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
        assert entry["parity"]["passed"] is True
        assert [b["batch_size"] for b in entry["parity"]["batches"]] == [1, 32]
    assert doc["metadata_props"] == dict(
        _session(exported.out / "model.onnx").get_modelmeta().custom_metadata_map)
    assert files["model.opt.onnx"]["model_version"] == doc["model_version"]
    assert files["model.fp16.onnx"]["model_version"] == doc["model_version"] + "+fp16"
    assert not list(exported.out.glob(".*.tmp")), "temp files left behind"


def test_optimized_file_keeps_the_contract(exported: Any) -> None:
    session = _session(exported.out / "model.opt.onnx")
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["graph_optimization"] == "basic" and meta["precision"] == "fp32"
    assert session.get_inputs()[0].shape == ["N", 227, 227, 3]
    images = np.random.default_rng(3).integers(0, 256, (3, 227, 227, 3), np.uint8)
    plain = _session(exported.out / "model.onnx").run(None, {"image": images})[0]
    np.testing.assert_allclose(session.run(None, {"image": images})[0], plain, atol=1e-5)
