"""Small images of every kind, made in memory for tests (no files are downloaded)."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from PIL import Image

# What exif_transpose does for each orientation, and its inverse, used to store an upright image rotated.
UNDO_ORIENTATION: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def upright_pattern(width: int = 64, height: int = 40) -> Image.Image:
    """An asymmetric image: any flip or rotation of it is a different image."""
    image = Image.new("RGB", (width, height), (255, 255, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height // 2))  # red top-left
    image.paste((0, 0, 255), (width // 2, height // 2, width, height))  # blue bottom-right
    image.paste((0, 255, 0), (0, height - 4, 8, height))  # green mark bottom-left
    return image


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def with_orientation(upright: Image.Image, orientation: int, fmt: str = "PNG") -> bytes:
    """Bytes of ``upright`` stored as a camera would store it, with the EXIF tag that undoes that."""
    stored = upright if orientation == 1 else upright.transpose(UNDO_ORIENTATION[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, fmt, exif=exif.tobytes())


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge size: a decompression bomb, refused from the header alone."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr_at = data.index(b"IHDR")
    data[ihdr_at + 4 : ihdr_at + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr_at : ihdr_at + 17]))
    data[ihdr_at + 17 : ihdr_at + 21] = struct.pack(">I", crc)
    return bytes(data)


def animated(fmt: str, colors: tuple[str, ...] = ("red", "blue", "green")) -> bytes:
    frames = [Image.new("RGB", (32, 32), color) for color in colors]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
