"""Keras vs ONNX Runtime at two batch sizes, and the gate's arithmetic."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from export import parity
from export.holdout import synthetic
from export.source import load_keras


@pytest.mark.parametrize("batch", [1, 16])
def test_keras_and_onnx_agree(exported: Any, run_dir: Any, batch: int) -> None:
    model = load_keras(run_dir / "model.keras")
    session = ort.InferenceSession(str(exported.out / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    images = synthetic(227, 24, seed=5).images  # 24 = one full batch of 16 and a short one
    keras_scores = parity.run_batched(lambda x: np.asarray(model(x, training=False)), images, batch)
    onnx_scores = parity.run_batched(lambda x: session.run(None, {"image": x})[0], images, batch)
    assert np.abs(keras_scores - onnx_scores).max() <= parity.FP32_GATE.max_abs_diff
    assert (keras_scores.argmax(1) == onnx_scores.argmax(1)).all()


def _scores(rows: list[list[float]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.float32)


def test_compare_counts_ties_separately() -> None:
    reference = _scores([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    candidate = _scores([[0.5, 0.5000001], [0.9, 0.1], [0.2, 0.8]])
    result = parity.compare(reference, candidate, batch_size=3)
    assert result.ties == 1
    assert result.top1_agreement == pytest.approx(2 / 3)
    assert result.decisive_top1_agreement == 1.0


def test_gate_fails_on_difference_and_on_nan() -> None:
    images = np.zeros((4, 2, 2, 3), np.uint8)
    ref = lambda x: np.tile(_scores([[0.7, 0.3]]), (len(x), 1))  # noqa: E731
    off = lambda x: np.tile(_scores([[0.7002, 0.2998]]), (len(x), 1))  # noqa: E731
    nan = lambda x: np.full((len(x), 2), np.nan, np.float32)  # noqa: E731
    flipped = lambda x: np.tile(_scores([[0.3, 0.7]]), (len(x), 1))  # noqa: E731
    assert parity.check(parity.FP32_GATE, ref, ref, images, batch_sizes=(1, 4)).passed
    assert not parity.check(parity.FP32_GATE, ref, off, images, batch_sizes=(1, 4)).passed
    assert parity.check(parity.FP16_GATE, ref, off, images, batch_sizes=(1, 4)).passed
    report = parity.check(parity.FP32_GATE, ref, nan, images, batch_sizes=(1, 4))
    assert not report.passed and len(report.failures) == 2
    report = parity.check(parity.FP16_GATE, ref, flipped, images, batch_sizes=(1, 4))
    assert not report.passed and any("top-1" in f for f in report.failures)
    assert report.to_dict()["gate"]["max_abs_diff"] == 1e-2


def test_batch_one_uses_the_first_images_only() -> None:
    seen: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(len(x))
        return np.ones((len(x), 2), np.float32) / 2

    parity.check(parity.FP32_GATE, predict, predict, np.zeros((40, 1, 1, 3), np.uint8),
                 batch_sizes=(1, 32), single_limit=5)
    assert seen == [1] * 5 + [32, 8] + [1] * 5 + [32, 8]
