"""What is being exported: the Keras model, and what its run folder says about it.

The trainer writes a run folder beside ``model.keras``: ``labels.json``,
``metrics.json`` and ``run.json`` (``arch``, ``input_size``, ``labels``,
``dataset_digest``, ``trained_at``, …). Everything here is read once and checked
against the model itself (input shape, dtype, number of classes), so the model
file never carries metadata that contradicts its graph.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from export.errors import ModelSourceError

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class RunInfo:
    """The facts a trainer run folder states; ``None`` where it says nothing."""

    path: Path | None = None
    labels: list[str] | None = None
    input_size: int | None = None
    dataset_digest: str | None = None
    trained_at: str | None = None
    arch: str | None = None
    normalize: str | None = None
    metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelShape:
    """What the Keras graph itself says: spatial size, input dtype, class count."""

    input_size: int
    input_dtype: str
    num_classes: int


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}") from exc


def _labels(value: Any, where: str) -> list[str]:
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise ModelSourceError(f"{where}: labels must be a non-empty JSON list of strings")
    if len(set(value)) != len(value):
        raise ModelSourceError(f"{where}: labels are not unique: {value}")
    return list(value)


def headline_metrics(metrics: Any) -> dict[str, Any]:
    """Keep the scalars of ``metrics.json`` (one level of nesting, as ``a.b``).

    Per-class tables, confusion matrices and curves stay in the run folder; the
    model file carries only numbers a dashboard shows next to the version.
    """
    if not isinstance(metrics, dict):
        return {}
    headline: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, (bool, int, str)):
            headline[str(key)] = value
        elif isinstance(value, float) and math.isfinite(value):
            headline[str(key)] = value
        elif isinstance(value, dict):
            for sub, inner in value.items():
                if isinstance(inner, (bool, int, str)) or (
                        isinstance(inner, float) and math.isfinite(inner)):
                    headline[f"{key}.{sub}"] = inner
    return headline


def read_run_dir(path: str | Path) -> RunInfo:
    """Read a trainer run folder (``run.json`` required; the rest optional)."""
    run_dir = Path(path)
    run_file = run_dir / RUN_FILE
    if not run_file.is_file():
        raise ModelSourceError(f"{run_dir} is not a run folder: no {RUN_FILE}")
    run = _read_json(run_file)
    if not isinstance(run, dict):
        raise ModelSourceError(f"{run_file}: expected a JSON object")
    labels = None
    if (run_dir / LABELS_FILE).is_file():
        labels = _labels(_read_json(run_dir / LABELS_FILE), str(run_dir / LABELS_FILE))
    if run.get("labels") is not None:
        run_labels = _labels(run["labels"], str(run_file))
        if labels is not None and labels != run_labels:
            raise ModelSourceError(f"{LABELS_FILE} and {RUN_FILE} disagree on the labels")
        labels = run_labels
    metrics = None
    if (run_dir / METRICS_FILE).is_file():
        metrics = headline_metrics(_read_json(run_dir / METRICS_FILE))
    size = run.get("input_size")
    normalize = run.get("normalize", run.get("normalization"))
    known = {"labels", "input_size", "dataset_digest", "trained_at", "arch", "normalize",
             "normalization"}
    return RunInfo(
        path=run_dir,
        labels=labels,
        input_size=int(size) if size is not None else None,
        dataset_digest=str(run["dataset_digest"]) if run.get("dataset_digest") else None,
        trained_at=str(run["trained_at"]) if run.get("trained_at") else None,
        arch=str(run["arch"]) if run.get("arch") else None,
        normalize=str(normalize) if isinstance(normalize, str) else None,
        metrics=metrics,
        extra={k: v for k, v in run.items() if k not in known},
    )


def find_run_dir(model_path: Path) -> Path | None:
    """The trainer saves ``model.keras`` inside its run folder: use it when present."""
    candidate = model_path.parent
    return candidate if (candidate / RUN_FILE).is_file() else None


def load_keras(path: str | Path) -> Any:
    """Load a ``.keras`` (or legacy ``.h5``) model for inference only, computing in float32."""
    model_path = Path(path)
    if not model_path.is_file():
        raise ModelSourceError(f"no Keras model at {model_path}")
    import keras  # heavy: imported only when a model is really loaded

    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelSourceError(f"cannot load {model_path}: {exc}") from exc
    return as_float32(model)


_REDUCED_POLICIES = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def _float32_config(node: Any) -> tuple[Any, int]:
    """Copy of a Keras config with every reduced-precision dtype policy set to float32."""
    if isinstance(node, dict):
        if node.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and \
                isinstance(node.get("config"), dict) and \
                node["config"].get("name") in _REDUCED_POLICIES:
            return {**node, "config": {**node["config"], "name": "float32"}}, 1
        changed, out = 0, {}
        for key, value in node.items():
            if key == "dtype" and value in _REDUCED_POLICIES:
                out[key], hits = "float32", 1
            else:
                out[key], hits = _float32_config(value)
            changed += hits
        return out, changed
    if isinstance(node, list):
        pairs = [_float32_config(v) for v in node]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    return node, 0


def as_float32(model: Any) -> Any:
    """The same model computing in float32, whatever dtype policy it was trained under.

    A model trained with mixed precision (the trainer does so on GPUs) keeps the
    ``mixed_float16`` policy in its saved config; converted as is, the "fp32" file
    would compute in float16. Rebuilding from the config with float32 policies and
    copying the weights (kept in float32 by mixed precision anyway) gives the
    full-precision graph; the fp16 variant is then derived from it explicitly.
    """
    config, changed = _float32_config(model.get_config())
    if not changed:
        return model
    try:
        rebuilt = model.__class__.from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:  # noqa: BLE001 - a custom model may not round-trip its config
        raise ModelSourceError(f"cannot rebuild the model in float32 (it uses a reduced-"
                               f"precision dtype policy): {exc}") from exc
    logger.info("model used a reduced-precision dtype policy in %d places; rebuilt in float32",
                changed)
    return rebuilt


def model_shape(model: Any, input_size: int | None = None) -> ModelShape:
    """Check the model has one NHWC RGB input and one [N, C] output; return their facts."""
    inputs = getattr(model, "inputs", None) or []
    outputs = getattr(model, "outputs", None) or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelSourceError(
            f"expected one input and one output, model has {len(inputs)} and {len(outputs)}")
    in_shape = tuple(inputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise ModelSourceError(f"model input must be [N, H, W, 3] (RGB, NHWC), is {in_shape}")
    height, width = in_shape[1], in_shape[2]
    if height is None or width is None:
        if input_size is None:
            raise ModelSourceError("model input has no fixed spatial size: give --input-size")
        height = width = input_size
    if height != width:
        raise ModelSourceError(f"model input must be square, is {height}x{width}")
    if input_size is not None and input_size != height:
        raise ModelSourceError(f"input size {input_size} given, but the model takes {height}")
    out_shape = tuple(outputs[0].shape)
    if len(out_shape) != 2 or out_shape[1] is None or out_shape[1] < 1:
        raise ModelSourceError(f"model output must be [N, C], is {out_shape}")
    dtype = str(getattr(inputs[0], "dtype", "float32"))
    return ModelShape(input_size=int(height), input_dtype=dtype, num_classes=int(out_shape[1]))


def file_time_iso(path: Path) -> str:
    """A file's modification time as ISO-8601 UTC (fallback for ``trained_at``)."""
    stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    return stamp.replace(microsecond=0).isoformat().replace("+00:00", "Z")
