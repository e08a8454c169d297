"""The HDF5 dataset layout — the contract between ``build-dataset`` and ``train``/``evaluate``.

File attributes::

    format         int, layout version (1)
    labels         JSON list of label names; a label's index is its position
    input_size     int S; every image is uint8 [S, S, 3] RGB from consumer.imaging.preprocess
    digest         "sha256:<hex>" over labels, size and every stored image's pixels (see below)
    created_at     ISO-8601 UTC
    source         the SRC folder or manifest it was built from
    seed, val_fraction, test_fraction, compression
    preprocess     JSON {"function", "max_pixels", "min_side"}
    counts         JSON {split: {label: n}}
    skipped_counts JSON {reason: n}

Groups ``train``, ``val``, ``test`` (always present, possibly with 0 rows), each with::

    images   uint8  [N, S, S, 3]  chunks (1, S, S, 3), lzf|gzip|none — one image per chunk,
                                  so a random read touches exactly the images it needs
    labels   int32  [N]           index into ``labels``
    paths    str    [N]           the source file (UTF-8)
    sha256   S64    [N]           hex SHA-256 of the source file's bytes

Group ``skipped``: ``paths``, ``reasons``, ``messages`` (str [M]) for every file left out.

Rows are stored in a seeded shuffled order, so contiguous slices are class-mixed.

The digest is ``sha256(header || for split in train,val,test: split || sha256_split)`` where
``header`` is the canonical JSON of ``{"format", "input_size", "labels"}`` and ``sha256_split``
hashes, row by row, ``label_name || 0x00 || sha256(image bytes)``. :func:`compute_digest`
recomputes it from a file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from trainer.errors import DatasetError
from trainer.sources import SPLITS

FORMAT_VERSION = 1
COMPRESSIONS = ("lzf", "gzip", "none")
_GROW = 256
_STR = h5py.string_dtype("utf-8")


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


class DigestBuilder:
    """Incremental dataset digest; rows may arrive interleaved across splits."""

    def __init__(self) -> None:
        self._splits = {split: hashlib.sha256() for split in SPLITS}

    def add(self, split: str, label: str, pixels_sha256: bytes) -> None:
        self._splits[split].update(label.encode("utf-8") + b"\0" + pixels_sha256)

    def hexdigest(self, labels: Sequence[str], input_size: int) -> str:
        total = hashlib.sha256(_canonical({"format": FORMAT_VERSION, "input_size": input_size,
                                           "labels": list(labels)}))
        for split in SPLITS:
            total.update(split.encode("ascii") + self._splits[split].digest())
        return "sha256:" + total.hexdigest()


class H5Writer:
    """Append rows to a new HDF5 file, one image at a time (streaming, bounded memory)."""

    def __init__(self, path: str | Path, input_size: int, compression: str = "lzf") -> None:
        if compression not in COMPRESSIONS:
            raise DatasetError(f"compression must be one of {COMPRESSIONS}")
        self.path = Path(path)
        self.input_size = input_size
        self._file = h5py.File(self.path, "w")
        self._counts = {split: 0 for split in SPLITS}
        self._pending: dict[str, list[tuple[int, str, bytes]]] = {split: [] for split in SPLITS}
        self._skipped: list[tuple[str, str, str]] = []
        shape = (input_size, input_size, 3)
        options: dict = {}
        if compression == "lzf":
            options = {"compression": "lzf"}
        elif compression == "gzip":
            options = {"compression": "gzip", "compression_opts": 4}
        for split in SPLITS:
            group = self._file.create_group(split)
            group.create_dataset("images", shape=(0, *shape), maxshape=(None, *shape),
                                 dtype=np.uint8, chunks=(1, *shape), **options)
            group.create_dataset("labels", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(4096,))
            group.create_dataset("paths", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))
            group.create_dataset("sha256", shape=(0,), maxshape=(None,), dtype="S64", chunks=(1024,))
        skipped = self._file.create_group("skipped")
        for name in ("paths", "reasons", "messages"):
            skipped.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))

    def add(self, split: str, label_index: int, path: str, file_sha256: bytes,
            pixels: np.ndarray) -> None:
        """Write one image row to ``split``; the small columns are written in blocks."""
        group = self._file[split]
        row = self._counts[split]
        if row >= group["images"].shape[0]:
            for name in ("images", "labels", "paths", "sha256"):
                group[name].resize(row + _GROW, axis=0)
        group["images"].write_direct(np.ascontiguousarray(pixels, dtype=np.uint8), dest_sel=np.s_[row])
        self._pending[split].append((label_index, path, file_sha256.hex().encode("ascii")))
        self._counts[split] = row + 1
        if len(self._pending[split]) >= _GROW:
            self._flush(split)

    def _flush(self, split: str) -> None:
        # Row-by-row writes to the label/path columns cost more than decoding; batch them.
        pending = self._pending[split]
        if not pending:
            return
        group, end = self._file[split], self._counts[split]
        start = end - len(pending)
        labels, paths, hashes = zip(*pending)
        group["labels"][start:end] = np.asarray(labels, dtype=np.int32)
        group["paths"][start:end] = np.asarray(paths, dtype=object)
        group["sha256"][start:end] = np.asarray(hashes, dtype="S64")
        pending.clear()

    def add_skipped(self, path: str, reason: str, message: str) -> None:
        """Record a file that was left out, and why (written in blocks like the columns)."""
        self._skipped.append((path, reason, message[:500]))
        if len(self._skipped) >= _GROW:
            self._flush_skipped()

    def _flush_skipped(self) -> None:
        if not self._skipped:
            return
        group = self._file["skipped"]
        start = group["paths"].shape[0]
        end = start + len(self._skipped)
        for index, name in enumerate(("paths", "reasons", "messages")):
            group[name].resize(end, axis=0)
            group[name][start:end] = np.asarray([entry[index] for entry in self._skipped], dtype=object)
        self._skipped.clear()

    def remap_labels(self, mapping: Mapping[int, int]) -> None:
        """Rewrite label indices (used when an empty class is dropped); labels are tiny."""
        for split in SPLITS:
            self._flush(split)
        lookup = np.full(max(mapping) + 1, -1, dtype=np.int32)
        for old, new in mapping.items():
            lookup[old] = new
        for split in SPLITS:
            labels = self._file[split]["labels"]
            n = self._counts[split]
            if n:
                labels[:n] = lookup[labels[:n]]

    def finish(self, attrs: Mapping[str, object]) -> None:
        """Trim the datasets to their row counts, set the file attributes, close."""
        for split in SPLITS:
            self._flush(split)
            group = self._file[split]
            for name in ("images", "labels", "paths", "sha256"):
                group[name].resize(self._counts[split], axis=0)
        self._flush_skipped()
        for key, value in attrs.items():
            self._file.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        self._file.attrs["format"] = FORMAT_VERSION
        self._file.close()

    def abort(self) -> None:
        if self._file.id.valid:
            self._file.close()


@dataclass(frozen=True)
class DatasetInfo:
    """What ``train`` and ``evaluate`` need to know about an HDF5 dataset."""

    path: str
    labels: list[str]
    input_size: int
    digest: str
    counts: dict[str, int]
    class_counts: dict[str, np.ndarray]  # split → per-label counts, index-aligned with labels


def read_info(path: str | Path) -> DatasetInfo:
    """Open ``path`` read-only and check it follows this layout."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no dataset file at {path}")
    try:
        with h5py.File(path, "r") as handle:
            if handle.attrs.get("format") != FORMAT_VERSION:
                raise DatasetError(f"{path}: not a clazzify dataset (format {handle.attrs.get('format')!r})")
            labels = json.loads(handle.attrs["labels"])
            size = int(handle.attrs["input_size"])
            counts, class_counts = {}, {}
            for split in SPLITS:
                y = handle[split]["labels"][:]
                counts[split] = int(y.shape[0])
                class_counts[split] = np.bincount(y, minlength=len(labels)).astype(np.int64)
                if handle[split]["images"].shape[1:] != (size, size, 3):
                    raise DatasetError(f"{path}: {split}/images has shape {handle[split]['images'].shape}")
            return DatasetInfo(str(path), labels, size, str(handle.attrs["digest"]), counts, class_counts)
    except (OSError, KeyError) as exc:
        raise DatasetError(f"{path}: cannot read dataset: {exc}") from exc


def compute_digest(path: str | Path, block: int = 256) -> str:
    """Recompute the digest from the stored pixels (reads the whole file, block by block)."""
    with h5py.File(path, "r") as handle:
        labels = json.loads(handle.attrs["labels"])
        builder = DigestBuilder()
        for split in SPLITS:
            images, ys = handle[split]["images"], handle[split]["labels"]
            for start in range(0, images.shape[0], block):
                chunk = images[start:start + block]
                for pixels, y in zip(chunk, ys[start:start + block]):
                    builder.add(split, labels[int(y)], hashlib.sha256(pixels.tobytes()).digest())
        return builder.hexdigest(labels, int(handle.attrs["input_size"]))
