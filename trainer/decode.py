"""Decode files to model input in parallel, in order, with bounded memory.

Every file goes through THE preprocessing (:func:`consumer.imaging.preprocess`), so the
trainer sees exactly the pixels the consumer will see at serving time. Workers read the
file themselves, hash its bytes (duplicate detection) and its pixels (dataset digest), and
return one :class:`Decoded` per file: pixels, or a stable ``reason`` code.

At most ``window`` results are in flight at once, so memory does not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from consumer.imaging import DEFAULT_MAX_PIXELS, ImageError, preprocess

# Skip reasons added by the trainer on top of consumer.imaging's codes.
REASON_MISSING = "missing"
REASON_UNREADABLE = "unreadable"
REASON_DUPLICATE = "duplicate"


@dataclass(frozen=True)
class DecodeConfig:
    """How to turn bytes into pixels; passed to every worker."""

    size: int = 227
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = 1


@dataclass(frozen=True)
class Decoded:
    """One file's outcome: ``pixels`` is set, or ``reason``/``message`` say why not."""

    path: str
    file_sha256: bytes | None
    pixels: np.ndarray | None = None
    pixels_sha256: bytes | None = None
    reason: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.pixels is not None


def decode_file(path: str, config: DecodeConfig) -> Decoded:
    """Read, hash and preprocess one file; never raises for a bad image."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError as exc:
        return Decoded(path, None, reason=REASON_MISSING, message=str(exc))
    except OSError as exc:
        return Decoded(path, None, reason=REASON_UNREADABLE, message=str(exc))
    file_sha = hashlib.sha256(data).digest()
    try:
        pixels = preprocess(data, config.size, max_pixels=config.max_pixels,
                            min_side=config.min_side)
    except ImageError as exc:
        return Decoded(path, file_sha, reason=exc.reason, message=str(exc))
    return Decoded(path, file_sha, pixels, hashlib.sha256(pixels.tobytes()).digest())


def default_workers() -> int:
    """Worker processes to use by default: every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def decode_stream(paths: Iterable[str], config: DecodeConfig, *, workers: int | None = None,
                  window: int | None = None) -> Iterator[Decoded]:
    """Yield :class:`Decoded` for ``paths`` in the same order, decoding on ``workers`` processes.

    ``workers=0`` decodes in this process (debugging, tiny inputs). Worker processes are
    spawned, not forked, so this is safe to call after TensorFlow has started its threads.
    """
    workers = default_workers() if workers is None else workers
    job = partial(decode_file, config=config)
    if workers <= 0:
        yield from map(job, paths)
        return
    window = window or workers * 8
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from _windowed(pool, job, iter(paths), window)


def _windowed(pool: Executor, job, paths: Iterator[str], window: int) -> Iterator[Decoded]:
    pending: deque = deque(pool.submit(job, path) for _, path in zip(range(window), paths))
    while pending:
        result = pending.popleft().result()
        nxt = next(paths, None)
        if nxt is not None:
            pending.append(pool.submit(job, nxt))
        yield result
