"""The benchmark corpus: realistic phone-sized JPEGs made from the photos scikit-image ships.

Nothing is downloaded. Each image is a real photo (``skimage.data``: astronaut, coffee,
chelsea, rocket, the stereo motorcycle pair) cropped to 4:3 and upscaled with Lanczos to
4032x3024 (a 12 MP phone photo) or 1600x1200 (a resized upload), then given the detail an
upscale lacks: a tiled natural texture (grass, gravel, brick) as luminance detail and
Gaussian sensor noise, so the JPEG's entropy-coded size, and hence its decode cost, is that
of a real photo (2–3 MB at quality 90 for 12 MP). Encoded at quality 90, 4:2:0.

The result is cached under ``bench/corpus/`` (git-ignored), keyed by the recipe version.

    >>> from bench.corpus import load
    >>> images = load()            # builds once (about a minute), then reads the cache
    >>> images[0].name, images[0].size, len(images[0].data) > 1_000_000
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

RECIPE = 2
CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
SIZES: tuple[tuple[int, int], ...] = ((4032, 3024), (1600, 1200))
PER_SIZE = 16  # distinct images per size; messages cycle through them
QUALITY = 90


@dataclass(frozen=True)
class CorpusImage:
    name: str
    size: tuple[int, int]
    data: bytes


def _sources() -> list[np.ndarray]:
    import skimage.data as d
    left, right = d.stereo_motorcycle()[:2]
    return [d.astronaut(), d.coffee(), d.chelsea(), d.rocket(), left, right]


def _textures() -> list[np.ndarray]:
    import skimage.data as d
    return [d.grass(), d.gravel(), d.brick()]


def _make(src: np.ndarray, texture: np.ndarray, size: tuple[int, int], seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.fromarray(src)
    w, h = image.size
    if w / h > width / height:  # crop to the target aspect, at a random offset
        nw = int(h * width / height)
        x0 = int(rng.integers(0, w - nw + 1))
        image = image.crop((x0, 0, x0 + nw, h))
    else:
        nh = int(w * height / width)
        y0 = int(rng.integers(0, h - nh + 1))
        image = image.crop((0, y0, w, y0 + nh))
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    big = np.asarray(image.resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    # Detail an upscale lacks: a natural texture at native resolution, plus sensor noise.
    tex = texture.astype(np.float32)
    tex = (tex - tex.mean()) / (tex.std() + 1e-6)
    tiled = np.tile(tex, (height // tex.shape[0] + 2, width // tex.shape[1] + 2))
    oy, ox = int(rng.integers(0, tex.shape[0])), int(rng.integers(0, tex.shape[1]))
    big += tiled[oy:oy + height, ox:ox + width, None] * 7.0
    big += rng.standard_normal(big.shape, dtype=np.float32) * 3.5
    out = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8), "RGB").save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def load(per_size: int = PER_SIZE, log=print) -> list[CorpusImage]:  # type: ignore[no-untyped-def]
    """The corpus, alternating sizes (4032x3024, 1600x1200, ...); built and cached on first use."""
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    manifest_path = CORPUS_DIR / "manifest.json"
    wanted = {"recipe": RECIPE, "per_size": per_size, "sizes": [list(s) for s in SIZES], "quality": QUALITY}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("recipe") == wanted and all((CORPUS_DIR / n).exists() for n in manifest["files"]):
            return [CorpusImage(n, tuple(s), (CORPUS_DIR / n).read_bytes())  # type: ignore[arg-type]
                    for n, s in zip(manifest["files"], manifest["sizes"])]
    log(f"building the corpus in {CORPUS_DIR} ({per_size} images per size, once)")
    sources, textures = _sources(), _textures()
    images: list[CorpusImage] = []
    for i in range(per_size):
        for size in SIZES:
            seed = i * 100 + size[0]
            name = f"photo-{size[0]}x{size[1]}-{i:02d}.jpg"
            data = _make(sources[i % len(sources)], textures[i % len(textures)], size, seed)
            (CORPUS_DIR / name).write_bytes(data)
            images.append(CorpusImage(name, size, data))
    manifest_path.write_text(json.dumps({"recipe": wanted, "files": [c.name for c in images],
                                         "sizes": [list(c.size) for c in images]}, indent=1))
    return images


def describe(images: list[CorpusImage]) -> dict:
    """Corpus facts for results.json."""
    by_size: dict[str, list[int]] = {}
    for image in images:
        by_size.setdefault(f"{image.size[0]}x{image.size[1]}", []).append(len(image.data))
    return {"source": "scikit-image skimage.data photos (astronaut, coffee, chelsea, rocket, stereo_motorcycle), "
                      "cropped 4:3, Lanczos-upscaled, + natural texture detail + sensor noise",
            "jpeg_quality": QUALITY, "distinct_images": len(images),
            "sizes": {k: {"count": len(v), "mean_bytes": int(np.mean(v)), "min_bytes": min(v), "max_bytes": max(v)}
                      for k, v in by_size.items()},
            "mix": "alternating 1:1 by count"}
