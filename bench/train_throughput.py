"""Training throughput (images/s) of the trainer's real training step — a benchmark, not a test.

Runs the same path as ``python -m trainer train``: the augmentation wrapper, AdamW, sparse
cross-entropy, and batches from a PyDataset (``--source memory``: a fixed random batch, so
only the model step is measured; ``--source hdf5``: a temporary HDF5 file read out-of-core by
trainer.reader, so the input pipeline is included). Epoch 1 is warm-up (graph tracing);
epoch 2 is timed from its first batch to its last. Prints one JSON document.

Examples::

    .venv/bin/python bench/train_throughput.py                      # alexnet 0.25 and 1.0 at 227, batch 32
    .venv/bin/python bench/train_throughput.py --source hdf5 --steps 6
    KERAS_BACKEND=jax python bench/train_throughput.py --batch-size 256 --steps 50   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="alexnet",
                        choices=("alexnet", "inceptionv3", "mobilenetv3small", "efficientnetb0"))
    parser.add_argument("--widths", default="0.25,1.0",
                        help="comma-separated --width-multiplier values (alexnet/mobilenetv3small)")
    parser.add_argument("--input-size", type=int, default=227)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8, help="timed batches (epoch 2)")
    parser.add_argument("--source", choices=("memory", "hdf5"), default="memory")
    parser.add_argument("--augment", choices=("full", "light", "none"), default="full")
    parser.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--classes", type=int, default=4)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np

    from trainer.augment import training_model
    from trainer.callbacks import EpochThroughput
    from trainer.device import configure_precision, detect
    from trainer.h5format import H5Writer
    from trainer.models import build_model
    from trainer.reader import HDF5Batches

    class FixedBatches(keras.utils.PyDataset):
        def __init__(self, x, y, steps):
            super().__init__()
            self.x, self.y, self.steps = x, y, steps

        def __len__(self):
            return self.steps

        def __getitem__(self, index):
            return self.x, self.y

    keras.utils.set_random_seed(0)
    device = detect()
    policy = configure_precision(args.mixed_precision, device)
    size, batch = args.input_size, args.batch_size
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, args.classes, batch).astype(np.int32)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        if args.source == "hdf5":
            path = Path(scratch) / "bench.h5"
            writer = H5Writer(path, size, "lzf")
            for i in range(batch * args.steps):
                writer.add("train", int(y[i % batch]), f"r{i}", bytes(32), x[i % batch])
            writer.finish({"labels": [f"c{i}" for i in range(args.classes)], "input_size": size,
                           "digest": "sha256:bench"})
            data = HDF5Batches(str(path), "train", batch, shuffle=True, seed=0, workers=2,
                               max_queue_size=8)
        else:
            data = FixedBatches(x, y, args.steps)
        for width in (float(w) for w in args.widths.split(",")):
            model = build_model(args.arch, size, args.classes, width=width)
            fit_model = model if args.augment == "none" else training_model(model, 0, args.augment)
            fit_model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            meter = EpochThroughput(len(data) * batch)
            fit_model.fit(data, epochs=2, callbacks=[meter], verbose=0)
            results.append({"arch": args.arch, "width_multiplier": width,
                            "params": int(model.count_params()),
                            "images_per_s": round(meter.rates[-1], 1)})
            print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({
        "benchmark": "train_throughput", "backend": device.backend, "device": device.device,
        "dtype_policy": policy, "keras": keras.__version__, "input_size": size,
        "batch_size": batch, "timed_steps": args.steps, "source": args.source,
        "augment": args.augment, "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
