"""boto3 clients with botocore's retry modes, created in one place so every entry point retries the same way."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from imgcaption_aws.deps import require

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

RETRY_MODE = "standard"
"""botocore's ``standard`` mode: exponential backoff with jitter on throttling and 5xx, a retry quota per client."""
MAX_ATTEMPTS = 5


def _config() -> Any:
    botocore_config = require("botocore.config")
    return botocore_config.Config(
        retries={"mode": RETRY_MODE, "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=16,  # the pipeline reads from S3 in a background thread while the store writes
    )


@functools.cache
def _session() -> Any:
    """One session per process: it loads each service model once (hundreds of ms per client otherwise)."""
    return require("boto3").session.Session()


def _client(service: str, endpoint_url: str | None, region: str | None) -> Any:
    require("boto3")
    return _session().client(service, endpoint_url=endpoint_url, region_name=region, config=_config())


def s3_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    client: S3Client = _client("s3", endpoint_url, region)
    return client


def s3_presigning_client(endpoint_url: str | None = None, region: str | None = None) -> S3Client:
    """An S3 client whose presigned URLs use SigV4: botocore may otherwise presign with SigV2, which regions opened
    since 2014 refuse. A URL is signed for ``region``, which must be the bucket's."""
    require("boto3")
    config = _config().merge(require("botocore.config").Config(signature_version="s3v4"))
    client: S3Client = _session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    return client


def dynamodb_client(endpoint_url: str | None = None, region: str | None = None) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", endpoint_url, region)
    return client


def sqs_client(endpoint_url: str | None = None, region: str | None = None) -> SQSClient:
    client: SQSClient = _client("sqs", endpoint_url, region)
    return client


def s3control_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """S3 Control (Batch Operations jobs). Untyped: boto3-stubs is installed without its s3control stubs."""
    return _client("s3control", endpoint_url, region)


def account_id(endpoint_url: str | None = None, region: str | None = None) -> str:
    """The caller's account id (S3 Control needs it on every request)."""
    return str(_client("sts", endpoint_url, region).get_caller_identity()["Account"])


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "SlowDown",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "TransactionConflictException",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and connection problems: worth retrying later (botocore already retried them now)."""
    if error_code(exc) in _TRANSIENT_CODES or http_status(exc) >= 500:
        return True
    botocore_exceptions = require("botocore.exceptions")
    return isinstance(exc, botocore_exceptions.BotoCoreError) and not isinstance(
        exc, botocore_exceptions.NoCredentialsError | botocore_exceptions.ParamValidationError
    )
