"""``s3://bucket/key`` URIs: the identity of an object everywhere (the DynamoDB partition key, ``ImageRef.uri``).

Keys are kept exactly as stored in S3 (never URL-encoded), so ``s3://photos/a b+c.jpg`` names the key ``a b+c.jpg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgcaption.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri


def parse_s3_uri(uri: str, *, allow_empty_key: bool = False) -> S3Location:
    """Split ``s3://bucket/key``; the key is everything after the first ``/`` (it may contain ``/``, spaces, ``+``)."""
    if not uri.startswith("s3://"):
        raise ConfigurationError(f"not an s3:// URI: {uri!r}", source=uri)
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigurationError("the S3 URI has no bucket", source=uri)
    if not key and not allow_empty_key:
        raise ConfigurationError("the S3 URI has no object key", source=uri)
    return S3Location(bucket, key)
