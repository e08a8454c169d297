"""``evaluate``: a trained run on any HDF5 split or any labelled folder/manifest.

Writes ``metrics.json`` (the same shape as the run's) and ``confusion_matrix.png`` into
``--out`` (default ``RUN/eval/<target>-<split>``). A folder is decoded with THE
preprocessing at the model's input size, exactly as the consumer would see the images;
files that cannot be decoded, and labels the model does not know, are skipped and counted.

Example::

    >>> from trainer.evaluate import evaluate_run
    >>> metrics = evaluate_run("runs/alexnet", "data.h5", split="test")
    >>> metrics["top1_accuracy"]
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from trainer.errors import DatasetError, RunError
from trainer.metrics import summarize

logger = logging.getLogger(__name__)


def evaluate_split(model, dataset: str, split: str, labels: Sequence[str], batch_size: int,
                   label_map: np.ndarray | None = None) -> dict:
    """Metrics of ``model`` on one split of an HDF5 dataset (read out-of-core)."""
    from trainer.reader import HDF5Batches

    batches = HDF5Batches(dataset, split, batch_size)
    probabilities = model.predict(batches, verbose=0)
    y_true = batches.labels if label_map is None else label_map[batches.labels]
    return summarize(y_true, probabilities, labels, split=split)


def write_metrics(metrics: dict, out: str | Path, title: str = "") -> None:
    """``metrics.json`` and ``confusion_matrix.png`` into ``out``."""
    from trainer.report import plot_confusion

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_confusion(metrics["confusion_matrix"], metrics["labels"], out / "confusion_matrix.png",
                   title=title or f"{metrics['split']} (top-1 {metrics['top1_accuracy']:.3f})")


def load_run(run_dir: str | Path):
    """The model, labels and run.json of a run folder."""
    import keras

    run_dir = Path(run_dir)
    needed = [run_dir / name for name in ("model.keras", "labels.json")]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise RunError(f"{run_dir} is not a complete run folder; missing {', '.join(missing)}")
    labels = json.loads((run_dir / "labels.json").read_text())
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    return model, labels, run


def evaluate_run(run_dir: str | Path, target: str | Path, *, split: str | None = None,
                 out: str | Path | None = None, batch_size: int = 64, workers: int | None = None,
                 min_side: int = 1) -> dict:
    """Evaluate the run's ``model.keras`` on ``target`` (HDF5 file, folder or CSV manifest)."""
    model, labels, run = load_run(run_dir)
    input_size = int(model.inputs[0].shape[1])
    target = Path(target)
    if target.is_file() and h5py.is_hdf5(target):
        metrics = _on_dataset(model, labels, input_size, target, split, batch_size, run)
        name = f"{target.stem}-{metrics['split']}"
    else:
        if split:
            raise DatasetError("--split applies to an HDF5 dataset, not to a folder or manifest")
        metrics = _on_images(model, labels, input_size, target, batch_size, workers, min_side)
        name = target.stem if target.is_file() else target.name
    metrics["source"] = str(target.resolve())
    metrics["run"] = str(Path(run_dir).resolve())
    out = Path(out) if out else Path(run_dir) / "eval" / name
    write_metrics(metrics, out, title=f"{run.get('arch', model.name)} on {name} "
                                      f"(top-1 {metrics['top1_accuracy']:.3f})")
    metrics["out"] = str(out)
    return metrics


def _label_map(dataset_labels: Sequence[str], model_labels: Sequence[str]) -> np.ndarray:
    unknown = [name for name in dataset_labels if name not in model_labels]
    if unknown:
        raise DatasetError(f"the dataset has labels the model does not know: {unknown}")
    return np.array([list(model_labels).index(name) for name in dataset_labels], dtype=np.int64)


def _on_dataset(model, labels, input_size, path: Path, split, batch_size, run) -> dict:
    from trainer.h5format import read_info

    info = read_info(path)
    if info.input_size != input_size:
        raise DatasetError(f"{path} holds {info.input_size}px images; the model takes {input_size}px")
    if split is None:
        split = "test" if info.counts["test"] else "val"
    if split not in info.counts:
        raise DatasetError(f"unknown split {split!r}; choose train, val or test")
    if info.counts[split] == 0:
        raise DatasetError(f"split {split!r} of {path} is empty")
    metrics = evaluate_split(model, str(path), split, labels, batch_size,
                             _label_map(info.labels, labels))
    metrics["dataset_digest"] = info.digest
    metrics["same_dataset_as_training"] = info.digest == run.get("dataset_digest")
    return metrics


def _on_images(model, labels, input_size, target: Path, batch_size, workers, min_side) -> dict:
    from tqdm import tqdm

    from trainer.decode import DecodeConfig, decode_stream
    from trainer.sources import discover

    source = discover(target)
    known = {name: i for i, name in enumerate(labels)}
    skipped: Counter = Counter()
    items = [item for item in source.items if item.label in known]
    skipped["unknown_label"] = len(source.items) - len(items)
    if not items:
        raise DatasetError(f"no images in {target} carry a label the model knows ({labels})")
    config = DecodeConfig(size=input_size, min_side=min_side)
    y_true: list[int] = []
    probabilities: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            probabilities.append(np.asarray(model.predict_on_batch(np.stack(batch))))
            batch.clear()

    stream = decode_stream((item.path for item in items), config, workers=workers)
    for item, result in zip(items, tqdm(stream, total=len(items), unit="img", desc="evaluate")):
        if not result.ok:
            skipped[result.reason or "unknown"] += 1
            continue
        batch.append(result.pixels)
        y_true.append(known[item.label])
        if len(batch) == batch_size:
            flush()
    flush()
    if not y_true:
        raise DatasetError(f"no image in {target} could be decoded: {dict(skipped)}")
    metrics = summarize(np.array(y_true), np.concatenate(probabilities), labels, split="folder")
    metrics["skipped"] = {reason: n for reason, n in skipped.items() if n}
    return metrics
