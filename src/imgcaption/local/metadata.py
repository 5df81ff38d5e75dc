"""Alt text where photo tools read it: XMP ``dc:description`` and IPTC ``AltTextAccessibility`` (2021).

``dc:description`` is the caption field of photo managers (digiKam, darktable, Lightroom); the IPTC 2021 field
``Iptc4xmpCore:AltTextAccessibility`` is the one meant for alt text, which web CMSs read. Both are written as the
``x-default`` language, either into an XMP sidecar (``photo.xmp`` next to ``photo.jpg``, merged into an existing
one so its ratings and keywords stay) or into the image itself (JPEG, PNG, WebP, TIFF: exiftool edits the
metadata and leaves the encoded pixels as they are).

exiftool does the reading and writing (through PyExifTool, one process kept open for the run). A user's own
description is never replaced unless asked: the fields are written only where they are absent or already hold
this caption. Without ``overwrite`` an embedded write also keeps the untouched image as ``photo.jpg_original``
(exiftool's backup; an older backup is never replaced). As with text sidecars, nothing is written outside the
image's directory and a symlink is never written through. Every write is read back and compared.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from imgcaption.local.sidecars import SidecarResult, SidecarStatus
from imgcaption.results import Caption

if TYPE_CHECKING:
    import exiftool  # type: ignore[import-untyped]

DESCRIPTION_TAG = "XMP-dc:Description"
ALT_TEXT_TAG = "XMP-iptcCore:AltTextAccessibility"
ALT_TEXT_TAGS = (DESCRIPTION_TAG, ALT_TEXT_TAG)
XMP_SUFFIX = ".xmp"
EMBEDDABLE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"})
INSTALL_EXIFTOOL = (
    "install exiftool: `apt-get install libimage-exiftool-perl` (Debian, Ubuntu), `brew install exiftool` (macOS), "
    "or see https://exiftool.org/install.html"
)
INSTALL_PYEXIFTOOL = "install PyExifTool: pip install 'imgcaption-toolkit[xmp]'"


class ExifToolUnavailable(RuntimeError):
    """exiftool or PyExifTool is missing, or cannot write alt text; the message says what to install."""


class ExifToolFailed(RuntimeError):
    """exiftool refused or failed one file; the message is exiftool's own."""


def xmp_sidecar_path(image_path: str | os.PathLike[str]) -> Path:
    """``dir/photo.jpg`` → ``dir/photo.xmp``: same directory, same stem, by construction."""
    image = Path(image_path)
    return image.with_name(image.stem + XMP_SUFFIX)


def exiftool_missing(executable: str = "exiftool") -> str | None:
    """Why alt text cannot be written here (what to install), or ``None``: cheap, starts nothing."""
    if shutil.which(executable) is None:
        return f"--xmp and --embed need exiftool, which is not on PATH; {INSTALL_EXIFTOOL}"
    try:
        import exiftool  # noqa: F401
    except ImportError:
        return f"--xmp and --embed need the PyExifTool package; {INSTALL_PYEXIFTOOL}"
    return None


def _argument(path: Path) -> bytes:
    """A path as one line of exiftool's argument stream: absolute, so never an option (``-x``) or a comment."""
    raw = os.fsencode(path)
    if not raw.startswith(b"/") or b"\n" in raw or b"\r" in raw:
        raise ValueError(f"not an absolute path on one line: {path!r}")
    return raw


def _messages(stderr: bytes) -> str:
    return "; ".join(line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip())


class ExifTool:
    """One exiftool process for a run, spoken to in arguments it cannot misread.

    exiftool reads its arguments one per line, so no caption is ever sent as an argument: the text goes into a
    private file that exiftool reads with ``-TAG<=FILE`` (byte for byte: quotes, ``$``, line breaks and all).
    Paths are absolute and must fit on one line; :class:`AltTextWriter` refuses the rare name that does not.
    """

    def __init__(self, executable: str = "exiftool") -> None:
        self.executable = executable
        self._process: exiftool.ExifTool | None = None
        self._values: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> ExifTool:
        """Start exiftool and check that it knows the IPTC 2021 alt text field; :exc:`ExifToolUnavailable` if not."""
        problem = exiftool_missing(self.executable)
        if problem:
            raise ExifToolUnavailable(problem)
        import exiftool

        process = exiftool.ExifTool(executable=self.executable, common_args=[], encoding="utf-8")
        try:
            process.run()
        except (OSError, RuntimeError, exiftool.exceptions.ExifToolException) as exc:
            raise ExifToolUnavailable(f"cannot start {self.executable}: {exc}; {INSTALL_EXIFTOOL}") from exc
        self._process = process
        try:
            self._check_alt_text_tag()
            self._values = tempfile.TemporaryDirectory(prefix="imgcaption-exiftool-")
            if "%" in self._values.name:  # -TAG<=FILE reads %d, %f, %e in FILE as parts of the image's name
                raise ExifToolUnavailable(f"the temporary directory {self._values.name} has a '%'; set TMPDIR")
        except BaseException:
            self.close()
            raise
        return self

    def _check_alt_text_tag(self) -> None:
        listed = self._execute(b"-listw", b"-XMP-iptcCore:All").decode("utf-8", "replace").split()
        if ALT_TEXT_TAG.split(":")[1] not in listed:
            raise ExifToolUnavailable(
                f"exiftool {self.version} cannot write {ALT_TEXT_TAG} (IPTC 2021); use exiftool 12.30 or newer "
                f"({INSTALL_EXIFTOOL})"
            )

    @property
    def version(self) -> str:
        return str(self._process.version) if self._process else "(not started)"

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.running:
            process.terminate()
        values, self._values = self._values, None
        if values is not None:
            values.cleanup()

    def __enter__(self) -> ExifTool:
        return self if self._process else self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def read(self, path: Path) -> dict[str, str]:
        """The alt text fields ``path`` has (``x-default``), by tag name; absent fields are left out."""
        output = self._execute(b"-json", b"-G1", *(f"-{tag}".encode() for tag in ALT_TEXT_TAGS), _argument(path))
        # exiftool writes number-like text unquoted; keeping the literal keeps "1.50" from becoming 1.5.
        records: list[dict[str, Any]] = json.loads(output, parse_int=str, parse_float=str)
        return {tag: _as_text(records[0][tag]) for tag in ALT_TEXT_TAGS if tag in records[0]}

    def write(self, path: Path, text: str, *, keep_original: bool) -> None:
        """Set both fields of ``path`` to ``text``, creating an XMP file if ``path`` is a missing ``.xmp``."""
        if self._values is None:
            raise ExifToolFailed("exiftool is not running")
        value = Path(self._values.name) / "value.txt"
        value.write_bytes(text.encode("utf-8"))
        backup = [] if keep_original else [b"-overwrite_original"]
        self._execute(*backup, *(f"-{tag}<={value}".encode() for tag in ALT_TEXT_TAGS), _argument(path))

    def _execute(self, *arguments: bytes) -> bytes:
        if self._process is None:
            raise ExifToolFailed("exiftool is not running")
        import exiftool

        try:
            output: bytes = self._process.execute(*arguments, raw_bytes=True)
        except (OSError, exiftool.exceptions.ExifToolException) as exc:
            raise ExifToolFailed(f"exiftool stopped: {exc}") from exc
        errors = _messages(self._process.last_stderr or b"")
        if self._process.last_status != 0:
            raise ExifToolFailed(errors or f"exiftool exited with status {self._process.last_status}")
        return output


def _as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass
class AltTextWriter:
    """Writes each successful caption as alt text: into ``photo.xmp`` beside the image, or with ``embed`` into it.

    :attr:`written` remembers this run's files, so ``photo.jpg`` and ``photo.png`` never share one sidecar.
    """

    exiftool: ExifTool
    embed: bool = False
    overwrite: bool = False
    written: set[Path] = field(default_factory=set)

    def path_for(self, image_path: str) -> Path:
        return Path(image_path) if self.embed else xmp_sidecar_path(image_path)

    def write(self, caption: Caption) -> SidecarResult:
        source = caption.source
        if "://" in source or not os.path.isabs(source):
            return SidecarResult(SidecarStatus.NOT_LOCAL, None, source)
        target = self.path_for(source)
        refusal = self._refusal(Path(source), target)
        if refusal:
            return SidecarResult(SidecarStatus.CONFLICT, target, refusal)
        text = caption.text
        if not text.strip():
            return SidecarResult(SidecarStatus.CONFLICT, target, "the caption is empty")
        try:
            existing = self.exiftool.read(target) if target.exists() else {}
            if all(existing.get(tag) == text for tag in ALT_TEXT_TAGS):
                return SidecarResult(SidecarStatus.KEPT_EXISTING, target, "already has this alt text")
            if not self.overwrite and _differs(existing, text):
                return SidecarResult(SidecarStatus.KEPT_EXISTING, target, "has its own description")
            self.exiftool.write(target, text, keep_original=self.embed and not self.overwrite)
            self.written.add(target)
            read_back = self.exiftool.read(target)
        except ExifToolFailed as exc:  # exiftool names the file; the result already does
            return SidecarResult(SidecarStatus.ERROR, target, str(exc).replace(f" - {target}", ""))
        except OSError as exc:
            return SidecarResult(SidecarStatus.ERROR, target, exc.strerror or str(exc))
        if _differs(read_back, text) or len(read_back) < len(ALT_TEXT_TAGS):
            return SidecarResult(SidecarStatus.ERROR, target, f"exiftool reads back {read_back!r}")
        return SidecarResult(SidecarStatus.WRITTEN, target)

    def _refusal(self, image: Path, target: Path) -> str | None:
        """Why ``target`` must not be written, or ``None``."""
        if b"\n" in os.fsencode(target) or b"\r" in os.fsencode(target):
            return "has a line break in its name, which exiftool's argument lines cannot carry"
        if self.embed and image.suffix.lower() not in EMBEDDABLE_SUFFIXES:
            return "alt text is embedded in JPEG, PNG, WebP and TIFF files; --xmp writes a sidecar for any image"
        if not self.embed and target.suffix.lower() == image.suffix.lower():
            return "the image itself has the XMP sidecar name"
        if not self.embed and target in self.written:
            return "already written for another image in this run"
        if target.is_symlink():
            return "is a symlink; refusing to write through it"
        if (target.exists() or self.embed) and not target.is_file():
            return "exists and is not a regular file" if target.exists() else "does not exist"
        return None


def _differs(fields: dict[str, str], text: str) -> bool:
    return any(value != text for value in fields.values())
