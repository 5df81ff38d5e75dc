"""A generated corpus of hostile and odd image files, and what each must become.

Nothing is downloaded: every file is made here, deterministically. Each entry says whether the library must caption
it (``ok``) or refuse it with a specific typed error. ``python scripts/make_corpus.py DIR`` writes it to disk.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin


@dataclass(frozen=True, slots=True)
class CorpusEntry:
    """One file of the corpus: its name, and the outcome the library must give it."""

    name: str
    expect: str
    """``ok`` or the class name of the error, e.g. ``ImageDecodeError``."""
    why: str


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth, photo-like gradient with a few shapes (compresses like a photo, not like noise)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    base = np.stack([x * 255 / max(1, width - 1), y * 255 / max(1, height - 1), (x + y) * 127 / (width + height)], -1)
    image = Image.fromarray((base + rng.normal(0, 4, base.shape)).clip(0, 255).astype(np.uint8))
    image.paste((200, 30, 30), (width // 5, height // 5, width // 2, height // 2))
    return image


def _png_with_size(width: int, height: int) -> bytes:
    data = bytearray(_encode(Image.new("L", (1, 1)), "PNG"))
    at = data.index(b"IHDR")
    data[at + 4 : at + 12] = struct.pack(">II", width, height)
    data[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(data[at : at + 17])))
    return bytes(data)


def cheap_large_png(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> bytes:
    """An RGB PNG of ``width``×``height`` (``top`` colour above ``bottom``) a few hundred KB big: cheap to send,
    expensive to decode. Written row by row, so making a 49-megapixel one never holds its pixels in memory.
    """
    compressor = zlib.compressobj(9)
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))]
    stream = bytearray()
    for colour, rows in ((top, height // 2), (bottom, height - height // 2)):
        row = b"\x00" + bytes(colour) * width  # filter type 0, then the pixels
        for _ in range(rows):
            stream += compressor.compress(row)
    stream += compressor.flush()
    parts += [_png_chunk(b"IDAT", bytes(stream)), _png_chunk(b"IEND", b"")]
    return b"".join(parts)


def _with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_photo(), "JPEG", exif=exif.tobytes(), quality=90)


def _animated(fmt: str) -> bytes:
    frames = [_photo(seed=i) for i in range(3)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)


def _ztxt_bomb() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "A" * 20_000_000, zip=True)  # 20 MB of text in a ~20 KB chunk
    return _encode(Image.new("RGB", (8, 8)), "PNG", pnginfo=info)


def _truncated(fmt: str) -> bytes:
    noisy = Image.fromarray(np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    data = _encode(noisy, fmt)
    return data[: len(data) // 2]


def _bad_crc() -> bytes:
    data = bytearray(_encode(_photo(), "PNG"))
    at = data.index(b"IHDR")
    data[at + 17] ^= 0xFF
    return bytes(data)


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk of a well-formed PNG, in file order."""
    chunks, position = [], 8
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunks.append((data[position + 4 : position + 8], data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def _png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; its CRC is the correct one unless ``crc`` says otherwise."""
    checksum = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def _damaged_png(damage: Callable[[bytes], bytes], *, idat_crc_xor: int = 0, iend: bool = True) -> bytes:
    """A photo PNG whose image data (all IDATs joined into one zlib stream) is passed through ``damage``.

    The chunk framing stays valid and every CRC is recomputed, so only the damage named is wrong.
    """
    chunks = _png_chunks(_encode(_photo(160, 120), "PNG"))
    stream = damage(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for kind, body in chunks:
        if kind == b"IHDR":
            out += _png_chunk(kind, body)
    idat_crc = zlib.crc32(b"IDAT" + stream) ^ idat_crc_xor
    out += _png_chunk(b"IDAT", stream, crc=idat_crc)
    if iend:
        out += _png_chunk(b"IEND", b"")
    return bytes(out)


def _flip_bytes(data: bytes, start: int, count: int) -> bytes:
    return data[:start] + bytes(byte ^ 0x55 for byte in data[start : start + count]) + data[start + count :]


def _heic() -> bytes | None:
    """A HEIC photo, or None where pillow-heif (the ``heif`` extra) is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return None
    register_heif_opener()
    return _encode(_photo(), "HEIF", quality=80)


def _multipage_tiff() -> bytes:
    pages = [_photo(seed=i) for i in range(3)]
    return _encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def _palette_transparent() -> bytes:
    image = _photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(image, "PNG", transparency=0)


def _bogus_exif() -> bytes:
    return _encode(_photo(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x00\x01broken")


def _gray16() -> bytes:
    gradient = np.linspace(0, 65535, 96 * 64, dtype=np.uint16).reshape(64, 96)
    return _encode(Image.fromarray(gradient), "PNG")


def _float_tiff() -> bytes:
    return _encode(Image.fromarray(np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64)), "TIFF")


# Inputs scripts/fuzz_decode.py found (docs/RELIABILITY.md, Fuzzing), as it saved them.
_FUZZ_GIF_STRIP = base64.b64decode("R0lGODdhAAEhfwAFVVVVLAAAAAABAAEAAAgEAAQAOw==")
_FUZZ_HEIF_CLAP = base64.b64decode(
    "AAAAHGZ0eXBoZWljAAAAAG1pZjFoZWljbWlhZgAAAXxtZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAA"
    "ACJpbG9jAAAAAERAAAEAAQAAAAABoAABAAAAAAAAAIQAAAAjaWluZgAAAAAAAQAAABVpbmZlAgAAAAABAABodmMxAAAAAA5waXRt"
    "AAAAAAABAAAA/GlwcnAAAADcaXBjbwAAAHVodmNDAQNwAAAAkAAAAAAAHvAA/P34+AAADwNgAAEAGEABDAH//wNwAAADAJAAAAMA"
    "AAMAHroCQGEAAQApQgEBA3AAAAMAkAAAAwAAAwAeoCCBBZbqrprm4CGgwIAAAAyAAAADAIRiAAEABkQBwXPBiQAAABNjb2xybmNs"
    "eAABAA0ABoAAAAAUaXNwZQAAAAAAAABAAAAAQAAAAChjbGFwAAAAKAAAAAEAAAAYAAAAAfX//+gAAAAC////2AAAAAIAAAAQcGl4"
    "aQAAAAADCAgIAAAAGGlwbWEAAAAAAAAAAQABBYECAwWEAAAAjG1kYXQAAACAKAGvEyHnGw3lMjb/eBPVM+DJtjD6noQACdCN1Yb4"
    "awsD4hllfMxFzKGjVh4PXPxZ/mQOpqkk9SxXca9jnd57+LA/nC59Xw/ozwqIthiOMfU45ivfsr6AUFmhDrd0d6iPYxIKLXgnpDvQ"
    "fDFA0bsHruaVMOY8GMtjwcDfolIC71w="
)
_HAS_HEIF_DECODER = importlib.util.find_spec("pillow_heif") is not None

_FILES: list[tuple[str, str, str, Callable[[], bytes]]] = [
    ("empty.jpg", "ImageDecodeError", "zero bytes", lambda: b""),
    ("text-named.jpg", "UnsupportedImageError", "a text file with an image name", lambda: b"just some notes\n" * 20),
    (
        "page.html",
        "UnsupportedImageError",
        "an HTML error page saved as an image",
        lambda: b"<!DOCTYPE html><html><body><h1>403 Forbidden</h1></body></html>",
    ),
    ("html-named.png", "UnsupportedImageError", "HTML with a .png name", lambda: b"<html><body>oops</body></html>"),
    (
        "drawing.svg",
        "UnsupportedImageError",
        "vector graphics are not supported",
        lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    ),
    ("document.pdf", "UnsupportedImageError", "a PDF", lambda: b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"),
    ("archive.jpg", "UnsupportedImageError", "a ZIP with an image name", lambda: b"PK\x03\x04" + b"\0" * 60),
    ("truncated.jpg", "ImageDecodeError", "a JPEG cut in half", lambda: _truncated("JPEG")),
    ("truncated.png", "ImageDecodeError", "a PNG cut in half", lambda: _truncated("PNG")),
    ("bad-crc.png", "ImageDecodeError", "a PNG whose header chunk fails its CRC", _bad_crc),
    (
        "png-idat-cut.png",
        "ImageDecodeError",
        "the zlib stream in IDAT stops halfway (valid chunks, CRCs and IEND): the lower rows do not exist",
        lambda: _damaged_png(lambda stream: stream[: len(stream) // 2]),
    ),
    (
        "png-broken-zlib.png",
        "ImageDecodeError",
        "16 bytes inside the IDAT zlib stream are flipped (CRCs recomputed): inflate fails, rows after it are lost",
        lambda: _damaged_png(lambda stream: _flip_bytes(stream, len(stream) // 3, 16)),
    ),
    (
        "png-bad-adler32.png",
        "ImageDecodeError",
        "the zlib stream's own checksum (its last byte) is wrong: the pixels cannot be trusted",
        lambda: _damaged_png(lambda stream: _flip_bytes(stream, len(stream) - 1, 1)),
    ),
    (
        "png-bad-idat-crc.png",
        "ImageDecodeError",
        "the IDAT chunk fails its CRC: a CRC error in a critical chunk is fatal (libpng's default; Pillow skips it)",
        lambda: _damaged_png(lambda stream: stream, idat_crc_xor=0xFFFFFFFF),
    ),
    (
        "png-no-iend.png",
        "ok",
        "IEND is missing but every pixel is there and checksummed (zlib's Adler-32, the CRCs): IEND carries no data",
        lambda: _damaged_png(lambda stream: stream, iend=False),
    ),
    (
        "bomb.png",
        "ImageTooLargeError",
        "declares 50000×50000 pixels in a 70-byte file",
        lambda: _png_with_size(50_000, 50_000),
    ),
    (
        "bomb-just-over-cap.png",
        "ImageTooLargeError",
        "declares 12000×9000 = 108 MP, over the 100 MP cap",
        lambda: _png_with_size(12_000, 9_000),
    ),
    ("ztxt-bomb.png", "ImageDecodeError", "a zTXt chunk that inflates to 20 MB", _ztxt_bomb),
    ("one-pixel.png", "ok", "1×1", lambda: _encode(Image.new("RGB", (1, 1), "red"), "PNG")),
    ("one-pixel.gif", "ok", "1×1 GIF", lambda: _encode(Image.new("P", (1, 1)), "GIF")),
    ("wide-20000x20.png", "ok", "extreme aspect ratio", lambda: _encode(_photo(20_000, 20), "PNG")),
    ("tall-20x20000.jpg", "ok", "extreme aspect ratio", lambda: _encode(_photo(20, 20_000), "JPEG")),
    ("gray16.png", "ok", "16-bit grayscale", _gray16),
    ("float.tiff", "ok", "32-bit float grayscale TIFF", _float_tiff),
    ("cmyk.jpg", "ok", "CMYK JPEG", lambda: _encode(_photo().convert("CMYK"), "JPEG")),
    ("palette-transparent.png", "ok", "palette with a transparent index", _palette_transparent),
    ("la.png", "ok", "grayscale with alpha", lambda: _encode(_photo().convert("LA"), "PNG")),
    ("rgba.png", "ok", "RGBA", lambda: _encode(_photo().convert("RGBA"), "PNG")),
    ("animated.gif", "ok", "animated GIF", lambda: _animated("GIF")),
    ("animated.webp", "ok", "animated WebP", lambda: _animated("WEBP")),
    ("animated.png", "ok", "APNG", lambda: _animated("PNG")),
    ("multipage.tiff", "ok", "three-page TIFF", _multipage_tiff),
    ("bitmap.bmp", "ok", "BMP", lambda: _encode(_photo(), "BMP")),
    ("icon.ico", "ok", "Windows icon", lambda: _encode(_photo(32, 32), "ICO")),
    ("bogus-exif.jpg", "ok", "a JPEG with a broken EXIF block", _bogus_exif),
    ("png-named.jpg", "ok", "a PNG with a .jpg name", lambda: _encode(_photo(), "PNG")),
    ("webp-named.jpeg", "ok", "a WebP with a .jpeg name", lambda: _encode(_photo(), "WEBP")),
    ("trailing-garbage.jpg", "ok", "a JPEG followed by junk", lambda: _encode(_photo(), "JPEG") + b"\0junk" * 100),
    *[(f"orientation-{o}.jpg", "ok", f"EXIF orientation {o}", (lambda o=o: _with_orientation(o))) for o in range(1, 9)],
    (
        "fuzz-gif-strip.gif",
        "ok",
        "31 bytes declaring a 256×32545 GIF: its reduction once rounded the long side over the pixel budget",
        lambda: _FUZZ_GIF_STRIP,
    ),
    (
        "fuzz-heif-clap.heic",
        "ok" if _HAS_HEIF_DECODER else "UnsupportedImageError",
        "a HEIF whose clean-aperture box says 40×24 but decodes to 64×24: the record once kept the header's size",
        lambda: _FUZZ_HEIF_CLAP,
    ),
]


def corpus_file(name: str) -> tuple[CorpusEntry, bytes]:
    """One file of the corpus in memory (not the special files: pipe, directory, mode 000), with its entry."""
    for entry_name, expect, why, make in _FILES:
        if entry_name == name:
            return CorpusEntry(entry_name, expect, why), make()
    raise KeyError(name)


def write_corpus(directory: str | os.PathLike[str]) -> list[CorpusEntry]:
    """Write every corpus file into ``directory`` and return what each must become."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    entries: list[CorpusEntry] = []
    for name, expect, why, make in _FILES:
        (root / name).write_bytes(make())
        entries.append(CorpusEntry(name, expect, why))
    heic = _heic()
    if heic is not None:  # a real HEIC needs pillow-heif to be made; the loader has the same plugin to read it
        (root / "photo.heic").write_bytes(heic)
        entries.append(CorpusEntry("photo.heic", "ok", "an iPhone-style HEIC"))
        (root / "truncated.heic").write_bytes(heic[: len(heic) // 2])
        entries.append(CorpusEntry("truncated.heic", "ImageDecodeError", "a HEIC cut in half"))
    fifo = root / "fifo.jpg"
    if hasattr(os, "mkfifo") and not fifo.exists():
        os.mkfifo(fifo)  # reading it would block forever: must be refused, not read
    entries.append(CorpusEntry("fifo.jpg", "UnsupportedImageError", "a named pipe, which would block a reader"))
    (root / "folder.jpg").mkdir(exist_ok=True)
    entries.append(CorpusEntry("folder.jpg", "UnsupportedImageError", "a directory with an image name"))
    unreadable = root / "unreadable.jpg"
    unreadable.write_bytes(_encode(_photo(), "JPEG"))
    unreadable.chmod(0)
    readable_anyway = os.geteuid() == 0 if hasattr(os, "geteuid") else False  # root ignores file modes
    entries.append(CorpusEntry("unreadable.jpg", "ok" if readable_anyway else "SourceError", "mode 000"))
    return entries


def write_symlink_loop(directory: str | os.PathLike[str]) -> Path:
    """A directory containing a symlink to itself, for recursive walks that must terminate."""
    root = Path(directory)
    (root / "nested").mkdir(parents=True, exist_ok=True)
    (root / "nested" / "photo.png").write_bytes(_encode(_photo(), "PNG"))
    loop = root / "nested" / "loop"
    if not loop.is_symlink():
        loop.symlink_to(root, target_is_directory=True)
    return root
