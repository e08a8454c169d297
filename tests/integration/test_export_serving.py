"""Issue 3's end-to-end check: a trained Keras model → `python -m export` → the consumer serves it
against the real broker and database, and its rows match Keras' own predictions (fp32 bound)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from consumer import imaging
from tests.support import harness as h

LABELS = ["food", "ambiance", "menu", "human"]
FP32_BOUND = 1e-4  # the exporter's parity gate for fp32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small conv net, trained briefly on colour-coded photos, exported through the CLI."""
    import keras

    keras.utils.set_random_seed(7)
    tmp = tmp_path_factory.mktemp("export")
    images = {f"k-{i}": h.jpeg(i) for i in range(48)}
    pixels = np.stack([imaging.preprocess(b) for b in images.values()])
    # Labels from colour (red, dark, green, blue): learnable in a few epochs.
    means = pixels.reshape(len(pixels), -1, 3).mean(axis=1)
    targets = np.argmax(np.c_[means[:, 0], 255 - means.mean(axis=1), means[:, 1], means[:, 2]], axis=1)
    inputs = keras.Input((227, 227, 3), dtype="uint8", name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 7, strides=4, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(pixels, targets, epochs=3, batch_size=16, verbose=0)
    model_path = tmp / "model.keras"
    model.save(model_path)
    out = tmp / "out"
    result = subprocess.run(
        [sys.executable, "-m", "export", str(model_path), "--out", str(out), "--no-run-dir",
         "--labels", ",".join(LABELS), "--version", "it-export-v1", "--log-level", "ERROR"],
        capture_output=True, text=True, cwd=h.ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    keras_scores = {k: model.predict(p[np.newaxis], verbose=0)[0] for k, p in zip(images, pixels)}
    return out / "model.onnx", images, keras_scores, json.loads((out / "model.json").read_text())


def test_consumer_serves_the_exported_model_matching_keras(
        exported, kafka_bootstrap, database_url, db_schema, new_topic):
    model_path, images, keras_scores, card = exported
    assert card["model_version"] == "it-export-v1" and card["labels"] == LABELS
    topic, dlq = new_topic(4), new_topic(1, prefix="dlq")
    h.produce(kafka_bootstrap, topic, [h.inline(k, v) for k, v in images.items()])
    settings = h.settings_for(kafka_bootstrap, database_url, db_schema, topic, model_path, dlq_topic=dlq,
                              max_batch_size=16)
    with h.running_app(settings) as running:
        rows = h.wait_rows(database_url, db_schema, len(images))
        text = running.get("/metrics")[1]
    assert len(rows) == len(images)
    worst = 0.0
    for row in rows:
        have = np.array([row["scores"][label] for label in LABELS])
        want = keras_scores[row["image_id"]]
        worst = max(worst, float(np.abs(have - want).max()))
        assert row["model_version"] == "it-export-v1"
        assert row["label"] == LABELS[int(np.argmax(want))] or abs(np.sort(want)[-1] - np.sort(want)[-2]) < 1e-5
    assert worst <= FP32_BOUND, worst
    assert h.metric_value(text, "clazzify_model_info", {"version": "it-export-v1"}) == 1
