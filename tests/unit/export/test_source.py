"""What the exporter reads: normalisation specs, run folders, holdouts, odd models."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from export.errors import HoldoutError, ModelSourceError
from export.holdout import load_holdout, synthetic
from export.normalize import parse
from export.pipeline import ExportOptions, export_model
from export.source import headline_metrics, read_run_dir

SIZE = 64  # small inputs keep these conversions quick


@pytest.mark.parametrize("spec, pixel, expected", [
    ("none", 255, 255.0),
    ("unit", 255, 1.0),
    ("scale:1/255", 51, 0.2),
    ("symmetric", 0, -1.0),
    ("symmetric", 255, 1.0),
    ("imagenet", 255, (1 - 0.485) / 0.229),
    ("scale:1/255;mean:0.5;std:0.25", 255, 2.0),
    ("mean:127.5;std:127.5", 0, -1.0),
])
def test_normalize_specs(spec: str, pixel: int, expected: float) -> None:
    value = parse(spec).apply(np.full((1, 1, 1, 3), pixel, np.uint8))[0, 0, 0, 0]
    assert value == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("spec", ["scale", "scale:x", "std:0", "scale:1;scale:2", "mean:1,2"])
def test_bad_normalize_specs(spec: str) -> None:
    with pytest.raises(ModelSourceError):
        parse(spec)


def test_headline_metrics_keeps_scalars_only() -> None:
    metrics = {"acc": 0.9, "nan": float("nan"), "cm": [[1]], "test": {"f1": 0.5, "x": [1]},
               "name": "r1"}
    assert headline_metrics(metrics) == {"acc": 0.9, "test.f1": 0.5, "name": "r1"}


def test_run_dir_must_agree_with_itself(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps({"labels": ["a", "b"], "input_size": 64}))
    (tmp_path / "labels.json").write_text(json.dumps(["b", "a"]))
    with pytest.raises(ModelSourceError, match="disagree"):
        read_run_dir(tmp_path)
    with pytest.raises(ModelSourceError, match="not a run folder"):
        read_run_dir(tmp_path / "nowhere")


def test_synthetic_holdout_is_deterministic() -> None:
    assert np.array_equal(synthetic(32, 8, seed=1).images, synthetic(32, 8, seed=1).images)
    assert synthetic(32, 8).images.dtype == np.uint8


def test_float_model_is_wrapped_with_the_stated_normalisation(
        make_model: Callable[..., Any], tmp_path: Path) -> None:
    make_model(size=SIZE, dtype="float32").save(tmp_path / "float.keras")
    with pytest.raises(ModelSourceError, match="--normalize"):
        export_model(ExportOptions(model=tmp_path / "float.keras", out=tmp_path / "x"))
    result = export_model(ExportOptions(model=tmp_path / "float.keras", out=tmp_path / "out",
                                        normalize="imagenet", holdout_limit=16))
    session = ort.InferenceSession(str(result.files[0].path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    assert session.get_modelmeta().custom_metadata_map["normalization"] == "imagenet"
    assert result.card["files"][0]["parity"]["passed"]


def test_uint8_model_refuses_a_second_normalisation(make_model: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    make_model(size=SIZE).save(tmp_path / "m.keras")
    with pytest.raises(ModelSourceError, match="twice"):
        export_model(ExportOptions(model=tmp_path / "m.keras", out=tmp_path / "o",
                                   normalize="unit"))


def test_logits_need_softmax(make_model: Callable[..., Any], tmp_path: Path) -> None:
    make_model(size=SIZE, head="logits").save(tmp_path / "logits.keras")
    with pytest.raises(ModelSourceError, match="--softmax"):
        export_model(ExportOptions(model=tmp_path / "logits.keras", out=tmp_path / "x"))
    result = export_model(ExportOptions(model=tmp_path / "logits.keras", out=tmp_path / "out",
                                        softmax=True, holdout_limit=16))
    assert result.files[0].parity["passed"]


def test_normalization_layer_constants_stay_inside_the_graph(tmp_path: Path) -> None:
    """Keras' Normalization(mean=, variance=) holds captured tensors, not variables."""
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8")
    x = layers.Normalization(mean=[124.0, 116.0, 104.0], variance=[3400.0, 3300.0, 3300.0])(inputs)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 3)(x))
    keras.Model(inputs, layers.Dense(3, activation="softmax")(x)).save(tmp_path / "n.keras")
    result = export_model(ExportOptions(model=tmp_path / "n.keras", out=tmp_path / "out",
                                        holdout_limit=8))
    session = ort.InferenceSession(str(result.files[0].path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]


def test_mixed_precision_model_exports_in_float32(make_model: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    import keras
    import onnx

    keras.config.set_dtype_policy("mixed_float16")
    try:
        make_model(size=SIZE).save(tmp_path / "mixed.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    result = export_model(ExportOptions(model=tmp_path / "mixed.keras", out=tmp_path / "out",
                                        holdout_limit=8))
    proto = onnx.load(str(result.files[0].path))
    types = {t.data_type for t in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 not in types and onnx.TensorProto.FLOAT in types


def _dataset(path: Path, labels: list[str], n: int = 12) -> Path:
    """The trainer's HDF5 layout, as far as the exporter reads it."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        h5.attrs["labels"] = json.dumps(labels)
        h5.attrs["input_size"] = SIZE
        h5.attrs["digest"] = "sha256:" + "cd" * 32
        for split, rows in (("train", n), ("val", 0), ("test", n)):
            group = h5.create_group(split)
            group["images"] = rng.integers(0, 256, (rows, SIZE, SIZE, 3), np.uint8)
            group["labels"] = rng.integers(0, len(labels), rows).astype(np.int32)
    return path


def test_hdf5_holdout_supplies_labels_and_digest(make_model: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    labels = ["food", "ambiance", "menu", "human"]
    make_model(size=SIZE).save(tmp_path / "m.keras")
    data = _dataset(tmp_path / "data.h5", labels)
    result = export_model(ExportOptions(model=tmp_path / "m.keras", out=tmp_path / "out",
                                        holdout=data))
    meta = result.card["metadata_props"]
    assert json.loads(meta["labels"]) == labels
    assert meta["dataset_digest"] == "sha256:" + "cd" * 32
    assert result.card["holdout"]["kind"] == "hdf5" and result.card["holdout"]["count"] == 12
    assert "keras_top1_accuracy" in result.card["holdout"]
    with pytest.raises(HoldoutError, match="differ"):
        export_model(ExportOptions(model=tmp_path / "m.keras", out=tmp_path / "o2",
                                   holdout=data, labels=["a", "b", "c", "d"]))
    with pytest.raises(HoldoutError, match="uint8"):
        load_holdout(data, SIZE * 2)


def test_folder_holdout_uses_the_consumer_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i, ext in enumerate(["jpg", "png", "webp"]):
        Image.fromarray(rng.integers(0, 256, (50 + i, 90, 3), np.uint8)).save(tmp_path / f"{i}.{ext}")
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    holdout = load_holdout(tmp_path, SIZE)
    assert holdout.images.shape == (3, SIZE, SIZE, 3) and holdout.skipped == 1
    with pytest.raises(HoldoutError):
        load_holdout(tmp_path / "notes.txt", SIZE)
