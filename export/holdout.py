"""Held-out images for the parity gate: an HDF5 split, a folder, or a synthetic set.

* **HDF5** (the trainer's dataset file): the ``test`` split by default; images are
  already uint8 ``[N, S, S, 3]`` from the one preprocessing, and the file's
  ``labels`` and ``digest`` attributes come along.
* **Folder**: every image file under it (sorted, recursive), decoded with
  :func:`consumer.imaging.preprocess`, the same code the consumer serves with.
* **Synthetic** (no holdout given): a deterministic mix of smooth noise,
  gradients, blocks and white noise. It exercises every op of the graph but is
  not a photograph; the model card says so (``holdout.synthetic: true``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.errors import HoldoutError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp")
HDF5_SUFFIXES = (".h5", ".hdf5")
SYNTHETIC_COUNT = 64


@dataclass(frozen=True)
class Holdout:
    """uint8 ``[N, S, S, 3]`` images plus where they came from."""

    images: np.ndarray
    kind: str  # "hdf5" | "folder" | "synthetic"
    source: str
    split: str | None = None
    labels: np.ndarray | None = None  # int index per image, when the source has them
    label_names: list[str] | None = None
    dataset_digest: str | None = None
    skipped: int = 0

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    def describe(self) -> dict[str, object]:
        """The model card's ``holdout`` entry."""
        info: dict[str, object] = {"kind": self.kind, "source": self.source,
                                   "count": int(len(self.images)),
                                   "synthetic": self.synthetic}
        if self.split is not None:
            info["split"] = self.split
        if self.skipped:
            info["skipped"] = self.skipped
        if self.synthetic:
            info["note"] = ("no holdout given: parity was checked on deterministic synthetic "
                            "images, not photographs; re-export with --holdout for a real check")
        return info


def load_holdout(path: str | Path | None, size: int, *, split: str = "test",
                 limit: int = 256, seed: int = 0) -> Holdout:
    """Load up to ``limit`` held-out images at ``size``; synthetic when ``path`` is None."""
    if limit < 1:
        raise HoldoutError(f"holdout limit must be at least 1, is {limit}")
    if path is None:
        return synthetic(size, min(limit, SYNTHETIC_COUNT), seed=seed)
    location = Path(path)
    if location.is_dir():
        return from_folder(location, size, limit=limit)
    if location.is_file() and location.suffix.lower() in HDF5_SUFFIXES:
        return from_hdf5(location, size, split=split, limit=limit)
    raise HoldoutError(f"holdout {location} is neither a folder nor an HDF5 file (.h5/.hdf5)")


def _attr_labels(raw: object) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    try:
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw]  # type: ignore[union-attr]
    except TypeError:
        return None


def from_hdf5(path: Path, size: int, *, split: str = "test", limit: int = 256) -> Holdout:
    """Read the first ``limit`` rows of ``split`` (rows are stored shuffled, so class-mixed)."""
    import h5py  # only the HDF5 path needs it

    try:
        with h5py.File(path, "r") as h5:
            chosen = split
            if chosen not in h5 or len(h5[chosen]["images"]) == 0:
                fallback = next((s for s in ("val", "validation")
                                 if s in h5 and len(h5[s]["images"])), None)
                if fallback is None:
                    raise HoldoutError(f"{path}: split {split!r} is missing or empty")
                logger.warning("holdout split=%s is empty in %s; using split=%s", split, path,
                               fallback)
                chosen = fallback
            group = h5[chosen]
            images = np.asarray(group["images"][:limit])
            labels = np.asarray(group["labels"][:limit]) if "labels" in group else None
            label_names = _attr_labels(h5.attrs.get("labels"))
            digest = h5.attrs.get("digest")
            file_size = h5.attrs.get("input_size")
    except HoldoutError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise HoldoutError(f"cannot read holdout {path}: {exc}") from exc
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise HoldoutError(f"{path}:{chosen}/images is {images.dtype} {images.shape}; "
                           f"the model needs uint8 [N, {size}, {size}, 3]"
                           + (f" (file input_size={file_size})" if file_size is not None else ""))
    if isinstance(digest, bytes):
        digest = digest.decode("utf-8")
    return Holdout(images=images, kind="hdf5", source=str(path), split=chosen,
                   labels=labels.astype(np.int64) if labels is not None else None,
                   label_names=label_names, dataset_digest=str(digest) if digest else None)


def from_folder(path: Path, size: int, *, limit: int = 256) -> Holdout:
    """Decode image files under ``path`` with the consumer's own preprocessing."""
    from consumer.imaging import ImageError, preprocess

    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    images: list[np.ndarray] = []
    skipped = 0
    for file in files:
        if len(images) >= limit:
            break
        try:
            images.append(preprocess(file.read_bytes(), size))
        except (ImageError, OSError) as exc:
            skipped += 1
            logger.warning("holdout image skipped path=%s reason=%s", file, exc)
    if not images:
        raise HoldoutError(f"no decodable images under {path}")
    return Holdout(images=np.stack(images), kind="folder", source=str(path), skipped=skipped)


def _resize(plane: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(plane).resize((size, size), Image.Resampling.BILINEAR))


def synthetic(size: int, count: int = SYNTHETIC_COUNT, *, seed: int = 0) -> Holdout:
    """Deterministic images covering the pixel range: same seed, same bytes, any machine."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float64)
    for i in range(count):
        kind = i % 4
        if kind == 0:  # smooth noise: low-resolution noise scaled up, like blurry photos
            coarse = rng.integers(0, 256, (int(rng.integers(3, 12)),) * 2 + (3,), dtype=np.uint8)
            images[i] = _resize(coarse, size)
        elif kind == 1:  # colour gradients
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            t = np.add.outer(ramp * rng.uniform(0, 1), ramp * rng.uniform(0, 1)) / 2
            images[i] = np.clip(a + (b - a) * t[..., None], 0, 255).astype(np.uint8)
        elif kind == 2:  # flat blocks with hard edges
            image = np.full((size, size, 3), rng.integers(0, 256, 3), dtype=np.uint8)
            for _ in range(int(rng.integers(2, 8))):
                y0, x0 = rng.integers(0, size, 2)
                y1, x1 = y0 + rng.integers(8, size), x0 + rng.integers(8, size)
                image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
            images[i] = image
        else:  # white noise: every pixel value, every channel
            images[i] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return Holdout(images=images, kind="synthetic", source=f"synthetic(seed={seed})")
