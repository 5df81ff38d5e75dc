"""The S3 source reads what an event names, refuses oversized objects before downloading, and classifies faults."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from moto import mock_aws

from aws_support import AWKWARD_KEYS, count_body_reads
from imgcaption.distribution import install_hint
from imgcaption.errors import ImageNotFoundError, ImageTooLargeError, SourceError
from imgcaption.ports import Skipped
from imgcaption_aws.clients import s3_client
from imgcaption_aws.deps import MissingDependencyError
from imgcaption_aws.events import object_ref
from imgcaption_aws.source import S3Source, iter_objects


@pytest.fixture
def s3(fake_aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        client = s3_client()
        client.create_bucket(Bucket="photos")
        yield client


class RefusesEveryCall:
    """An S3 client that must not be used."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected S3 call: {name}")


class FailingClient:
    """An S3 client whose every call fails with one AWS error code."""

    def __init__(self, code: str, status: int) -> None:
        self.code, self.status = code, status

    def get_object(self, **_: Any) -> Any:
        raise ClientError(
            {"Error": {"Code": self.code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": self.status}},
            "GetObject",
        )


class CountingStream(io.BytesIO):
    """An object body's raw stream that counts the bytes anyone read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


class OneObject:
    """An S3 client holding one object, whose GetObject response declares ``content_length`` (None: no header).

    ``requests`` keeps the parameters of every GetObject."""

    def __init__(self, body: bytes, content_length: int | None) -> None:
        self.stream = CountingStream(body)
        self.content_length = content_length
        self.requests: list[dict[str, Any]] = []

    def get_object(self, **params: Any) -> dict[str, Any]:
        self.requests.append(params)
        response: dict[str, Any] = {"Body": StreamingBody(self.stream, self.content_length)}
        if self.content_length is not None:
            response["ContentLength"] = self.content_length
        return response


def read_one(client: OneObject, max_bytes: int) -> bytes:
    return S3Source(client, []).read(object_ref("photos", "k.png"), max_bytes=max_bytes)  # type: ignore[arg-type]


def test_reads_the_object_an_event_names(s3: Any) -> None:
    s3.put_object(Bucket="photos", Key="a b/c+d.png", Body=b"pixels")
    source = S3Source(s3, [object_ref("photos", "a b/c+d.png")])
    [ref] = list(source.iter_refs())
    assert source.read(ref, max_bytes=100) == b"pixels"


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_the_get_names_the_bucket_and_key_the_ref_carries_unchanged(key: str) -> None:
    client = OneObject(b"pixels", content_length=6)
    ref = object_ref("photos", key, version_id="v1")
    assert S3Source(client, [ref]).read(ref, max_bytes=100) == b"pixels"  # type: ignore[arg-type]
    assert client.requests == [{"Bucket": "photos", "Key": key, "VersionId": "v1"}]


def test_reads_the_exact_version_the_event_names(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket="photos", VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket="photos", Key="k.png", Body=b"first")["VersionId"]
    s3.put_object(Bucket="photos", Key="k.png", Body=b"second")
    ref = object_ref("photos", "k.png", version_id=first)
    assert S3Source(s3, []).read(ref, max_bytes=100) == b"first"


def test_an_object_over_the_cap_by_its_event_size_is_refused_without_a_request() -> None:
    ref = object_ref("photos", "huge.jpg", size=10_000)
    with pytest.raises(ImageTooLargeError):
        S3Source(RefusesEveryCall(), [ref]).read(ref, max_bytes=9_999)  # type: ignore[arg-type]


def test_an_object_over_the_cap_by_its_content_length_is_refused_before_one_byte_of_its_body_is_read(s3: Any) -> None:
    """Catches the Content-Length check going (the body would be read: 101 bytes) and the body left open."""
    s3.put_object(Bucket="photos", Key="big.png", Body=b"x" * 101)
    bodies = count_body_reads(s3)
    with pytest.raises(ImageTooLargeError, match="101 bytes"):
        S3Source(s3, []).read(object_ref("photos", "big.png"), max_bytes=100)
    [body] = bodies
    assert (body.bytes_read, body.closed) == (0, True)


def test_without_a_content_length_an_oversized_body_is_read_one_byte_past_the_cap_and_no_further() -> None:
    """Catches an unbounded ``read()`` (all 10,000 bytes) and a missing check of what was read."""
    client = OneObject(b"x" * 10_000, content_length=None)
    with pytest.raises(ImageTooLargeError, match="byte cap"):
        read_one(client, max_bytes=100)
    assert client.stream.bytes_read == 101
    assert client.stream.closed


def test_a_content_length_below_the_real_size_lets_no_more_than_the_cap_through() -> None:
    client = OneObject(b"x" * 10_000, content_length=10)
    with pytest.raises(ImageTooLargeError, match="byte cap"):
        read_one(client, max_bytes=100)
    assert client.stream.bytes_read == 101


def test_a_body_that_ends_before_its_content_length_is_a_retryable_source_error_not_a_damaged_image() -> None:
    """A cut transfer would otherwise reach the decoder as a truncated image and be recorded as a failure for good."""
    client = OneObject(b"x" * 50, content_length=80)
    with pytest.raises(SourceError, match="after 50 of its 80 bytes") as caught:
        read_one(client, max_bytes=100)
    assert caught.value.retryable is True
    assert client.stream.closed


def test_a_body_of_exactly_its_content_length_is_read_whole() -> None:
    client = OneObject(b"x" * 100, content_length=100)
    assert read_one(client, max_bytes=100) == b"x" * 100


@pytest.mark.parametrize("bucket", ["photos", "no-such-bucket"])
def test_an_object_deleted_before_processing_is_not_found_and_not_retried(s3: Any, bucket: str) -> None:
    with pytest.raises(ImageNotFoundError) as caught:
        S3Source(s3, []).read(object_ref(bucket, "gone.png"), max_bytes=100)
    assert caught.value.retryable is False
    assert caught.value.source == f"s3://{bucket}/gone.png"


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("SlowDown", 503, True),
        ("InternalError", 500, True),
        ("AccessDenied", 403, True),  # a missing grant: keep the message until a deploy fixes it
        ("InvalidObjectState", 403, False),
        ("InvalidRequest", 400, False),
    ],
)
def test_faults_are_source_errors_retryable_when_trying_later_can_help(code: str, status: int, retryable: bool) -> None:
    with pytest.raises(SourceError) as caught:
        S3Source(FailingClient(code, status), []).read(object_ref("b", "k"), max_bytes=10)  # type: ignore[arg-type]
    assert caught.value.retryable is retryable


def test_listing_walks_every_page_and_skips_other_suffixes(s3: Any) -> None:
    keys = [f"2024/{i:04d}.jpg" for i in range(7)]
    for key in keys:
        s3.put_object(Bucket="photos", Key=key, Body=b"x")
    s3.put_object(Bucket="photos", Key="2024/notes.txt", Body=b"x")
    s3.put_object(Bucket="photos", Key="2024/folder/", Body=b"")
    s3.put_object(Bucket="photos", Key="elsewhere.jpg", Body=b"x")
    found = list(iter_objects(s3, "s3://photos/2024/", page_size=3))
    refs = [item for item in found if not isinstance(item, Skipped)]
    assert [ref.uri for ref in refs] == [f"s3://photos/{key}" for key in keys]
    assert [item.uri for item in found if isinstance(item, Skipped)] == ["s3://photos/2024/notes.txt"]
    assert all(ref.size == 1 and ref.etag and ref.event_time for ref in refs)


def test_without_boto3_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependencyError, match=re.escape(install_hint("aws"))) as caught:
        s3_client()
    assert isinstance(caught.value, ImportError)


def test_real_clients_use_botocore_standard_retries() -> None:
    ours = s3_client(region="us-east-1")
    assert ours.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
