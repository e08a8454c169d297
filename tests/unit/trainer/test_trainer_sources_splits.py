"""Finding labelled images (folder, manifest) and the stratified seeded split."""

from __future__ import annotations

from collections import Counter

import pytest

from trainer.errors import SourceError
from trainer.sources import Item, discover
from trainer.splits import assign_splits, processing_order


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_folder_per_label_sorted_recursive_and_hidden_ignored(tmp_path):
    for name in ("menu/a.jpg", "food/z.png", "food/nested/b.jpg", "food/.hidden.jpg", ".git/c.png"):
        _touch(tmp_path / name)
    _touch(tmp_path / "stray.jpg")
    (tmp_path / "ambiance").mkdir()
    source = discover(tmp_path)
    assert source.labels == ["ambiance", "food", "menu"]
    assert [(i.label, i.path.split("/")[-1]) for i in source.items] == [
        ("food", "b.jpg"), ("food", "z.png"), ("menu", "a.jpg")]


def test_labels_option_fixes_order_and_filters(tmp_path):
    for name in ("menu/a.jpg", "food/b.jpg", "other/c.jpg"):
        _touch(tmp_path / name)
    source = discover(tmp_path, ["menu", "food", "human"])
    assert source.labels == ["menu", "food", "human"]
    assert {i.label for i in source.items} == {"menu", "food"}
    assert source.ignored_labels == ["other"]
    with pytest.raises(SourceError):
        discover(tmp_path, ["menu", "menu"])


def test_manifest_header_relative_paths_and_splits(tmp_path):
    (tmp_path / "sub").mkdir()
    manifest = tmp_path / "sub" / "m.csv"
    manifest.write_text("path,label,split\nimgs/a.jpg,food,test\n/abs/b.jpg,menu,\n\nc.jpg,menu,Validation\n")
    items = discover(manifest).items
    assert items == [Item(str(tmp_path / "sub" / "imgs" / "a.jpg"), "food", "test"),
                     Item("/abs/b.jpg", "menu", None), Item(str(tmp_path / "sub" / "c.jpg"), "menu", "val")]
    manifest.write_text("a.jpg,food\nb.jpg,menu,holdout\n")
    with pytest.raises(SourceError, match=":2: unknown split"):
        discover(manifest)
    with pytest.raises(SourceError):
        discover(tmp_path / "missing")


def test_split_is_stratified_seeded_and_respects_pins():
    items = [Item(f"{label}{i}", label) for label, n in (("a", 100), ("b", 40), ("c", 2)) for i in range(n)]
    items.append(Item("pinned", "a", "test"))
    splits = assign_splits(items, val_fraction=0.1, test_fraction=0.2, seed=5)
    counts = Counter((item.label, split) for item, split in zip(items, splits))
    assert (counts["a", "val"], counts["a", "test"], counts["a", "train"]) == (10, 21, 70)
    assert (counts["b", "val"], counts["b", "test"], counts["b", "train"]) == (4, 8, 28)
    assert counts["c", "train"] == 2  # too few to split: all train
    assert splits[-1] == "test"
    assert splits == assign_splits(items, val_fraction=0.1, test_fraction=0.2, seed=5)
    assert splits != assign_splits(items, val_fraction=0.1, test_fraction=0.2, seed=6)


def test_small_classes_keep_a_training_item_and_fractions_are_checked():
    items = [Item(f"x{i}", "x") for i in range(3)]
    assert sorted(assign_splits(items, val_fraction=0.4, test_fraction=0.4, seed=0)) == ["test", "train", "val"]
    with pytest.raises(ValueError):
        assign_splits(items, val_fraction=0.6, test_fraction=0.5, seed=0)


def test_processing_order_is_a_seeded_permutation():
    order = processing_order(50, 1)
    assert sorted(order.tolist()) == list(range(50))
    assert order.tolist() == processing_order(50, 1).tolist() != list(range(50))
