"""``python -m trainer``: build-dataset, train, evaluate, fashion-mnist.

Example::

    $ python -m trainer build-dataset photos/ --out data.h5
    $ python -m trainer train data.h5 --arch alexnet --out runs/alexnet
    $ python -m trainer evaluate runs/alexnet data.h5 --split test
    $ python -m trainer evaluate runs/alexnet new-photos/

Exit status: 0 success, 2 a problem you can fix (message on stderr), 1 a bug.
Environment: KERAS_BACKEND (tensorflow|jax|torch; same as --backend),
TF_CPP_MIN_LOG_LEVEL (TensorFlow's C++ log noise; set to 2 by default here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from trainer.errors import TrainerError

logger = logging.getLogger("trainer")

ARCHS = ("alexnet", "inceptionv3", "mobilenetv3small", "efficientnetb0")  # = trainer.models.ARCHS


class _SubFormatter(argparse.HelpFormatter):
    """Show a flag's default when it has a meaningful one (not None, not a False switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "%(default)" not in text):
            text += " (default: %(default)s)"
        return text


class _Formatter(_SubFormatter, argparse.RawDescriptionHelpFormatter):
    """Top level: also keep the example block's line breaks."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer", formatter_class=_Formatter,
        description="clazzify trainer: labelled images → HDF5 → Keras model (run folder).",
        epilog=__doc__.split("Example::", 1)[1])
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="logging verbosity")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build-dataset", formatter_class=_SubFormatter,
        help="verify, deduplicate, preprocess and split images into an HDF5 dataset",
        description="Read SRC (a folder per label, SRC/<label>/**, or a CSV manifest "
                    "path,label[,split]), decode every file with consumer.imaging.preprocess "
                    "(EXIF orientation, RGB, squash-resize), skip and report corrupt files, "
                    "non-images, unsupported formats, decompression bombs, too-small images and "
                    "byte-identical duplicates, and stream the rest into a chunked uint8 HDF5 "
                    "file with a stratified seeded train/val/test split. Memory stays bounded.",
        epilog="example: python -m trainer build-dataset photos/ --out data.h5 --workers 8")
    build.add_argument("src", help="folder with one sub-folder per label, or a CSV manifest")
    build.add_argument("--out", required=True, help="HDF5 file to write (written as OUT.partial, then renamed)")
    build.add_argument("--input-size", type=_positive_int, default=227,
                       help="side S of the stored S x S RGB images (the model's input size)")
    build.add_argument("--labels", help="comma-separated label names, fixing their order "
                                        "(default: every label found, sorted)")
    build.add_argument("--val-fraction", type=_fraction, default=0.1, help="share of each class for validation")
    build.add_argument("--test-fraction", type=_fraction, default=0.1,
                       help="share of each class for test (manifest rows with a split keep it)")
    build.add_argument("--seed", type=int, default=1337, help="seed for the split and the write order")
    build.add_argument("--workers", type=int, default=None,
                       help="decoding processes (default: all cores; 0 decodes in this process)")
    build.add_argument("--min-side", type=_positive_int, default=32,
                       help="skip images whose shorter side is below this (reason too_small)")
    build.add_argument("--max-pixels", type=_positive_int, default=None,
                       help="skip images declaring more pixels (reason decompression_bomb; "
                            "default: consumer.imaging's 50,000,000)")
    build.add_argument("--compression", choices=("lzf", "gzip", "none"), default="lzf",
                       help="HDF5 filter for the image chunks (lzf: fast; gzip: readable by any HDF5 tool)")
    build.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=_build_dataset)

    train = commands.add_parser(
        "train", formatter_class=_SubFormatter, help="train a model on an HDF5 dataset into a run folder",
        description="Train --arch on DATASET's train split (read out-of-core), select the best "
                    "epoch on val, and write OUT: model.keras (uint8 'image' in, softmax "
                    "'scores' out), labels.json, metrics.json (test split, or val), run.json, "
                    "history.csv, curves.png, confusion_matrix.png, checkpoints/best.keras. "
                    "A GPU is used automatically when the backend sees one (then mixed "
                    "precision is on by default). The input size is the dataset's.",
        epilog="example: python -m trainer train data.h5 --arch alexnet --out runs/alexnet --epochs 30")
    train.add_argument("dataset", help="HDF5 file written by build-dataset")
    train.add_argument("--out", required=True, help="run folder to create")
    train.add_argument("--arch", choices=ARCHS, default="alexnet", help="architecture")
    train.add_argument("--epochs", type=_positive_int, default=30, help="maximum epochs")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="batch size")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="initial learning rate")
    train.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                       help="adamw, or sgd with Nesterov momentum 0.9")
    train.add_argument("--weight-decay", type=float, default=1e-4, help="decoupled weight decay")
    train.add_argument("--lr-schedule", choices=("cosine", "plateau", "constant"), default="cosine",
                       help="cosine decay over --epochs, or reduce x0.3 on a --monitor plateau")
    train.add_argument("--patience", type=_positive_int, default=6,
                       help="early stopping: epochs without --monitor improving")
    train.add_argument("--monitor", choices=("val_loss", "val_accuracy"), default="val_loss",
                       help="metric for best checkpoint, early stopping and plateau")
    train.add_argument("--width-multiplier", type=float, default=1.0,
                       help="scale filters/units (alexnet; alpha for mobilenetv3small); 0.25 trains fast on CPU")
    train.add_argument("--dropout", type=float, default=0.5, help="dropout of alexnet's dense layers")
    train.add_argument("--augment", choices=("full", "light", "none"), default="full",
                       help="training-only augmentation: full = flip, rotation, zoom/crop, translation, "
                            "brightness, contrast; light = flip and translation")
    train.add_argument("--class-weight", choices=("balanced", "none"), default="balanced",
                       help="weight the loss by n/(C*n_c) so rare classes count as much as common ones")
    train.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto",
                       help="float16 compute; auto = on when a GPU is present")
    train.add_argument("--backend", choices=("tensorflow", "jax", "torch"), default=None,
                       help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    train.add_argument("--seed", type=int, default=1337, help="seed for weights, shuffling and augmentation")
    train.add_argument("--workers", type=_positive_int, default=2, help="batch-reading threads")
    train.add_argument("--overwrite", action="store_true", help="replace OUT if it holds a run")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", formatter_class=_SubFormatter, help="metrics and confusion matrix of a run on data",
        description="Evaluate RUN/model.keras on an HDF5 split or on a folder per label / CSV "
                    "manifest (decoded with the serving preprocessing at the model's input "
                    "size). Writes metrics.json and confusion_matrix.png to --out and prints the "
                    "headline numbers as JSON.",
        epilog="examples: python -m trainer evaluate runs/alexnet data.h5 --split test; "
               "python -m trainer evaluate runs/alexnet holdout-photos/")
    evaluate.add_argument("run", help="run folder written by train")
    evaluate.add_argument("target", help="HDF5 dataset, folder with a sub-folder per label, or CSV manifest")
    evaluate.add_argument("--split", choices=("train", "val", "test"), default=None,
                          help="HDF5 split (default: test, or val when test is empty)")
    evaluate.add_argument("--out", default=None, help="output folder (default: RUN/eval/<target>-<split>)")
    evaluate.add_argument("--batch-size", type=_positive_int, default=64, help="inference batch size")
    evaluate.add_argument("--workers", type=int, default=None, help="decoding processes for a folder")
    evaluate.add_argument("--min-side", type=_positive_int, default=1,
                          help="skip folder images smaller than this (1 = like serving)")
    evaluate.add_argument("--backend", choices=("tensorflow", "jax", "torch"), default=None,
                          help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    evaluate.set_defaults(handler=_evaluate)

    fmnist = commands.add_parser(
        "fashion-mnist", formatter_class=_SubFormatter,
        help="convert Debian's dataset-fashion-mnist into a folder per label + manifest",
        description="Write OUT/<label>/{train,test}-NNNNN.png and OUT/manifest.csv (official "
                    "test set pinned to split 'test'). Then: build-dataset OUT/manifest.csv "
                    "--test-fraction 0 --min-side 28.",
        epilog="example: python -m trainer fashion-mnist --out data/fmnist-src --limit 8000")
    fmnist.add_argument("--out", required=True, help="folder to write")
    fmnist.add_argument("--source", default="/usr/share/datasets/fashion-mnist",
                        help="folder holding the idx-ubyte.gz files (dpkg -L dataset-fashion-mnist)")
    fmnist.add_argument("--limit", type=_positive_int, default=None,
                        help="keep this many training images, class-balanced (default: all 60,000)")
    fmnist.add_argument("--test-limit", type=_positive_int, default=None,
                        help="keep this many test images, class-balanced (default: all 10,000)")
    fmnist.set_defaults(handler=_fashion_mnist)
    return parser


def _build_dataset(args: argparse.Namespace) -> int:
    from consumer.imaging import DEFAULT_MAX_PIXELS
    from trainer.dataset import build_dataset, format_summary

    report = build_dataset(
        args.src, args.out, input_size=args.input_size,
        labels=args.labels.split(",") if args.labels else None,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed,
        workers=args.workers, min_side=args.min_side,
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, compression=args.compression,
        overwrite=args.overwrite, progress=not args.no_progress)
    print(format_summary(report))
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.device import select_backend

    select_backend(args.backend)
    from trainer.train import TrainConfig, train

    run = train(TrainConfig(
        dataset=args.dataset, out=args.out, arch=args.arch, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate, optimizer=args.optimizer,
        weight_decay=args.weight_decay, lr_schedule=args.lr_schedule, patience=args.patience,
        monitor=args.monitor, width_multiplier=args.width_multiplier, dropout=args.dropout,
        augment=args.augment, class_weight=args.class_weight,
        mixed_precision=args.mixed_precision, seed=args.seed, workers=args.workers,
        overwrite=args.overwrite))
    keys = ("arch", "epochs", "best_epoch", "val_top1_accuracy", "metrics_split", "top1_accuracy",
            "images_per_s", "device")
    print(json.dumps({"run": args.out, **{k: run[k] for k in keys}}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.device import select_backend

    select_backend(args.backend)
    from trainer.evaluate import evaluate_run

    metrics = evaluate_run(args.run, args.target, split=args.split, out=args.out,
                           batch_size=args.batch_size, workers=args.workers, min_side=args.min_side)
    keys = ("split", "n", "top1_accuracy", "macro_f1", "skipped", "same_dataset_as_training", "out")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}))
    return 0


def _fashion_mnist(args: argparse.Namespace) -> int:
    from trainer.fashion_mnist import convert

    written = convert(args.out, source=args.source, limit=args.limit, test_limit=args.test_limit)
    print(json.dumps({"out": args.out, **written}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run one command; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except TrainerError as exc:
        logger.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
