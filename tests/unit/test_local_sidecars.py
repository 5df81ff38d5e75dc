"""Sidecar files: next to the image, never clobbering what a person wrote, never anywhere else."""

from __future__ import annotations

from pathlib import Path

from imgcaption.local.sidecars import SidecarStatus, SidecarWriter, sidecar_path
from imgcaption.results import Caption


def caption(source: Path | str, text: str = "a dog on a beach") -> Caption:
    return Caption(text=text, source=str(source), model="m", width=4, height=3, elapsed_ms=1)


def test_the_sidecar_is_the_image_name_with_txt(tmp_path: Path) -> None:
    result = SidecarWriter().write(caption(tmp_path / "IMG_1.jpeg"))
    assert (result.status, result.path) == (SidecarStatus.WRITTEN, tmp_path / "IMG_1.txt")
    assert (tmp_path / "IMG_1.txt").read_text() == "a dog on a beach\n"


def test_an_existing_file_is_kept_unless_overwrite_is_asked(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("my own notes")
    kept = SidecarWriter().write(caption(tmp_path / "a.jpg"))
    assert kept.status is SidecarStatus.KEPT_EXISTING
    assert (tmp_path / "a.txt").read_text() == "my own notes"
    replaced = SidecarWriter(overwrite=True).write(caption(tmp_path / "a.jpg"))
    assert replaced.status is SidecarStatus.WRITTEN
    assert (tmp_path / "a.txt").read_text() == "a dog on a beach\n"


def test_two_images_with_one_stem_do_not_overwrite_each_other_even_with_overwrite(tmp_path: Path) -> None:
    writer = SidecarWriter(overwrite=True)
    assert writer.write(caption(tmp_path / "a.jpg", "first")).status is SidecarStatus.WRITTEN
    assert writer.write(caption(tmp_path / "a.png", "second")).status is SidecarStatus.CONFLICT
    assert (tmp_path / "a.txt").read_text() == "first\n"


def test_a_symlink_in_the_sidecars_place_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.txt").symlink_to(outside)
    for overwrite in (False, True):
        assert SidecarWriter(overwrite=overwrite).write(caption(images / "a.jpg")).status is SidecarStatus.CONFLICT
    assert outside.read_text() == "precious"


def test_the_sidecar_is_always_in_the_images_own_directory(tmp_path: Path) -> None:
    for name in ("a.jpg", "..jpg", ".jpg", "a.b.c.jpg", "noext", "with space.jpeg", "x.JPG"):
        assert sidecar_path(tmp_path / name).parent == tmp_path, name
    assert sidecar_path(tmp_path / ".jpg").name == ".jpg.txt"


def test_only_local_absolute_paths_get_sidecars(tmp_path: Path) -> None:
    assert SidecarWriter().write(caption("s3://bucket/a.jpg")).status is SidecarStatus.NOT_LOCAL
    assert SidecarWriter().write(caption("relative/a.jpg")).status is SidecarStatus.NOT_LOCAL
    assert list(tmp_path.iterdir()) == []


def test_an_image_already_named_txt_is_not_replaced_by_its_own_caption(tmp_path: Path) -> None:
    image = tmp_path / "scan.txt"
    image.write_bytes(b"\x89PNG...")
    assert SidecarWriter(overwrite=True).write(caption(image)).status is SidecarStatus.CONFLICT
    assert image.read_bytes() == b"\x89PNG..."


def test_a_directory_that_cannot_be_written_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = SidecarWriter().write(caption(tmp_path / "missing-dir" / "a.jpg"))
    assert result.status is SidecarStatus.ERROR
    assert result.detail


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("old")
    SidecarWriter().write(caption(tmp_path / "a.jpg"))
    SidecarWriter().write(caption(tmp_path / "b.jpg"))
    SidecarWriter(overwrite=True).write(caption(tmp_path / "b.jpg"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.txt", "b.txt"]
