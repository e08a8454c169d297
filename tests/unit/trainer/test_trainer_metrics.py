"""metrics.json's numbers, checked by hand."""

from __future__ import annotations

import numpy as np

from trainer.metrics import confusion_matrix, summarize


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3).tolist() == [
        [1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_summary_precision_recall_f1_support():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 1])
    probabilities = np.eye(3)[predicted] * 0.8 + 0.2 / 3
    metrics = summarize(y_true, probabilities, ["a", "b", "c"], split="test")
    assert metrics["split"] == "test" and metrics["n"] == 6
    assert metrics["top1_accuracy"] == 4 / 6
    a, b, c = (metrics["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 2 / 3, 3)
    assert np.isclose(a["f1"], 0.8)
    assert (b["precision"], b["recall"], b["support"]) == (0.5, 1.0, 2)
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 1)
    assert np.isclose(metrics["macro_f1"], (0.8 + 2 / 3 + 0.0) / 3)
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 1, 0]]
