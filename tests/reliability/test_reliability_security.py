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
from hypothesis import given, settings
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

from imgcaption.aws.events import notification_record
from imgcaption.local.sidecars import SidecarStatus, SidecarWriter
from imgcaption.results import Caption

CAP = 4_000
READ_ONLY_OPERATIONS = {"GetObject", "HeadObject"}


def noisy_png(side: int = 64) -> bytes:
    """A PNG that does not compress: bigger than :data:`CAP` at 64×64."""
    pixels = np.random.default_rng(7).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    assert len(buffer.getvalue()) > CAP
    return buffer.getvalue()


class CountingBody:
    """Wraps a GetObject body: how many bytes anyone read from it, and whether it was closed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bytes_read = 0
        self.closed = False

    def read(self, amount: int | None = None) -> bytes:
        data: bytes = self.inner.read(amount)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def count_body_reads(aws: Aws) -> list[CountingBody]:
    bodies: list[CountingBody] = []

    def wrap(parsed: dict[str, Any], **_: Any) -> None:
        if "Body" in parsed:
            parsed["Body"] = CountingBody(parsed["Body"])
            bodies.append(parsed["Body"])

    aws.s3.meta.events.register("after-call.s3.GetObject", wrap)
    return bodies


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
    bodies = count_body_reads(aws)
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
    workdir, scratch = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    scratch.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("TMPDIR", str(scratch))
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
    assert list(workdir.iterdir()) == [] and list(scratch.iterdir()) == []
    assert not (tmp_path / "x.png").exists()


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
    return Caption(text="a caption", source=source, model="fake", width=1, height=1, elapsed_ms=1.0)


@settings(max_examples=60, deadline=None)
@given(names=st.lists(file_names, min_size=1, max_size=5, unique=True))
def test_a_sidecar_is_only_ever_written_in_its_images_own_directory(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as root:
        album = Path(root) / "album"
        album.mkdir()
        for name in names:
            (album / name).write_bytes(b"pretend image")
        writer = SidecarWriter(overwrite=True)

        results = [writer.write(caption_of(str(album / name))) for name in names]

        everything = {Path(folder) / file for folder, _, files in os.walk(root) for file in files}
        new = everything - {album / name for name in names}
        assert all(path.parent == album for path in new)
        assert new == {result.path for result in results if result.status is SidecarStatus.WRITTEN}


@pytest.mark.parametrize(
    "source",
    ["s3://photos/../../x.jpg", "../../x.jpg", "x.jpg", "https://example.com/x.jpg", "<bytes>", "file:///etc/x.jpg"],
)
def test_nothing_but_an_absolute_local_path_gets_a_sidecar(source: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    result = SidecarWriter(overwrite=True).write(caption_of(source))
    assert (result.status, result.path) == (SidecarStatus.NOT_LOCAL, None)
    assert list(tmp_path.iterdir()) == []
