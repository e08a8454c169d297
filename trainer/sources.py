"""Find labelled images: a folder per label (``SRC/<label>/**``) or a CSV manifest.

A manifest has the columns ``path,label`` and optionally ``split`` (``train``, ``val``,
``test`` or empty); a header row is optional and relative paths are resolved against the
manifest's own folder. A pinned split is honoured (e.g. Fashion-MNIST's official test set);
empty means "let the stratified split decide".

Example::

    >>> from trainer.sources import discover
    >>> source = discover("photos/")          # photos/food/*.jpg, photos/menu/*.png …
    >>> source.labels, len(source.items)
    (['food', 'menu'], 1234)
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import SourceError

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
_SPLIT_ALIASES = {"": None, "train": "train", "training": "train", "val": "val",
                  "valid": "val", "validation": "val", "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Item:
    """One labelled source image; ``split`` is None unless a manifest pins it."""

    path: str
    label: str
    split: str | None = None


@dataclass(frozen=True)
class Source:
    """The labels (in output order) and every item found, in a deterministic order."""

    labels: list[str]
    items: list[Item]
    ignored_labels: list[str]


def discover(src: str | os.PathLike[str], labels: Sequence[str] | None = None) -> Source:
    """Read a folder per label or a CSV manifest; ``labels`` fixes the order (default: sorted).

    Labels named in ``labels`` but absent from the source are kept (they end up empty and
    are reported); labels present in the source but not in ``labels`` are ignored.
    """
    path = Path(src)
    if path.is_dir():
        found = _scan_folder(path)
    elif path.is_file():
        found = _read_manifest(path)
    else:
        raise SourceError(f"source {path} is neither a folder nor a CSV manifest")
    present = sorted({item.label for item in found} | _label_dirs(path))
    if labels:
        order = _check_labels(labels)
        ignored = [name for name in present if name not in order]
        if ignored:
            logger.warning("ignoring labels not named in --labels: %s", ", ".join(ignored))
        found = [item for item in found if item.label in set(order)]
    else:
        order, ignored = present, []
    if not order:
        raise SourceError(f"no labels found in {path}")
    return Source(labels=list(order), items=found, ignored_labels=ignored)


def _check_labels(labels: Sequence[str]) -> list[str]:
    order = [name.strip() for name in labels]
    if any(not name for name in order):
        raise SourceError("label names must not be empty")
    if len(set(order)) != len(order):
        raise SourceError(f"duplicate label names in {order}")
    return order


def _label_dirs(path: Path) -> set[str]:
    if not path.is_dir():
        return set()
    return {entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith(".")}


def _scan_folder(root: Path) -> list[Item]:
    items: list[Item] = []
    stray = 0
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            stray += 1
            continue
        found = []
        for dirpath, dirnames, filenames in os.walk(entry):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found.extend(str(Path(dirpath, name)) for name in filenames if not name.startswith("."))
        items.extend(Item(path, entry.name) for path in sorted(found))
    if stray:
        logger.warning("ignoring %d file(s) at the top of %s (not inside a label folder)", stray, root)
    return items


def _read_manifest(path: Path) -> list[Item]:
    base = path.parent
    items: list[Item] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = csv.reader(handle)
            for lineno, row in enumerate(rows, start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                cells = [cell.strip() for cell in row]
                if lineno == 1 and [c.lower() for c in cells[:2]] == ["path", "label"]:
                    continue
                if len(cells) not in (2, 3):
                    raise SourceError(f"{path}:{lineno}: expected path,label[,split], got {len(cells)} columns")
                split_name = cells[2].lower() if len(cells) == 3 else ""
                if split_name not in _SPLIT_ALIASES:
                    raise SourceError(f"{path}:{lineno}: unknown split {cells[2]!r} (train, val, test or empty)")
                if not cells[0] or not cells[1]:
                    raise SourceError(f"{path}:{lineno}: empty path or label")
                file_path = Path(cells[0])
                if not file_path.is_absolute():
                    file_path = base / file_path
                items.append(Item(str(file_path), cells[1], _SPLIT_ALIASES[split_name]))
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not a UTF-8 CSV manifest: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read manifest {path}: {exc}") from exc
    return items
