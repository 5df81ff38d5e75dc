"""The local file source: paths, directories (optionally recursive) and glob patterns, as :class:`ImageRef` inputs.

A file the user names is always an input, so a bad one ends as a recorded failure. A file found while walking a
directory is an input only if it looks like an image (by extension, or by its first bytes when the extension is
unknown); anything else comes back as :class:`Skipped`, so a ``notes.txt`` among the photos is reported, not an error.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from imgcaption.errors import ImageNotFoundError
from imgcaption.images import image_format_from_magic
from imgcaption.ports import ImageRef, Skipped

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".dib", ".tif", ".tiff",
        ".heic", ".heif", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k",
    }
)  # fmt: skip
"""Extensions taken as images while walking a directory without reading them."""

_GLOB_CHARS = frozenset("*?[")


def has_glob(pattern: str) -> bool:
    return any(char in pattern for char in _GLOB_CHARS)


def looks_like_image(path: Path) -> bool:
    """True for an image extension, or for an unknown one whose first bytes are an image signature."""
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return image_format_from_magic(head) is not None


def uri_for(path: str | os.PathLike[str]) -> str:
    """The stable identity of a local file: its absolute, normalised path (symlinks kept as named)."""
    return os.path.abspath(os.fspath(Path(path).expanduser()))


def _content_tag(info: os.stat_result) -> str:
    """Modification time and size: changes when the file is edited, so ``--skip-existing`` captions it again."""
    return f"{info.st_mtime_ns:x}-{info.st_size:x}"


class LocalFileSource:
    """Inputs from local paths, in the order given; directories listed sorted by name. Each file is yielded once."""

    def __init__(self, paths: Iterable[str | os.PathLike[str]], *, recursive: bool = False) -> None:
        self.paths = [os.fspath(path) for path in paths]
        self.recursive = recursive

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        # A file named on its own is an input even where a directory walk would have skipped it.
        named = {uri_for(path) for path in self.paths if not Path(path).expanduser().is_dir()}
        seen: set[str] = set()
        for given in self.paths:
            for item in self._expand(given):
                if item.uri in seen or (isinstance(item, Skipped) and item.uri in named):
                    continue
                seen.add(item.uri)
                yield item

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        from imgcaption.images import read_capped

        if has_glob(ref.uri) and not Path(ref.uri).exists():
            raise ImageNotFoundError("no file matches this pattern", source=ref.uri)
        return read_capped(ref.uri, ref.uri, max_bytes)

    # ---------------------------------------------------------------- internals

    def _expand(self, given: str) -> Iterator[ImageRef | Skipped]:
        expanded = os.path.expanduser(given)
        if has_glob(expanded) and not Path(expanded).exists():
            matches = sorted(glob.glob(expanded, recursive=True))
            if not matches:
                yield ImageRef(uri_for(expanded), explicit=True)  # reading it reports "no file matches"
                return
            for match in matches:  # found by the pattern, not named: non-images are skipped, not failed
                yield from self._expand_existing(Path(match), explicit=False)
            return
        yield from self._expand_existing(Path(expanded), explicit=True)

    def _expand_existing(self, path: Path, *, explicit: bool) -> Iterator[ImageRef | Skipped]:
        if path.is_dir():
            yield from self._walk(path)
            return
        if not explicit and not looks_like_image(path):
            yield Skipped(uri_for(path), "not an image")
            return
        info = _stat(path)
        yield ImageRef(
            uri_for(path),
            etag=_content_tag(info) if info is not None else None,
            size=info.st_size if info is not None else None,
            explicit=explicit,
        )

    def _walk(self, directory: Path) -> Iterator[ImageRef | Skipped]:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError as exc:
            yield Skipped(uri_for(directory), f"cannot list directory: {exc.strerror or exc}")
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file()
            except OSError as exc:
                yield Skipped(uri_for(path), f"cannot inspect: {exc.strerror or exc}")
                continue
            if is_dir:
                if self.recursive:
                    yield from self._walk(path)
                else:
                    yield Skipped(uri_for(path), "directory (use --recursive to include it)")
            elif not is_file:
                if entry.is_symlink():
                    reason = "directory symlink (not followed)" if path.is_dir() else "broken symlink"
                else:
                    reason = "not a regular file"
                yield Skipped(uri_for(path), reason)
            else:
                yield from self._expand_existing(path, explicit=False)


def _stat(path: Path) -> os.stat_result | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None
