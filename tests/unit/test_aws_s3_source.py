"""The S3 source reads what an event names, refuses oversized objects before downloading, and classifies faults."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from imgcaption.aws.clients import s3_client
from imgcaption.aws.deps import MissingDependencyError
from imgcaption.aws.events import object_ref
from imgcaption.aws.source import S3Source, iter_objects
from imgcaption.errors import ImageNotFoundError, ImageTooLargeError, SourceError
from imgcaption.ports import Skipped


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


def test_reads_the_object_an_event_names(s3: Any) -> None:
    s3.put_object(Bucket="photos", Key="a b/c+d.png", Body=b"pixels")
    source = S3Source(s3, [object_ref("photos", "a b/c+d.png")])
    [ref] = list(source.iter_refs())
    assert source.read(ref, max_bytes=100) == b"pixels"


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


def test_an_object_over_the_cap_by_its_content_length_is_refused(s3: Any) -> None:
    s3.put_object(Bucket="photos", Key="big.png", Body=b"x" * 101)
    with pytest.raises(ImageTooLargeError):
        S3Source(s3, []).read(object_ref("photos", "big.png"), max_bytes=100)


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
    with pytest.raises(MissingDependencyError, match=r"pip install 'imgcaption\[aws\]'") as caught:
        s3_client()
    assert isinstance(caught.value, ImportError)


def test_real_clients_use_botocore_standard_retries() -> None:
    ours = s3_client(region="us-east-1")
    assert ours.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
