"""``build-dataset``: labelled images → verified, deduplicated, split HDF5 (streaming).

One pass: discover the items, assign stratified seeded splits, then decode in a seeded
shuffled order on a process pool (:mod:`trainer.decode`) and append each image to its
split as it arrives (:mod:`trainer.h5format`). Memory holds a bounded window of decoded
images and one 32-byte hash per kept file, never the dataset. The file is written as
``OUT.partial`` and renamed only when complete.

Example::

    >>> from trainer.dataset import build_dataset, format_summary
    >>> report = build_dataset("photos/", "data.h5", input_size=227)
    >>> print(format_summary(report))
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Sequence

from tqdm import tqdm

from consumer.imaging import DEFAULT_MAX_PIXELS
from trainer.decode import REASON_DUPLICATE, DecodeConfig, decode_stream
from trainer.errors import DatasetError, SourceError
from trainer.h5format import DigestBuilder, H5Writer
from trainer.sources import SPLITS, discover
from trainer.splits import assign_splits, processing_order

logger = logging.getLogger(__name__)


@dataclass
class BuildReport:
    """What ``build-dataset`` did: per-class counts per split and every skip reason."""

    out: str
    labels: list[str]
    digest: str
    kept: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in SPLITS})
    skipped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # label → reasons
    dropped_labels: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped_by_reason(self) -> Counter:
        total: Counter = Counter()
        for reasons in self.skipped.values():
            total.update(reasons)
        return total

    @property
    def total_kept(self) -> int:
        return sum(sum(c.values()) for c in self.kept.values())


def build_dataset(src: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  input_size: int = 227, labels: Sequence[str] | None = None,
                  val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 1337,
                  workers: int | None = None, min_side: int = 32,
                  max_pixels: int = DEFAULT_MAX_PIXELS, compression: str = "lzf",
                  overwrite: bool = False, progress: bool = True) -> BuildReport:
    """Build the HDF5 dataset at ``out`` from ``src``; see the module docstring."""
    started = time.monotonic()
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out} exists; pass --overwrite to replace it")
    if input_size < 8:
        raise DatasetError("--input-size must be at least 8")
    source = discover(src, labels)
    if not source.items:
        raise SourceError(f"no files found in {src}")
    items = source.items
    splits = assign_splits(items, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    order = processing_order(len(items), seed)
    label_index = {name: i for i, name in enumerate(source.labels)}
    config = DecodeConfig(size=input_size, max_pixels=max_pixels, min_side=min_side)

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    writer = H5Writer(partial, input_size, compression)
    report = BuildReport(out=str(out), labels=list(source.labels), digest="")
    digest = DigestBuilder()
    seen: set[bytes] = set()
    try:
        stream = decode_stream((items[i].path for i in order), config, workers=workers)
        for position, result in enumerate(tqdm(stream, total=len(items), unit="img",
                                                desc="decode", disable=not progress)):
            index = int(order[position])
            item, split = items[index], splits[index]
            if not result.ok:
                report.skipped[item.label][result.reason or "unknown"] += 1
                writer.add_skipped(item.path, result.reason or "unknown", result.message)
            elif result.file_sha256 in seen:
                report.skipped[item.label][REASON_DUPLICATE] += 1
                writer.add_skipped(item.path, REASON_DUPLICATE, "same bytes as an earlier file")
            else:
                seen.add(result.file_sha256)
                writer.add(split, label_index[item.label], item.path, result.file_sha256,
                           result.pixels)
                digest.add(split, item.label, result.pixels_sha256)
                report.kept[split][item.label] += 1

        final_labels = [name for name in source.labels
                        if any(report.kept[s][name] for s in SPLITS)]
        report.dropped_labels = [name for name in source.labels if name not in final_labels]
        if len(final_labels) < 2:
            raise DatasetError(f"need at least 2 labels with images, have {final_labels}; "
                               f"skipped: {dict(report.skipped_by_reason)}")
        for name in report.dropped_labels:
            logger.warning("label %r has no usable images: left out of the dataset", name)
        for name in final_labels:
            if not report.kept["train"][name]:
                logger.warning("label %r has no training images", name)
        if report.dropped_labels:
            writer.remap_labels({label_index[name]: new for new, name in enumerate(final_labels)})
        report.labels = final_labels
        report.digest = digest.hexdigest(final_labels, input_size)
        writer.finish({
            "labels": final_labels,
            "input_size": input_size,
            "digest": report.digest,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "source": str(Path(src).resolve()),
            "seed": seed,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
            "compression": compression,
            "preprocess": {"function": "consumer.imaging.preprocess", "max_pixels": max_pixels,
                           "min_side": min_side},
            "counts": {s: {name: report.kept[s][name] for name in final_labels} for s in SPLITS},
            "skipped_counts": dict(report.skipped_by_reason),
            "dropped_labels": report.dropped_labels,
        })
        os.replace(partial, out)
    except BaseException:
        writer.abort()
        partial.unlink(missing_ok=True)
        raise
    report.seconds = time.monotonic() - started
    return report


def format_summary(report: BuildReport) -> str:
    """A per-class table (kept per split, skipped) plus skip reasons and the digest."""
    names = report.labels + report.dropped_labels
    width = max([len("label"), len("TOTAL")] + [len(n) for n in names]) + 2
    header = f"{'label':<{width}}{'train':>8}{'val':>8}{'test':>8}{'skipped':>9}  reasons"
    lines = [header, "-" * len(header)]
    for name in names:
        reasons = report.skipped.get(name, Counter())
        note = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items()))
        if name in report.dropped_labels:
            note = ("EMPTY, dropped; " + note).rstrip("; ")
        lines.append(f"{name:<{width}}" + "".join(f"{report.kept[s][name]:>8}" for s in SPLITS)
                     + f"{sum(reasons.values()):>9}  {note}")
    totals = [sum(report.kept[s].values()) for s in SPLITS]
    skipped = report.skipped_by_reason
    lines.append("-" * len(header))
    lines.append(f"{'TOTAL':<{width}}" + "".join(f"{t:>8}" for t in totals)
                 + f"{sum(skipped.values()):>9}  "
                 + ", ".join(f"{r}={n}" for r, n in sorted(skipped.items())))
    lines.append(f"wrote {report.out} in {report.seconds:.1f}s; digest {report.digest}")
    return "\n".join(lines)
