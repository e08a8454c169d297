"""THE preprocessing: encoded image bytes → uint8 ``[size, size, 3]`` RGB.

This is the single definition of how an image becomes model input. The consumer
calls it for every upload and the trainer's dataset builder calls it for every
training image, so training and serving can never drift apart. It imports
nothing heavier than Pillow and NumPy on purpose: the trainer imports it without
pulling Kafka, and the consumer without pulling TensorFlow.

Steps, in order:

1. open with an allow-list of formats only (JPEG, PNG, GIF, WebP, BMP): TIFF,
   PSD, FITS, SVG… are refused before any decoder for them runs;
2. refuse a decompression bomb from the *declared* size, before decoding;
3. JPEG only: DCT-domain downscaling (``Image.draft``) to the smallest scale
   that is still at least ``size`` on both sides (4–8x faster on photos);
4. apply EXIF orientation;
5. convert to 8-bit RGB: 16-bit → 8-bit by scaling, alpha/transparency
   composited over white, CMYK/YCbCr/LAB/palette/grayscale converted;
6. resize (squash, no crop) to ``size x size`` with bilinear filtering and
   antialiasing.

Example::

    >>> from consumer.imaging import preprocess
    >>> pixels = preprocess(open("photo.jpg", "rb").read())
    >>> pixels.shape, pixels.dtype
    ((227, 227, 3), dtype('uint8'))
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_SIZE = 227
DEFAULT_MAX_PIXELS = 50_000_000  # a 12 MP phone photo is 12e6; 50 MP covers pro cameras.
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "BMP")

# Pillow opens every format it knows unless told otherwise; we open only these,
# and additionally keep its own bomb check as a second line of defence.
_PIL_OPEN_FORMATS = DEFAULT_FORMATS


class ImageError(ValueError):
    """An image that can never be decoded; ``reason`` is a short stable code."""

    reason = "invalid_image"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class EmptyImage(ImageError):
    """The payload has zero bytes."""

    reason = "empty"


class NotAnImage(ImageError):
    """The bytes are not an image in any format Pillow recognises."""

    reason = "not_an_image"


class UnsupportedFormat(ImageError):
    """An image, but in a format outside the allow-list (TIFF, PSD, SVG…)."""

    reason = "unsupported_format"


class DecompressionBomb(ImageError):
    """The declared pixel count exceeds the cap."""

    reason = "decompression_bomb"


class CorruptImage(ImageError):
    """The header parsed but the pixel data is truncated or broken."""

    reason = "corrupt_image"


class ImageTooSmall(ImageError):
    """Smaller than the caller's minimum side (used by the dataset builder)."""

    reason = "too_small"


def _sniff_format(data: bytes) -> str | None:
    """Name the container format from magic bytes (only to word the error)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as probe:
                return probe.format
    except Exception:  # noqa: BLE001 - any failure simply means "unknown"
        return None


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: Iterable[str] = DEFAULT_FORMATS) -> Image.Image:
    """Open ``data`` lazily, enforcing the format allow-list and the pixel cap.

    Returns an unloaded :class:`PIL.Image.Image`; raises :class:`ImageError`.
    """
    if not data:
        raise EmptyImage("payload is empty (0 bytes)")
    allowed = tuple(f.upper() for f in formats)
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between 1x and 2x its own limit; we decide below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=allowed)
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(str(exc)) from exc
    except UnidentifiedImageError as exc:
        sniffed = _sniff_format(data)
        if sniffed is not None:
            raise UnsupportedFormat(
                f"format {sniffed} is not allowed (allowed: {', '.join(allowed)})") from exc
        raise NotAnImage("bytes are not a recognised image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"cannot parse image header: {exc}") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"image declares size {width}x{height}")
    if width * height > max_pixels:
        raise DecompressionBomb(
            f"image declares {width}x{height} = {width * height} pixels, cap is {max_pixels}")
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit RGB (see module docstring, step 5)."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(image, dtype=np.int64)
        # 16-bit data spans 0..65535; scale rather than clip (Pillow's convert clips).
        arr = np.clip(arr, 0, 65535)
        arr = ((arr + 128) // 257).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "F":
        arr = np.asarray(image, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.nan_to_num((arr - lo) * scale).round().astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P" or mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    if mode == "1":
        return image.convert("L").convert("RGB")
    # L, CMYK, YCbCr, LAB, HSV, RGBX…: Pillow's converters are exact for these.
    return image.convert("RGB")


def preprocess(data: bytes, size: int = DEFAULT_SIZE, *,
               max_pixels: int = DEFAULT_MAX_PIXELS,
               formats: Iterable[str] = DEFAULT_FORMATS,
               min_side: int = 1) -> np.ndarray:
    """Decode ``data`` and return uint8 ``[size, size, 3]`` RGB pixels.

    Raises :class:`ImageError` (with a ``reason`` code) for anything that can
    never decode; never returns a partially decoded image.
    """
    image = open_image(data, max_pixels=max_pixels, formats=formats)
    try:
        if min(image.size) < min_side:
            raise ImageTooSmall(f"image is {image.size[0]}x{image.size[1]}, minimum side {min_side}")
        if image.format == "JPEG":
            # DCT-domain downscale: never below `size` on either side.
            image.draft("RGB", (size, size))
        if getattr(image, "is_animated", False):
            image.seek(0)  # animated GIF/WebP: classify the first frame
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            MemoryError, Image.DecompressionBombWarning) as exc:
        raise CorruptImage(f"cannot decode image: {exc}") from exc
    finally:
        image.close()
    if pixels.shape != (size, size, 3):  # defensive: a mode we did not expect
        raise CorruptImage(f"decoded to shape {pixels.shape}, expected {(size, size, 3)}")
    return np.ascontiguousarray(pixels)
