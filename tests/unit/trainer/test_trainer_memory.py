"""build-dataset streams: a bounded window of decoded images, rows written as they come,
and a peak memory that does not grow with the dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from conftest import REPO
from trainer.decode import DecodeConfig, decode_stream
from trainer.h5format import H5Writer


def _noise_pngs(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / ("a", "b")[i % 2] / f"{i:05d}.png", compress_level=1)


def test_decoding_runs_at_most_a_window_ahead_and_keeps_order(tmp_path):
    _noise_pngs(tmp_path, 40, seed=1)
    paths = sorted(str(p) for p in tmp_path.rglob("*.png"))
    consumed: list[str] = []

    def lazily():
        for path in paths:
            consumed.append(path)
            yield path

    seen = []
    for yielded, result in enumerate(decode_stream(lazily(), DecodeConfig(size=32), workers=2, window=4), 1):
        assert len(consumed) - yielded <= 4  # never more than `window` results in flight
        seen.append(result.path)
        assert result.ok and result.pixels.shape == (32, 32, 3)
    assert seen == paths


def test_writer_appends_row_by_row_without_holding_images(tmp_path):
    writer = H5Writer(tmp_path / "w.h5", 16, "none")
    row = np.full((16, 16, 3), 7, np.uint8)
    for i in range(300):
        writer.add("train", i % 2, f"p{i}", bytes(32), row)
        if i == 10:
            # the image is already in the file, not in a Python-side buffer
            assert writer._file["train/images"][10].max() == 7
    writer.finish({"labels": ["a", "b"], "input_size": 16, "digest": "sha256:x"})
    with h5py.File(tmp_path / "w.h5", "r") as handle:
        assert handle["train/images"].shape == (300, 16, 16, 3)
        assert handle["train/labels"][:].tolist() == [i % 2 for i in range(300)]
        assert handle["train/paths"][299].decode() == "p299"


_MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if proc.returncode:
    sys.exit(proc.stderr)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _peak_rss_kib(src: Path, out: Path) -> int:
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "trainer", "build-dataset",
               str(src), "--out", str(out), "--input-size", "227", "--compression", "none",
               "--workers", "2", "--no-progress", "--val-fraction", "0.1", "--test-fraction", "0.1"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["peak_kib"]


def test_peak_memory_does_not_grow_with_the_dataset(tmp_path):
    # 150 vs 750 images at 227x227x3 = 23 MB vs 116 MB of pixels. A builder that held the
    # images (or the per-split arrays) would peak ~90 MB higher on the larger one.
    _noise_pngs(tmp_path / "small", 150, seed=2)
    _noise_pngs(tmp_path / "large", 750, seed=3)
    small = _peak_rss_kib(tmp_path / "small", tmp_path / "small.h5")
    large = _peak_rss_kib(tmp_path / "large", tmp_path / "large.h5")
    pixels_mib = (750 - 150) * 227 * 227 * 3 / 2**20
    assert (tmp_path / "large.h5").stat().st_size > 750 * 227 * 227 * 3  # the data really is there
    growth_mib = (large - small) / 1024
    assert growth_mib < 25, f"peak RSS grew {growth_mib:.1f} MiB for {pixels_mib:.0f} MiB more pixels"
