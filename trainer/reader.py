"""Out-of-core batches from the HDF5 dataset, as a ``keras.utils.PyDataset``.

Only the batches being read are in memory; Keras' PyDataset workers prefetch a few while
the accelerator trains. Shuffling is a fresh seeded permutation every epoch; a shuffled
batch is read row by row (one chunk per image, in file order) straight into a
preallocated array. Works with every Keras backend (it yields NumPy arrays).

Example::

    >>> from trainer.reader import HDF5Batches
    >>> train = HDF5Batches("data.h5", "train", batch_size=64, shuffle=True, seed=1)
    >>> x, y = train[0]            # uint8 [64, S, S, 3], int32 [64]
"""

from __future__ import annotations

import os
import threading

import h5py
import keras
import numpy as np

from trainer.errors import DatasetError


class HDF5Batches(keras.utils.PyDataset):
    """Batches ``(images uint8, labels int32[, sample_weight float32])`` of one split."""

    def __init__(self, path: str, split: str, batch_size: int, *, shuffle: bool = False,
                 seed: int = 0, class_weight: np.ndarray | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path, self.split, self.batch_size = str(path), split, int(batch_size)
        self.shuffle, self.seed = shuffle, seed
        self.class_weight = None if class_weight is None else np.asarray(class_weight, np.float32)
        self._epoch = 0
        self._local = threading.local()
        with h5py.File(self.path, "r") as handle:
            if split not in handle:
                raise DatasetError(f"{path} has no split {split!r}")
            self.size = int(handle[split]["labels"].shape[0])
            self.image_shape = tuple(handle[split]["images"].shape[1:])
            self.labels = handle[split]["labels"][:].astype(np.int32)  # tiny; kept for metrics
        if self.size == 0:
            raise DatasetError(f"split {split!r} of {path} is empty")
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, self._epoch]).permutation(self.size)

    def _images(self) -> h5py.Dataset:
        # One handle per process and thread: h5py objects must not cross a fork, and
        # separate handles keep thread workers from sharing a dataset object's state.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.handle = h5py.File(self.path, "r")
            local.pid = os.getpid()
        return local.handle[self.split]["images"]

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        picked = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        images = self._images()
        if self.shuffle:
            # One read per row into a preallocated batch: h5py's fancy indexing
            # (images[list]) is ~20x slower than this for one-image chunks.
            x = np.empty((len(picked), *self.image_shape), dtype=np.uint8)
            for slot in np.argsort(picked):  # file order: sequential on disk
                images.read_direct(x, np.s_[int(picked[slot])], np.s_[int(slot)])
        else:
            x = images[int(picked[0]):int(picked[-1]) + 1]
        y = self.labels[picked]
        if self.class_weight is None:
            return x, y
        return x, y, self.class_weight[y]

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._permutation()

    def __getstate__(self):  # picklable for use_multiprocessing=True
        state = self.__dict__.copy()
        state["_local"] = None
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


def balanced_class_weight(counts: np.ndarray) -> np.ndarray:
    """``n / (C * n_c)`` per class (sklearn's "balanced"); 0 for a class with no examples."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)
