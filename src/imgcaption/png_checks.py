"""PNG chunk checksums that Pillow does not verify.

Pillow checks the CRC of the chunks it parses before the image data, but not those of IDAT. The PNG specification
recommends checking every chunk, and libpng by default treats a bad CRC in a critical chunk as fatal: the bytes
are not what the encoder wrote, so the pixels cannot be trusted even when zlib does not notice.
"""

from __future__ import annotations

import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ANCILLARY_BIT = 0x20  # bit 5 of a chunk type's first byte: lowercase letter = ancillary, uppercase = critical


def first_critical_chunk_with_bad_crc(data: bytes) -> str | None:
    """The type of the first critical chunk (IHDR, PLTE, IDAT, IEND) whose CRC is wrong, or None.

    Ancillary chunks are Pillow's to judge. A chunk cut short by the end of the data is the decoder's: it knows
    whether pixels are missing. The walk stops at IEND, so trailing bytes after it are never read as chunks.
    """
    view = memoryview(data)
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(view):
        length = int.from_bytes(view[position : position + 4], "big")
        kind = bytes(view[position + 4 : position + 8])
        crc_at = position + 8 + length
        if crc_at + 4 > len(view):
            return None
        if not kind[0] & _ANCILLARY_BIT:
            stored = int.from_bytes(view[crc_at : crc_at + 4], "big")
            if zlib.crc32(view[position + 4 : crc_at]) != stored:
                return kind.decode("latin-1")
        if kind == b"IEND":
            return None
        position = crc_at + 4
    return None
