"""Security properties: caps before download, read-only access to the source bucket, no path traversal.

* An object over the byte cap is refused from the event's size without any S3 request, or, when the event has no
  size, from the ``Content-Length`` of the response before one byte of its body is read.
* The handler only ever reads from S3 (no PutObject, DeleteObject, tagging...) and never touches the local disk:
  keys such as ``../../x`` are S3 keys, not paths, and each names its own object and its own item.
* Sidecars land next to their image whatever the file is called, and never for anything that is not a local file.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_support import (
    BUCKET,
    Aws,
    FakeCaptioner,
    FakeContext,
    body,
    color_of,
    describe,
    failed_ids,
    png,
    sqs_event,
)

from aws_support import count_body_reads
from imgcaption.local.sidecars import SidecarStatus, SidecarWriter
from imgcaption.results import Caption
from imgcaption_aws.events import notification_record

CAP = 4_000
READ_ONLY_OPERATIONS = {"GetObject", "HeadObject"}


def noisy_png(side: int = 64) -> bytes:
    """A PNG that does not compress: bigger than :data:`CAP` at 64×64."""
    pixels = np.random.default_rng(7).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    assert len(buffer.getvalue()) > CAP
    return buffer.getvalue()


# ----------------------------------------------------------------------------- caps before download


def test_an_object_over_the_byte_cap_is_refused_from_its_event_size_without_a_request(
    aws: Aws, lambda_handler: Any
) -> None:
    record = aws.put("huge.png", noisy_png())  # the notification carries the object's size, as S3's do
    handler = lambda_handler(aws, FakeCaptioner(max_bytes=CAP))
    aws.s3_calls.clear()

    assert failed_ids(handler(sqs_event(body(record)), FakeContext())) == []

    assert aws.s3_calls == []
    item = aws.items()[f"s3://{BUCKET}/huge.png"]
    assert (item["status"], item["error_type"], item["retryable"]) == ("failed", "ImageTooLargeError", False)


def test_without_a_size_in_the_event_the_content_length_refuses_it_before_the_body_is_read(
    aws: Aws, lambda_handler: Any
) -> None:
    aws.put("huge.png", noisy_png())
    aws.put("small.png", png())
    handler = lambda_handler(aws, FakeCaptioner(max_bytes=CAP))
    bodies = count_body_reads(aws.s3)
    sizeless = [notification_record(BUCKET, key) for key in ("huge.png", "small.png")]  # like Batch Operations

    assert failed_ids(handler(sqs_event(*map(body, sizeless)), FakeContext())) == []

    items = aws.items()
    assert items[f"s3://{BUCKET}/huge.png"]["error_type"] == "ImageTooLargeError"
    assert items[f"s3://{BUCKET}/small.png"]["status"] == "ok"
    huge, small = bodies  # the pipeline reads in event order
    assert (huge.bytes_read, huge.closed) == (0, True)
    assert small.bytes_read == len(png())


# ----------------------------------------------------------------------------- read-only, nothing on disk

TRAVERSAL_KEYS = ["../../x.png", "../x.png", "x.png", "a/../x.png", "/x.png", "//x.png", "..\\..\\x.png", "~/x.png"]


def test_traversal_keys_are_just_keys_each_read_from_s3_into_its_own_item_with_nothing_written(
    aws: Aws, lambda_handler: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working directory sits three levels below ``tmp_path``, so every relative key lands inside it."""
    workdir, scratch, home = tmp_path / "a" / "b" / "cwd", tmp_path / "tmp", tmp_path / "home"
    for directory in (workdir, scratch, home):
        directory.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("HOME", str(home))  # where ~/x.png would go
    monkeypatch.setattr(tempfile, "tempdir", None)  # so tempfile honours TMPDIR from here on
    colors = {key: color_of(index + 1) for index, key in enumerate(TRAVERSAL_KEYS)}
    records = [aws.put(key, png(color)) for key, color in colors.items()]
    missing = notification_record(BUCKET, "../../../../etc/passwd")
    handler = lambda_handler(aws)
    before = aws.s3.list_object_versions(Bucket=BUCKET)["Versions"]
    aws.s3_calls.clear()

    response = handler(sqs_event(*(body(record) for record in [*records, missing])), FakeContext())

    assert failed_ids(response) == []
    items = aws.items()
    for key, color in colors.items():
        assert items[f"s3://{BUCKET}/{key}"]["caption"] == describe(Image.new("RGB", (1, 1), color))
    assert items[f"s3://{BUCKET}/../../../../etc/passwd"]["error_type"] == "ImageNotFoundError"
    assert set(aws.s3_calls) <= READ_ONLY_OPERATIONS
    assert aws.s3.list_object_versions(Bucket=BUCKET)["Versions"] == before
    assert files_under(tmp_path) == []  # the working, temporary and home directories, and ../ and ../../ of cwd
    assert not Path("/x.png").exists()


def test_the_handler_only_reads_from_its_source_bucket_whatever_happens(aws: Aws, lambda_handler: Any) -> None:
    """Good, corrupt, deleted, oversized and duplicated objects: only GetObject (or HeadObject) calls on S3."""
    records = [
        aws.put("good.png", png()),
        aws.put("corrupt.jpg", b"\xff\xd8\xff\xe0 and then nothing"),
        aws.put("huge.png", noisy_png()),
        aws.put("gone.png", png("blue")),
    ]
    aws.s3.delete_object(Bucket=BUCKET, Key="gone.png")
    handler = lambda_handler(aws, FakeCaptioner(max_bytes=CAP))
    before = aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"]
    aws.s3_calls.clear()

    response = handler(sqs_event(*(body(record) for record in records + records)), FakeContext())

    assert failed_ids(response) == []
    assert len(aws.items()) == len(records)
    assert aws.s3_calls and set(aws.s3_calls) <= READ_ONLY_OPERATIONS
    assert aws.s3.list_objects_v2(Bucket=BUCKET)["Contents"] == before


# ----------------------------------------------------------------------------- sidecars

file_names = st.text(
    st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1, max_size=60
).filter(lambda name: name not in (".", "..") and len(name.encode()) <= 200)


def caption_of(source: str) -> Caption:
    return Caption(text=f"the caption of {source}", source=source, model="fake", width=1, height=1, elapsed_ms=1.0)


def files_under(root: Path) -> list[Path]:
    return sorted(Path(folder) / file for folder, _, files in os.walk(root) for file in files)


def sidecar_name(image_name: str) -> str:
    """``photo.jpg`` → ``photo.txt``: the documented layout (same stem, ``.txt``), computed without the writer."""
    return Path(image_name).stem + ".txt"


def must_be_written(name: str, names: list[str]) -> bool:
    """A sidecar no other rule stops: the image is not a ``.txt`` itself, and no other image or sidecar has the name."""
    target = sidecar_name(name)
    others = [other for other in names if other != name]
    return (
        Path(name).suffix.lower() != ".txt"
        and target not in names
        and all(sidecar_name(other) != target for other in others)
    )


@settings(max_examples=60, deadline=None)
@given(names=st.lists(file_names, min_size=1, max_size=5, unique=True))
@example(names=["photo.jpg", "..jpg", "...", " .png", "..\\..\\up.jpg", "~", "-rf .jpg"])
def test_a_sidecar_is_only_ever_written_in_its_images_own_directory(names: list[str]) -> None:
    """Caught (checked on a copy of the code): a writer that never writes (the old form of this test passed)."""
    with tempfile.TemporaryDirectory() as root:
        album = Path(root) / "a" / "b" / "album"  # ../ and ../../ of the album are inside root too
        album.mkdir(parents=True)
        for name in names:
            (album / name).write_bytes(b"pretend image")
        writer = SidecarWriter(overwrite=True)

        results = {name: writer.write(caption_of(str(album / name))) for name in names}

        new = set(files_under(Path(root))) - {album / name for name in names}
        written = {result.path for result in results.values() if result.status is SidecarStatus.WRITTEN}
        assert new == written
        for name, result in results.items():
            if must_be_written(name, names):
                assert (result.status, result.path) == (SidecarStatus.WRITTEN, album / sidecar_name(name))
            if result.status is SidecarStatus.WRITTEN:
                assert result.path == album / sidecar_name(name)
                assert result.path.read_bytes() == f"the caption of {album / name}\n".encode()


@pytest.mark.parametrize(
    "source",
    ["s3://photos/../../x.jpg", "../../x.jpg", "x.jpg", "https://example.com/x.jpg", "<bytes>", "file:///etc/x.jpg"],
)
def test_nothing_but_an_absolute_local_path_gets_a_sidecar(source: str, tmp_path: Path, monkeypatch: Any) -> None:
    workdir = tmp_path / "a" / "b" / "cwd"  # so that ../../x.txt, taken as a path, would land inside tmp_path
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    result = SidecarWriter(overwrite=True).write(caption_of(source))
    assert (result.status, result.path) == (SidecarStatus.NOT_LOCAL, None)
    assert files_under(tmp_path) == []
    assert not Path("/etc/x.txt").exists()  # file:///etc/x.jpg taken as a path
