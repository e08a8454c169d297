"""Keras (TensorFlow backend) → ONNX with tf2onnx, in the shape the consumer serves.

The converter path that works with Keras 3.15 / TensorFlow 2.21 / tf2onnx 1.17:
wrap the model in a ``tf.function`` whose input signature is
``tf.TensorSpec([None, S, S, 3], tf.uint8, name="image")`` and which returns
``{"scores": probabilities}``; freeze its concrete function with
``convert_variables_to_constants_v2`` (see :func:`_frozen_graph` for why not
plain ``tf2onnx.convert.from_function``); convert the frozen GraphDef with
``tf2onnx.convert.from_graph_def``, renaming its tensors to ``image`` and
``scores``. The batch dimension stays symbolic and is renamed ``N``. Keras' own
numpy-2 compatibility patch for tf2onnx is applied first
(``keras.src.export.tf2onnx_lib.patch_tf2onnx``, what ``model.export(...,
format="onnx")`` uses).

tf2onnx 1.17 stops at opset 18 ("Opset 19 is not supported yet"); ONNX Runtime
1.31 runs opset 18, so that is the default.

Example::

    >>> from export.convert import keras_to_onnx          # doctest: +SKIP
    >>> proto = keras_to_onnx(model, input_size=227)      # doctest: +SKIP
    >>> [i.name for i in proto.graph.input]               # doctest: +SKIP
    ['image']
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

from consumer.contract import INPUT_NAME, OUTPUT_NAME
from export.errors import ConversionError
from export.normalize import Normalization

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 13
MAX_OPSET = 18  # tf2onnx 1.17 refuses anything above
BATCH_DIM = "N"


def _patch_tf2onnx() -> None:
    """Apply Keras' numpy>=2 patch for tf2onnx (private API, so tolerate its absence)."""
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # pragma: no cover - a Keras without it; tf2onnx may still work
        logger.warning("keras.src.export.tf2onnx_lib is missing; converting unpatched")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its `hasattr(np, "object")` probe
        patch_tf2onnx()


def serving_function(model: Any, input_size: int, *, normalization: Normalization | None = None,
                     add_softmax: bool = False) -> Any:
    """The function that becomes the graph: uint8 ``image`` → float32 ``scores``.

    ``normalization`` is given only for float-input models (the trainer's models
    take uint8 and normalise themselves); ``add_softmax`` only for models that
    end in logits.
    """
    import tensorflow as tf

    signature = [tf.TensorSpec([None, input_size, input_size, 3], tf.uint8, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(image: Any) -> dict[str, Any]:
        inputs = image
        if normalization is not None:
            # Constants made inside the function become graph constants; made outside,
            # they would be captured and tf2onnx would turn them into extra graph inputs.
            scale = tf.constant(normalization.scale32)
            offset = tf.constant(normalization.offset32)
            inputs = tf.cast(image, tf.float32) * scale + offset
        outputs = model(inputs, training=False)
        if add_softmax:
            outputs = tf.nn.softmax(outputs, axis=-1)
        return {OUTPUT_NAME: tf.cast(outputs, tf.float32)}

    return serve


def reference_predict(model: Any, *, normalization: Normalization | None = None,
                      add_softmax: bool = False) -> Any:
    """Keras' own answer for the parity gate: NumPy normalisation, eager Keras call."""

    def predict(images: np.ndarray) -> np.ndarray:
        inputs = images if normalization is None else normalization.apply(images)
        scores = np.asarray(model(inputs, training=False), dtype=np.float32)
        if add_softmax:
            shifted = scores - scores.max(axis=1, keepdims=True)
            scores = np.exp(shifted)
            scores /= scores.sum(axis=1, keepdims=True)
        return scores

    return predict


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    """tf2onnx calls the batch dimension ``unk__<n>``; call it ``N`` on input and output."""
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if dim.HasField("dim_value"):
            raise ConversionError(f"{value.name}: batch dimension was frozen at {dim.dim_value}")
        dim.dim_param = BATCH_DIM


def check_io(proto: onnx.ModelProto, input_size: int, num_classes: int) -> None:
    """Enforce DESIGN contract 2 on the graph's one input and its ``scores`` output."""
    graph = proto.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ConversionError(f"graph inputs are {[i.name for i in inputs]}, want [{INPUT_NAME!r}]")
    if [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise ConversionError(f"graph outputs are {[o.name for o in graph.output]}, "
                              f"want [{OUTPUT_NAME!r}]")
    tin, tout = inputs[0].type.tensor_type, graph.output[0].type.tensor_type
    if tin.elem_type != onnx.TensorProto.UINT8:
        raise ConversionError(f"input is {onnx.TensorProto.DataType.Name(tin.elem_type)}, want UINT8")
    if tout.elem_type != onnx.TensorProto.FLOAT:
        raise ConversionError(f"output is {onnx.TensorProto.DataType.Name(tout.elem_type)}, want FLOAT")
    in_dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tin.shape.dim]
    if in_dims != [BATCH_DIM, input_size, input_size, 3]:
        raise ConversionError(f"input shape is {in_dims}, want [{BATCH_DIM}, {input_size}, "
                              f"{input_size}, 3]")
    out_dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tout.shape.dim]
    if out_dims != [BATCH_DIM, num_classes]:
        raise ConversionError(f"output shape is {out_dims}, want [{BATCH_DIM}, {num_classes}]")


def check_model(proto: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference; failures become ConversionError."""
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ConversionError(f"onnx.checker rejected the graph: {exc}") from exc


def _frozen_graph(function: Any) -> tuple[Any, str, str]:
    """Freeze the serving function: variables *and captured constants* become Const nodes.

    ``tf2onnx.convert.from_function`` turns every non-variable capture into an
    extra graph input: a Keras ``Normalization(mean=..., variance=...)`` layer
    holds its statistics as captured tensors, and the file would then demand
    ``.../normalization/Sub/y:0`` beside ``image``. Freezing first avoids that.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    concrete = function.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False,
                                               aggressive_inlining=True)
    inputs = [t.name for t in frozen.inputs if t.dtype.name != "resource"]
    outputs = [t.name for t in frozen.outputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError(f"frozen graph has inputs {inputs} and outputs {outputs}; "
                              "want exactly one of each")
    return frozen.graph.as_graph_def(add_shapes=True), inputs[0], outputs[0]


@contextlib.contextmanager
def _quiet_tensorflow() -> Iterator[None]:
    """tf2onnx's graph-def path calls TF1 helpers that log deprecation notices; hide them."""
    import tensorflow as tf

    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tf_logger.setLevel(level)


def keras_to_onnx(model: Any, *, input_size: int, num_classes: int, opset: int = DEFAULT_OPSET,
                  normalization: Normalization | None = None,
                  add_softmax: bool = False) -> onnx.ModelProto:
    """Convert ``model`` to an ONNX ModelProto that satisfies contract 2 (no metadata yet)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConversionError(f"opset {opset} outside what tf2onnx 1.17 converts "
                              f"({MIN_OPSET}..{MAX_OPSET})")
    import tf2onnx

    _patch_tf2onnx()
    logging.getLogger("tf2onnx").setLevel(max(logging.WARNING, logger.getEffectiveLevel()))
    # tf2onnx numbers the nodes it invents from a process-wide counter; reset it so that
    # the same model converts to the same node names on every run.
    tf2onnx.utils.INTERNAL_NAME = 1
    function = serving_function(model, input_size, normalization=normalization,
                                add_softmax=add_softmax)
    try:
        with _quiet_tensorflow():
            graph_def, input_name, output_name = _frozen_graph(function)
            proto, _ = tf2onnx.convert.from_graph_def(
                graph_def, name="clazzify", input_names=[input_name], output_names=[output_name],
                opset=opset, tensors_to_rename={input_name: INPUT_NAME, output_name: OUTPUT_NAME})
    except Exception as exc:  # noqa: BLE001 - TensorFlow and tf2onnx raise anything
        raise ConversionError(f"tf2onnx failed at opset {opset}: {exc}") from exc
    _name_batch_dim(proto)
    check_io(proto, input_size, num_classes)
    check_model(proto)
    return proto
