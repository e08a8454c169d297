"""``evaluate``: the same metrics on any HDF5 split or any labelled folder."""

from __future__ import annotations

import json
import shutil

import h5py

import trainer_images as img
from conftest import call_main, last_json


def test_evaluate_test_split_reproduces_the_run_metrics(trained_run, synthetic_h5, tmp_path, capsys):
    run_dir, _ = trained_run
    assert call_main("evaluate", run_dir, synthetic_h5, "--out", tmp_path / "e") == 0
    printed = last_json(capsys.readouterr().out)
    assert printed["split"] == "test" and printed["same_dataset_as_training"] is True
    written = json.loads((tmp_path / "e" / "metrics.json").read_text())
    original = json.loads((run_dir / "metrics.json").read_text())
    assert abs(written["top1_accuracy"] - original["top1_accuracy"]) < 1e-9
    assert written["confusion_matrix"] == original["confusion_matrix"]
    assert (tmp_path / "e" / "confusion_matrix.png").is_file()


def test_evaluate_a_folder_with_bad_files_and_unknown_labels(trained_run, synthetic_h5, tmp_path, capsys):
    run_dir, _ = trained_run
    folder = tmp_path / "holdout"
    with h5py.File(synthetic_h5, "r") as handle:  # the held-out test files, by their source path
        test_files = [p.decode() for p in handle["test/paths"][:]]
    for path in test_files:
        label = path.split("/")[-2]
        (folder / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / label)
    (folder / "menu" / "broken.jpg").write_bytes(img.truncated_jpeg())
    (folder / "pizza").mkdir()
    (folder / "pizza" / "p.png").write_bytes(img.encode(img.noise_rgb(3), "PNG"))
    assert call_main("evaluate", run_dir, folder, "--workers", "2") == 0
    printed = last_json(capsys.readouterr().out)
    assert printed["split"] == "folder" and printed["n"] == len(test_files) == 36
    assert printed["skipped"] == {"corrupt_image": 1, "unknown_label": 1}
    # The folder is decoded with the same preprocessing, so the numbers match the HDF5 test split.
    original = json.loads((run_dir / "metrics.json").read_text())
    assert abs(printed["top1_accuracy"] - original["top1_accuracy"]) < 1e-9
    assert (run_dir / "eval" / "holdout" / "metrics.json").is_file()


def test_evaluate_errors_are_readable(trained_run, synthetic_h5, tmp_path, caplog):
    run_dir, _ = trained_run
    assert call_main("evaluate", tmp_path / "nope", synthetic_h5) == 2
    assert "not a complete run folder" in caplog.text
    other = tmp_path / "other.h5"
    assert call_main("build-dataset", _tiny_source(tmp_path), "--out", other, "--input-size", "40",
                     "--workers", "0", "--no-progress", "--min-side", "8") == 0
    assert call_main("evaluate", run_dir, other) == 2
    assert "holds 40px images; the model takes 64px" in caplog.text
    assert call_main("evaluate", run_dir, synthetic_h5, "--split", "val", "--out", tmp_path / "v") == 0


def _tiny_source(tmp_path):
    root = tmp_path / "tiny"
    for label, seed in (("menu", 0), ("blobs", 10)):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.png").write_bytes(img.encode(img.noise_rgb(seed + i), "PNG"))
    return root
