"""``train``: an HDF5 dataset → a run folder holding the model file and its evidence.

Run folder (the exporter's input)::

    model.keras            best epoch's weights; uint8 [N,S,S,3] "image" → softmax [N,C] "scores",
                           float32, no augmentation layers, built-in layers only
    checkpoints/best.keras the best checkpoint as it was saved during training
    labels.json            label names in output order
    metrics.json           best model on the test split (val when there is no test split)
    run.json               arch, input_size, labels, dataset digest/path, trained_at, epochs, …
    history.csv            per-epoch loss/accuracy/val_*/learning_rate (Keras CSVLogger)
    curves.png             accuracy and loss, train vs val
    confusion_matrix.png   for the split in metrics.json

Example::

    >>> from trainer.train import TrainConfig, train
    >>> run = train(TrainConfig(dataset="data.h5", out="runs/alexnet", arch="alexnet"))
    >>> run["images_per_s"], run["device"]
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from trainer.errors import DatasetError, RunError
from trainer.h5format import read_info

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "sgd")
MONITORS = ("val_loss", "val_accuracy")
LR_SCHEDULES = ("cosine", "plateau", "constant")


@dataclass
class TrainConfig:
    """Every ``train`` flag; defaults are the CLI's defaults."""

    dataset: str
    out: str
    arch: str = "alexnet"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    patience: int = 6
    monitor: str = "val_loss"
    width_multiplier: float = 1.0
    dropout: float = 0.5
    augment: str = "full"
    class_weight: str = "balanced"
    mixed_precision: str = "auto"
    seed: int = 1337
    workers: int = 2
    overwrite: bool = False
    verbose: int | None = None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _holds_a_run(out: Path) -> bool:
    return out.exists() and any(out.iterdir())


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; refuse to mix a new run into an old one unless ``overwrite``."""
    if _holds_a_run(out):
        if not overwrite:
            raise RunError(f"{out} already holds a run; pass --overwrite or choose another --out")
        shutil.rmtree(out)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)


def train(config: TrainConfig) -> dict:
    """Train per ``config`` and write the run folder; returns the contents of run.json."""
    if config.monitor not in MONITORS:
        raise RunError(f"--monitor must be one of {MONITORS}")
    info = read_info(config.dataset)
    for split in ("train", "val"):
        if info.counts[split] == 0:
            raise DatasetError(f"{config.dataset} has an empty {split} split; rebuild it with "
                               f"a non-zero --val-fraction")
    out = Path(config.out)
    if _holds_a_run(out) and not config.overwrite:  # fail before any slow work
        prepare_run_dir(out, overwrite=False)

    # Keras is imported only now, after __main__ has had a chance to set KERAS_BACKEND.
    import keras

    previous_policy = keras.mixed_precision.dtype_policy()
    try:
        return _fit_and_write(config, info, out)
    finally:
        keras.mixed_precision.set_dtype_policy(previous_policy)


def _fit_and_write(config: TrainConfig, info, out: Path) -> dict:
    import keras

    from trainer.augment import training_model
    from trainer.callbacks import BestInferenceCheckpoint, EpochThroughput
    from trainer.device import configure_precision, detect
    from trainer.models import build_model
    from trainer.reader import HDF5Batches, balanced_class_weight

    keras.utils.set_random_seed(config.seed)
    device = detect()
    policy = configure_precision(config.mixed_precision, device)
    logger.info("backend=%s device=%s dtype_policy=%s", device.backend, device.device, policy)

    num_classes = len(info.labels)
    model = build_model(config.arch, info.input_size, num_classes,
                        width=config.width_multiplier, dropout=config.dropout)
    prepare_run_dir(out, config.overwrite)  # only once the arguments have proved usable
    weights = None
    if config.class_weight == "balanced":
        weights = balanced_class_weight(info.class_counts["train"])
    loader = {"workers": max(1, config.workers), "use_multiprocessing": False,
              "max_queue_size": 8}
    train_batches = HDF5Batches(info.path, "train", config.batch_size, shuffle=True,
                                seed=config.seed, class_weight=weights, **loader)
    val_batches = HDF5Batches(info.path, "val", config.batch_size, **loader)

    fit_model = model
    if config.augment != "none":
        fit_model = training_model(model, seed=config.seed, strength=config.augment)
    fit_model.compile(optimizer=_optimizer(config),
                      loss="sparse_categorical_crossentropy",
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    best_path = out / "checkpoints" / "best.keras"
    checkpoint = BestInferenceCheckpoint(model, best_path, config.monitor)
    throughput = EpochThroughput(train_batches.size)
    callbacks = [
        checkpoint, throughput,
        # before CSVLogger: the schedule writes "learning_rate" into the epoch's logs
        *_lr_schedule(config, checkpoint.mode),
        keras.callbacks.EarlyStopping(monitor=config.monitor, patience=config.patience,
                                      mode=checkpoint.mode),
        keras.callbacks.CSVLogger(str(out / "history.csv")),
        keras.callbacks.TerminateOnNaN(),
    ]
    verbose = config.verbose if config.verbose is not None else (1 if sys.stderr.isatty() else 2)
    started = time.monotonic()
    history = fit_model.fit(train_batches, validation_data=val_batches, epochs=config.epochs,
                            callbacks=callbacks, verbose=verbose)
    duration = time.monotonic() - started
    if not best_path.exists():
        raise RunError(f"no checkpoint was saved (monitor {config.monitor!r} never improved "
                       f"or is not a logged metric: {sorted(history.history)})")

    final = save_float32_copy(best_path, out / "model.keras", config.arch, info.input_size,
                              num_classes, width=config.width_multiplier, dropout=config.dropout)
    (out / "labels.json").write_text(json.dumps(info.labels, indent=2) + "\n")

    from trainer.evaluate import evaluate_split, write_metrics
    from trainer.report import plot_curves

    val_metrics = evaluate_split(final, info.path, "val", info.labels, config.batch_size)
    primary = val_metrics
    if info.counts["test"]:
        primary = evaluate_split(final, info.path, "test", info.labels, config.batch_size)
    write_metrics(primary, out, title=f"{config.arch} on {primary['split']} "
                                      f"(top-1 {primary['top1_accuracy']:.3f})")
    plot_curves(history.history, out / "curves.png", title=f"{config.arch} on {Path(info.path).name}")

    run = {
        "arch": config.arch,
        "input_size": info.input_size,
        "labels": info.labels,
        "dataset_digest": info.digest,
        "dataset_path": str(Path(info.path).resolve()),
        "trained_at": _utc_now(),
        "epochs": len(history.history.get("loss", [])),
        "epochs_requested": config.epochs,
        "best_epoch": checkpoint.best_epoch,
        "monitor": config.monitor,
        "monitor_best": checkpoint.best,
        "batch_size": config.batch_size,
        "seed": config.seed,
        "backend": device.backend,
        "device": device.device,
        "dtype_policy": policy,
        "images_per_s": throughput.images_per_s(),
        "train_seconds": round(duration, 1),
        "params": int(final.count_params()),
        "val_top1_accuracy": val_metrics["top1_accuracy"],
        "metrics_split": primary["split"],
        "top1_accuracy": primary["top1_accuracy"],
        "counts": info.counts,
        "class_weight": None if weights is None else [float(w) for w in weights],
        "keras_version": keras.__version__,
        "config": {k: v for k, v in asdict(config).items() if k not in ("out", "dataset", "overwrite", "verbose")},
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


def save_float32_copy(checkpoint: Path, out: Path, arch: str, input_size: int, num_classes: int,
                      *, width: float, dropout: float):
    """Rebuild ``arch`` under the float32 policy, load ``checkpoint``'s weights, save to ``out``.

    The exporter then reads a plain float32 model: no augmentation wrapper and no
    mixed-precision policy baked into the file, whatever the training run used.
    """
    import keras

    from trainer.models import build_model

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float32")
    try:
        model = build_model(arch, input_size, num_classes, width=width, dropout=dropout)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    model.load_weights(checkpoint)
    model.save(out)
    return model


def _optimizer(config: TrainConfig):
    import keras

    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=config.learning_rate,
                                      weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=0.9,
                                    nesterov=True, weight_decay=config.weight_decay or None)
    raise RunError(f"unknown optimizer {config.optimizer!r}; choose from {OPTIMIZERS}")


def _lr_schedule(config: TrainConfig, mode: str) -> list:
    import keras

    if config.lr_schedule == "cosine":
        from trainer.callbacks import cosine_schedule

        return [keras.callbacks.LearningRateScheduler(cosine_schedule(config.learning_rate, config.epochs))]
    if config.lr_schedule == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(monitor=config.monitor, mode=mode, factor=0.3,
                                                  patience=max(1, config.patience // 3),
                                                  min_lr=config.learning_rate * 1e-3)]
    if config.lr_schedule == "constant":
        return []
    raise RunError(f"unknown --lr-schedule {config.lr_schedule!r}; choose from {LR_SCHEDULES}")
