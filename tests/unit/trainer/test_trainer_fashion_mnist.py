"""The Fashion-MNIST converter, on tiny IDX files written here (same format as Debian's)."""

from __future__ import annotations

import csv
import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from trainer.errors import SourceError
from trainer.fashion_mnist import LABELS, balanced_subset, convert, read_idx


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_source(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, (n, 28, 28))
        images[:, 0, 0] = np.arange(n)  # recognisable: pixel (0,0) = index
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_read_idx_round_trip(fake_source):
    images = read_idx(fake_source / "train-images-idx3-ubyte.gz")
    assert images.shape == (40, 28, 28) and images.dtype == np.uint8
    assert read_idx(fake_source / "t10k-labels-idx1-ubyte.gz").tolist() == [i % 10 for i in range(20)]
    (fake_source / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x01\x00\x00\x00\x01x"))
    with pytest.raises(SourceError):
        read_idx(fake_source / "bad.gz")


def test_balanced_subset():
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    assert balanced_subset(labels, 4).tolist() == [0, 1, 4, 6]
    assert balanced_subset(labels, None).tolist() == list(range(7))


def test_convert_writes_pngs_per_label_and_a_manifest_pinning_test(fake_source, tmp_path):
    out = tmp_path / "out"
    assert convert(out, source=fake_source, limit=20) == {"train": 20, "test": 20}
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and {r["label"] for r in rows} == set(LABELS)
    assert sum(r["split"] == "test" for r in rows) == 20 and sum(r["split"] == "" for r in rows) == 20
    first = next(r for r in rows if r["split"] == "test")
    with Image.open(out / first["path"]) as image:
        assert image.size == (28, 28) and image.mode == "L"
        index = int(first["path"].split("-")[-1].split(".")[0])
        assert np.asarray(image)[0, 0] == index and first["label"] == LABELS[index % 10]
    with pytest.raises(SourceError, match="apt-get install dataset-fashion-mnist"):
        convert(out, source=tmp_path / "nowhere")
