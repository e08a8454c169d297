"""A tiny deterministic ONNX classifier that honours the model contract — no TensorFlow needed.

scores = softmax(mean_rgb(image / 255) @ W + b): the per-label weights are fixed,
so the same pixels always give the same scores, and images of different colours
get different labels (red → food, dark → ambiance, bright → menu, skin tone →
human). Used by the consumer's tests, the demo and the benchmarks (``--convs``
adds an AlexNet-like convolution stack so inference costs what a real model does).

    python -m tools.testmodel --out models/model.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from consumer import contract

LABELS = ["food", "ambiance", "menu", "human"]
# Rows: R, G, B weights per label (columns), chosen so typical colours separate.
_WEIGHTS = np.array([[6.0, -4.0, 2.0, 4.0],
                     [-2.0, -4.0, 2.0, 1.0],
                     [-2.0, -4.0, 2.0, -3.0]], dtype=np.float32)
_BIAS = np.array([0.0, 3.0, -1.5, -0.5], dtype=np.float32)


def build(labels: list[str] | None = None, input_size: int = 227, version: str | None = None,
          convs: int = 0, width: int = 32, seed: int = 0, poison: bool = False) -> onnx.ModelProto:
    """Return the model; ``convs`` > 0 prepends stride-2 conv+relu layers (a compute load).

    ``poison`` makes a broken model whose scores are NaN for images darker than mid-grey
    (tests of the consumer's defence against a bad model).
    """
    labels = labels or LABELS
    n = len(labels)
    rng = np.random.default_rng(seed)
    weights = _WEIGHTS if n == 4 else rng.normal(0, 4, (3, n)).astype(np.float32)
    bias = _BIAS if n == 4 else np.zeros(n, np.float32)
    inits = [numpy_helper.from_array(np.array(255.0, np.float32), "k255"),
             numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")]
    nodes = [helper.make_node("Cast", ["image"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["xf", "k255"], ["x01"])]
    feature = "x01"
    if convs:
        nodes.append(helper.make_node("Transpose", ["x01"], ["nchw"], perm=[0, 3, 1, 2]))
        prev, channels = "nchw", 3
        for i in range(convs):
            w = (rng.normal(0, 1, (width, channels, 3, 3)) / np.sqrt(channels * 9)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"cw{i}"))
            nodes.append(helper.make_node("Conv", [prev, f"cw{i}"], [f"c{i}"], pads=[1, 1, 1, 1],
                                          strides=[2, 2] if i < 4 else [1, 1]))
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
            prev, channels = f"r{i}", width
        # The conv stack is a compute load; its result is multiplied by 0 and added, so the
        # scores stay those of the mean-colour rule (tests can predict them exactly).
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        nodes += [helper.make_node("ReduceMean", [prev], ["cm"], axes=[1, 2, 3], keepdims=0),
                  helper.make_node("Mul", ["cm", "zero"], ["cz"]),
                  helper.make_node("Unsqueeze", ["cz", "ax1"], ["cz1"])]
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "ax1"))
    # Two small reductions (rows, then columns) instead of one over 51k pixels: float32
    # summation order then barely matters, so batch size never changes the scores.
    nodes += [helper.make_node("ReduceMean", ["x01"], ["rowmean"], axes=[2], keepdims=0),
              helper.make_node("ReduceMean", ["rowmean"], ["mean"], axes=[1], keepdims=0)]
    if convs:
        nodes.append(helper.make_node("Add", ["mean", "cz1"], ["mean2"]))
        feature = "mean2"
    else:
        feature = "mean"
    if poison:  # log(mean - 0.5): NaN where the mean brightness is below 0.5
        inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
        nodes += [helper.make_node("Sub", [feature, "half"], ["shifted"]),
                  helper.make_node("Log", ["shifted"], ["logged"]),
                  helper.make_node("Sub", ["logged", "logged"], ["nanmask"]),
                  helper.make_node("Add", [feature, "nanmask"], ["poisoned"])]
        feature = "poisoned"
    nodes += [helper.make_node("MatMul", [feature, "W"], ["logits0"]),
              helper.make_node("Add", ["logits0", "b"], ["logits"]),
              helper.make_node("Softmax", ["logits"], [contract.OUTPUT_NAME], axis=-1)]
    graph = helper.make_graph(
        nodes, "clazzify_test_model",
        [helper.make_tensor_value_info(contract.INPUT_NAME, TensorProto.UINT8, ["N", input_size, input_size, 3])],
        [helper.make_tensor_value_info(contract.OUTPUT_NAME, TensorProto.FLOAT, ["N", n])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="clazzify-testmodel")
    model.ir_version = 8
    onnx.checker.check_model(model)
    digest = hashlib.sha256(model.SerializeToString()).hexdigest()[:12]
    meta = {contract.META_LABELS: json.dumps(labels), contract.META_INPUT_SIZE: str(input_size),
            contract.META_MODEL_VERSION: version or f"test-{digest}",
            contract.META_DATASET_DIGEST: "none (synthetic test model)",
            contract.META_TRAINED_AT: "1970-01-01T00:00:00+00:00", contract.META_PRECISION: "fp32"}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    return model


def reference_scores(pixels: np.ndarray) -> np.ndarray:
    """The same rule in NumPy, for tests: uint8 [N,S,S,3] → float32 [N,4]."""
    mean = (pixels.astype(np.float32) / 255.0).mean(axis=(1, 2))
    logits = mean @ _WEIGHTS + _BIAS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.testmodel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("models/model.onnx"), help="where to write the model")
    parser.add_argument("--labels", default=",".join(LABELS), help="comma-separated labels (default: %(default)s)")
    parser.add_argument("--input-size", type=int, default=227, help="input side in pixels (default: 227)")
    parser.add_argument("--version", default=None, help="model_version metadata (default: test-<digest>)")
    parser.add_argument("--convs", type=int, default=0, help="conv layers to add as compute load (default: 0)")
    parser.add_argument("--width", type=int, default=32, help="channels of each conv layer (default: 32)")
    args = parser.parse_args(argv)
    model = build(args.labels.split(","), args.input_size, args.version, args.convs, args.width)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, args.out)
    print(f"wrote {args.out} version={dict((p.key, p.value) for p in model.metadata_props)['model_version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
