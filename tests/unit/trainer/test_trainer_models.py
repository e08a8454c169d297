"""The model-file contract for every architecture: uint8 "image" in, softmax "scores" out,
normalisation inside, built-in layers only (loads without custom objects)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from trainer.augment import training_model
from trainer.errors import TrainerError
from trainer.models import ARCHS, build_model
from trainer.train import save_float32_copy

SMALLEST = {"alexnet": 64, "inceptionv3": 75, "mobilenetv3small": 64, "efficientnetb0": 64}


@pytest.mark.parametrize("arch", ARCHS)
def test_contract_and_save_load_round_trip(arch, tmp_path):
    size = SMALLEST[arch]
    model = build_model(arch, size, 4, width=0.25 if arch == "alexnet" else 1.0)
    assert model.inputs[0].dtype == "uint8" and model.inputs[0].name == "image"
    assert tuple(model.inputs[0].shape) == (None, size, size, 3)
    assert model.layers[-1].name == "scores" and model.output.shape[-1] == 4
    assert not any(layer.__class__.__name__.startswith("Random") for layer in model._flatten_layers())
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    scores = np.asarray(model(images, training=False))  # eager: no graph tracing
    assert scores.dtype == np.float32 and scores.shape == (3, 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom_objects needed
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)), scores, atol=1e-5)


def test_alexnet_is_the_original_pyramid_at_227_and_width_scales_it():
    full = build_model("alexnet", 227, 4)
    assert full.get_layer("conv1").output.shape[1:3] == (55, 55)
    assert full.get_layer("pool5").output.shape[1:] == (6, 6, 256)
    assert full.get_layer("fc6").units == 4096
    narrow = build_model("alexnet", 227, 4, width=0.25)
    assert narrow.get_layer("fc6").units == 1024 and narrow.count_params() < full.count_params() / 8


def test_sizes_and_options_are_checked():
    with pytest.raises(TrainerError, match="at least 75"):
        build_model("inceptionv3", 64, 4)
    with pytest.raises(TrainerError, match="unknown arch"):
        build_model("vgg16", 227, 4)
    with pytest.raises(TrainerError, match="width-multiplier"):
        build_model("efficientnetb0", 64, 4, width=0.5)


def test_augmentation_is_active_only_in_training():
    model = build_model("alexnet", 64, 3, width=0.25)
    wrapper = training_model(model, seed=1)
    images = np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    inference = np.asarray(model(images, training=False))
    np.testing.assert_allclose(np.asarray(wrapper(images, training=False)), inference, atol=1e-6)
    augmented = np.asarray(wrapper.get_layer("augmentation")(images.astype("float32"), training=True))
    assert not np.allclose(augmented, images)
    assert set(w.path for w in wrapper.trainable_weights) == set(w.path for w in model.trainable_weights)


def test_mixed_precision_model_is_saved_as_float32(tmp_path):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        mixed = build_model("alexnet", 64, 3, width=0.25)
        assert mixed.get_layer("conv1").compute_dtype == "float16"
        assert mixed.layers[-1].compute_dtype == "float32"  # softmax stays float32
        mixed.save(tmp_path / "best.keras")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        saved = save_float32_copy(tmp_path / "best.keras", tmp_path / "model.keras", "alexnet", 64, 3,
                                  width=0.25, dropout=0.5)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert keras.mixed_precision.dtype_policy().name == "float32"
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    for a, b in zip(mixed.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert saved.count_params() == loaded.count_params()


def test_augmentation_strengths():
    from trainer.augment import augmentation

    names = lambda strength: [type(layer).__name__ for layer in augmentation(0, strength).layers]  # noqa: E731
    assert names("light") == ["RandomFlip", "RandomTranslation"]
    assert {"RandomRotation", "RandomZoom", "RandomBrightness", "RandomContrast"} <= set(names("full"))
    assert names("none") == []
    with pytest.raises(ValueError):
        augmentation(0, "heavy")
