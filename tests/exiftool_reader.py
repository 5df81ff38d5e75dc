"""exiftool as the independent reader of what the alt text tests wrote, and images to write into.

The tests need exiftool itself: where it is missing they fail (never skip) and say that ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from imgcaption.local.metadata import exiftool_missing

# Pillow's format name for each file kind that alt text can be embedded in.
EMBEDDABLE = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".tif": "TIFF"}


def require_exiftool() -> None:
    problem = exiftool_missing()
    if problem:
        pytest.fail(f"{problem}. These tests need exiftool; .ci/run installs it (libimage-exiftool-perl).")


def exiftool(*args: str | Path) -> str:
    """Run the exiftool command (no shell, absolute paths): its stdout, or the test fails with its stderr."""
    executable = shutil.which("exiftool")
    assert executable, "exiftool is not on PATH; .ci/run installs it (libimage-exiftool-perl)"
    done = subprocess.run([executable, *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_alt_text(path: Path) -> dict[str, str]:
    """What exiftool reads as the description and the IPTC alt text of ``path`` (absent fields left out)."""
    (record,) = json.loads(exiftool("-j", "-XMP-dc:Description", "-XMP-iptcCore:AltTextAccessibility", path))
    return {key: value for key, value in record.items() if key != "SourceFile"}


def alt_text(caption: str) -> dict[str, str]:
    """What :func:`read_alt_text` gives for a file that carries ``caption`` in both fields."""
    return {"Description": caption, "AltTextAccessibility": caption}


def make_image(path: Path, fmt: str | None = None) -> Path:
    """A small picture with detail (a re-encode would change its pixels), as ``fmt`` or as its name says."""
    image = Image.radial_gradient("L").resize((48, 32)).convert("RGB")
    image.paste((200, 30, 30), (0, 0, 16, 16))
    image.save(path, fmt)  # None: the format the file name says
    return path


def pixels(path: Path) -> tuple[str, tuple[int, int], bytes]:
    """The decoded image, for comparing before and after a metadata edit."""
    with Image.open(path) as image:
        return image.mode, image.size, image.tobytes()
