"""An :class:`~imgcaption.ports.ImageSource` over S3 objects: a fixed list of refs (from events) or a prefix listing.

Reads refuse objects over the byte cap before downloading them: from the size in the event when there is one,
otherwise from ``ContentLength`` before the body is read; whatever the headers say, at most ``max_bytes + 1`` bytes
are read, and a body that differs from its ``ContentLength`` is a retryable fault (a cut transfer), not a damaged
image. Errors become the core's error tree: a missing object is an :class:`~imgcaption.errors.ImageNotFoundError`
(recorded, never retried), throttling, 5xx and permission problems are ``retryable``
:class:`~imgcaption.errors.SourceError` so a queue hands them back instead of losing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from imgcaption.errors import ImageNotFoundError, ImageTooLargeError, ImgCaptionError, SourceError
from imgcaption.ports import ImageRef, Skipped
from imgcaption_aws.clients import error_code, is_transient
from imgcaption_aws.events import S3ObjectRef, object_ref
from imgcaption_aws.uris import S3Location, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif")
"""What backfill and prefix listings treat as images unless told otherwise (compared case-insensitively)."""

_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId"})


class S3Source:
    """Images in S3. ``refs`` are the inputs (from events); :meth:`listing` builds one from a prefix instead."""

    def __init__(self, s3: S3Client, refs: Iterable[S3ObjectRef | Skipped]) -> None:
        self.s3 = s3
        self._refs = refs

    @classmethod
    def listing(cls, s3: S3Client, uri: str, suffixes: Sequence[str] | None = IMAGE_SUFFIXES) -> S3Source:
        """Every object under ``s3://bucket/prefix`` (paginated); others than ``suffixes`` come back as Skipped."""
        return cls(s3, iter_objects(s3, uri, suffixes))

    def iter_refs(self) -> Iterator[ImageRef | Skipped]:
        yield from self._refs

    def read(self, ref: ImageRef, max_bytes: int) -> bytes:
        if not isinstance(ref, S3ObjectRef):
            raise SourceError("not an S3 object", source=ref.uri, retryable=False)
        location = ref.location
        if ref.size is not None and ref.size > max_bytes:
            raise ImageTooLargeError(f"{ref.size} bytes exceeds the byte cap of {max_bytes}", source=ref.uri)
        try:
            if ref.version_id:
                response = self.s3.get_object(Bucket=location.bucket, Key=location.key, VersionId=ref.version_id)
            else:
                response = self.s3.get_object(Bucket=location.bucket, Key=location.key)
            body = response["Body"]
            try:
                length = response.get("ContentLength")
                if length is not None and length > max_bytes:
                    raise ImageTooLargeError(f"{length} bytes exceeds the byte cap of {max_bytes}", source=ref.uri)
                data = body.read(max_bytes + 1)
            finally:
                body.close()
        except ImgCaptionError:
            raise
        except Exception as exc:
            raise translate_s3_error(exc, ref.uri) from exc
        if len(data) > max_bytes:
            raise ImageTooLargeError(f"more than the byte cap of {max_bytes} bytes", source=ref.uri)
        if length is not None and len(data) != length:
            # A cut transfer: botocore only notices on a further read, and the decoder would call the image damaged.
            raise SourceError(
                f"the object body ended after {len(data)} of its {length} bytes", source=ref.uri, retryable=True
            )
        return data


def presigned_get_url(s3: S3Client, ref: ImageRef, expires_s: int) -> str | None:
    """A URL through which anyone holding it may GET the object (the version captioned, when known) for
    ``expires_s`` seconds; None for a ref that is no S3 object. Signed locally with the caller's credentials: no
    request is made."""
    if not isinstance(ref, S3ObjectRef):
        return None
    params = {"Bucket": ref.location.bucket, "Key": ref.location.key}
    if ref.version_id:
        params["VersionId"] = ref.version_id
    return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s)


def translate_s3_error(exc: BaseException, uri: str) -> ImgCaptionError:
    """An S3/botocore failure as the core error that says what to do about it."""
    code = error_code(exc)
    if code in _MISSING:
        return ImageNotFoundError(f"no such object ({code}); deleted before it was processed?", source=uri)
    if code in _DENIED:
        # Usually a missing grant, fixed by a deploy: let the queue keep the message (and its DLQ catch it).
        return SourceError(f"access denied ({code})", source=uri, retryable=True)
    if code == "InvalidObjectState":
        return SourceError("the object is archived (Glacier); restore it first", source=uri, retryable=False)
    return SourceError(f"reading from S3 failed: {type(exc).__name__}: {exc}", source=uri, retryable=is_transient(exc))


def iter_objects(
    s3: S3Client,
    uri: str,
    suffixes: Sequence[str] | None = IMAGE_SUFFIXES,
    *,
    page_size: int = 1000,
    start_after: str | None = None,
) -> Iterator[S3ObjectRef | Skipped]:
    """List ``s3://bucket/prefix`` page by page (keys after ``start_after`` only, if given); folder markers are
    dropped, non-matching suffixes are Skipped."""
    location = parse_s3_uri(uri, allow_empty_key=True)
    wanted = tuple(suffix.lower() for suffix in suffixes) if suffixes else None
    paginator = s3.get_paginator("list_objects_v2")
    pages = (
        paginator.paginate(
            Bucket=location.bucket,
            Prefix=location.key,
            StartAfter=start_after,
            PaginationConfig={"PageSize": page_size},
        )
        if start_after
        else paginator.paginate(Bucket=location.bucket, Prefix=location.key, PaginationConfig={"PageSize": page_size})
    )
    try:
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                if wanted and not key.lower().endswith(wanted):
                    yield Skipped(S3Location(location.bucket, key).uri, "suffix not in " + ", ".join(wanted))
                    continue
                yield object_ref(
                    location.bucket,
                    key,
                    etag=item.get("ETag"),
                    size=item.get("Size"),
                    event_time=item.get("LastModified"),
                )
    except Exception as exc:
        if isinstance(exc, ImgCaptionError):
            raise
        raise SourceError(
            f"listing {uri} failed: {type(exc).__name__}: {exc}", source=uri, retryable=is_transient(exc)
        ) from exc
