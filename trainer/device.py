"""Which backend and device Keras will use, and mixed precision when a GPU is present.

Keras places work on a GPU by itself on every backend; this module only finds out which,
so the run can record it and turn on mixed precision (float16 compute, float32 weights and
softmax) where it pays off. Nothing here is needed for correctness on CPU.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass

logger = logging.getLogger(__name__)

BACKENDS = ("tensorflow", "jax", "torch")


@dataclass(frozen=True)
class DeviceInfo:
    backend: str
    device: str  # e.g. "gpu:NVIDIA H200" or "cpu:x86_64 (2 cores)"
    gpu: bool


def select_backend(backend: str | None) -> None:
    """Set ``KERAS_BACKEND`` before Keras is first imported (a no-op when ``backend`` is None)."""
    if backend:
        import sys

        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND", "tensorflow") != backend:
            logger.warning("keras already imported; --backend %s may not take effect", backend)
        os.environ["KERAS_BACKEND"] = backend


def detect() -> DeviceInfo:
    """The active Keras backend and its first accelerator, or the CPU."""
    import keras

    backend = keras.backend.backend()
    name = None
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            for gpu in gpus:
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:  # already initialised
                    pass
            if gpus:
                name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        elif backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform == "gpu"]
            if devices:
                name = devices[0].device_kind
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                name = torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001 - detection must never stop training
        logger.warning("GPU detection failed on %s: %s", backend, exc)
    if name:
        return DeviceInfo(backend, f"gpu:{name}", True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return DeviceInfo(backend, f"cpu:{platform.machine()} ({cores} cores)", False)


def configure_precision(mode: str, info: DeviceInfo) -> str:
    """Apply ``--mixed-precision auto|on|off``; returns the Keras dtype policy name in force."""
    import keras

    use = info.gpu if mode == "auto" else mode == "on"
    policy = "mixed_float16" if use else "float32"
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
