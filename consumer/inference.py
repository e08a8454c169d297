"""The ONNX model: load, check the contract, run batches (DESIGN.md, contract 2).

The consumer learns everything about a model from the file: labels, input size
and version come from ``metadata_props``; normalisation lives inside the graph.
ONNX Runtime takes the CUDA provider when present and the CPU provider otherwise.

Example::

    >>> model = Model.load("models/model.onnx")
    >>> scores = model.predict(np.zeros((2, model.input_size, model.input_size, 3), np.uint8))
    >>> scores.shape == (2, len(model.labels))
    True
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from consumer import contract
from consumer.errors import STAGE_INFERENCE, FatalError

logger = logging.getLogger(__name__)

def choose_providers(requested: str) -> list[str]:
    """'auto' → CUDA when available, else CPU; otherwise the named providers that exist."""
    available = ort.get_available_providers()
    if requested.strip().lower() == "auto":
        chosen = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    else:
        wanted = [p.strip() for p in requested.split(",") if p.strip()]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise FatalError(STAGE_INFERENCE, "provider_unavailable",
                             f"{missing} not in available providers {available}")
        chosen = wanted
    return chosen or ["CPUExecutionProvider"]


@dataclass
class Model:
    """A loaded model that honours the contract."""

    session: ort.InferenceSession
    labels: list[str]
    input_size: int
    version: str
    path: str
    metadata: dict[str, str]

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @classmethod
    def load(cls, path: str | Path, providers: str = "auto", intra_op_threads: int = 0) -> "Model":
        """Open ``path`` and verify names, dtypes, shapes and metadata; raise FatalError if off."""
        path = Path(path)
        if not path.is_file():
            raise FatalError(STAGE_INFERENCE, "model_missing", f"no model file at {path}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        try:
            session = ort.InferenceSession(str(path), sess_options=options,
                                           providers=choose_providers(providers))
        except FatalError:
            raise
        except Exception as exc:  # noqa: BLE001 - ORT raises many types for a bad file
            raise FatalError(STAGE_INFERENCE, "model_invalid", f"{path}: {exc}") from exc
        meta = dict(session.get_modelmeta().custom_metadata_map)
        return cls._checked(session, meta, str(path))

    @classmethod
    def _checked(cls, session: ort.InferenceSession, meta: dict[str, str], path: str) -> "Model":
        def bad(why: str) -> FatalError:
            return FatalError(STAGE_INFERENCE, "model_contract", f"{path}: {why}")

        missing = [k for k in contract.REQUIRED_METADATA if k not in meta]
        if missing:
            raise bad(f"metadata_props lacks {missing}")
        try:
            labels = json.loads(meta[contract.META_LABELS])
            input_size = int(meta[contract.META_INPUT_SIZE])
        except (ValueError, TypeError) as exc:
            raise bad(f"unreadable labels/input_size metadata: {exc}") from exc
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
            raise bad("labels must be a non-empty JSON list of strings")
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name: o for o in session.get_outputs()}
        if contract.INPUT_NAME not in inputs or len(inputs) != 1:
            raise bad(f"expected exactly one input named {contract.INPUT_NAME!r}, got {list(inputs)}")
        if contract.OUTPUT_NAME not in outputs:
            raise bad(f"no output named {contract.OUTPUT_NAME!r}, got {list(outputs)}")
        inp = inputs[contract.INPUT_NAME]
        if inp.type != "tensor(uint8)":
            raise bad(f"input must be uint8, is {inp.type}")
        shape = inp.shape
        if len(shape) != 4 or list(shape[1:]) != [input_size, input_size, 3]:
            raise bad(f"input shape must be [N,{input_size},{input_size},3], is {shape}")
        if isinstance(shape[0], int) and shape[0] != -1:
            raise bad(f"batch dimension must be dynamic, is {shape[0]}")
        out = outputs[contract.OUTPUT_NAME]
        if out.type != "tensor(float)":
            raise bad(f"output must be float32, is {out.type}")
        if isinstance(out.shape[-1], int) and out.shape[-1] != len(labels):
            raise bad(f"output has {out.shape[-1]} classes but {len(labels)} labels")
        return cls(session=session, labels=labels, input_size=input_size,
                   version=meta[contract.META_MODEL_VERSION], path=path, metadata=meta)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N,S,S,3] → float32 [N,C] probabilities."""
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 [N,S,S,3], got {images.dtype} {images.shape}")
        (scores,) = self.session.run([contract.OUTPUT_NAME], {contract.INPUT_NAME: images})
        return np.asarray(scores, dtype=np.float32)
