"""Alt text in XMP: what exiftool reads back is the caption, and nothing a person wrote is lost.

Every check reads the files with the exiftool command itself, not with the writer's own reading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from exiftool_reader import EMBEDDABLE, alt_text, exiftool, make_image, pixels, read_alt_text, require_exiftool
from imgcaption.local.metadata import AltTextWriter, ExifTool, ExifToolUnavailable, exiftool_missing
from imgcaption.local.sidecars import SidecarStatus
from imgcaption.results import Caption

QUOTED = 'Ein "Hund" — l\'été, 犬 🐕, $HOME @all 100% \\n back\\slash'


@pytest.fixture(scope="module")
def tool() -> Iterator[ExifTool]:
    require_exiftool()
    with ExifTool() as running:
        yield running


def caption(source: Path | str, text: str = "a dog on a beach") -> Caption:
    return Caption(text=text, source=str(source), model="m", width=4, height=3, elapsed_ms=1)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", list(EMBEDDABLE))
def test_embedding_sets_both_fields_keeps_the_pixels_and_keeps_the_original(
    tool: ExifTool, tmp_path: Path, suffix: str
) -> None:
    image = make_image(tmp_path / f"photo{suffix}")
    before, original = pixels(image), digest(image)

    result = AltTextWriter(tool, embed=True).write(caption(image))

    assert (result.status, result.path) == (SidecarStatus.WRITTEN, image)
    assert read_alt_text(image) == alt_text("a dog on a beach")
    assert pixels(image) == before
    backup = tmp_path / f"photo{suffix}_original"
    assert digest(backup) == original
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([image.name, backup.name])


@pytest.mark.parametrize("suffix", list(EMBEDDABLE))
def test_overwrite_edits_the_image_in_place_with_no_backup(tool: ExifTool, tmp_path: Path, suffix: str) -> None:
    image = make_image(tmp_path / f"photo{suffix}")
    before = pixels(image)
    assert AltTextWriter(tool, embed=True, overwrite=True).write(caption(image)).status is SidecarStatus.WRITTEN
    assert read_alt_text(image) == alt_text("a dog on a beach")
    assert pixels(image) == before
    assert [path.name for path in tmp_path.iterdir()] == [image.name]


def test_an_older_backup_is_never_replaced(tool: ExifTool, tmp_path: Path) -> None:
    """The first original survives later edits: exiftool keeps an existing ``_original`` as it is."""
    image = make_image(tmp_path / "photo.jpg")
    (tmp_path / "photo.jpg_original").write_bytes(b"the camera's file")
    assert AltTextWriter(tool, embed=True).write(caption(image)).status is SidecarStatus.WRITTEN
    assert (tmp_path / "photo.jpg_original").read_bytes() == b"the camera's file"


def test_an_empty_caption_writes_nothing(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "photo.jpg")
    untouched = digest(image)
    for writer in (AltTextWriter(tool), AltTextWriter(tool, embed=True, overwrite=True)):
        assert writer.write(caption(image, "  ")).status is SidecarStatus.CONFLICT
    assert digest(image) == untouched
    assert [path.name for path in tmp_path.iterdir()] == ["photo.jpg"]


def test_a_description_someone_wrote_is_kept_unless_overwrite_is_asked(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "holiday.jpg")
    exiftool("-overwrite_original", "-XMP-dc:Description=Grandma's garden, 1998", image)
    untouched = digest(image)

    kept = AltTextWriter(tool, embed=True).write(caption(image))

    assert (kept.status, kept.detail) == (SidecarStatus.KEPT_EXISTING, "has its own description")
    assert digest(image) == untouched
    assert [path.name for path in tmp_path.iterdir()] == ["holiday.jpg"]
    replaced = AltTextWriter(tool, embed=True, overwrite=True).write(caption(image))
    assert replaced.status is SidecarStatus.WRITTEN
    assert read_alt_text(image) == alt_text("a dog on a beach")


def test_a_field_missing_beside_the_same_caption_is_filled_in(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "photo.png")
    exiftool("-overwrite_original", "-XMP-dc:Description=a dog on a beach", image)
    assert AltTextWriter(tool, embed=True).write(caption(image)).status is SidecarStatus.WRITTEN
    assert read_alt_text(image) == alt_text("a dog on a beach")


@pytest.mark.parametrize("text", ["a dog on a beach", "1.50"])
def test_writing_the_same_caption_again_touches_nothing(tool: ExifTool, tmp_path: Path, text: str) -> None:
    """Caught: comparing exiftool's JSON as parsed numbers (it prints 1.50 unquoted, which would read back as 1.5)."""
    image = make_image(tmp_path / "photo.webp")
    sidecar_image = make_image(tmp_path / "other.jpg")
    assert AltTextWriter(tool, embed=True).write(caption(image, text)).status is SidecarStatus.WRITTEN
    assert AltTextWriter(tool).write(caption(sidecar_image, text)).status is SidecarStatus.WRITTEN
    files = {path: digest(path) for path in tmp_path.iterdir()}

    again = [
        AltTextWriter(tool, embed=True).write(caption(image, text)),
        AltTextWriter(tool).write(caption(sidecar_image, text)),
    ]

    assert [result.status for result in again] == [SidecarStatus.KEPT_EXISTING] * 2
    assert {path: digest(path) for path in tmp_path.iterdir()} == files


def test_an_xmp_sidecar_is_created_next_to_the_image_and_the_image_is_untouched(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "IMG_0042.jpeg")
    untouched = digest(image)

    result = AltTextWriter(tool).write(caption(image))

    assert (result.status, result.path) == (SidecarStatus.WRITTEN, tmp_path / "IMG_0042.xmp")
    assert read_alt_text(tmp_path / "IMG_0042.xmp") == alt_text("a dog on a beach")
    assert digest(image) == untouched
    assert read_alt_text(image) == {}


def test_an_existing_xmp_sidecar_keeps_its_rating_keywords_and_title(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "photo.jpg")
    sidecar = tmp_path / "photo.xmp"
    exiftool("-XMP-xmp:Rating=4", "-XMP-dc:Subject=dog", "-XMP-dc:Subject=beach", "-XMP-dc:Title=Rex", sidecar)

    assert AltTextWriter(tool).write(caption(image)).status is SidecarStatus.WRITTEN

    assert read_alt_text(sidecar) == alt_text("a dog on a beach")
    (kept,) = json.loads(exiftool("-j", "-XMP-xmp:Rating", "-XMP-dc:Subject", "-XMP-dc:Title", sidecar))
    assert (kept["Rating"], kept["Subject"], kept["Title"]) == (4, ["dog", "beach"], "Rex")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photo.jpg", "photo.xmp"]


def test_a_sidecar_with_its_own_description_is_kept_unless_overwrite(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "photo.jpg")
    sidecar = tmp_path / "photo.xmp"
    exiftool("-XMP-dc:Description=my words", "-XMP-xmp:Rating=2", sidecar)
    assert AltTextWriter(tool).write(caption(image)).status is SidecarStatus.KEPT_EXISTING
    assert read_alt_text(sidecar) == {"Description": "my words"}
    assert AltTextWriter(tool, overwrite=True).write(caption(image)).status is SidecarStatus.WRITTEN
    assert read_alt_text(sidecar) == alt_text("a dog on a beach")
    assert "Rating" in exiftool("-j", "-XMP-xmp:Rating", sidecar)


@pytest.mark.parametrize("embed", [True, False], ids=["embedded", "sidecar"])
def test_unicode_quotes_and_shell_characters_survive_exactly(tool: ExifTool, tmp_path: Path, embed: bool) -> None:
    image = make_image(tmp_path / "photo.png")
    writer = AltTextWriter(tool, embed=embed)
    assert writer.write(caption(image, QUOTED)).status is SidecarStatus.WRITTEN
    assert read_alt_text(writer.path_for(str(image))) == alt_text(QUOTED)


def test_a_line_break_in_a_caption_stays_text_and_never_becomes_an_exiftool_option(
    tool: ExifTool, tmp_path: Path
) -> None:
    """Caught: sending the caption as an argument line (``-Description=...``), which splits it into options."""
    image = make_image(tmp_path / "photo.jpg")
    elsewhere = tmp_path / "elsewhere"
    text = f"two lines\n-o\n{elsewhere}/copy.jpg\n-Rating=1"
    assert AltTextWriter(tool, embed=True, overwrite=True).write(caption(image, text)).status is SidecarStatus.WRITTEN
    assert read_alt_text(image) == alt_text(text)
    assert not elsewhere.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["photo.jpg"]


@pytest.mark.parametrize("name", ["my holiday photo.jpg", "-leading-dash.png", "--help.webp", "café ☕ 東京.tif"])
def test_odd_file_names_are_written_like_any_other(tool: ExifTool, tmp_path: Path, name: str) -> None:
    image = make_image(tmp_path / name)
    for writer in (AltTextWriter(tool), AltTextWriter(tool, embed=True, overwrite=True)):
        result = writer.write(caption(image))
        assert result.status is SidecarStatus.WRITTEN, result.detail
        assert read_alt_text(writer.path_for(str(image))) == alt_text("a dog on a beach")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([name, Path(name).stem + ".xmp"])


def test_symlinks_are_never_written_through(tool: ExifTool, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.xmp"
    exiftool("-XMP-xmp:Rating=1", target)
    album = tmp_path / "album"
    album.mkdir()
    image = make_image(album / "photo.jpg")
    (album / "photo.xmp").symlink_to(target)
    linked_image = album / "linked.jpg"
    linked_image.symlink_to(make_image(outside / "real.jpg"))
    untouched = {path: digest(path) for path in (target, outside / "real.jpg")}

    for overwrite in (False, True):
        assert AltTextWriter(tool, overwrite=overwrite).write(caption(image)).status is SidecarStatus.CONFLICT
        embedded = AltTextWriter(tool, embed=True, overwrite=overwrite).write(caption(linked_image))
        assert embedded.status is SidecarStatus.CONFLICT

    assert {path: digest(path) for path in untouched} == untouched
    assert sorted(path.name for path in outside.iterdir()) == ["real.jpg", "target.xmp"]


def test_two_images_of_one_name_never_share_an_xmp_sidecar(tool: ExifTool, tmp_path: Path) -> None:
    writer = AltTextWriter(tool, overwrite=True)
    first = writer.write(caption(make_image(tmp_path / "a.jpg"), "first"))
    second = writer.write(caption(make_image(tmp_path / "a.png"), "second"))
    assert (first.status, second.status) == (SidecarStatus.WRITTEN, SidecarStatus.CONFLICT)
    assert read_alt_text(tmp_path / "a.xmp") == alt_text("first")


def test_remote_and_relative_sources_are_not_local_files(tool: ExifTool) -> None:
    for source in ("s3://bucket/a.jpg", "relative/a.jpg"):
        for writer in (AltTextWriter(tool), AltTextWriter(tool, embed=True)):
            assert writer.write(caption(source)).status is SidecarStatus.NOT_LOCAL


def test_formats_without_tested_embedding_are_refused_and_left_alone(tool: ExifTool, tmp_path: Path) -> None:
    image = make_image(tmp_path / "scan.bmp", "BMP")
    untouched = digest(image)
    result = AltTextWriter(tool, embed=True, overwrite=True).write(caption(image))
    assert result.status is SidecarStatus.CONFLICT and "--xmp" in result.detail
    assert digest(image) == untouched


def test_a_file_exiftool_cannot_write_is_an_error_that_quotes_exiftool(tool: ExifTool, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    result = AltTextWriter(tool, embed=True, overwrite=True).write(caption(broken))
    assert (result.status, result.detail) == (SidecarStatus.ERROR, "Error: File format error")
    assert broken.read_bytes() == b"\xff\xd8 not really a jpeg"
    assert [path.name for path in tmp_path.iterdir()] == ["broken.jpg"]


def test_a_missing_exiftool_says_how_to_install_it() -> None:
    problem = exiftool_missing("exiftool-that-is-not-installed")
    assert problem and "apt-get install libimage-exiftool-perl" in problem
    with pytest.raises(ExifToolUnavailable, match="libimage-exiftool-perl"):
        ExifTool("exiftool-that-is-not-installed").start()
