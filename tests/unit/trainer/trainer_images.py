"""Image fixtures for build-dataset edge cases: every mode and every way a file goes wrong."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise_rgb(seed: int, side: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def halves(size: tuple[int, int] = (80, 48), left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    """Left half one colour, right half another: orientation is visible in the pixels."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(halves(), "JPEG", quality=95, exif=exif.tobytes())


def cmyk_jpeg(cmyk=(255, 0, 0, 0), side: int = 64) -> bytes:
    return encode(Image.new("CMYK", (side, side), cmyk), "JPEG", quality=95)


def rgba_png(side: int = 64) -> bytes:
    """Left half opaque blue, right half fully transparent (→ white once composited)."""
    image = Image.new("RGBA", (side, side), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, side // 2, side))
    return encode(image, "PNG")


def palette_png(side: int = 64) -> bytes:
    """Palette image: left half green, right half index 0 = transparent red (→ white)."""
    image = Image.new("P", (side, side), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(1, (0, 0, side // 2, side))
    return encode(image, "PNG", transparency=0)


def grayscale_png(value: int = 77, side: int = 64) -> bytes:
    return encode(Image.new("L", (side, side), value), "PNG")


def truncated_jpeg(seed: int = 1) -> bytes:
    data = encode(noise_rgb(seed), "JPEG", quality=90)
    return data[: len(data) // 2]


def png_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A complete, valid 8-bit grayscale PNG of ``width x height`` zeros (~64 MB decoded,
    ~60 KB on disk): more pixels than consumer.imaging's 50 MP cap."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def tiff(seed: int = 3) -> bytes:
    return encode(noise_rgb(seed), "TIFF")
