"""Stratified, seeded train/val/test assignment (pure; no I/O).

Each label's unpinned items are shuffled with the seed and cut by the fractions, so every
split keeps the class balance of the whole. A class with at least 3 unpinned items gets at
least one item in each split whose fraction is non-zero; smaller classes go to train.
Items pinned by a manifest keep their split.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from trainer.sources import SPLITS, Item


def assign_splits(items: Sequence[Item], *, val_fraction: float, test_fraction: float,
                  seed: int) -> list[str]:
    """Return the split name for each item, index-aligned with ``items``."""
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0
            and val_fraction + test_fraction < 1.0):
        raise ValueError("fractions must be in [0, 1) and sum to less than 1")
    result: list[str | None] = [item.split for item in items]
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        if item.split is None:
            by_label[item.label].append(index)
    rng = np.random.default_rng(seed)
    for label in sorted(by_label):
        indices = by_label[label]
        order = rng.permutation(len(indices))
        n_test, n_val = _counts(len(indices), val_fraction, test_fraction)
        for rank, pos in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            result[indices[pos]] = split
    assert all(split in SPLITS for split in result)
    return result  # type: ignore[return-value]


def _counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    if n < 3:
        return 0, 0
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    if test_fraction > 0:
        n_test = max(1, n_test)
    if val_fraction > 0:
        n_val = max(1, n_val)
    while n_test + n_val > n - 1:  # keep at least one training item
        if n_val >= n_test and n_val > 0:
            n_val -= 1
        else:
            n_test -= 1
    return n_test, n_val


def processing_order(n: int, seed: int) -> np.ndarray:
    """The seeded order in which items are decoded and written (shuffled once, at write time).

    Writing in a shuffled order means a contiguous slice of a split is already a random
    mix of classes, which keeps the out-of-core reader's reads cheap.
    """
    return np.random.default_rng([seed, 1]).permutation(n)
