"""Per-channel affine normalisation that the exporter puts *inside* the graph.

A trainer model takes uint8 pixels and normalises itself, so it needs nothing
from here. A model that takes float input gets wrapped: uint8 ``image`` → cast
to float32 → ``x * scale + offset`` (per channel) → the model. Every common
normalisation is such an affine map, so one small type covers them all.

Spec grammar (``--normalize``), parts separated by ``;``, applied in this order::

    scale:S        x * S            S a number or a quotient, e.g. 1/255 or 1/127.5
    offset:O       + O
    mean:a,b,c     - mean           (after scale/offset; one value or three)
    std:a,b,c      / std

Presets: ``none`` (cast only), ``unit`` (= ``scale:1/255``, [0,1]), ``symmetric``
(= ``scale:1/127.5;offset:-1``, [-1,1]), ``imagenet``
(= ``scale:1/255;mean:0.485,0.456,0.406;std:0.229,0.224,0.225``).

Example::

    >>> import numpy as np
    >>> from export.normalize import parse
    >>> n = parse("scale:1/255")
    >>> round(float(n.apply(np.full((1, 1, 1, 3), 255, np.uint8))[0, 0, 0, 0]), 6)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.errors import ModelSourceError

PRESETS: dict[str, str] = {
    "none": "",
    "unit": "scale:1/255",
    "symmetric": "scale:1/127.5;offset:-1",
    "imagenet": "scale:1/255;mean:0.485,0.456,0.406;std:0.229,0.224,0.225",
}


@dataclass(frozen=True)
class Normalization:
    """``y = x * scale + offset`` per RGB channel, in float32."""

    scale: tuple[float, float, float]
    offset: tuple[float, float, float]
    spec: str

    @property
    def scale32(self) -> np.ndarray:
        return np.asarray(self.scale, dtype=np.float32)

    @property
    def offset32(self) -> np.ndarray:
        return np.asarray(self.offset, dtype=np.float32)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """NumPy reference of what the graph does: uint8 [N,H,W,3] → float32."""
        return images.astype(np.float32) * self.scale32 + self.offset32


def _number(text: str) -> float:
    numerator, slash, denominator = text.strip().partition("/")
    try:
        return float(numerator) / float(denominator) if slash else float(numerator)
    except (ValueError, ZeroDivisionError) as exc:
        raise ModelSourceError(f"not a number in normalisation spec: {text!r}") from exc


def _triple(text: str) -> tuple[float, float, float]:
    values = [_number(v) for v in text.split(",")]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ModelSourceError(f"expected one or three values, got {text!r}")
    return (values[0], values[1], values[2])


def parse(spec: str) -> Normalization:
    """Parse a ``--normalize`` spec (see module docstring) into a :class:`Normalization`."""
    name = spec.strip()
    expanded = PRESETS.get(name.lower(), name)
    parts: dict[str, tuple[float, float, float]] = {}
    for part in filter(None, (p.strip() for p in expanded.split(";"))):
        key, sep, value = part.partition(":")
        key = key.strip().lower()
        if not sep or key not in ("scale", "offset", "mean", "std"):
            raise ModelSourceError(
                f"bad normalisation part {part!r}: expected scale:, offset:, mean:, std: "
                f"or a preset ({', '.join(PRESETS)})")
        if key in parts:
            raise ModelSourceError(f"{key}: given twice in {spec!r}")
        parts[key] = _triple(value)
    scale = np.array(parts.get("scale", (1.0, 1.0, 1.0)), dtype=np.float64)
    offset = np.array(parts.get("offset", (0.0, 0.0, 0.0)), dtype=np.float64)
    mean = np.array(parts.get("mean", (0.0, 0.0, 0.0)), dtype=np.float64)
    std = np.array(parts.get("std", (1.0, 1.0, 1.0)), dtype=np.float64)
    if np.any(std == 0):
        raise ModelSourceError(f"std must not be zero in {spec!r}")
    # ((x*s + o) - m) / d  ==  x * (s/d) + (o - m)/d, folded in float64 once.
    folded_scale = scale / std
    folded_offset = (offset - mean) / std
    return Normalization(scale=tuple(float(v) for v in folded_scale),  # type: ignore[arg-type]
                         offset=tuple(float(v) for v in folded_offset),  # type: ignore[arg-type]
                         spec=name)
