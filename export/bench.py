"""``python -m export.bench``: file size and CPU throughput of fp32, fp16 and optimised files.

Builds a small AlexNet-like Keras model (uint8 input, in-graph rescaling, five
convolutions, two dense layers; random weights, since speed does not depend on
them), exports it through the real pipeline with ``--fp16 --optimize``, adds
ungated copies optimised at the other ONNX Runtime levels, then times each file
with ONNX Runtime's CPU provider the way the consumer opens it
(``ORT_ENABLE_ALL``), at batch size 32, the files taking turns. Prints a
Markdown table.

Example::

    python -m export.bench --batch 32 --seconds 10 --out /tmp/clazzify-bench
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def alexnet_like(input_size: int = 227, classes: int = 4, width: float = 1.0,
                 dense: int = 1024, seed: int = 0) -> Any:
    """AlexNet's convolution stack (scaled by ``width``) with smaller dense layers."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def w(n: int) -> int:
        return max(8, int(n * width))

    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(w(96), 11, strides=4, activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Conv2D(w(256), 5, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Conv2D(w(384), 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w(384), 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(w(256), 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, activation="relu")(x)
    x = layers.Dense(dense, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="alexnet_like")


def _session(path: Path, threads: int) -> tuple[Any, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    started = time.perf_counter()
    session = ort.InferenceSession(str(path), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    return session, time.perf_counter() - started


def throughput(paths: list[Path], batch: int, seconds: float, rounds: int = 5,
               threads: int = 0) -> list[dict[str, float]]:
    """Median images/s of each file, plus its session load time.

    The files take turns, one timed window each per round, so a neighbour's load
    on a shared machine slows them all alike instead of skewing one of them.
    Images per CPU-second (process time) is reported too: with one intra-op
    thread it hardly depends on what else the machine runs.
    """
    sessions = [_session(path, threads) for path in paths]
    size = sessions[0][0].get_inputs()[0].shape[1]
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    rates: list[list[float]] = [[] for _ in paths]
    cpu_rates: list[list[float]] = [[] for _ in paths]
    for session, _ in sessions:
        session.run(None, {"image": images})  # warm-up
    window = seconds / rounds
    for _ in range(rounds):
        for index, (session, _) in enumerate(sessions):
            count, begin, cpu_begin = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - begin < window:
                session.run(None, {"image": images})
                count += batch
            rates[index].append(count / (time.perf_counter() - begin))
            cpu_rates[index].append(count / max(time.process_time() - cpu_begin, 1e-9))
    return [{"images_per_s": statistics.median(r), "min": min(r), "max": max(r), "load_s": load,
             "images_per_cpu_s": statistics.median(c)}
            for r, c, (_, load) in zip(rates, cpu_rates, sessions)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="where to keep the files (default: a temp folder, removed)")
    parser.add_argument("--batch", type=int, default=32, help="batch size timed")
    parser.add_argument("--seconds", type=float, default=10.0, help="timing per file")
    parser.add_argument("--rounds", type=int, default=5, help="timed windows per file")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: all)")
    parser.add_argument("--width", type=float, default=1.0, help="conv width multiplier")
    parser.add_argument("--dense", type=int, default=1024, help="dense layer width")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from export import variants
    from export.pipeline import ExportOptions, export_model
    import onnx

    with tempfile.TemporaryDirectory(prefix="clazzify-bench-") as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        model = alexnet_like(width=args.width, dense=args.dense)
        model.save(out / "alexnet_like.keras")
        params = model.count_params()
        started = time.perf_counter()
        result = export_model(ExportOptions(
            model=out / "alexnet_like.keras", out=out, fp16=True, optimize=True,
            optimize_level="basic", labels=["food", "ambiance", "menu", "human"],
            trained_at="1970-01-01T00:00:00Z", holdout_limit=64))
        export_s = time.perf_counter() - started
        rows = [(f.path.name, f.precision, f.optimization or "-", f.path) for f in result.files]
        fp32 = onnx.load(str(out / "model.onnx"))
        for level in ("extended", "all"):
            target = out / f"model.opt-{level}.onnx"
            onnx.save(variants.optimize(fp32, level), str(target))
            rows.append((target.name + " (ungated)", "fp32", level, target))
        print(f"AlexNet-like: {params / 1e6:.1f} M parameters, export (fp32+fp16+opt, gates) "
              f"{export_s:.1f}s, CPU cores {os.cpu_count()}, intra-op threads "
              f"{args.threads or 'all'}, batch {args.batch}, load average "
              f"{os.getloadavg()[0]:.1f}\n")
        timings = throughput([row[3] for row in rows], args.batch, args.seconds,
                             rounds=args.rounds, threads=args.threads)
        print("| file | precision | offline optimisation | size (MB) | session load (s) "
              "| images/s (median, min-max) | images per CPU-second |")
        print("|---|---|---|---:|---:|---:|---:|")
        for (name, precision, level, path), timing in zip(rows, timings):
            print(f"| {name} | {precision} | {level} | {path.stat().st_size / 1e6:.1f} "
                  f"| {timing['load_s']:.2f} | {timing['images_per_s']:.1f} "
                  f"({timing['min']:.1f}-{timing['max']:.1f}) | {timing['images_per_cpu_s']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
