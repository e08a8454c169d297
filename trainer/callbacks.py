"""Training callbacks that Keras does not ship in the shape we need."""

from __future__ import annotations

import logging
import math
import statistics
import time
from pathlib import Path

import keras

logger = logging.getLogger(__name__)


class BestInferenceCheckpoint(keras.callbacks.Callback):
    """Save the *inference* model (not the augmentation wrapper being fit) on improvement.

    ``keras.callbacks.ModelCheckpoint`` saves the model passed to ``fit``, which here is
    the wrapper with augmentation layers; the run folder must hold the clean model.
    """

    def __init__(self, model: keras.Model, path: str | Path, monitor: str) -> None:
        super().__init__()
        self.inference_model, self.path, self.monitor = model, Path(path), monitor
        self.mode = "max" if "acc" in monitor else "min"
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        value = float(value)
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self.best_epoch = value, epoch + 1
            self.inference_model.save(self.path)
            logger.info("epoch %d: %s improved to %.4f, saved %s", epoch + 1, self.monitor,
                        value, self.path)


class EpochThroughput(keras.callbacks.Callback):
    """Training images/s per epoch, first batch start to last batch end (validation excluded)."""

    def __init__(self, images_per_epoch: int) -> None:
        super().__init__()
        self.images_per_epoch = images_per_epoch
        self.rates: list[float] = []
        self._start = self._end = 0.0

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        if batch == 0:
            self._start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self._end = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if self._end > self._start:
            self.rates.append(self.images_per_epoch / (self._end - self._start))

    def images_per_s(self) -> float | None:
        """Median over the epochs after the first (which pays for tracing/compilation)."""
        rates = self.rates[1:] or self.rates
        return round(statistics.median(rates), 1) if rates else None


def cosine_schedule(base: float, epochs: int):
    """Per-epoch cosine decay from ``base`` to 1% of it over ``epochs``."""
    total = max(1, epochs)

    def rate(epoch: int, lr: float) -> float:
        return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / total)))

    return rate
