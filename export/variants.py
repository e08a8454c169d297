"""Derived model files: an fp16 copy (for GPUs) and an offline-optimised fp32 copy.

Both keep the contract's interface (uint8 ``image`` in, float32 ``scores`` out)
and both pass their own parity gate before they are written.

* **fp16**: onnxconverter-common's ``convert_float_to_float16`` with
  ``keep_io_types=True``. ``Cast`` is kept in float32 (added to the block list):
  the converter retypes a Cast's output to float16 but leaves its ``to``
  attribute at FLOAT, which ONNX Runtime then refuses ("Type (tensor(float16))
  of output arg ... does not match expected type (tensor(float))"). With Cast
  blocked it inserts an explicit float32→float16 cast after the uint8→float32
  one instead.
* **optimised**: ONNX Runtime's own graph optimiser run once, offline
  (``SessionOptions.optimized_model_filepath``). ``basic`` keeps standard ONNX
  ops only and runs on any provider; ``extended`` adds com.microsoft fused ops
  (CPU and CUDA providers have them); ``all`` adds CPU-specific layouts
  (NCHWc) and is only for the CPU it was produced on.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path

import onnx

from export.errors import ConversionError

logger = logging.getLogger(__name__)

OPTIMIZE_LEVELS = ("basic", "extended", "all")


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of ``proto`` with uint8 input and float32 output unchanged."""
    from onnxconverter_common import float16

    block = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | {"Cast"})
    try:
        with warnings.catch_warnings(record=True) as caught:
            # One warning per weight below fp16's range ("will be truncated to 1e-07").
            warnings.simplefilter("always", UserWarning)
            converted = float16.convert_float_to_float16(proto, keep_io_types=True,
                                                         op_block_list=block)
    except Exception as exc:  # noqa: BLE001 - converter raises assorted errors
        raise ConversionError(f"fp16 conversion failed: {exc}") from exc
    truncated = sum("truncated" in str(w.message) for w in caught)
    if truncated:
        logger.info("fp16: %d weight values clamped to fp16's range (|x| < 1e-7 or > 1e4)",
                    truncated)
    return converted


def optimize(proto: onnx.ModelProto, level: str = "basic") -> onnx.ModelProto:
    """Run ONNX Runtime's graph optimiser at ``level`` and return the optimised graph."""
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise ConversionError(f"unknown optimisation level {level!r}; one of {OPTIMIZE_LEVELS}")
    with tempfile.TemporaryDirectory(prefix="clazzify-export-opt-") as scratch:
        target = Path(scratch) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[level]
        options.optimized_model_filepath = str(target)
        try:
            ort.InferenceSession(proto.SerializeToString(), sess_options=options,
                                 providers=["CPUExecutionProvider"])
            optimized = onnx.load(str(target))
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ConversionError(f"ONNX Runtime {level} optimisation failed: {exc}") from exc
    # ORT writes its own producer and may drop metadata; the caller sets both afterwards.
    del optimized.metadata_props[:]
    return optimized
