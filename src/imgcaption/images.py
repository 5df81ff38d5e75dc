"""Turn whatever the caller has (path, bytes, file object, PIL image) into an upright RGB image, or a typed error.

The format is detected from the content, never the extension. Caps are checked before work is done: the byte cap
before the input is read in full, the pixel cap from the header before pixels are decoded. The model only sees
224×224, so a large image is reduced right after decoding (a JPEG decodes at a reduced DCT scale, ``draft``, to
begin with): what travels on to batches is at most a few megapixels whatever the original, which keeps the memory
of a batch bounded by the model's input size rather than by the uploads' dimensions.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

import numpy as np
from PIL import Image, UnidentifiedImageError, features

from imgcaption.distribution import install_hint
from imgcaption.errors import (
    ImageDecodeError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    SourceError,
    UnsupportedImageError,
)
from imgcaption.isobmff import is_complete_image_file
from imgcaption.png_checks import first_critical_chunk_with_bad_crc
from imgcaption.settings import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)

ImageInput: TypeAlias = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | Image.Image
"""Anything :func:`load_image` accepts."""

MODEL_INPUT_SIZE = 224
DRAFT_SIZE = 2 * MODEL_INPUT_SIZE
"""JPEGs decode at the smallest DCT scale still at least this big: 8× less work for a 12 MP photo, same caption."""
MAX_SHORT_SIDE = 4 * MODEL_INPUT_SIZE
"""Decoded images are reduced until their short side is at most this (896 px). A JPEG draft is already below it
unless the photo's short side passes 7168 px (the DCT scales stop at 1/8), so the captions of JPEG photos do not
change."""
MAX_REDUCED_PIXELS = 4 * MAX_SHORT_SIDE**2
"""...and until they hold at most this many pixels (3.2 MP, under 10 MB as RGB): bounds panoramas too, whose short
side alone would let a 100 MP strip through at 20 MP."""

_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


_OPTIONAL_DECODERS = {
    "HEIF": f"HEIC/HEIF needs pillow-heif ({install_hint('heif')})",
    "AVIF": "this Pillow was built without AVIF (the wheels on PyPI since Pillow 11.2 have it)",
}
"""Formats whose decoder may be missing from an install, and what to do about it."""


def _register_optional_plugins() -> None:
    """HEIC/HEIF when ``pillow-heif`` is installed (the ``heif`` extra); AVIF is built into Pillow's wheels."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return
    register_heif_opener()


_register_optional_plugins()


def _can_decode(image_format: str) -> bool:
    """Whether Pillow has a decoder for the format now (asked at decode time: plugins register at run time)."""
    if image_format == "AVIF":
        return bool(features.check("avif"))
    return image_format in Image.OPEN


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """An upright RGB image ready for the model, with facts about the original."""

    image: Image.Image
    source: str
    width: int
    height: int
    sha256: str
    format: str | None
    byte_size: int | None


def describe_source(item: ImageInput, source: str | None = None) -> str:
    """A human-readable name for an input, used in results and error messages."""
    if source is not None:
        return source
    if isinstance(item, str | os.PathLike):
        return os.fspath(item)
    if isinstance(item, Image.Image):
        return getattr(item, "filename", "") or "<PIL.Image>"
    if isinstance(item, bytes | bytearray | memoryview):
        return "<bytes>"
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else "<stream>"


def read_capped(item: ImageInput, source: str, max_bytes: int) -> bytes:
    """Read the raw bytes of a path, buffer or stream, refusing anything over ``max_bytes`` without reading it all."""
    if isinstance(item, bytes | bytearray | memoryview):
        data = bytes(item)
    elif isinstance(item, str | os.PathLike):
        path = Path(item)
        try:
            status = path.stat()
            if not stat.S_ISREG(status.st_mode):
                # A FIFO or device would block or never end; a directory is not an image either.
                kind = "a directory" if stat.S_ISDIR(status.st_mode) else "not a regular file"
                raise UnsupportedImageError(f"is {kind}, not an image file", source=source)
            size = status.st_size
            if size > max_bytes:
                raise ImageTooLargeError(f"{size} bytes exceeds the byte cap of {max_bytes}", source=source)
            with path.open("rb") as handle:
                data = handle.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise ImageNotFoundError("no such file", source=source) from exc
        except PermissionError as exc:
            raise SourceError(f"permission denied: {exc.strerror}", source=source) from exc
        except OSError as exc:
            raise SourceError(f"cannot read: {exc.strerror or exc}", source=source) from exc
    elif isinstance(item, Image.Image):
        raise TypeError("a PIL image has no bytes to read")
    else:
        try:
            data = item.read(max_bytes + 1)
        except OSError as exc:
            raise SourceError(f"cannot read stream: {exc}", source=source) from exc
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"more than the byte cap of {max_bytes} bytes", source=source)
    if not data:
        raise ImageDecodeError("empty file (0 bytes)", source=source)
    return data


def load_image(
    item: ImageInput,
    *,
    source: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Decode ``item`` into an upright RGB image; raise an :class:`~imgcaption.errors.ImageError` if it is not one."""
    name = describe_source(item, source)
    if isinstance(item, Image.Image):
        return _from_pil(item, name, max_pixels)
    data = read_capped(item, name, max_bytes)
    return decode_bytes(data, source=name, max_pixels=max_pixels)


def decode_bytes(data: bytes, *, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode already-read bytes (e.g. an S3 object body)."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)", source=source)
    digest = hashlib.sha256(data).hexdigest()
    frame_format: str | None = None
    try:
        # Pillow's warnings about recoverable damage (corrupt EXIF...) go through the normal warnings machinery:
        # catching them here would swap process-wide state from the pipeline's decode thread.
        opened = Image.open(io.BytesIO(data))
        frame_format = opened.format
        _check_pixels(opened.size, source, max_pixels)
        if frame_format == "PNG" and (chunk := first_critical_chunk_with_bad_crc(data)) is not None:
            raise ImageDecodeError(f"corrupt PNG: the {chunk} chunk fails its CRC check", source=source)
        stored_size = opened.size
        if frame_format == "JPEG":
            opened.draft("RGB", (DRAFT_SIZE, DRAFT_SIZE))
        # Decode before reading EXIF: on a PNG, getexif() decodes the pixels itself, and a decode error raised
        # there would pass for an unreadable EXIF block while load() then returned the partial frame.
        expected_size = opened.size
        opened.load()
        if opened.size != expected_size:  # the decoder disagrees with the header: the frame it made is what exists
            _check_pixels(opened.size, source, max_pixels)
            stored_size = opened.size
        orientation = _orientation(opened, source)
        width, height = _oriented_size(stored_size, orientation)
        rgb = to_rgb(upright(reduce_for_model(opened), orientation))
        if rgb is opened:  # a plain copy: the opened file object would keep the source bytes alive in the batch
            rgb = opened.copy()
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses > 2 × Image.MAX_IMAGE_PIXELS in open(), before our own check could run.
        raise ImageTooLargeError(f"decompression bomb refused, exceeds the pixel cap: {exc}", source=source) from exc
    except UnidentifiedImageError as exc:
        claimed = image_format_from_magic(data[:16])
        if claimed in _OPTIONAL_DECODERS and not _can_decode(claimed) and is_complete_image_file(data):
            raise UnsupportedImageError(
                f"a {claimed} image, which this install cannot decode: {_OPTIONAL_DECODERS[claimed]}", source=source
            ) from exc
        if claimed is not None:  # it says it is an image, so it is a damaged one rather than something else
            raise ImageDecodeError(f"corrupt {claimed} that cannot be decoded: {exc}", source=source) from exc
        raise UnsupportedImageError(
            f"not an image, or a format this install cannot read ({_sniff(data)})", source=source
        ) from exc
    except MemoryError as exc:
        raise ImageTooLargeError("ran out of memory decoding", source=source) from exc
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError, struct.error, EOFError... on bad data
        raise ImageDecodeError(f"cannot decode {frame_format or 'image'}: {exc}", source=source) from exc
    return LoadedImage(rgb, source, width, height, digest, frame_format, len(data))


def _from_pil(image: Image.Image, source: str, max_pixels: int) -> LoadedImage:
    """The caller already holds the full frame: the digest is of its upright RGB pixels, then it is reduced."""
    _check_pixels(image.size, source, max_pixels)
    try:
        image.load()  # a lazily opened image decodes here, so its decode errors are not taken for EXIF ones
        orientation = _orientation(image, source)
        width, height = _oriented_size(image.size, orientation)
        full = to_rgb(upright(image, orientation))
        digest = hashlib.sha256(f"{full.mode}{full.size}".encode() + full.tobytes()).hexdigest()
        rgb = reduce_for_model(full)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageDecodeError(f"cannot use this PIL image: {exc}", source=source) from exc
    return LoadedImage(rgb, source, width, height, digest, image.format, None)


def _check_pixels(size: tuple[int, int], source: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"invalid dimensions {width}×{height}", source=source)
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{width}×{height} = {width * height} pixels exceeds the pixel cap of {max_pixels}", source=source
        )


def _orientation(image: Image.Image, source: str) -> int:
    """The EXIF orientation (1–8) of a loaded image; 1 when there is none or it cannot be read."""
    try:
        value = image.getexif().get(0x0112, 1)  # 0x0112 = Orientation
    except Exception as exc:  # the pixels decoded (load() ran first): a bogus EXIF block must not cost the image
        logger.warning("%s: ignoring unreadable EXIF, captioning as stored: %s", source, exc)
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented_size(stored: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = stored
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


EXIF_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""What each EXIF orientation takes to stand the image upright (the table of ``ImageOps.exif_transpose``)."""


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation (1–8) so the model sees what a person sees.

    Takes the orientation rather than reading it, so it can be applied after :func:`reduce_for_model`, to the small
    image, whose EXIF may not have survived the resampling.
    """
    method = EXIF_ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def reduced_size(width: int, height: int) -> tuple[int, int]:
    """The size :func:`reduce_for_model` gives a ``width``×``height`` image: the same aspect, short side at most
    :data:`MAX_SHORT_SIDE`, at most :data:`MAX_REDUCED_PIXELS`; an image already within both is unchanged."""
    scale = min(1.0, MAX_SHORT_SIDE / min(width, height), math.sqrt(MAX_REDUCED_PIXELS / (width * height)))
    if scale >= 1.0:
        return width, height
    short = max(1, round(min(width, height) * scale))
    long = min(round(max(width, height) * scale), MAX_REDUCED_PIXELS // short)  # rounding up must not overshoot
    return (long, short) if width >= height else (short, long)


_POINT_SAMPLED_MODES = {"1": "L", "P": "RGB", "PA": "RGBA"}
"""Modes Pillow only resizes by nearest neighbour, and what to resample them as instead."""


def reduce_for_model(image: Image.Image) -> Image.Image:
    """A decoded image scaled down to :func:`reduced_size` (Lanczos, after an integer ``reduce()`` step)."""
    target = reduced_size(*image.size)
    if target == image.size:
        return image
    if "transparency" in image.info and image.mode in ("L", "RGB", "P"):
        image = image.convert("LA" if image.mode == "L" else "RGBA")  # a colour key would blur into its neighbours
    elif image.mode in _POINT_SAMPLED_MODES:
        image = image.convert(_POINT_SAMPLED_MODES[image.mode])
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        # Area averaging cannot overshoot, so the tones keep the range to_rgb scales them by (Lanczos would not);
        # and Pillow's reduce() step has no 16-bit modes.
        return image.resize(target, Image.Resampling.BOX)
    # reducing_gap: shrink by a whole factor first (cheap box filter), then resample the last <3× with Lanczos;
    # Pillow documents the result as indistinguishable from Lanczos all the way. Alpha is resampled premultiplied.
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white, as a viewer would show it."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        image = _to_8bit_gray(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale scaled to 0–255 (Pillow's own convert would clip everything above 255)."""
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        low, high = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        scaled = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
    else:
        scaled = np.clip(pixels, 0, 65535) / 257.0
    return Image.fromarray(np.nan_to_num(scaled).round().astype(np.uint8))


_MAGIC_NUMBERS = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"\x00\x00\x00\x0cjP  ": "JPEG2000",
}
_FTYP_BRANDS = {
    b"heic": "HEIF", b"heix": "HEIF", b"hevc": "HEIF", b"heim": "HEIF", b"heis": "HEIF", b"mif1": "HEIF",
    b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}  # fmt: skip


def known_signatures() -> list[bytes]:
    """A file start for every format :func:`image_format_from_magic` recognises (each brand of the ISO-BMFF ones),
    so a fuzzer's random bytes behind one reach that format's decoder."""
    return [*_MAGIC_NUMBERS, b"RIFF\x00\x00\x00\x00WEBP", *(b"\x00\x00\x00\x18ftyp" + brand for brand in _FTYP_BRANDS)]


def image_format_from_magic(head: bytes) -> str | None:
    """The image format the first 16 bytes claim, or None: one table for the loader and the directory walker."""
    for magic, name in _MAGIC_NUMBERS.items():
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    return None


def _sniff(data: bytes) -> str:
    """A hint for the error message about what the bytes actually are."""
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "looks like HTML"
    if head.startswith((b"<?xml", b"<svg")):
        return "looks like XML/SVG, which is not supported"
    if head.startswith(b"%pdf"):
        return "looks like a PDF"
    if head.startswith(b"pk\x03\x04"):
        return "looks like a ZIP archive"
    try:
        data[:256].decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary data starting {data[:8].hex()}"
    return "looks like text"
