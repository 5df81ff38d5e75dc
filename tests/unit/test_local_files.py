"""The local file source: what counts as an input, what is skipped, and how inputs are identified."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagefactory import encode
from imgcaption.errors import ImageNotFoundError, ImageTooLargeError
from imgcaption.local.files import LocalFileSource, looks_like_image, uri_for
from imgcaption.ports import ImageRef, Skipped


def photo(path: Path, color: str = "red", fmt: str = "JPEG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(Image.new("RGB", (24, 16), color), fmt))
    return path


@pytest.fixture
def album(tmp_path: Path) -> Path:
    """album/{a.jpg, b.png, notes.txt, trip/{c.jpg, deeper/d.webp}}"""
    root = tmp_path / "album"
    photo(root / "a.jpg")
    photo(root / "b.png", fmt="PNG")
    (root / "notes.txt").write_text("not a photo")
    photo(root / "trip" / "c.jpg")
    photo(root / "trip" / "deeper" / "d.webp", fmt="WEBP")
    return root


def listed(source: LocalFileSource) -> tuple[list[str], list[str]]:
    """(input file names, skipped names) in the order the source yields them."""
    items = list(source.iter_refs())
    return (
        [Path(item.uri).name for item in items if isinstance(item, ImageRef)],
        [Path(item.uri).name for item in items if isinstance(item, Skipped)],
    )


def test_a_directory_yields_its_images_sorted_and_skips_the_rest(album: Path) -> None:
    images, skipped = listed(LocalFileSource([album]))
    assert images == ["a.jpg", "b.png"]
    assert skipped == ["notes.txt", "trip"]  # the subdirectory is reported, not silently ignored


def test_recursive_descends_into_subdirectories(album: Path) -> None:
    images, skipped = listed(LocalFileSource([album], recursive=True))
    assert images == ["a.jpg", "b.png", "c.jpg", "d.webp"]
    assert skipped == ["notes.txt"]


def test_skipped_files_say_why(album: Path) -> None:
    skipped = [item for item in LocalFileSource([album]).iter_refs() if isinstance(item, Skipped)]
    assert {Path(item.uri).name: item.reason for item in skipped} == {
        "notes.txt": "not an image",
        "trip": "directory (use --recursive to include it)",
    }


def test_a_file_named_explicitly_is_an_input_even_if_it_is_not_an_image(album: Path) -> None:
    items = list(LocalFileSource([album, album / "notes.txt"]).iter_refs())
    notes = [item for item in items if item.uri.endswith("notes.txt")]
    assert notes == [ImageRef(uri_for(album / "notes.txt"), etag=notes[0].etag, size=11, explicit=True)]
    # the walk found it first, but naming it wins: it is an input (that will fail), not a skip


def test_walked_images_are_marked_as_found_not_named(album: Path) -> None:
    refs = [item for item in LocalFileSource([album, album / "a.jpg"]).iter_refs() if isinstance(item, ImageRef)]
    assert [(Path(ref.uri).name, ref.explicit) for ref in refs] == [("a.jpg", False), ("b.png", False)]


def test_each_file_is_yielded_once_however_often_it_is_reached(album: Path) -> None:
    images, _ = listed(LocalFileSource([album / "a.jpg", album, str(album) + "/../album/a.jpg"], recursive=True))
    assert images == ["a.jpg", "b.png", "c.jpg", "d.webp"]


def test_glob_patterns_are_expanded_like_the_shell_would_but_non_images_they_match_are_skipped(album: Path) -> None:
    images, skipped = listed(LocalFileSource([str(album / "*")]))
    assert images == ["a.jpg", "b.png", "c.jpg"]  # album/trip matched, and a matched directory is listed
    assert skipped == ["notes.txt", "deeper"]


def test_double_star_globs_reach_any_depth(album: Path) -> None:
    images, _ = listed(LocalFileSource([str(album / "**" / "*.jpg")]))
    assert images == ["a.jpg", "c.jpg"]


def test_a_glob_that_matches_nothing_is_an_input_that_fails_to_read(tmp_path: Path) -> None:
    source = LocalFileSource([str(tmp_path / "*.jpg")])
    (ref,) = source.iter_refs()
    assert isinstance(ref, ImageRef)
    with pytest.raises(ImageNotFoundError, match="no file matches"):
        source.read(ref, max_bytes=1000)


def test_a_missing_file_is_an_input_that_fails_to_read(tmp_path: Path) -> None:
    source = LocalFileSource([tmp_path / "gone.jpg"])
    (ref,) = source.iter_refs()
    assert isinstance(ref, ImageRef)
    with pytest.raises(ImageNotFoundError):
        source.read(ref, max_bytes=1000)


def test_inputs_are_identified_by_absolute_path_wherever_the_command_runs(
    album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(album.parent)
    (ref,) = LocalFileSource(["album/a.jpg"]).iter_refs()
    assert ref.uri == str(album / "a.jpg")
    assert os.path.isabs(ref.uri)


def test_the_content_tag_changes_when_the_file_is_rewritten(album: Path) -> None:
    (before,) = LocalFileSource([album / "a.jpg"]).iter_refs()
    photo(album / "a.jpg", "blue")
    os.utime(album / "a.jpg", ns=(1, 2))
    (after,) = LocalFileSource([album / "a.jpg"]).iter_refs()
    assert isinstance(before, ImageRef) and isinstance(after, ImageRef)
    assert before.uri == after.uri
    assert before.etag != after.etag


def test_images_without_an_image_extension_are_recognised_by_their_first_bytes(tmp_path: Path) -> None:
    photo(tmp_path / "IMG_0001", fmt="JPEG")
    photo(tmp_path / "scan.dat", fmt="PNG")
    (tmp_path / "README").write_text("hello")
    assert looks_like_image(tmp_path / "IMG_0001")
    assert looks_like_image(tmp_path / "scan.dat")
    assert not looks_like_image(tmp_path / "README")
    images, skipped = listed(LocalFileSource([tmp_path]))
    assert (images, skipped) == (["IMG_0001", "scan.dat"], ["README"])


def test_a_corrupt_file_with_an_image_extension_is_an_input_so_its_failure_is_recorded(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    images, _ = listed(LocalFileSource([tmp_path]))
    assert images == ["broken.jpg"]


def test_reading_refuses_files_over_the_byte_cap_by_stat_before_open(
    album: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches the size check from ``stat`` going: the file would be opened (and 11 bytes read) to be refused."""
    source = LocalFileSource([album / "a.jpg"])
    (ref,) = source.iter_refs()
    assert isinstance(ref, ImageRef)
    content = (album / "a.jpg").read_bytes()
    opened: list[Path] = []
    real_open = Path.open

    def recording_open(path: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Path, "open", recording_open)
    with pytest.raises(ImageTooLargeError, match=f"{len(content)} bytes exceeds the byte cap of 10"):
        source.read(ref, max_bytes=10)
    assert opened == []
    assert source.read(ref, max_bytes=len(content)) == content  # exactly at the cap: read whole
    assert opened == [album / "a.jpg"]


def test_directory_symlinks_are_not_followed(album: Path, tmp_path: Path) -> None:
    (album / "loop").symlink_to(album, target_is_directory=True)
    items = list(LocalFileSource([album], recursive=True).iter_refs())
    assert Skipped(uri_for(album / "loop"), "directory symlink (not followed)") in items
    assert len([item for item in items if isinstance(item, ImageRef)]) == 4


def test_an_unreadable_directory_is_reported_not_fatal(album: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = album / "trip"
    real_scandir = os.scandir

    def scandir(path: Path) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(LocalFileSource([album], recursive=True).iter_refs())
    assert Skipped(uri_for(locked), "cannot list directory: Permission denied") in items
    assert [Path(item.uri).name for item in items if isinstance(item, ImageRef)] == ["a.jpg", "b.png"]
