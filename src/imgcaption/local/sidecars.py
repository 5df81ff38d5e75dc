"""Sidecar captions: ``photo.txt`` next to ``photo.jpg`` (the layout image-dataset tools read).

The extension is a choice (``.caption`` is what kohya's training scripts read), and the text can carry a fixed
prefix or suffix, such as a LoRA trigger word: ``sks_dog, a dog sitting on a couch``.

An existing file is never replaced unless asked (it may be the user's own notes), a file this run already wrote
for another image (``photo.jpg`` and ``photo.png``) is never replaced at all, and nothing is written anywhere but
the image's own directory: the sidecar path is derived from the image path, and a symlink in its place is refused.
Writes are atomic (temporary file + rename), so a killed run never leaves half a caption.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, Outcome
from imgcaption.results import Caption

SIDECAR_SUFFIX = ".txt"


class SidecarStatus(enum.Enum):
    WRITTEN = "written"
    KEPT_EXISTING = "kept existing"
    CONFLICT = "conflict"
    NOT_LOCAL = "not a local file"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SidecarResult:
    status: SidecarStatus
    path: Path | None
    detail: str = ""


def sidecar_path(image_path: str | os.PathLike[str], extension: str = SIDECAR_SUFFIX) -> Path:
    """``dir/photo.jpg`` → ``dir/photo.txt``: same directory, same stem, by construction."""
    image = Path(image_path)
    return image.with_name(image.stem + extension)


def valid_extension(extension: str) -> bool:
    """``.txt``, ``.caption``: a dot and a plain name, so the sidecar stays in the image's directory."""
    name = extension[1:]
    return extension.startswith(".") and bool(name) and name.replace("_", "").replace("-", "").isalnum()


@dataclass
class SidecarWriter:
    """Writes one sidecar per successful caption; :attr:`written` remembers this run's files."""

    overwrite: bool = False
    extension: str = SIDECAR_SUFFIX
    prefix: str = ""
    suffix: str = ""
    written: set[Path] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not valid_extension(self.extension):
            raise ValueError(f"a sidecar extension is a dot and a name, such as .txt or .caption: {self.extension!r}")

    def path_for(self, image_path: str) -> Path:
        return sidecar_path(image_path, self.extension)

    def write(self, caption: Caption) -> SidecarResult:
        source = caption.source
        if "://" in source or not os.path.isabs(source):
            return SidecarResult(SidecarStatus.NOT_LOCAL, None, source)
        target = self.path_for(source)
        if target.suffix.lower() == Path(source).suffix.lower():
            return SidecarResult(SidecarStatus.CONFLICT, target, "the image itself has the sidecar name")
        if target in self.written:
            return SidecarResult(SidecarStatus.CONFLICT, target, "already written for another image in this run")
        if target.is_symlink():
            return SidecarResult(SidecarStatus.CONFLICT, target, "is a symlink; refusing to write through it")
        if target.exists() and not target.is_file():
            return SidecarResult(SidecarStatus.CONFLICT, target, "exists and is not a regular file")
        content = f"{self.prefix}{caption.text}{self.suffix}\n"
        try:
            if self.overwrite:
                _replace_atomically(target, content)
            else:
                if target.exists():
                    return SidecarResult(SidecarStatus.KEPT_EXISTING, target)
                _create_atomically(target, content)
        except FileExistsError:
            return SidecarResult(SidecarStatus.KEPT_EXISTING, target)
        except OSError as exc:
            return SidecarResult(SidecarStatus.ERROR, target, exc.strerror or str(exc))
        self.written.add(target)
        return SidecarResult(SidecarStatus.WRITTEN, target)


@dataclass
class SkippingCaptionedSidecars:
    """A store that also counts an image as captioned when its sidecar exists (``--skip-existing --sidecar``).

    Captions written by another tool, or by hand, are kept and their images not captioned again.
    """

    store: CaptionStore
    sidecars: SidecarWriter

    def record(self, outcomes: Sequence[Outcome]) -> None:
        self.store.record(outcomes)

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        local = "://" not in ref.uri and os.path.isabs(ref.uri)
        return (local and self.sidecars.path_for(ref.uri).is_file()) or self.store.has_caption(ref, signature)

    def outcomes(self) -> Iterable[Outcome]:
        return self.store.outcomes()


@functools.cache
def _file_mode() -> int:
    """What ``open()`` would give a new file under the current umask (mkstemp alone gives 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _write_temp(directory: Path, content: str) -> Path:
    handle, name = tempfile.mkstemp(prefix=".imgcaption-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(content)
            os.fchmod(stream.fileno(), _file_mode())
    except BaseException:
        with contextlib.suppress(OSError):
            Path(name).unlink()
        raise
    return Path(name)


def _replace_atomically(target: Path, content: str) -> None:
    temporary = _write_temp(target.parent, content)
    try:
        temporary.replace(target)  # replaces a file, never follows a link at target
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def _create_atomically(target: Path, content: str) -> None:
    """Create ``target`` only if absent, with complete content: ``link`` fails instead of overwriting."""
    temporary = _write_temp(target.parent, content)
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: exclusive create, then write (not atomic, still never overwrites).
        with target.open("x", encoding="utf-8") as stream:
            stream.write(content)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()
