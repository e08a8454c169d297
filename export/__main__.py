"""``python -m export MODEL.keras --out DIR``: the ONNX model file the consumer serves.

Every flag also reads an environment variable ``CLAZZIFY_EXPORT_<FLAG>`` (dashes
as underscores); a flag given on the command line wins. Exit codes: 0 written;
1 export error (bad model, holdout, conversion); 2 usage; 3 parity gate failed.
Nothing is written unless every requested file passes its gate.

Example::

    python -m export runs/2024-06-01/model.keras --out models/2024-06-01 \\
        --holdout data/restaurants.h5 --fp16 --optimize
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ENV_PREFIX = "CLAZZIFY_EXPORT_"
OPTIMIZE_LEVELS = ("basic", "extended", "all")  # mirrors export.variants (kept import-free)

logger = logging.getLogger("export")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _env_flag(name: str) -> bool:
    return (_env(name, "") or "").strip().lower() in ("1", "true", "yes", "on")


def _labels(text: str) -> list[str]:
    """``--labels``: a JSON list, ``@file`` holding one, or comma-separated names."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--labels is not valid JSON: {exc}") from exc
        if not all(isinstance(v, str) for v in value):
            raise argparse.ArgumentTypeError("--labels must be a list of strings")
        return value
    return [part.strip() for part in stripped.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line; every default comes from the environment first."""
    opt_default = _env("OPTIMIZE_LEVEL", "basic")
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Convert a Keras model (TensorFlow backend) to the ONNX model file the "
                    "consumer serves: input 'image' uint8 [N,S,S,3] RGB, output 'scores' "
                    "float32 [N,C] probabilities, normalisation inside the graph, labels and "
                    "version in metadata_props. Every file must pass a Keras-vs-ONNX-Runtime "
                    "parity gate before it is written; on failure nothing is written.",
        epilog="Each flag also reads CLAZZIFY_EXPORT_<FLAG> from the environment (e.g. "
               "CLAZZIFY_EXPORT_OPSET=17); the command line wins. Exit codes: 0 ok, 1 export "
               "error, 2 usage, 3 parity gate failed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("model", type=Path, nargs="?" if _env("MODEL") else None,
                        default=Path(_env("MODEL")) if _env("MODEL") else None,
                        help="the .keras model to export [CLAZZIFY_EXPORT_MODEL]")
    parser.add_argument("--out", type=Path, required=_env("OUT") is None,
                        default=Path(_env("OUT")) if _env("OUT") else None,
                        help="folder for model.onnx, its variants and model.json; created if "
                             "missing [CLAZZIFY_EXPORT_OUT]")
    parser.add_argument("--run-dir", type=Path, default=_env("RUN_DIR"),
                        help="trainer run folder (run.json, labels.json, metrics.json) for labels, "
                             "dataset digest, trained_at and headline metrics; default: the "
                             "model's own folder when it holds run.json [CLAZZIFY_EXPORT_RUN_DIR]")
    parser.add_argument("--no-run-dir", action="store_true", default=_env_flag("NO_RUN_DIR"),
                        help="do not look for run.json beside the model [CLAZZIFY_EXPORT_NO_RUN_DIR]")
    parser.add_argument("--holdout", type=Path, default=_env("HOLDOUT"),
                        help="held-out images for the parity gate: the trainer's HDF5 dataset "
                             "(a split of it) or a folder of image files; default: deterministic "
                             "synthetic images, which the model card records "
                             "[CLAZZIFY_EXPORT_HOLDOUT]")
    parser.add_argument("--holdout-split", default=_env("HOLDOUT_SPLIT", "test"),
                        help="split of an HDF5 holdout (falls back to val when empty) "
                             "[CLAZZIFY_EXPORT_HOLDOUT_SPLIT]")
    parser.add_argument("--holdout-limit", type=int, default=int(_env("HOLDOUT_LIMIT", "256")),
                        help="holdout images used at most (batch size 1 uses the first 32) "
                             "[CLAZZIFY_EXPORT_HOLDOUT_LIMIT]")
    parser.add_argument("--opset", type=int, default=int(_env("OPSET", "18")),
                        help="ONNX opset; 18 is the highest tf2onnx 1.17 converts, and ONNX "
                             "Runtime 1.31 runs it [CLAZZIFY_EXPORT_OPSET]")
    parser.add_argument("--fp16", action="store_true", default=_env_flag("FP16"),
                        help="also write model.fp16.onnx (float16 weights and compute, uint8 in, "
                             "float32 out) for GPUs, gated at max|Δ|≤1e-2 and ≥99.5%% top-1 "
                             "[CLAZZIFY_EXPORT_FP16]")
    parser.add_argument("--optimize", action="store_true", default=_env_flag("OPTIMIZE"),
                        help="also write model.opt.onnx, optimised offline by ONNX Runtime, "
                             "gated like fp32 [CLAZZIFY_EXPORT_OPTIMIZE]")
    parser.add_argument("--optimize-level", choices=OPTIMIZE_LEVELS, default=opt_default,
                        help="ONNX Runtime level for --optimize: basic (standard ops, any "
                             "provider), extended (com.microsoft fused ops: CPU/CUDA), all "
                             "(CPU-specific layouts: only for the CPU it ran on) "
                             "[CLAZZIFY_EXPORT_OPTIMIZE_LEVEL]")
    parser.add_argument("--version", dest="model_version", default=_env("VERSION"),
                        help="model_version to record; default: sha256 content digest of the "
                             "graph (fp16 file: <version>+fp16) [CLAZZIFY_EXPORT_VERSION]")
    parser.add_argument("--labels", type=_labels, default=_labels(_env("LABELS")) if _env("LABELS") else None,
                        help="label names in output order: JSON list, @file.json, or a,b,c; "
                             "default: the run folder, else the HDF5 holdout, else class_<i> "
                             "[CLAZZIFY_EXPORT_LABELS]")
    parser.add_argument("--normalize", default=_env("NORMALIZE"),
                        help="only for a model that takes float input: the normalisation to put in "
                             "the graph, e.g. unit (x/255), symmetric ([-1,1]), imagenet, "
                             "'scale:1/255', 'scale:1/255;mean:0.485,0.456,0.406;std:0.229,0.224,"
                             "0.225'; default: 'normalize' in run.json [CLAZZIFY_EXPORT_NORMALIZE]")
    parser.add_argument("--softmax", action="store_true", default=_env_flag("SOFTMAX"),
                        help="append a softmax: for a model that ends in logits "
                             "[CLAZZIFY_EXPORT_SOFTMAX]")
    parser.add_argument("--input-size", type=int,
                        default=int(_env("INPUT_SIZE")) if _env("INPUT_SIZE") else None,
                        help="square input side, needed only when the model leaves it open "
                             "(checked against the model otherwise) [CLAZZIFY_EXPORT_INPUT_SIZE]")
    parser.add_argument("--dataset-digest", default=_env("DATASET_DIGEST"),
                        help="training data digest; default: run.json, else the HDF5 holdout's "
                             "digest, else 'unknown' [CLAZZIFY_EXPORT_DATASET_DIGEST]")
    parser.add_argument("--trained-at", default=_env("TRAINED_AT"),
                        help="ISO-8601 training time; default: run.json, else the model file's "
                             "modification time [CLAZZIFY_EXPORT_TRAINED_AT]")
    parser.add_argument("--parity-batch", type=int, default=int(_env("PARITY_BATCH", "32")),
                        help="the larger batch size of the parity gate (batch 1 always runs) "
                             "[CLAZZIFY_EXPORT_PARITY_BATCH]")
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="logging level [CLAZZIFY_EXPORT_LOG_LEVEL]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, export, print a one-line summary; return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ chatter

    from export.errors import ExportError  # noqa: E402 - after flags, so --help stays instant
    from export.pipeline import ExportOptions, export_model

    options = ExportOptions(
        model=args.model, out=args.out, run_dir=args.run_dir, auto_run_dir=not args.no_run_dir,
        holdout=args.holdout, holdout_split=args.holdout_split,
        holdout_limit=args.holdout_limit, opset=args.opset, fp16=args.fp16,
        optimize=args.optimize, optimize_level=args.optimize_level,
        version=args.model_version, labels=args.labels, normalize=args.normalize,
        softmax=args.softmax, input_size=args.input_size, dataset_digest=args.dataset_digest,
        trained_at=args.trained_at, parity_batch=args.parity_batch)
    try:
        result = export_model(options)
    except ExportError as exc:
        logger.error("export failed: %s", exc)
        return exc.exit_code
    for exported in result.files:
        print(f"{exported.path}\t{exported.precision}\t{exported.model_version}\t"
              f"{exported.bytes} bytes\tsha256:{exported.sha256}")
    print(result.card_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
