"""The architectures. Every model takes uint8 ``[N, S, S, 3]`` RGB named ``image`` and
returns softmax probabilities ``[N, C]`` from a layer named ``scores``; normalisation is
the model's first layer, so no mean/std lives outside the file.

Only built-in Keras layers are used (no custom objects), so ``keras.saving.load_model``
opens the file anywhere and the exporter converts it as is.

- ``alexnet``: Krizhevsky et al. 2012 with BatchNorm instead of LRN; ``width`` scales every
  filter count and dense size (0.25 is a fast CPU/test variant). At 227 it is the original
  55→27→13→6 pyramid; at smaller sizes a pool whose input is under 3 pixels pads instead.
- ``inceptionv3`` (≥75 px), ``mobilenetv3small`` (≥32 px, ``width`` = alpha),
  ``efficientnetb0`` (≥32 px): ``keras.applications`` with ``weights=None`` (from scratch).
"""

from __future__ import annotations

import keras
from keras import layers

from trainer.errors import TrainerError

ARCHS = ("alexnet", "inceptionv3", "mobilenetv3small", "efficientnetb0")
MIN_SIZE = {"alexnet": 32, "inceptionv3": 75, "mobilenetv3small": 32, "efficientnetb0": 32}
INPUT_NAME = "image"
OUTPUT_NAME = "scores"


def build_model(arch: str, input_size: int, num_classes: int, *, width: float = 1.0,
                dropout: float = 0.5) -> keras.Model:
    """Build ``arch`` for ``input_size`` square RGB and ``num_classes`` outputs.

    The current Keras dtype policy applies (mixed precision on GPU); the softmax is
    always float32.
    """
    if arch not in ARCHS:
        raise TrainerError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if input_size < MIN_SIZE[arch]:
        raise TrainerError(f"{arch} needs an input size of at least {MIN_SIZE[arch]}, got {input_size}")
    if width <= 0:
        raise TrainerError("--width-multiplier must be positive")
    if width != 1.0 and arch not in ("alexnet", "mobilenetv3small"):
        raise TrainerError(f"--width-multiplier applies to alexnet and mobilenetv3small, not {arch}")
    image = keras.Input(shape=(input_size, input_size, 3), dtype="uint8", name=INPUT_NAME)
    if arch == "alexnet":
        features = _alexnet(image, width, dropout)
    else:
        features = _application(arch, image, width)
        features = layers.Dropout(0.2, name="top_dropout")(features)
    logits = layers.Dense(num_classes, name="logits")(features)
    scores = layers.Activation("softmax", dtype="float32", name=OUTPUT_NAME)(logits)
    return keras.Model(image, scores, name=arch)


def _scaled(n: int, width: float) -> int:
    return max(8, int(round(n * width)))


def _conv(x, filters: int, kernel: int, strides: int, padding: str, name: str):
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=name)(x)
    # momentum 0.9 (PyTorch's 0.1): running statistics settle in tens of steps, not hundreds
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _pool(x, name: str):
    small = min(x.shape[1], x.shape[2]) < 3
    return layers.MaxPooling2D(3, strides=2, padding="same" if small else "valid", name=name)(x)


def _alexnet(image, width: float, dropout: float):
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(image)
    x = _conv(x, _scaled(96, width), 11, 4, "valid", "conv1")
    x = _pool(x, "pool1")
    x = _conv(x, _scaled(256, width), 5, 1, "same", "conv2")
    x = _pool(x, "pool2")
    x = _conv(x, _scaled(384, width), 3, 1, "same", "conv3")
    x = _conv(x, _scaled(384, width), 3, 1, "same", "conv4")
    x = _conv(x, _scaled(256, width), 3, 1, "same", "conv5")
    x = _pool(x, "pool5")
    x = layers.Flatten(name="flatten")(x)
    for i in (6, 7):
        x = layers.Dense(_scaled(4096, width), activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"drop{i}")(x)
    return x


def _application(arch: str, image, width: float):
    apps = keras.applications
    if arch == "inceptionv3":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(image)
        base = apps.InceptionV3(include_top=False, weights=None, input_tensor=x, pooling="avg")
    elif arch == "mobilenetv3small":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(image)
        base = apps.MobileNetV3Small(include_top=False, weights=None, input_tensor=x, pooling="avg",
                                     alpha=width, include_preprocessing=False)
    else:  # efficientnetb0 rescales [0, 255] → [0, 1] itself; we only cast
        x = layers.Rescaling(1.0, name="to_float")(image)
        base = apps.EfficientNetB0(include_top=False, weights=None, input_tensor=x, pooling="avg")
    return base.output
