"""Fixtures for the exporter's tests: tiny Keras models and one shared export.

TensorFlow is imported once per session; every model here is a few kilobytes so
that a conversion takes about a second on two cores.

Fixtures:
    make_model   session  make_model(size=227, classes=4, dtype="uint8", head="softmax",
                          seed=0) -> keras.Model (uint8 models rescale themselves)
    run_dir      session  a trainer-style run folder: model.keras, run.json, labels.json,
                          metrics.json (uint8 input, 227, four labels)
    exported     session  ExportResult of `run_dir/model.keras` with --fp16 --optimize
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LABELS = ["food", "ambiance", "menu", "human"]
RUN = {
    "arch": "tiny-test-net",
    "input_size": 227,
    "labels": LABELS,
    "dataset_digest": "sha256:" + "ab" * 32,
    "trained_at": "2026-01-02T03:04:05Z",
    "epochs": 3,
}
METRICS = {"test": {"accuracy": 0.91, "macro_f1": 0.88, "per_class": {"food": 0.9}},
           "val_loss": 0.31, "confusion": [[1, 2], [3, 4]]}


@pytest.fixture(scope="session")
def make_model() -> Callable[..., Any]:
    import keras
    from keras import layers

    def build(size: int = 227, classes: int = 4, dtype: str = "uint8", head: str = "softmax",
              seed: int = 0) -> Any:
        keras.utils.set_random_seed(seed)
        inputs = keras.Input((size, size, 3), dtype=dtype, name="image")
        x = layers.Rescaling(1 / 255.0)(inputs) if dtype == "uint8" else inputs
        x = layers.Conv2D(8, 11, strides=4, activation="relu")(x)
        x = layers.MaxPooling2D(3, 2)(x)
        x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
        x = layers.GlobalAveragePooling2D()(x)
        # A larger last layer spreads the scores, so top-1 is decided by the model, not by ties.
        outputs = layers.Dense(classes, activation=None if head == "logits" else "softmax",
                               kernel_initializer=keras.initializers.RandomNormal(stddev=2.0))(x)
        return keras.Model(inputs, outputs)

    return build


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Any]) -> Path:
    folder = tmp_path_factory.mktemp("run")
    make_model().save(folder / "model.keras")
    (folder / "run.json").write_text(json.dumps(RUN))
    (folder / "labels.json").write_text(json.dumps(LABELS))
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    return folder


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, run_dir: Path) -> Any:
    from export.pipeline import ExportOptions, export_model

    out = tmp_path_factory.mktemp("exported")
    return export_model(ExportOptions(model=run_dir / "model.keras", out=out, fp16=True,
                                      optimize=True, holdout_limit=40))
