"""One export, start to finish: Keras model → gated ONNX file(s) → model card.

Order of work, and why:

1. read the run folder and the model, and check they agree (size, classes);
2. load the holdout at the model's input size;
3. convert with tf2onnx, then derive the optional variants (fp16, optimised);
4. stamp each file's metadata and write it to a *hidden temp file* in ``--out``;
5. open each temp file with ONNX Runtime and run its parity gate;
6. only if every gate passed, rename the temp files into place (atomic on one
   filesystem) and write ``model.json`` last. On any failure the temp files
   are deleted, so a failed export leaves no model file behind.

Example::

    >>> from pathlib import Path
    >>> from export.pipeline import ExportOptions, export_model
    >>> result = export_model(ExportOptions(model=Path("runs/r1/model.keras"),
    ...                                     out=Path("models/r1"), fp16=True))  # doctest: +SKIP
    >>> [f.path.name for f in result.files]                                     # doctest: +SKIP
    ['model.onnx', 'model.fp16.onnx']
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from consumer.contract import INPUT_NAME, OUTPUT_NAME
from export import card, convert, parity, source, variants
from export.errors import ExportError, HoldoutError, ModelSourceError, ParityError
from export.holdout import Holdout, load_holdout
from export.normalize import Normalization, parse

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
FP16_FILE = "model.fp16.onnx"
OPTIMIZED_FILE = "model.opt.onnx"
SINGLE_LIMIT = 32  # images checked one at a time (batch size 1)
PROBABILITY_TOLERANCE = 1e-3

PostConvert = Callable[[onnx.ModelProto], onnx.ModelProto]


@dataclass(frozen=True)
class ExportOptions:
    """Everything one export needs; ``__main__`` builds it from flags and environment."""

    model: Path
    out: Path
    run_dir: Path | None = None
    auto_run_dir: bool = True
    holdout: Path | None = None
    holdout_split: str = "test"
    holdout_limit: int = 256
    opset: int = convert.DEFAULT_OPSET
    fp16: bool = False
    optimize: bool = False
    optimize_level: str = "basic"
    version: str | None = None
    labels: list[str] | None = None
    normalize: str | None = None
    softmax: bool = False
    input_size: int | None = None
    dataset_digest: str | None = None
    trained_at: str | None = None
    parity_batch: int = 32


@dataclass(frozen=True)
class ExportedFile:
    """One model file written to ``--out``."""

    path: Path
    precision: str
    optimization: str | None
    model_version: str
    sha256: str
    bytes: int
    parity: dict[str, Any]


@dataclass
class ExportResult:
    """What an export produced: the files, and the card that describes them."""

    out: Path
    card_path: Path
    files: list[ExportedFile] = field(default_factory=list)
    card: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Variant:
    filename: str
    proto: onnx.ModelProto
    gate: parity.Gate
    version: str
    precision: str
    optimization: str | None = None
    temp: Path | None = None
    report: parity.ParityReport | None = None


def _normalization(shape: source.ModelShape, options: ExportOptions,
                   run: source.RunInfo) -> Normalization | None:
    """None for a uint8 model (it normalises itself); else the stated affine map."""
    if shape.input_dtype == "uint8":
        if options.normalize not in (None, "", "none"):
            raise ModelSourceError(
                "the model takes uint8 and normalises itself; --normalize would do it twice")
        return None
    spec = options.normalize or run.normalize
    if not spec:
        raise ModelSourceError(
            f"the model takes {shape.input_dtype} input, so the graph needs a normalisation: "
            "give --normalize (e.g. 'unit', 'symmetric', 'imagenet', 'scale:1/255') or "
            "'normalize' in run.json")
    return parse(spec)


def _identity(options: ExportOptions, run: source.RunInfo, shape: source.ModelShape,
              holdout: Holdout, normalization: Normalization | None) -> card.Identity:
    labels = options.labels or run.labels or holdout.label_names
    if labels is None:
        labels = [f"class_{i}" for i in range(shape.num_classes)]
        logger.warning("no labels given (--labels, run folder or HDF5 holdout); using %s..",
                       labels[0])
    if len(labels) != shape.num_classes:
        raise ModelSourceError(f"{len(labels)} labels for a model with "
                               f"{shape.num_classes} outputs: {labels}")
    if holdout.label_names is not None and holdout.label_names != labels:
        raise HoldoutError(f"holdout labels {holdout.label_names} differ from the model's "
                           f"{labels}: wrong dataset file?")
    digest = options.dataset_digest or run.dataset_digest or holdout.dataset_digest
    if run.dataset_digest and holdout.dataset_digest and run.dataset_digest != holdout.dataset_digest:
        logger.warning("holdout dataset_digest=%s differs from the run's %s",
                       holdout.dataset_digest, run.dataset_digest)
    trained_at = options.trained_at or run.trained_at
    if trained_at is None:
        trained_at = source.file_time_iso(options.model)
        logger.warning("trained_at unknown; using the model file's time %s", trained_at)
    return card.Identity(
        labels=list(labels), input_size=shape.input_size,
        dataset_digest=digest or card.UNKNOWN, trained_at=trained_at,
        normalization="in-model" if normalization is None else normalization.spec,
        metrics=run.metrics, arch=run.arch)


def _check_probabilities(scores: np.ndarray) -> None:
    if (scores < -PROBABILITY_TOLERANCE).any() or not np.allclose(
            scores.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE):
        raise ModelSourceError("the model's outputs are not probabilities (rows must be ≥ 0 "
                               "and sum to 1); if it ends in logits, pass --softmax")


def _ort_predict(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    return predict


def _write_temp(out: Path, proto: onnx.ModelProto, filename: str) -> Path:
    handle = tempfile.NamedTemporaryFile(dir=out, prefix=f".{filename}.", suffix=".tmp",
                                         delete=False)
    with handle:
        handle.write(proto.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, card.default_file_mode())
    return Path(handle.name)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def export_model(options: ExportOptions, *,
                 post_convert: PostConvert | None = None) -> ExportResult:
    """Export ``options.model``; raise :class:`ExportError` (writing nothing) on any failure.

    ``post_convert`` is a test hook: it receives the converted fp32 graph and
    returns the graph to ship (the tests perturb a weight to prove the gate bites).
    """
    started = time.monotonic()
    if options.parity_batch < 2:
        raise ExportError(f"the parity gate's larger batch must be at least 2, "
                          f"is {options.parity_batch}")
    run_dir = options.run_dir
    if run_dir is None and options.auto_run_dir:
        run_dir = source.find_run_dir(options.model)
        if run_dir is not None:
            logger.info("run folder found beside the model run_dir=%s", run_dir)
    run = source.read_run_dir(run_dir) if run_dir is not None else source.RunInfo()

    model = source.load_keras(options.model)
    shape = source.model_shape(model, options.input_size or run.input_size)
    normalization = _normalization(shape, options, run)
    holdout = load_holdout(options.holdout, shape.input_size, split=options.holdout_split,
                           limit=options.holdout_limit)
    identity = _identity(options, run, shape, holdout, normalization)
    if len(holdout.images) < SINGLE_LIMIT:
        logger.warning("holdout=%s has only %d images: the parity gate sees little; give a "
                       "larger split or --holdout-limit", holdout.source, len(holdout.images))
    logger.info("loaded model=%s size=%d classes=%d input=%s holdout=%s(%d)", options.model,
                shape.input_size, shape.num_classes, shape.input_dtype, holdout.kind,
                len(holdout.images))

    batch_sizes = sorted({1, options.parity_batch})
    reference = convert.reference_predict(model, normalization=normalization,
                                          add_softmax=options.softmax)
    ref_scores = parity.reference_scores(reference, holdout.images, batch_sizes=batch_sizes,
                                         single_limit=SINGLE_LIMIT)
    _check_probabilities(ref_scores[max(batch_sizes)])

    proto = convert.keras_to_onnx(model, input_size=shape.input_size,
                                  num_classes=shape.num_classes, opset=options.opset,
                                  normalization=normalization, add_softmax=options.softmax)
    if post_convert is not None:
        proto = post_convert(proto)
    version = options.version or card.content_digest(proto)
    logger.info("converted opset=%d model_version=%s in %.1fs", options.opset, version,
                time.monotonic() - started)

    plan = [_Variant(MODEL_FILE, proto, parity.FP32_GATE, version, "fp32")]
    if options.optimize:
        plan.append(_Variant(OPTIMIZED_FILE, variants.optimize(proto, options.optimize_level),
                             parity.FP32_GATE, version, "fp32", options.optimize_level))
    if options.fp16:
        plan.append(_Variant(FP16_FILE, variants.to_fp16(proto), parity.FP16_GATE,
                             f"{version}+fp16", "fp16"))

    options.out.mkdir(parents=True, exist_ok=True)
    producer = card.producer_versions()
    try:
        for variant in plan:
            props = card.metadata_props(identity, version=variant.version,
                                        precision=variant.precision,
                                        optimization=variant.optimization, producer=producer)
            card.stamp(variant.proto, props)
            if variant.optimization is None:  # ORT-optimised graphs use contrib ops the checker
                convert.check_model(variant.proto)  # does not know; ORT loading them is the check
            convert.check_io(variant.proto, shape.input_size, shape.num_classes)
            variant.temp = _write_temp(options.out, variant.proto, variant.filename)
            variant.report = parity.check(variant.gate, ref_scores, _ort_predict(variant.temp),
                                          holdout.images, batch_sizes=batch_sizes,
                                          single_limit=SINGLE_LIMIT)
            logger.info("%s: %s", variant.filename, variant.report.summary())
        failed = [v for v in plan if v.report is None or not v.report.passed]
        if failed:
            raise ParityError(
                "parity gate failed, nothing written: " + " | ".join(
                    f"{v.filename}: {'; '.join(v.report.failures) if v.report else 'not run'}"
                    for v in failed),
                results={v.filename: v.report.to_dict() for v in plan if v.report})
        files = []
        for variant in plan:
            assert variant.temp is not None and variant.report is not None
            target = options.out / variant.filename
            os.replace(variant.temp, target)
            variant.temp = None
            files.append(ExportedFile(
                path=target, precision=variant.precision, optimization=variant.optimization,
                model_version=variant.version, sha256=card.sha256_file(target),
                bytes=target.stat().st_size, parity=variant.report.to_dict()))
        _fsync_dir(options.out)
    finally:
        for variant in plan:
            if variant.temp is not None:
                variant.temp.unlink(missing_ok=True)

    stale = [name for name in (MODEL_FILE, OPTIMIZED_FILE, FP16_FILE)
             if name not in {v.filename for v in plan} and (options.out / name).exists()]
    if stale:
        logger.warning("out=%s still holds %s from an earlier export; model.json does not "
                       "describe them", options.out, ", ".join(stale))
    result = ExportResult(out=options.out, card_path=options.out / card.CARD_FILE, files=files)
    result.card = _card(options, run, identity, holdout, proto, files, producer,
                        ref_scores[max(batch_sizes)], time.monotonic() - started)
    card.write_json_atomic(result.card_path, result.card)
    logger.info("exported %s in %.1fs", ", ".join(f.path.name for f in files),
                time.monotonic() - started)
    return result


def _card(options: ExportOptions, run: source.RunInfo, identity: card.Identity,
          holdout: Holdout, proto: onnx.ModelProto, files: list[ExportedFile],
          producer: dict[str, str], keras_scores: np.ndarray, seconds: float) -> dict[str, Any]:
    holdout_info = holdout.describe()
    if holdout.labels is not None and len(holdout.labels) == len(keras_scores):
        holdout_info["keras_top1_accuracy"] = float(
            (keras_scores.argmax(axis=1) == holdout.labels).mean())
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    main_props = dict((p.key, p.value) for p in onnx.load(str(files[0].path),
                                                           load_external_data=False).metadata_props)
    return {
        "schema": card.CARD_SCHEMA,
        "model_version": files[0].model_version,
        "labels": identity.labels,
        "input_size": identity.input_size,
        "dataset_digest": identity.dataset_digest,
        "trained_at": identity.trained_at,
        "metrics": identity.metrics,
        "arch": identity.arch,
        "normalization": identity.normalization,
        "metadata_props": main_props,
        "io": {
            "input": {"name": INPUT_NAME, "dtype": "uint8",
                      "shape": [convert.BATCH_DIM, identity.input_size, identity.input_size, 3]},
            "output": {"name": OUTPUT_NAME, "dtype": "float32",
                       "shape": [convert.BATCH_DIM, len(identity.labels)]},
        },
        "opset": opset,
        "ir_version": proto.ir_version,
        "source": {
            "keras_model": str(options.model),
            "keras_sha256": card.sha256_file(options.model),
            "run_dir": str(run.path) if run.path else None,
            "run": run.extra or None,
        },
        "holdout": holdout_info,
        "files": [{
            "path": f.path.name, "precision": f.precision, "optimization": f.optimization,
            "model_version": f.model_version, "sha256": f.sha256, "bytes": f.bytes,
            "parity": f.parity,
        } for f in files],
        "producer": producer,
        "exported_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        .replace("+00:00", "Z"),
        "export_seconds": round(seconds, 2),
    }


__all__ = ["ExportError", "ExportOptions", "ExportResult", "ExportedFile", "export_model"]
