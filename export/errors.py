"""The exporter's errors: one root, a few kinds, each mapped to an exit code in ``__main__``."""

from __future__ import annotations

from typing import Any


class ExportError(Exception):
    """Root: the export cannot produce a model file (nothing was written)."""

    exit_code = 1


class ModelSourceError(ExportError):
    """The Keras model, its run folder or the flags describing it are unusable."""


class HoldoutError(ExportError):
    """The held-out images cannot be read or do not fit the model."""


class ConversionError(ExportError):
    """tf2onnx, the fp16 converter, ONNX Runtime's optimiser or ``onnx.checker`` failed."""


class ParityError(ExportError):
    """A parity gate failed: ONNX Runtime does not reproduce Keras closely enough."""

    exit_code = 3

    def __init__(self, message: str, results: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.results = results or {}
