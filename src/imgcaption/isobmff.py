"""The top-level box structure of HEIF and AVIF files (ISO base media file format), read without a decoder.

Where no decoder for the format is installed, this tells a complete file, which the install simply cannot read
(so the error names what to install), from a damaged one (a decode error, whatever is installed): it checks the
framing only, not the coded image inside.
"""

from __future__ import annotations

_HEADER = 8  # 32-bit size, then the 4-character type
_LARGE_SIZE = 1  # the size follows as 64 bits after the type
_TO_END = 0  # the box runs to the end of the file (only the last one may)


def top_level_boxes(data: bytes) -> list[str] | None:
    """The types of the top-level boxes, in order, or None if their sizes do not frame the data exactly."""
    types: list[str] = []
    position = 0
    while position < len(data):
        if position + _HEADER > len(data):
            return None
        size = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if not (kind.isascii() and kind.decode("ascii").isprintable()):
            return None
        header = _HEADER
        if size == _LARGE_SIZE:
            if position + 16 > len(data):
                return None
            size, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        elif size == _TO_END:
            size = len(data) - position
        if size < header or position + size > len(data):
            return None
        types.append(kind.decode("ascii"))
        position += size
    return types


def is_complete_image_file(data: bytes) -> bool:
    """True if the data is framed as a whole HEIF/AVIF image: boxes that end with the data, ``ftyp`` first and the
    ``meta`` box that describes the image (its coded data lives in ``mdat``, or in ``meta`` itself)."""
    boxes = top_level_boxes(data)
    return boxes is not None and boxes[:1] == ["ftyp"] and "meta" in boxes
