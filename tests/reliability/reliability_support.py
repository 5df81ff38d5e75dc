"""Fakes and builders shared by the reliability tests: a fast captioner, Lambda-shaped events, moto in-process.

The fake captioner is the real :class:`~imgcaption.captioner.Captioner` with its three model stages replaced, so
batching, failure isolation, provenance and the pipeline around it are the production code; only the neural network
is gone. Its caption is a function of the pixels, so a test can tell which upload an item was captioned from.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from imgcaption.backends.base import LoadedModel
from imgcaption.captioner import Captioner
from imgcaption.generation import GenerationOptions
from imgcaption.settings import DEFAULT_MAX_BYTES

BUCKET = "photos"
TABLE = "captions"
REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:imgcaption"

Rgb = tuple[int, int, int]


def describe(image: Image.Image) -> str:
    """What the fake model "sees": the colour of the top-left pixel. Distinct solid colours give distinct captions."""
    red, green, blue = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    return f"a picture that is mostly #{red:02x}{green:02x}{blue:02x}"


class FakeCaptioner(Captioner):
    """A :class:`Captioner` without a network: ``forward`` fails for any batch holding a ``poison`` colour."""

    def __init__(self, *, poison: Sequence[Rgb] = (), max_bytes: int | None = None) -> None:
        loaded = LoadedModel(None, None, None, model_id="fake-captioner", revision="1", provenance={})
        super().__init__(loaded, generation=GenerationOptions(num_beams=1), max_bytes=max_bytes or DEFAULT_MAX_BYTES)
        self.poison = set(poison)
        self.forwarded: list[str] = []
        """Every caption the fake model produced, in order (batches retried one by one appear again)."""

    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        return list(images)

    def forward(self, pixel_values: Any, generation: GenerationOptions) -> Any:
        for image in pixel_values:
            if image.convert("RGB").getpixel((0, 0)) in self.poison:
                raise RuntimeError("the model blew up on this batch")
        return [describe(image) for image in pixel_values]

    def postprocess(self, token_ids: Any) -> list[str]:
        texts = list(token_ids)
        self.forwarded.extend(texts)
        return texts


def png(color: Rgb | str = (200, 30, 30), size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def color_of(index: int) -> Rgb:
    """A distinct colour for each index below 2**24 (so each upload gets its own caption)."""
    return ((index * 53) % 256, (index * 97 // 256) % 256, (index // 65536 + 17 * (index % 7)) % 256)


# ----------------------------------------------------------------------------- Lambda-shaped events


@dataclass
class FakeContext:
    """The Lambda context object, with plenty of time left unless told otherwise."""

    remaining: Callable[[], int] = lambda: 300_000
    function_name: str = "imgcaption"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:imgcaption"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining()


def sqs_event(*bodies: str, ids: Sequence[str] | None = None, receive_count: int = 1) -> dict[str, Any]:
    """What Lambda's SQS event source mapping delivers for these message bodies (delivered ``receive_count`` times)."""
    names = list(ids) if ids is not None else [f"message-{index}" for index in range(len(bodies))]
    return {
        "Records": [
            {
                "messageId": name,
                "receiptHandle": f"handle-{name}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": REGION,
            }
            for name, body in zip(names, bodies, strict=True)
        ]
    }


def body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def failed_ids(response: dict[str, Any] | None) -> list[str]:
    return [failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])]


# ----------------------------------------------------------------------------- moto in-process


@dataclass
class Aws:
    """moto's S3, DynamoDB and SQS, through clients built exactly as production builds them (standard retries)."""

    s3: Any
    dynamodb: Any
    sqs: Any
    s3_calls: list[str] = field(default_factory=list)
    """Every S3 API operation any code made through :attr:`s3`, in order."""

    def items(self) -> dict[str, dict[str, Any]]:
        """image_id → the item with its attribute values unwrapped."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True)
        items = [item for page in pages for item in page["Items"]]
        return {item["image_id"]["S"]: {name: next(iter(v.values())) for name, v in item.items()} for item in items}

    def put(self, key: str, data: bytes, *, bucket: str = BUCKET, **fields: Any) -> dict[str, Any]:
        """Upload ``data`` and return the S3 notification record S3 would send about it."""
        from imgcaption_aws.events import notification_record

        response = self.s3.put_object(Bucket=bucket, Key=key, Body=data)
        fields.setdefault("size", len(data))
        return notification_record(bucket, key, etag=response["ETag"], version_id=response.get("VersionId"), **fields)

    def queue(
        self, name: str, *, max_receive_count: int | None = None, visibility_timeout: int = 30
    ) -> tuple[str, str]:
        """A queue (with a dead-letter queue when ``max_receive_count`` is given): its URL and its DLQ's URL."""
        dlq_url = ""
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        if max_receive_count is not None:
            dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
            dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}
            )
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return url, dlq_url

    def drain(self, queue_url: str) -> list[str]:
        """Receive and delete every message left in a queue; their bodies."""
        bodies: list[str] = []
        while messages := self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                bodies.append(message["Body"])
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bodies


def moto_aws(*, versioned: bool = False) -> Iterator[Aws]:
    """moto in-process (``mock_aws``) with a bucket and the captions table (a generator, for fixtures).

    In-process moto answers from botocore's ``before-send`` event, *before* any later hook: faults injected at that
    level need :func:`moto_server` instead, where a hook's response replaces the HTTP call.
    """
    from moto import mock_aws

    with _credentials(), mock_aws():
        yield _provision(None, versioned=versioned)


def moto_server() -> Iterator[str]:
    """moto_server on 127.0.0.1 in a thread; its endpoint (a generator, for fixtures). State: :func:`served_aws`."""
    from moto.server import ThreadedMotoServer

    with _credentials():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def served_aws(endpoint: str, *, versioned: bool = False) -> Iterator[Aws]:
    """A fresh bucket and table on a running moto_server (every moto in a process shares state: reset first)."""
    import urllib.request

    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    with _credentials():
        yield _provision(endpoint, versioned=versioned)


@contextlib.contextmanager
def _credentials() -> Iterator[None]:
    import pytest

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        yield


def _provision(endpoint: str | None, *, versioned: bool) -> Aws:
    """Clients built exactly as production builds them (standard retries), a bucket and the captions table."""
    from imgcaption_aws.clients import dynamodb_client, s3_client, sqs_client

    s3, dynamodb, sqs = s3_client(endpoint), dynamodb_client(endpoint), sqs_client(endpoint)
    aws = Aws(s3, dynamodb, sqs)
    s3.create_bucket(Bucket=BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.meta.events.register("before-call.s3.*", lambda model, **_: aws.s3_calls.append(model.name))
    return aws
