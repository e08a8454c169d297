"""It learns: narrow AlexNet on 4 synthetic classes reaches ≥ 0.9 validation accuracy on
CPU, and the run folder honours the contract the exporter reads."""

from __future__ import annotations

import csv
import json
from datetime import datetime

import h5py
import keras
import numpy as np
from PIL import Image

from conftest import SYNTHETIC_SIZE
from trainer.reader import HDF5Batches
from trainer_synthetic import CLASSES


def test_reaches_090_validation_accuracy(trained_run, synthetic_h5):
    run_dir, printed = trained_run
    assert printed["val_top1_accuracy"] >= 0.9, printed
    # Independently re-check the saved model on the val split, outside the trainer's code path.
    model = keras.saving.load_model(run_dir / "model.keras")
    with h5py.File(synthetic_h5, "r") as handle:
        images, labels = handle["val/images"][:], handle["val/labels"][:]
    predicted = np.asarray(model.predict(images, verbose=0)).argmax(axis=1)
    assert (predicted == labels).mean() >= 0.9
    assert printed["top1_accuracy"] >= 0.8  # held-out test split (36 images)


def test_run_folder_contract(trained_run, synthetic_h5):
    run_dir, _ = trained_run
    for name in ("model.keras", "labels.json", "metrics.json", "run.json", "history.csv",
                 "curves.png", "confusion_matrix.png", "checkpoints/best.keras"):
        assert (run_dir / name).is_file(), name
    labels = json.loads((run_dir / "labels.json").read_text())
    assert labels == list(CLASSES)

    run = json.loads((run_dir / "run.json").read_text())
    with h5py.File(synthetic_h5, "r") as handle:
        digest = handle.attrs["digest"]
    assert run["arch"] == "alexnet" and run["input_size"] == SYNTHETIC_SIZE and run["labels"] == labels
    assert run["dataset_digest"] == digest and run["dataset_path"] == str(synthetic_h5.resolve())
    assert datetime.fromisoformat(run["trained_at"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert (run["batch_size"], run["seed"], run["backend"]) == (32, 1337, "tensorflow")
    assert run["device"].startswith("cpu") and run["images_per_s"] > 0
    assert 1 <= run["best_epoch"] <= run["epochs"] <= 15

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "test" and 0.0 <= metrics["top1_accuracy"] <= 1.0
    assert set(metrics["per_class"]) == set(labels)
    for values in metrics["per_class"].values():
        assert set(values) >= {"precision", "recall", "f1", "support"}
    assert sum(v["support"] for v in metrics["per_class"].values()) == metrics["n"] == run["counts"]["test"]

    with open(run_dir / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    assert len(history) == run["epochs"] and {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"} <= set(history[0])
    rates = [float(row["learning_rate"]) for row in history]
    assert rates[0] > rates[-1]  # the cosine schedule decays
    for png in ("curves.png", "confusion_matrix.png"):
        with Image.open(run_dir / png) as image:
            assert image.format == "PNG" and min(image.size) > 200


def test_saved_model_takes_uint8_and_matches_the_best_checkpoint(trained_run, synthetic_h5):
    run_dir, _ = trained_run
    model = keras.saving.load_model(run_dir / "model.keras")
    best = keras.saving.load_model(run_dir / "checkpoints" / "best.keras")
    assert model.inputs[0].dtype == "uint8" and model.inputs[0].name == "image"
    assert tuple(model.inputs[0].shape) == (None, SYNTHETIC_SIZE, SYNTHETIC_SIZE, 3)
    assert not any("Random" in type(layer).__name__ for layer in model._flatten_layers())
    x, _ = HDF5Batches(str(synthetic_h5), "test", 8)[0]
    scores = np.asarray(model(x, training=False))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scores, np.asarray(best(x, training=False)), atol=1e-6)
