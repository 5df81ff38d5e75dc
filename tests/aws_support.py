"""Test helpers every AWS test needs: moto_server on 127.0.0.1, the captions table, counted S3 object bodies, and
the mocked account `imgcaption backfill` talks to."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer


@contextlib.contextmanager
def running_moto_server() -> Iterator[str]:
    """A fresh moto_server on a free port, with test credentials in the environment; yields its endpoint URL.

    moto keeps its state per process, shared by every server in it, so the server is reset before use.
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        try:
            reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
            with urllib.request.urlopen(reset, timeout=10) as response:
                assert response.status == 200
            yield endpoint
        finally:
            server.stop()


AWKWARD_KEYS = [
    "holiday 2024/café +1.jpg",
    "/leading slash.png",
    "//two/leading.png",
    "a+b%2Bc%20d.png",
    "日本/☕ 🦆.webp",
    "s3://other-bucket/key.png",
    "ends in a space .png ",
]
"""Object keys a split of ``s3://bucket/key`` or a URL-decoding slip would get wrong: spaces, ``+`` and ``%``,
leading slashes, non-ASCII, a key that is itself a URI."""


def create_captions_table(dynamodb: Any, name: str) -> None:
    """The table the stack deploys: partition key ``image_id`` (String), on demand."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


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


def count_body_reads(s3: Any) -> list[CountingBody]:
    """From now on every GetObject body of ``s3`` is counted; the list fills as objects are fetched."""
    bodies: list[CountingBody] = []

    def wrap(parsed: dict[str, Any], **_: Any) -> None:
        if "Body" in parsed:
            parsed["Body"] = CountingBody(parsed["Body"])
            bodies.append(parsed["Body"])

    s3.meta.events.register("after-call.s3.GetObject", wrap)
    return bodies


@contextlib.contextmanager
def backfill_account(bucket: str) -> Iterator[dict[str, Any]]:
    """An in-process mocked account with ``bucket``, a ``work`` queue and a ``captions`` table (a DynamoDBStore)."""
    import boto3
    from moto import mock_aws

    from imgcaption_aws.store import DynamoDBStore

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        s3.create_bucket(Bucket=bucket)
        queue_url = sqs.create_queue(QueueName="work")["QueueUrl"]
        create_captions_table(dynamodb, "captions")
        yield {"s3": s3, "sqs": sqs, "queue_url": queue_url, "store": DynamoDBStore(dynamodb, "captions")}
