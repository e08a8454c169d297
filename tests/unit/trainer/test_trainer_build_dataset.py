"""build-dataset: every kind of bad input is skipped with its reason; good ones are stored
exactly as THE preprocessing (consumer.imaging.preprocess) produces them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

import trainer_images as img
from conftest import run_trainer
from consumer.imaging import preprocess
from trainer.dataset import build_dataset, format_summary
from trainer.errors import DatasetError
from trainer.h5format import compute_digest, read_info

SIZE = 32


@pytest.fixture(scope="module")
def messy_src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("messy") / "src"
    files = {
        "food/good1.jpg": img.encode(img.noise_rgb(1), "JPEG", quality=90),
        "food/good2.png": img.encode(img.noise_rgb(2), "PNG"),
        "food/cmyk.jpg": img.cmyk_jpeg(),
        "food/rgba.png": img.rgba_png(),
        "food/palette.png": img.palette_png(),
        "food/gray.png": img.grayscale_png(77),
        "food/exif6.jpg": img.exif_rotated_jpeg(6),
        "food/sub/deeper.png": img.encode(img.noise_rgb(3), "PNG"),
        "food/corrupt.jpg": img.truncated_jpeg(),
        "food/notes.txt": b"this is a restaurant review, not a photo\n",
        "food/empty.jpg": b"",
        "food/bomb.png": img.png_bomb(),
        "food/tiny.png": img.encode(img.noise_rgb(4, side=16), "PNG"),
        "food/scan.tif": img.tiff(),
        "menu/copy_of_good1.jpg": img.encode(img.noise_rgb(1), "JPEG", quality=90),
        "human/only_corrupt.jpg": img.truncated_jpeg(5),
        ".hidden/ignored.png": img.encode(img.noise_rgb(9), "PNG"),
    }
    for i in range(6):
        files[f"menu/m{i}.png"] = img.encode(img.noise_rgb(100 + i), "PNG")
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "ambiance").mkdir()  # a label with no files at all
    (root / "food" / ".DS_Store").write_bytes(b"\0\0")  # hidden: never read
    return root


@pytest.fixture(scope="module")
def messy(messy_src: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("messy-h5") / "data.h5"
    report = build_dataset(messy_src, out, input_size=SIZE, val_fraction=0.0, test_fraction=0.0,
                           seed=3, workers=2, min_side=32, progress=False)
    return messy_src, out, report


def _rows(out: Path) -> dict[str, tuple[np.ndarray, int]]:
    with h5py.File(out, "r") as handle:
        paths = [p.decode() if isinstance(p, bytes) else p for p in handle["train/paths"][:]]
        return {Path(p).name: (handle["train/images"][i], int(handle["train/labels"][i]))
                for i, p in enumerate(paths)}


def _skipped(out: Path) -> dict[str, str]:
    with h5py.File(out, "r") as handle:
        group = handle["skipped"]
        return {Path(p.decode()).name: r.decode() for p, r in zip(group["paths"][:], group["reasons"][:])}


def test_every_bad_file_is_skipped_with_its_reason(messy):
    _, out, report = messy
    skipped = _skipped(out)
    assert skipped["corrupt.jpg"] == "corrupt_image"
    assert skipped["only_corrupt.jpg"] == "corrupt_image"
    assert skipped["notes.txt"] == "not_an_image"
    assert skipped["empty.jpg"] == "empty"
    assert skipped["bomb.png"] == "decompression_bomb"
    assert skipped["tiny.png"] == "too_small"
    assert skipped["scan.tif"] == "unsupported_format"
    assert "ignored.png" not in skipped and ".DS_Store" not in skipped
    assert report.skipped_by_reason == {"corrupt_image": 2, "not_an_image": 1, "empty": 1,
                                        "decompression_bomb": 1, "too_small": 1,
                                        "unsupported_format": 1, "duplicate": 1}


def test_duplicates_by_content_are_kept_once_even_across_labels(messy):
    _, out, _ = messy
    rows, skipped = _rows(out), _skipped(out)
    pair = {"good1.jpg", "copy_of_good1.jpg"}
    assert len(pair & rows.keys()) == 1 and len(pair & skipped.keys()) == 1
    assert skipped[(pair & skipped.keys()).pop()] == "duplicate"


def test_empty_classes_are_dropped_and_labels_stay_consistent(messy):
    _, out, report = messy
    info = read_info(out)
    assert info.labels == ["food", "menu"]
    assert sorted(report.dropped_labels) == ["ambiance", "human"]
    rows = _rows(out)
    assert rows["good2.png"][1] == info.labels.index("food")
    assert rows["m0.png"][1] == info.labels.index("menu")
    lines = {line.split()[0]: line for line in format_summary(report).splitlines()[2:]}
    assert "EMPTY, dropped" in lines["human"] and "EMPTY, dropped" in lines["ambiance"]
    assert "EMPTY" not in lines["food"] and "decompression_bomb=1" in lines["food"]


def test_stored_pixels_are_exactly_the_shared_preprocessing(messy):
    src, out, _ = messy
    rows = _rows(out)
    pair = {"good1.jpg", "copy_of_good1.jpg"}
    assert set(rows) - pair == {"good2.png", "cmyk.jpg", "rgba.png", "palette.png", "gray.png",
                                "exif6.jpg", "deeper.png"} | {f"m{i}.png" for i in range(6)}
    assert len(set(rows) & pair) == 1
    for path in src.rglob("*"):
        if path.name in rows:
            expected = preprocess(path.read_bytes(), SIZE, min_side=32)
            np.testing.assert_array_equal(rows[path.name][0], expected, err_msg=path.name)


def test_modes_are_converted_to_rgb(messy):
    rows = _rows(messy[1])
    cmyk = rows["cmyk.jpg"][0].astype(int)
    assert np.abs(cmyk[SIZE // 2, SIZE // 2] - [0, 255, 255]).max() <= 6  # pure cyan
    rgba = rows["rgba.png"][0]
    assert tuple(rgba[SIZE // 2, 2]) == (0, 0, 255) and tuple(rgba[SIZE // 2, SIZE - 3]) == (255, 255, 255)
    palette = rows["palette.png"][0]
    assert tuple(palette[SIZE // 2, 2]) == (0, 255, 0) and tuple(palette[SIZE // 2, SIZE - 3]) == (255, 255, 255)
    assert (rows["gray.png"][0] == 77).all()


def test_exif_orientation_is_applied(messy):
    # Stored landscape: left half red, right half blue; EXIF 6 = rotate 90° clockwise to view,
    # so the viewer sees red on top and blue at the bottom.
    exif = _rows(messy[1])["exif6.jpg"][0].astype(int)
    assert exif[2, SIZE // 2, 0] > 200 and exif[2, SIZE // 2, 2] < 60
    assert exif[SIZE - 3, SIZE // 2, 2] > 200 and exif[SIZE - 3, SIZE // 2, 0] < 60


def test_layout_chunking_attributes_and_digest(messy, messy_src):
    _, out, report = messy
    with h5py.File(out, "r") as handle:
        for split in ("train", "val", "test"):
            images = handle[f"{split}/images"]
            assert images.dtype == np.uint8 and images.shape[1:] == (SIZE, SIZE, 3)
            assert images.chunks == (1, SIZE, SIZE, 3)
            n = images.shape[0]
            assert handle[f"{split}/labels"].shape == (n,) and handle[f"{split}/paths"].shape == (n,)
            assert handle[f"{split}/sha256"].shape == (n,)
        assert json.loads(handle.attrs["labels"]) == ["food", "menu"]
        assert int(handle.attrs["input_size"]) == SIZE
        assert handle.attrs["digest"] == report.digest
        assert json.loads(handle.attrs["preprocess"])["function"] == "consumer.imaging.preprocess"
    assert report.digest.startswith("sha256:") and compute_digest(out) == report.digest
    assert not out.with_name(out.name + ".partial").exists()


def test_digest_is_reproducible_and_tracks_content(messy, tmp_path):
    src, out, report = messy
    again = build_dataset(src, tmp_path / "again.h5", input_size=SIZE, val_fraction=0.0,
                          test_fraction=0.0, seed=3, workers=0, progress=False)
    assert again.digest == report.digest
    changed = tmp_path / "changed"
    shutil.copytree(src, changed)
    (changed / "menu" / "m0.png").write_bytes(img.encode(img.noise_rgb(999), "PNG"))
    other = build_dataset(changed, tmp_path / "changed.h5", input_size=SIZE, val_fraction=0.0,
                          test_fraction=0.0, seed=3, workers=0, progress=False)
    assert other.digest != report.digest


def test_refuses_to_overwrite_and_needs_two_labels(messy, tmp_path):
    src, out, _ = messy
    with pytest.raises(DatasetError, match="exists"):
        build_dataset(src, out, input_size=SIZE, progress=False, workers=0)
    only_bad = tmp_path / "bad"
    for label in ("a", "b"):
        (only_bad / label).mkdir(parents=True)
        (only_bad / label / "x.jpg").write_bytes(img.truncated_jpeg())
    with pytest.raises(DatasetError, match="at least 2 labels"):
        build_dataset(only_bad, tmp_path / "bad.h5", input_size=SIZE, progress=False, workers=0)
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.partial").exists()


def test_manifest_pins_splits_and_cli_prints_summary(tmp_path):
    rows = ["path,label,split"]
    for label, seed in (("food", 0), ("menu", 50)):
        (tmp_path / label).mkdir()
        for i in range(12):
            name = f"{label}/{i}.png"
            (tmp_path / name).write_bytes(img.encode(img.noise_rgb(seed + i), "PNG"))
            rows.append(f"{name},{label},{'test' if i < 3 else ''}")
    (tmp_path / "big.png").write_bytes(img.encode(img.noise_rgb(7, side=300), "PNG"))
    rows.append(f"{tmp_path / 'big.png'},food,train")  # absolute path; 90,000 px > --max-pixels
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.h5"
    result = run_trainer("build-dataset", tmp_path / "manifest.csv", "--out", out, "--input-size",
                         SIZE, "--test-fraction", "0", "--val-fraction", "0.25",
                         "--max-pixels", "50000", "--workers", "0", "--no-progress")
    assert "decompression_bomb=1" in result.stdout and "TOTAL" in result.stdout
    with h5py.File(out, "r") as handle:
        test_paths = sorted(Path(p.decode()).name for p in handle["test/paths"][:])
        val_n, train_n = handle["val/labels"].shape[0], handle["train/labels"].shape[0]
    assert test_paths == sorted(["0.png", "1.png", "2.png"] * 2)
    # 9 unpinned per class: round(9 * 0.25) = 2 to val, 7 to train; big.png is skipped.
    assert (val_n, train_n) == (4, 14)
