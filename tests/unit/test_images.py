"""Image loading: every odd file becomes an upright RGB image or a typed error that names it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, features

from imagefactory import animated, encode, png_claiming_size, upright_pattern, with_orientation
from imgcaption import errors
from imgcaption.distribution import install_hint
from imgcaption.images import MAX_REDUCED_PIXELS, MAX_SHORT_SIDE, LoadedImage, load_image, reduced_size
from imgcaption.testing.corpus import corpus_file


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_so_the_model_sees_the_upright_image(orientation: int) -> None:
    upright = upright_pattern()
    loaded = load_image(with_orientation(upright, orientation))
    assert loaded.image.size == upright.size
    assert (loaded.width, loaded.height) == upright.size
    assert np.array_equal(pixels(loaded.image), pixels(upright))


def test_exif_orientation_also_works_for_jpeg_within_compression_noise() -> None:
    upright = upright_pattern(160, 96)
    loaded = load_image(with_orientation(upright, 6, fmt="JPEG"))
    assert loaded.image.size == upright.size
    assert np.abs(pixels(loaded.image) - pixels(upright)).mean() < 8


def test_a_broken_exif_block_does_not_cost_the_image() -> None:
    jpeg = encode(upright_pattern(), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    assert load_image(jpeg).image.mode == "RGB"


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 90}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
        ("BMP", {}),
        ("GIF", {}),
        ("PPM", {}),
    ],
)
def test_common_formats_decode_to_rgb_with_their_size_and_format(fmt: str, params: dict[str, object]) -> None:
    data = encode(upright_pattern(), fmt, **params)
    loaded = load_image(data)
    assert loaded.image.mode == "RGB"
    assert (loaded.width, loaded.height) == (64, 40)
    assert loaded.format == fmt
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_decodes() -> None:
    assert load_image(encode(upright_pattern(), "AVIF")).format == "AVIF"


def test_heic_decodes_when_pillow_heif_is_installed() -> None:
    pytest.importorskip("pillow_heif")
    loaded = load_image(encode(upright_pattern(), "HEIF"))
    assert loaded.format in {"HEIF", "HEIC"}
    assert loaded.image.mode == "RGB"


@pytest.fixture
def heic() -> bytes:
    """A real HEIC (pillow-heif encodes it; the tests that need it absent take it away from the loader after)."""
    pytest.importorskip("pillow_heif")
    return encode(upright_pattern(), "HEIF", quality=90)


def take_away_the_heif_opener(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the loader what it is where pillow-heif is not installed: Pillow has no HEIF opener."""
    monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)
    monkeypatch.setattr(Image, "ID", [name for name in Image.ID if name != "HEIF"])


@pytest.fixture
def without_pillow_heif(monkeypatch: pytest.MonkeyPatch) -> None:
    take_away_the_heif_opener(monkeypatch)


def test_a_valid_heic_without_pillow_heif_is_unsupported_and_names_the_extra_to_install(
    heic: bytes, without_pillow_heif: None
) -> None:
    with pytest.raises(errors.UnsupportedImageError) as raised:
        load_image(heic, source="phone/IMG_0001.HEIC")
    assert raised.value.source == "phone/IMG_0001.HEIC"
    assert install_hint("heif") in str(raised.value)
    assert raised.value.retryable is False


@pytest.mark.skipif(not features.check("avif"), reason="needs AVIF to make the file")
def test_a_valid_avif_where_pillow_has_no_avif_codec_is_unsupported_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    avif = encode(upright_pattern(), "AVIF")
    monkeypatch.delitem(Image.OPEN, "AVIF")
    monkeypatch.setattr(Image, "ID", [name for name in Image.ID if name != "AVIF"])
    monkeypatch.setattr(features, "check", lambda feature: feature != "avif")
    with pytest.raises(errors.UnsupportedImageError, match="built without AVIF"):
        load_image(avif, source="photo.avif")
    with pytest.raises(errors.ImageDecodeError, match="corrupt AVIF"):
        load_image(avif[: len(avif) // 2], source="photo.avif")


@pytest.mark.parametrize("damage", ["cut in half", "box sizes zeroed", "only the ftyp box"])
def test_a_damaged_heic_is_a_decode_error_with_or_without_pillow_heif(
    heic: bytes, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    damaged = {
        "cut in half": heic[: len(heic) // 2],
        "box sizes zeroed": heic[:24] + b"\x00" * (len(heic) - 24),
        "only the ftyp box": heic[: int.from_bytes(heic[:4], "big")],
    }[damage]
    with pytest.raises(errors.ImageDecodeError, match="HEIF"):
        load_image(damaged, source="phone/IMG_0002.HEIC")
    take_away_the_heif_opener(monkeypatch)
    with pytest.raises(errors.ImageDecodeError, match="corrupt HEIF"):
        load_image(damaged, source="phone/IMG_0002.HEIC")


def test_format_comes_from_content_not_from_the_file_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "actually-a-png.jpg"
    misnamed.write_bytes(encode(upright_pattern(), "PNG"))
    assert load_image(misnamed).format == "PNG"


def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    loaded = load_image(encode(cmyk, "JPEG"))
    red, green, blue = loaded.image.getpixel((16, 16))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60


def test_16_bit_grayscale_keeps_its_tones_instead_of_clipping_to_white() -> None:
    gradient = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(1, 64).repeat(8, axis=0)
    loaded = load_image(encode(Image.fromarray(gradient), "PNG"))
    row = pixels(loaded.image)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    assert 100 < row[32] < 160


@pytest.mark.parametrize("mode", ["LA", "RGBA", "PA"])
def test_transparency_is_composited_on_white(mode: str) -> None:
    image = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, 8, 16))  # left half opaque black, right half transparent
    source = image.convert(mode) if mode != "PA" else image.convert("P", palette=Image.Palette.ADAPTIVE)
    loaded = load_image(encode(source.convert("RGBA") if mode == "PA" else source, "PNG"))
    assert loaded.image.getpixel((2, 8)) == (0, 0, 0)
    assert loaded.image.getpixel((12, 8)) == (255, 255, 255)


def test_palette_image_with_a_transparent_index_is_composited_on_white() -> None:
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))
    loaded = load_image(encode(palette, "PNG", transparency=0))
    assert loaded.image.getpixel((2, 8)) == (255, 0, 0)
    assert loaded.image.getpixel((12, 8)) == (255, 255, 255)


def test_grayscale_with_a_transparent_value_is_composited_on_white() -> None:
    gray = Image.new("L", (16, 16), 0)
    gray.paste(128, (0, 0, 8, 16))
    loaded = load_image(encode(gray, "PNG", transparency=0))
    assert loaded.image.getpixel((2, 8)) == (128, 128, 128)
    assert loaded.image.getpixel((12, 8)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animations_are_captioned_from_their_first_frame(fmt: str) -> None:
    loaded = load_image(animated(fmt))
    red, green, blue = loaded.image.getpixel((16, 16))  # type: ignore[misc]
    assert red > 200 and green < 50 and blue < 50


def test_large_jpegs_decode_at_reduced_scale_but_report_their_real_size() -> None:
    big = Image.new("RGB", (4000, 3000), (30, 120, 200))
    loaded = load_image(encode(big, "JPEG", quality=80))
    assert (loaded.width, loaded.height) == (4000, 3000)
    assert max(loaded.image.size) <= 1000
    assert min(loaded.image.size) >= 448


# ------------------------------------------------------------------ reduced to what the model needs


def halves(mode: str, size: tuple[int, int] = (2400, 1800)) -> Image.Image:
    """Left half opaque black; right half white, or, where the mode has transparency, fully transparent red."""
    width, height = size
    if mode == "P+transparency":  # palette index 1 (red) is the transparent one
        palette = Image.new("P", size, 1)
        palette.putpalette([0, 0, 0, 255, 0, 0])
        palette.paste(0, (0, 0, width // 2, height))
        return palette
    if mode in ("I;16", "F"):
        levels = np.zeros((height, width), dtype=np.uint16 if mode == "I;16" else np.float32)
        levels[:, width // 2 :] = 65535
        return Image.fromarray(levels)
    transparent = mode in ("LA", "RGBA", "PA")
    image = Image.new("RGBA", size, (255, 0, 0, 0) if transparent else (255, 255, 255, 255))
    image.paste((0, 0, 0, 255), (0, 0, width // 2, height))
    return image.convert(mode) if transparent else image.convert("RGB").convert(mode)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("P+transparency", "PNG"), ("RGB", "PNG"),
     ("RGBA", "PNG"), ("I;16", "PNG"), ("F", "TIFF"), ("CMYK", "TIFF"), ("RGB", "WEBP")],
)  # fmt: skip
def test_a_large_image_of_any_mode_is_reduced_to_what_the_model_needs_and_reports_its_real_size(
    mode: str, fmt: str
) -> None:
    """Catches the reduction missing for a mode (size), transparency lost on the way (red instead of white), tones
    overshooting their range (a float image's black turns grey) and a mode Pillow's ``reduce()`` refuses (16-bit)."""
    params = {"transparency": 1} if mode == "P+transparency" else {"lossless": True} if fmt == "WEBP" else {}
    loaded = load_image(encode(halves(mode), fmt, **params))
    assert (loaded.width, loaded.height) == (2400, 1800)
    assert loaded.image.mode == "RGB"
    assert loaded.image.size == reduced_size(2400, 1800) == (1195, 896)
    left, right = pixels(loaded.image)[448, 100], pixels(loaded.image)[448, 1100]
    assert left.max() < 16, left  # black stays black
    assert right.min() > 239, right  # white, or transparent composited on white, stays white


def test_a_colour_key_is_made_transparent_before_resampling_so_it_does_not_fringe() -> None:
    keyed = halves("RGB")
    keyed.paste((255, 0, 0), (1200, 0, 2400, 1800))  # the right half is the transparent colour
    loaded = load_image(encode(keyed, "PNG", transparency=(255, 0, 0)))
    rgb = pixels(loaded.image)
    assert not ((rgb[..., 0] - rgb[..., 1]) > 24).any(), "red fringe: the key colour was blended before it was keyed"
    assert rgb[:, -1].min() > 239


@pytest.mark.parametrize("mode", ["1", "L", "P"])
def test_fine_detail_is_averaged_in_the_reduction_not_point_sampled(mode: str) -> None:
    """Catches Pillow's nearest-neighbour resize of bilevel and palette images: stripes must turn grey."""
    stripes = np.zeros((1800, 2400), dtype=np.uint8)
    stripes[:, ::2] = 255
    source = Image.fromarray(stripes).convert("RGB").convert(mode) if mode != "1" else Image.fromarray(stripes > 0)
    rgb = pixels(load_image(encode(source, "PNG")).image)
    assert rgb.min() > 64 and rgb.max() < 192, (rgb.min(), rgb.max())


@pytest.mark.parametrize(
    ("size", "reduced"),
    [
        ((896, 1195), (896, 1195)),  # short side at the limit: untouched
        ((897, 1195), (896, 1194)),
        ((7000, 7000), (896, 896)),  # a 49 MP square
        ((20_000, 20), (20_000, 20)),  # a thin strip holds few pixels: untouched
        ((50_000, 2000), (8960, 358)),  # a panorama: bounded by the pixel budget, not its short side
        ((159, 20_205), (159, 20_196)),  # found by fuzzing: rounding the long side up overshot the budget
        ((64, 40), (64, 40)),
    ],
)
def test_reduction_keeps_the_aspect_and_bounds_the_short_side_and_the_pixel_count(
    size: tuple[int, int], reduced: tuple[int, int]
) -> None:
    assert reduced_size(*size) == reduced
    assert reduced_size(*reduced) == reduced, "a reduced size is within both bounds"
    assert min(reduced) <= MAX_SHORT_SIDE
    assert reduced[0] * reduced[1] <= max(MAX_REDUCED_PIXELS, size[0] * size[1] if reduced == size else 0)


def test_exif_orientation_is_applied_to_a_reduced_image() -> None:
    upright = upright_pattern(2400, 1600)
    loaded = load_image(with_orientation(upright, 6))
    assert (loaded.width, loaded.height) == (2400, 1600)
    assert loaded.image.size == reduced_size(2400, 1600)
    expected = upright.resize(loaded.image.size, Image.Resampling.LANCZOS)
    assert np.abs(pixels(loaded.image) - pixels(expected)).mean() < 2


def test_the_loaded_image_holds_its_pixels_not_the_file_it_came_from() -> None:
    """An opened image keeps its file object, and with it the source bytes, alive for as long as the batch lives."""
    loaded = load_image(encode(upright_pattern(), "PNG"))
    assert not isinstance(loaded.image, ImageFile.ImageFile)
    assert np.array_equal(pixels(loaded.image), pixels(upright_pattern()))


def test_a_large_pil_image_is_reduced_but_its_digest_is_of_every_original_pixel() -> None:
    big = Image.new("RGB", (3000, 2000), (30, 120, 200))
    nudged = big.copy()
    nudged.putpixel((1501, 1001), (31, 120, 200))  # lost in the reduction, not in the digest
    loaded, other = load_image(big), load_image(nudged)
    assert loaded.image.size == other.image.size == reduced_size(3000, 2000)
    assert (loaded.width, loaded.height) == (3000, 2000)
    assert loaded.sha256 != other.sha256


def test_all_input_kinds_give_the_same_image(tmp_path: Path) -> None:
    data = encode(upright_pattern(), "PNG")
    path = tmp_path / "pattern.png"
    path.write_bytes(data)
    from_path = load_image(path)
    from_str = load_image(str(path))
    from_bytes = load_image(data)
    from_stream = load_image(io.BytesIO(data))
    from_pil = load_image(Image.open(io.BytesIO(data)))
    reference = pixels(from_path.image)
    for loaded in (from_str, from_bytes, from_stream, from_pil):
        assert np.array_equal(pixels(loaded.image), reference)
    assert from_path.source == str(path)
    assert from_bytes.source == "<bytes>"
    assert from_path.sha256 == from_bytes.sha256 == from_stream.sha256


# ------------------------------------------------------------------ refused inputs


def test_empty_file_is_a_decode_error_naming_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.touch()
    with pytest.raises(errors.ImageDecodeError, match="empty") as raised:
        load_image(empty)
    assert raised.value.source == str(empty)
    assert str(empty) in str(raised.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_decode_errors(fmt: str) -> None:
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    data = encode(noisy, fmt)
    with pytest.raises(errors.ImageDecodeError):
        load_image(data[: len(data) // 2], source="half.img")


def test_a_damaged_file_with_an_image_signature_is_a_decode_error_not_a_non_image() -> None:
    heic_head = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
    with pytest.raises(errors.ImageDecodeError, match="corrupt HEIF"):
        load_image(heic_head + b"\x00" * 64)


def test_corrupt_png_chunk_crc_is_a_decode_error() -> None:
    data = bytearray(encode(upright_pattern(), "PNG"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 17] ^= 0xFF  # first byte of the IHDR chunk's CRC
    with pytest.raises(errors.ImageDecodeError):
        load_image(bytes(data))


DAMAGED_PNGS = ["png-idat-cut.png", "png-broken-zlib.png", "png-bad-adler32.png", "png-bad-idat-crc.png"]


@pytest.mark.parametrize("name", DAMAGED_PNGS)
def test_a_damaged_png_is_a_decode_error_naming_its_source_never_a_partial_image(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The EXIF probe (``getexif()`` decodes a PNG) once swallowed the decode error, and partial pixels were captioned.

    Fails if EXIF is read before ``load()`` (broken zlib, bad Adler-32) or if IDAT CRCs go unchecked (bad CRC).
    """
    entry, data = corpus_file(name)
    assert entry.expect == "ImageDecodeError"
    with pytest.raises(errors.ImageDecodeError) as raised:
        load_image(data, source="uploads/photo.png")
    assert raised.value.source == "uploads/photo.png"
    assert "uploads/photo.png" in str(raised.value)
    assert not [record for record in caplog.records if "EXIF" in record.getMessage()], "reported as an EXIF problem"


def test_a_png_missing_only_its_iend_chunk_decodes_to_every_pixel() -> None:
    _, data = corpus_file("png-no-iend.png")
    complete = data + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert np.array_equal(pixels(load_image(data).image), pixels(load_image(complete).image))


def test_bytes_after_a_png_iend_chunk_are_not_checked_as_chunks() -> None:
    data = encode(upright_pattern(), "PNG")
    loaded = load_image(data + b"\x00\x00\x00\x04IDATjunk" + b"\xff" * 64)
    assert np.array_equal(pixels(loaded.image), pixels(upright_pattern()))


def test_an_image_whose_decoder_disagrees_with_its_header_reports_and_caps_the_frame_it_decoded() -> None:
    """Found by fuzzing: a HEIF's clean-aperture box says 40×24, libheif decodes 64×24; the header's size was kept."""
    pytest.importorskip("pillow_heif")
    _, data = corpus_file("fuzz-heif-clap.heic")
    loaded = load_image(data)
    assert loaded.image.size == (loaded.width, loaded.height) == (64, 24)
    with pytest.raises(errors.ImageTooLargeError, match="64×24"):
        load_image(data, max_pixels=40 * 24)  # the header alone passes this cap


def test_an_unreadable_exif_block_on_an_image_that_decodes_is_a_warning_naming_its_source(
    caplog: pytest.LogCaptureFixture,
) -> None:
    png = encode(upright_pattern(), "PNG", exif=b"not a TIFF header")
    loaded = load_image(png, source="uploads/odd-exif.png")
    assert np.array_equal(pixels(loaded.image), pixels(upright_pattern()))
    [warning] = [record for record in caplog.records if "EXIF" in record.getMessage()]
    assert warning.levelname == "WARNING"
    assert "uploads/odd-exif.png" in warning.getMessage()


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"hello, this is a text file", "text"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b"%PDF-1.7\n...", "PDF"),
        (bytes(range(256)) * 4, "binary"),
    ],
)
def test_non_images_are_unsupported_with_a_hint_of_what_they_are(content: bytes, hint: str) -> None:
    with pytest.raises(errors.UnsupportedImageError, match=hint):
        load_image(content, source="photo.jpg")


@pytest.mark.parametrize("side", [12_000, 40_000])
def test_decompression_bomb_is_refused_from_the_header_before_decoding(side: int) -> None:
    with pytest.raises(errors.ImageTooLargeError, match="pixel cap"):
        load_image(png_claiming_size(side, side))


def test_pixel_cap_is_configurable() -> None:
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(errors.ImageTooLargeError, match="10000 pixels"):
        load_image(data, max_pixels=9_999)
    assert load_image(data, max_pixels=10_000).width == 100


class OpenedFiles:
    """Records every ``Path.open`` while installed, and how many bytes were read through the handles it gave."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[Path] = []
        self.bytes_read = 0
        original = Path.open

        def recording_open(path: Path, *args: Any, **kwargs: Any) -> Any:
            handle = original(path, *args, **kwargs)
            self.paths.append(path)
            recorder = self

            class Counting:
                def __enter__(self) -> Counting:
                    return self

                def __exit__(self, *exc: object) -> None:
                    handle.close()

                def read(self, size: int = -1) -> bytes:
                    data: bytes = handle.read(size)
                    recorder.bytes_read += len(data)
                    return data

            return Counting()

        monkeypatch.setattr(Path, "open", recording_open)


def test_byte_cap_refuses_a_file_from_its_size_without_opening_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches the ``stat`` size check going: the file would be opened and 1,001 bytes read before the refusal."""
    big = tmp_path / "big.png"
    big.write_bytes(encode(upright_pattern(), "PNG") + b"\0" * 10_000)
    opened = OpenedFiles(monkeypatch)
    with pytest.raises(errors.ImageTooLargeError, match=f"{big.stat().st_size} bytes exceeds the byte cap"):
        load_image(big, max_bytes=1_000)
    assert (opened.paths, opened.bytes_read) == ([], 0)


def test_a_file_longer_than_its_stat_size_is_still_read_one_byte_past_the_cap_and_no_further(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/proc files say 0 bytes and have more: the capped read, not the size, is what bounds the read."""
    status = Path("/proc/self/status")
    if not status.exists() or status.stat().st_size != 0:
        pytest.skip("needs Linux's /proc, whose files report size 0")
    opened = OpenedFiles(monkeypatch)
    with pytest.raises(errors.ImageTooLargeError, match="more than the byte cap"):
        load_image(status, max_bytes=100)
    assert (opened.paths, opened.bytes_read) == ([status], 101)


def test_byte_cap_reads_at_most_one_byte_past_the_cap_from_a_stream() -> None:
    stream = io.BytesIO(b"x" * 100_000)
    with pytest.raises(errors.ImageTooLargeError):
        load_image(stream, max_bytes=1_000)
    assert stream.tell() == 1_001


def test_missing_file_and_directory_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(errors.ImageNotFoundError):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(errors.UnsupportedImageError, match="directory"):
        load_image(tmp_path)


def test_image_errors_are_not_retryable() -> None:
    with pytest.raises(errors.ImgCaptionError) as raised:
        load_image(b"garbage")
    assert raised.value.retryable is False


def assert_a_model_ready_image_of_its_reported_size(loaded: LoadedImage, max_pixels: int) -> None:
    """What every successful decode gives: RGB, within the reduction's bounds, at the scale of the size it reports."""
    width, height = loaded.image.size
    assert loaded.image.mode == "RGB"
    assert (width, height) == reduced_size(width, height), "not reduced to what the model needs"
    assert 0 < loaded.width * loaded.height <= max_pixels
    # the same shape as the reported (oriented) size, up to rounding of the reduced one: not swapped, not cropped
    assert abs(width * loaded.height - height * loaded.width) <= loaded.width + loaded.height


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_an_rgb_image_or_a_typed_error(data: bytes) -> None:
    try:
        loaded = load_image(data, max_pixels=4_000_000)
    except errors.ImgCaptionError as error:
        assert error.source == "<bytes>"
    else:
        assert_a_model_ready_image_of_its_reported_size(loaded, 4_000_000)


MAGIC_NUMBERS = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"II*\x00",
    b"MM\x00*",
    b"BM",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",
    b"\x00\x00\x00\x18ftypheic",
    b"\x00\x00\x00\x18ftypavif",
]
"""The start of each format the loader's signature table knows: random bytes behind one get past the sniffing."""


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MAGIC_NUMBERS), st.binary(max_size=2048))
def test_arbitrary_bytes_behind_a_real_magic_number_give_an_image_or_a_damaged_image_error(
    magic: bytes, rest: bytes
) -> None:
    """Behind a signature, junk is a damaged image (decode error) or too large, never "not an image"."""
    try:
        loaded = load_image(magic + rest, max_pixels=4_000_000)
    except (errors.ImageDecodeError, errors.ImageTooLargeError) as error:
        assert error.source == "<bytes>"
        return
    assert_a_model_ready_image_of_its_reported_size(loaded, 4_000_000)


def mutate(data: bytes, draw: st.DataObject) -> bytes:
    """One to four byte flips, insertions and cuts, as a bad disk, a buggy writer or a cut download makes them.

    Few and mostly flips, so that a good share still decodes and the assertions about the image get exercised.
    """
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4), label="mutations")):
        position = draw.draw(st.integers(0, max(0, len(mutated) - 1)), label="position")
        kind = draw.draw(st.sampled_from(["flip", "flip", "insert", "truncate"]), label="kind")
        if kind == "flip" and mutated:
            mutated[position] = draw.draw(st.integers(0, 255), label="byte")
        elif kind == "truncate":
            del mutated[position:]
        else:
            mutated[position:position] = draw.draw(st.binary(min_size=1, max_size=64), label="inserted")
    return bytes(mutated)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"]), st.data())
def test_mutated_real_images_give_a_model_ready_image_of_their_reported_size_or_a_typed_error(
    fmt: str, data: st.DataObject
) -> None:
    mutated = mutate(encode(upright_pattern(), fmt), data)
    try:
        loaded = load_image(mutated, max_pixels=4_000_000)
    except errors.ImgCaptionError as error:
        assert error.source == "<bytes>"
        return
    assert_a_model_ready_image_of_its_reported_size(loaded, 4_000_000)


def test_every_known_signature_is_sniffed_as_an_image_format() -> None:
    """What scripts/fuzz_decode.py puts random bytes behind: each must reach a decoder, none be taken for no image."""
    from imgcaption.images import image_format_from_magic, known_signatures

    signatures = known_signatures()
    assert {image_format_from_magic(head + bytes(16)) for head in signatures} >= {
        "PNG", "JPEG", "GIF", "TIFF", "BMP", "JPEG2000", "WEBP", "HEIF", "AVIF",
    }  # fmt: skip
    assert all(image_format_from_magic(head + bytes(16)) is not None for head in signatures)
