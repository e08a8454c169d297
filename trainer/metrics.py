"""Classification metrics from labels and probabilities (pure NumPy, no I/O).

``metrics.json`` is ``summarize(...)``: top-1 accuracy, macro F1, and per class
precision, recall, F1 and support, plus the confusion matrix (rows = true, columns = predicted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` int64 counts; row = true label, column = predicted label."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def summarize(y_true: np.ndarray, probabilities: np.ndarray, labels: Sequence[str], *,
              split: str) -> dict:
    """The metrics dictionary written as ``metrics.json``."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(matrix).astype(np.float64)
    precision = _ratio(tp, matrix.sum(axis=0))
    recall = _ratio(tp, matrix.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    support = matrix.sum(axis=1)
    present = support > 0
    return {
        "split": split,
        "n": int(y_true.size),
        "top1_accuracy": float(tp.sum() / max(1, y_true.size)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }
