"""Four visually distinct synthetic classes, for tests that must prove the trainer learns.

``textures`` (oriented stripes), ``shapes`` (sharp-edged polygons/ellipses), ``menu``
(dark lines of rendered text on light paper) and ``blobs`` (smooth Gaussian colour blobs),
with random colours, positions and sizes so a model has to learn the structure, not a
colour. Seeded: the same call writes the same files.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("blobs", "menu", "shapes", "textures")


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def textures(rng: np.random.Generator, side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, np.pi)
    freq = rng.uniform(4, 10)
    wave = np.sin(2 * np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 6.3))
    mix = (wave > 0).astype(np.float32)[..., None]
    a, b = np.array(_colour(rng)), np.array(_colour(rng))
    return Image.fromarray((mix * a + (1 - mix) * b).astype(np.uint8))


def shapes(rng: np.random.Generator, side: int) -> Image.Image:
    image = Image.new("RGB", (side, side), _colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 4))):
        w, h = rng.integers(side // 4, side // 2, 2)
        x0, y0 = rng.integers(0, side - w), rng.integers(0, side - h)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.rectangle(box, fill=_colour(rng))
        elif kind == 1:
            draw.ellipse(box, fill=_colour(rng))
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])],
                         fill=_colour(rng))
    return image


def menu(rng: np.random.Generator, side: int) -> Image.Image:
    paper = tuple(int(v) for v in rng.integers(215, 256, 3))
    image = Image.new("RGB", (side, side), paper)
    draw = ImageDraw.Draw(image)
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    line = int(rng.integers(9, 13))
    for top in range(int(rng.integers(2, 8)), side - line, line):
        words = " ".join("".join(rng.choice(list(string.ascii_letters), int(rng.integers(2, 8))))
                         for _ in range(6))
        draw.text((int(rng.integers(2, 10)), top), words, fill=ink)
    return image


def blobs(rng: np.random.Generator, side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    canvas = np.ones((side, side, 3), np.float32) * np.array(_colour(rng), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, side, 2)
        sigma = rng.uniform(side / 10, side / 4)
        weight = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma ** 2))[..., None]
        canvas = canvas * (1 - weight) + weight * np.array(_colour(rng), np.float32)
    return Image.fromarray(canvas.clip(0, 255).astype(np.uint8))


_MAKERS = {"blobs": blobs, "menu": menu, "shapes": shapes, "textures": textures}


def write_synthetic(root: str | Path, per_class: int, *, side: int = 96, seed: int = 0) -> Path:
    """Write ``root/<class>/<i>.{png,jpg}`` for the four classes; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for name in CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = _MAKERS[name](rng, side)
            if i % 2:
                image.save(root / name / f"{i:04d}.jpg", quality=90)
            else:
                image.save(root / name / f"{i:04d}.png")
    return root
