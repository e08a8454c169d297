"""The fp16 variant: float16 inside, the contract's uint8 in / float32 out outside."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import parity
from export.holdout import synthetic
from export.source import load_keras


def test_fp16_file_keeps_io_types_and_halves_the_weights(exported: Any) -> None:
    proto = onnx.load(str(exported.out / "model.fp16.onnx"))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [t for t in proto.graph.initializer if np.prod(t.dims) > 1
               and t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["precision"] == "fp16" and meta["model_version"].endswith("+fp16")
    assert (exported.out / "model.fp16.onnx").stat().st_size < \
        (exported.out / "model.onnx").stat().st_size


@pytest.mark.parametrize("batch", [1, 7])
def test_fp16_scores_within_its_gate(exported: Any, run_dir: Any, batch: int) -> None:
    session = ort.InferenceSession(str(exported.out / "model.fp16.onnx"),
                                   providers=["CPUExecutionProvider"])
    images = synthetic(227, 14, seed=9).images
    ours = parity.run_batched(lambda x: session.run(None, {"image": x})[0], images, batch)
    model = load_keras(run_dir / "model.keras")
    keras_scores = np.asarray(model(images, training=False))
    assert ours.dtype == np.float32
    result = parity.compare(keras_scores, ours, batch)
    assert result.max_abs_diff <= parity.FP16_GATE.max_abs_diff
    assert result.decisive_top1_agreement >= parity.FP16_GATE.min_top1


def test_fp16_gate_recorded_in_card(exported: Any) -> None:
    doc = json.loads((exported.out / "model.json").read_text())
    entry = next(f for f in doc["files"] if f["precision"] == "fp16")
    assert entry["parity"]["gate"] == {"name": "fp16", "max_abs_diff": 0.01, "min_top1": 0.995,
                                       "tie_margin": parity.TIE_MARGIN}
