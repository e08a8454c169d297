import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from consumer import imaging


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(w=640, h=480, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3)
    return Image.fromarray((base * 0.7 + rng.integers(0, 70, (h, w, 3))).astype(np.uint8), "RGB")


def check(pixels: np.ndarray, size: int = 227) -> None:
    assert pixels.shape == (size, size, 3) and pixels.dtype == np.uint8 and pixels.flags.c_contiguous


@pytest.mark.parametrize("fmt,mode", [("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGBA"),
                                      ("PNG", "P"), ("PNG", "LA"), ("PNG", "1"), ("GIF", "P"),
                                      ("WEBP", "RGB"), ("BMP", "RGB"), ("PNG", "I;16")])
def test_every_allowed_mode_becomes_rgb_227(fmt, mode):
    img = photo()
    img = img.convert("L").convert(mode) if mode == "I;16" else img.convert(mode)
    check(imaging.preprocess(encode(img, fmt)))


def test_sixteen_bit_png_is_scaled_not_clipped():
    arr = np.full((300, 300), 40000, dtype=np.uint16)
    data = encode(Image.fromarray(arr), "PNG")
    pixels = imaging.preprocess(data)
    assert abs(int(pixels[0, 0, 0]) - round(40000 / 257)) <= 1  # Pillow's convert would clip to 255


def test_alpha_composited_over_white():
    img = Image.new("RGBA", (300, 300), (255, 0, 0, 0))  # fully transparent red
    assert imaging.preprocess(encode(img, "PNG"))[100, 100].tolist() == [255, 255, 255]


def test_exif_orientation_applied():
    img = Image.new("RGB", (400, 200), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 200, 200))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display: red goes to the top
    pixels = imaging.preprocess(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert pixels[10, 113, 0] > 200 and pixels[10, 113, 2] < 60
    assert pixels[216, 113, 2] > 200


def test_animated_gif_uses_first_frame():
    frames = [Image.new("P", (100, 100), c) for c in (1, 2, 3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    check(imaging.preprocess(buf.getvalue()))


def test_jpeg_draft_output_close_to_full_decode():
    data = encode(photo(2000, 1500), "JPEG", quality=90)
    fast = imaging.preprocess(data).astype(np.int16)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((227, 227), Image.Resampling.BILINEAR),
                      dtype=np.int16)
    assert np.abs(fast - full).mean() < 6


def png_header_only(w: int, h: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"hello, this is plain text", "not_an_image"),
    (np.random.default_rng(1).bytes(5000), "not_an_image"),
    (b"<html><body>500 Internal Server Error</body></html>", "not_an_image"),
    (png_header_only(50000, 50000), "decompression_bomb"),
    (png_header_only(9000, 9000), "decompression_bomb"),  # 81 MP: below Pillow's 2x error, above our cap
])
def test_hostile_bytes_fail_with_reason(data, reason):
    with pytest.raises(imaging.ImageError) as info:
        imaging.preprocess(data)
    assert info.value.reason == reason


def test_truncated_jpeg_is_corrupt():
    data = encode(photo(), "JPEG")
    with pytest.raises(imaging.ImageError) as info:
        imaging.preprocess(data[: len(data) // 2])
    assert info.value.reason == "corrupt_image"


@pytest.mark.parametrize("fmt", ["TIFF", "PPM", "ICO", "PCX", "TGA"])
def test_formats_outside_allow_list_are_refused(fmt):
    with pytest.raises(imaging.ImageError) as info:
        imaging.preprocess(encode(photo(64, 64).convert("RGB"), fmt))
    assert info.value.reason == "unsupported_format"


def test_svg_and_psd_like_payloads_refused():
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    assert pytest.raises(imaging.ImageError, imaging.preprocess, svg).value.reason == "not_an_image"
    psd = b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x03" + struct.pack(">II", 10, 10) + b"\x00\x08\x00\x03" + b"\x00" * 64
    assert pytest.raises(imaging.ImageError, imaging.preprocess, psd).value.reason in ("unsupported_format",
                                                                                       "not_an_image")


def test_min_side_enforced():
    with pytest.raises(imaging.ImageTooSmall):
        imaging.preprocess(encode(photo(20, 20), "PNG"), min_side=32)
