"""Fashion-MNIST (Debian ``dataset-fashion-mnist``) → a folder per label of PNG files.

Writes ``OUT/<label>/{train,test}-NNNNN.png`` (28x28 grayscale, as published) and
``OUT/manifest.csv`` (``path,label,split``) that pins the official test set, so
``build-dataset OUT/manifest.csv --test-fraction 0`` keeps Zalando's train/test split and
carves validation out of the training part only.

Example::

    $ sudo apt-get install dataset-fashion-mnist
    $ python -m trainer fashion-mnist --out data/fmnist-src --limit 8000
"""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from trainer.errors import SourceError

DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
# Zalando's class names, in label-index order, spelled as folder names.
LABELS = ("tshirt_top", "trouser", "pullover", "dress", "coat",
          "sandal", "shirt", "sneaker", "bag", "ankle_boot")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) IDX file: big-endian magic ``0x00 0x00 dtype ndim``, dims, uint8 data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] or data[1] or data[2] != 0x08:
        raise SourceError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise SourceError(f"{path}: expected {dims} values, found {body.size}")
    return body.reshape(dims)


def balanced_subset(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of the first ``limit`` items, taken class by class in turn (stays balanced)."""
    if limit is None or limit >= labels.size:
        return np.arange(labels.size)
    classes = np.unique(labels)
    per_class = [np.flatnonzero(labels == c) for c in classes]
    picked: list[int] = []
    for rank in range(labels.size):
        for members in per_class:
            if rank < members.size and len(picked) < limit:
                picked.append(int(members[rank]))
        if len(picked) >= limit:
            break
    return np.sort(np.array(picked, dtype=np.int64))


def convert(out: str | Path, *, source: str | Path = DEFAULT_SOURCE, limit: int | None = None,
            test_limit: int | None = None) -> dict[str, int]:
    """Write the PNG folders and the manifest; returns the number of images per split."""
    source, out = Path(source), Path(out)
    for images_name, labels_name in _FILES.values():
        for name in (images_name, labels_name):
            if not (source / name).is_file():
                raise SourceError(f"{source / name} not found; install it with "
                                  f"'apt-get install dataset-fashion-mnist' or pass --source")
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        manifest = csv.writer(handle)
        manifest.writerow(["path", "label", "split"])
        for split, (images_name, labels_name) in _FILES.items():
            images, labels = read_idx(source / images_name), read_idx(source / labels_name)
            keep = balanced_subset(labels, limit if split == "train" else test_limit)
            for index in keep:
                label = LABELS[int(labels[index])]
                relative = f"{label}/{split}-{index:05d}.png"
                Image.fromarray(images[index]).save(out / relative)
                # The official training part is left unpinned so build-dataset can carve out
                # a stratified validation split; the official test set stays the test set.
                manifest.writerow([relative, label, "test" if split == "test" else ""])
            written[split] = int(keep.size)
    return written
