"""Training-only augmentation, as Keras layers (backend-agnostic, run on the accelerator).

The layers live in a wrapper used for ``fit`` only (:func:`training_model`); the saved
inference model never contains them, so the exported graph is exactly
uint8 image → normalisation → network → softmax. Keras' random layers are also identity
outside training, but keeping them out of the saved file keeps the ONNX graph clean.

Strengths:

- ``full`` (default; the original system's rotation, scaling/zoom, cropping, plus flip and
  photometric jitter): horizontal flip, rotation ±18°, zoom in up to 20% (= random crop
  resized back) or out 10%, translation ±10%, brightness ±20%, contrast ±20%;
- ``light``: horizontal flip and translation ±10% (centred, normalised data such as
  Fashion-MNIST, or short runs where ``full`` would underfit);
- ``none``.
"""

from __future__ import annotations

import keras
from keras import layers, ops


STRENGTHS = ("full", "light", "none")


def augmentation(seed: int | None = None, strength: str = "full") -> keras.Sequential:
    """The augmentation stack; input and output are float pixels in [0, 255]."""
    if strength not in STRENGTHS:
        raise ValueError(f"augmentation strength must be one of {STRENGTHS}")
    if strength == "light":
        stack = [layers.RandomFlip("horizontal", seed=seed),
                 layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed)]
    elif strength == "full":
        stack = [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.05, fill_mode="reflect", seed=seed),
            layers.RandomZoom(height_factor=(-0.2, 0.1), fill_mode="reflect", seed=seed),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
            layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
            layers.RandomContrast(0.2, seed=seed),
        ]
    else:
        stack = []
    return keras.Sequential(stack, name="augmentation")


def _to_uint8(pixels):
    return ops.cast(ops.round(ops.clip(pixels, 0.0, 255.0)), "uint8")


def training_model(model: keras.Model, seed: int | None = None, strength: str = "full") -> keras.Model:
    """Wrap ``model`` (uint8 in) as uint8 → augment → back to uint8 → ``model``.

    Weights are shared with ``model``; this wrapper is for ``fit`` only and never saved.
    Rounding back to uint8 means training sees exactly the value grid serving sees.
    """
    image = keras.Input(shape=model.input_shape[1:], dtype="uint8", name="image")
    x = layers.Lambda(lambda t: ops.cast(t, "float32"), name="to_float")(image)
    x = augmentation(seed, strength)(x)
    x = layers.Lambda(_to_uint8, name="to_uint8")(x)
    return keras.Model(image, model(x), name=f"{model.name}_train")
