"""The out-of-core reader: right rows, every row once per epoch, reshuffled, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.errors import DatasetError
from trainer.h5format import H5Writer
from trainer.reader import HDF5Batches, balanced_class_weight


@pytest.fixture
def numbered(tmp_path):
    """50 train rows whose pixels all equal the row number; labels = row % 3."""
    writer = H5Writer(tmp_path / "n.h5", 8, "lzf")
    for i in range(50):
        writer.add("train", i % 3, f"p{i}", bytes(32), np.full((8, 8, 3), i, np.uint8))
    writer.finish({"labels": ["a", "b", "c"], "input_size": 8, "digest": "sha256:x"})
    return tmp_path / "n.h5"


def _epoch(batches: HDF5Batches) -> tuple[list[int], list[int]]:
    rows, labels = [], []
    for i in range(len(batches)):
        x, y = batches[i][:2]
        assert x.dtype == np.uint8 and x.shape[1:] == (8, 8, 3)
        assert (x == x[:, :1, :1, :1]).all()  # one row number per image
        rows += x[:, 0, 0, 0].tolist()
        labels += y.tolist()
    return rows, labels


def test_sequential_batches_cover_the_split_in_order(numbered):
    batches = HDF5Batches(str(numbered), "train", 16)
    assert len(batches) == 4 and batches[3][0].shape[0] == 2
    rows, labels = _epoch(batches)
    assert rows == list(range(50)) and labels == [r % 3 for r in rows]
    with pytest.raises(IndexError):
        batches[4]


def test_shuffled_epochs_are_permutations_reshuffled_and_seeded(numbered):
    batches = HDF5Batches(str(numbered), "train", 16, shuffle=True, seed=4)
    first, labels = _epoch(batches)
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert labels == [r % 3 for r in first]  # labels travel with their images
    batches.on_epoch_end()
    second, _ = _epoch(batches)
    assert sorted(second) == list(range(50)) and second != first
    assert _epoch(HDF5Batches(str(numbered), "train", 16, shuffle=True, seed=4))[0] == first


def test_class_weights_become_sample_weights(numbered):
    weights = np.array([1.0, 2.0, 3.0], np.float32)
    x, y, w = HDF5Batches(str(numbered), "train", 10, class_weight=weights)[0]
    np.testing.assert_array_equal(w, weights[y])


def test_empty_split_is_an_error(numbered):
    with pytest.raises(DatasetError, match="empty"):
        HDF5Batches(str(numbered), "val", 4)


def test_balanced_class_weight():
    np.testing.assert_allclose(balanced_class_weight(np.array([30, 10, 0, 20])),
                               [60 / (3 * 30), 60 / (3 * 10), 0.0, 60 / (3 * 20)], rtol=1e-6)
