"""``imgcaption caption --xmp --embed``: alt text where photo tools read it, as exiftool itself reads it back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from exiftool_reader import EMBEDDABLE, alt_text, exiftool, make_image, pixels, read_alt_text, require_exiftool
from imgcaption_cli.main import cli

ODD_NAMES = ("-leading-dash.jpg", "my holiday photo.png", "été à Paris ☀.webp", "scan 01.tif")


@pytest.fixture(autouse=True)
def _exiftool() -> None:
    require_exiftool()


@pytest.fixture
def album(tmp_path: Path) -> Path:
    folder = tmp_path / "album"
    folder.mkdir()
    for stem, suffix in zip("abcd", EMBEDDABLE, strict=True):  # a.jpg, b.png, ...: one XMP sidecar each
        make_image(folder / f"{stem}{suffix}")
    return folder


def run(tiny_model_dir: Path, *args: str | Path, path: str | None = None) -> Result:
    env = {"IMGCAPTION_MODEL": str(tiny_model_dir), "IMGCAPTION_THREADS": "1"}
    if path is not None:
        env["PATH"] = path
    return CliRunner().invoke(cli, ["caption", "--format", "jsonl", *map(str, args)], env=env, catch_exceptions=False)


def captions(result: Result) -> dict[Path, str]:
    records = (json.loads(line) for line in result.stdout.splitlines() if line.strip())
    return {Path(record["source"]): record["text"] for record in records if record["status"] == "ok"}


def digests(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_every_format_gets_its_caption_embedded_and_in_an_xmp_sidecar(tiny_model_dir: Path, album: Path) -> None:
    originals, before = digests(album), {path: pixels(path) for path in album.iterdir()}

    result = run(tiny_model_dir, album, "--xmp", "--embed")

    assert result.exit_code == 0, result.output
    written = captions(result)
    assert sorted(path.name for path in written) == sorted(originals)
    for image, text in written.items():
        assert read_alt_text(image) == alt_text(text)
        assert read_alt_text(image.with_suffix(".xmp")) == alt_text(text)
        assert pixels(image) == before[image]
    backups = {name.removesuffix("_original"): digest for name, digest in digests(album).items() if "_orig" in name}
    assert backups == originals
    assert "XMP sidecars: 4 written" in result.stderr
    assert "alt text in images: 4 written" in result.stderr


def test_a_description_someone_wrote_is_kept_and_overwrite_replaces_it(tiny_model_dir: Path, album: Path) -> None:
    mine = album / "a.jpg"
    exiftool("-overwrite_original", "-XMP-dc:Description=Grandma's garden", "-XMP-xmp:Rating=5", mine)
    untouched = digests(album)["a.jpg"]

    kept = run(tiny_model_dir, mine, "--embed")

    assert kept.exit_code == 0, kept.output
    assert read_alt_text(mine) == {"Description": "Grandma's garden"}
    assert digests(album)["a.jpg"] == untouched and not (album / "a.jpg_original").exists()
    assert "alt text in images: 0 written, 1 existing kept (--overwrite replaces them)" in kept.stderr

    replaced = run(tiny_model_dir, mine, "--embed", "--overwrite")

    assert replaced.exit_code == 0, replaced.output
    assert read_alt_text(mine) == alt_text(captions(replaced)[mine])
    assert "Rating" in exiftool("-j", "-XMP-xmp:Rating", mine)
    assert not (album / "a.jpg_original").exists()
    again = run(tiny_model_dir, mine, "--embed", "--overwrite")
    assert "alt text in images: 0 written, 1 existing kept (they have this caption already)" in again.stderr


def test_an_existing_xmp_sidecar_keeps_its_rating_and_keywords(tiny_model_dir: Path, album: Path) -> None:
    sidecar = album / "b.xmp"
    exiftool("-XMP-xmp:Rating=3", "-XMP-dc:Subject=cat", "-XMP-dc:Subject=garden", sidecar)

    result = run(tiny_model_dir, album / "b.png", "--xmp")

    assert result.exit_code == 0, result.output
    assert read_alt_text(sidecar) == alt_text(captions(result)[album / "b.png"])
    (kept,) = json.loads(exiftool("-j", "-XMP-xmp:Rating", "-XMP-dc:Subject", sidecar))
    assert (kept["Rating"], kept["Subject"]) == (3, ["cat", "garden"])


def test_failed_images_get_no_alt_text_and_are_left_alone(tiny_model_dir: Path, album: Path) -> None:
    (album / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    untouched = digests(album)["broken.jpg"]

    result = run(tiny_model_dir, album, "--xmp", "--embed")

    assert result.exit_code == 1  # for broken.jpg
    assert digests(album)["broken.jpg"] == untouched
    assert not (album / "broken.xmp").exists() and not (album / "broken.jpg_original").exists()
    assert "XMP sidecars: 4 written" in result.stderr


def test_odd_file_names_are_written_like_any_other(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    for name in ODD_NAMES:
        make_image(folder / name)

    result = run(tiny_model_dir, folder, "--xmp", "--embed", "--overwrite")

    assert result.exit_code == 0, result.output
    written = captions(result)
    assert sorted(path.name for path in written) == sorted(ODD_NAMES)
    for image, text in written.items():
        assert read_alt_text(image) == read_alt_text(image.with_suffix(".xmp")) == alt_text(text)
    assert len(list(folder.iterdir())) == 2 * len(ODD_NAMES)


def test_text_sidecars_and_alt_text_are_written_together(tiny_model_dir: Path, album: Path) -> None:
    result = run(tiny_model_dir, album / "c.webp", "--sidecar", "--xmp")
    assert result.exit_code == 0, result.output
    text = captions(result)[album / "c.webp"]
    assert (album / "c.txt").read_text() == f"{text}\n"
    assert read_alt_text(album / "c.xmp") == alt_text(text)
    assert "sidecars: 1 written" in result.stderr and "XMP sidecars: 1 written" in result.stderr


def test_without_exiftool_it_is_a_usage_error_that_says_how_to_install_it(
    tiny_model_dir: Path, album: Path, tmp_path: Path
) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    before = digests(album)

    result = run(tiny_model_dir, album, "--embed", path=str(empty_path))

    assert result.exit_code == 2
    assert "apt-get install libimage-exiftool-perl" in result.stderr
    assert result.stdout == "" and digests(album) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--overwrite",), "--overwrite only applies to --sidecar, --xmp or --embed"),
        (("--xmp", "--sidecar", "--sidecar-ext", ".XMP"), "--sidecar-ext .xmp would write plain text"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(
    tiny_model_dir: Path, album: Path, args: tuple[str, ...], message: str
) -> None:
    before = digests(album)
    result = run(tiny_model_dir, album, *args)
    assert (result.exit_code, digests(album)) == (2, before)
    assert message in result.stderr
