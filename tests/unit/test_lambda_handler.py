"""The Lambda handler, called as Lambda calls it, with moto in-process standing in for S3 and DynamoDB.

Every accepted event kind ends with one item per object; a bad image is a recorded failure; a transient fault comes
back as a batch item failure (or an exception for asynchronous events); time running out hands work back.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from PIL import Image

from imgcaption.errors import StoreError
from imgcaption.testing import MemoryStore
from imgcaption_aws.clients import dynamodb_client, s3_client
from imgcaption_aws.events import EventParseError, notification_record
from imgcaption_aws.processor import RetryLater
from imgcaption_aws.settings import AwsSettings

EVENTS = Path(__file__).parents[1] / "events"
BUCKET = "photos"
TABLE = "captions"


def png(color: str = "red", size: tuple[int, int] = (32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class FakeContext:
    """The Lambda context object; ``remaining`` yields the milliseconds left at each call."""

    remaining: Callable[[], int] = lambda: 300_000
    function_name: str = "imgcaption"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgcaption"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining()


@dataclass
class Aws:
    s3: Any
    dynamodb: Any

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        """Upload an object and return the notification record S3 would send for it."""
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        return notification_record(BUCKET, key, size=len(body), etag=response["ETag"])

    def items(self) -> dict[str, dict[str, Any]]:
        items = self.dynamodb.scan(TableName=TABLE)["Items"]
        return {item["image_id"]["S"]: {name: next(iter(v.values())) for name, v in item.items()} for item in items}


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[Aws]:
    with mock_aws():
        s3, dynamodb = s3_client(), dynamodb_client()
        s3.create_bucket(Bucket=BUCKET)
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield Aws(s3, dynamodb)


@pytest.fixture
def lambda_module(aws: Aws, tiny_captioner: Any) -> Iterator[Any]:
    """The handler module initialised as at a cold start, but with moto clients and the tiny model."""
    from imgcaption_lambda import handler as module

    module.init(AwsSettings(table_name=TABLE, batch_size=2), s3=aws.s3, dynamodb=aws.dynamodb, captioner=tiny_captioner)
    yield module
    module._processor = None


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"message-{index}",
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:imgcaption",
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def body(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


# ----------------------------------------------------------------------------- SQS (the recommended wiring)


def test_sqs_batch_good_and_bad_images_are_all_recorded_and_nothing_is_retried(aws: Aws, lambda_module: Any) -> None:
    good = aws.put("holiday 2024/café +1.png", png())
    bad = aws.put("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    response = lambda_module.handler(sqs_event(body(good), body(bad)), FakeContext())
    assert response == {"batchItemFailures": []}
    items = aws.items()
    assert items[f"s3://{BUCKET}/holiday 2024/café +1.png"]["status"] == "ok"
    assert items[f"s3://{BUCKET}/corrupt.jpg"]["status"] == "failed"
    assert items[f"s3://{BUCKET}/corrupt.jpg"]["error_type"] == "ImageDecodeError"


def test_an_object_deleted_before_processing_is_a_recorded_failure(aws: Aws, lambda_module: Any) -> None:
    record = aws.put("gone.png", png())
    aws.s3.delete_object(Bucket=BUCKET, Key="gone.png")
    assert lambda_module.handler(sqs_event(body(record)), FakeContext()) == {"batchItemFailures": []}
    assert aws.items()[f"s3://{BUCKET}/gone.png"]["error_type"] == "ImageNotFoundError"


def test_the_test_event_sent_when_notifications_are_configured_is_acknowledged(aws: Aws, lambda_module: Any) -> None:
    test_event = (EVENTS / "s3_test_event.json").read_text()
    assert lambda_module.handler(sqs_event(test_event), FakeContext()) == {"batchItemFailures": []}
    assert aws.items() == {}


def test_a_message_that_is_not_an_s3_event_fails_alone(aws: Aws, lambda_module: Any) -> None:
    good = aws.put("a.png", png())
    response = lambda_module.handler(sqs_event("not json", body(good)), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert list(aws.items()) == [f"s3://{BUCKET}/a.png"]


def test_duplicate_messages_in_one_batch_make_one_item(aws: Aws, lambda_module: Any) -> None:
    record = aws.put("a.png", png())
    response = lambda_module.handler(sqs_event(body(record), body(record)), FakeContext())
    assert response == {"batchItemFailures": []}
    assert len(aws.items()) == 1


class FlakyStore(MemoryStore):
    """Throttled (even after botocore's retries) for one object."""

    def __init__(self, flaky_uri: str) -> None:
        super().__init__()
        self.flaky_uri = flaky_uri

    def record(self, outcomes: Any) -> None:
        if any(outcome.ref.uri == self.flaky_uri for outcome in outcomes):
            raise StoreError("throttled", source=self.flaky_uri, retryable=True)
        super().record(outcomes)


def test_a_transient_store_failure_returns_only_that_message(aws: Aws, tiny_captioner: Any) -> None:
    from imgcaption_lambda import handler as module

    store = FlakyStore(f"s3://{BUCKET}/flaky.png")
    module.init(AwsSettings(table_name=TABLE, batch_size=1), s3=aws.s3, store=store, captioner=tiny_captioner)
    try:
        records = [aws.put("fine.png", png()), aws.put("flaky.png", png("blue"))]
        response = module.handler(sqs_event(*map(body, records)), FakeContext())
    finally:
        module._processor = None
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}
    assert list(store.by_uri()) == [f"s3://{BUCKET}/fine.png"]


class SlowDownFor:
    """An S3 client that answers SlowDown for one key and passes everything else to the real (moto) client."""

    def __init__(self, inner: Any, key: str) -> None:
        self.inner, self.key = inner, key

    def get_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self.key:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "SlowDown", "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(error, "GetObject")  # type: ignore[arg-type]
        return self.inner.get_object(**kwargs)


@pytest.fixture
def throttled_module(aws: Aws, tiny_captioner: Any) -> Iterator[Any]:
    """The handler module whose S3 client answers SlowDown (503) for ``hot.png`` every time."""
    from imgcaption_lambda import handler as module

    module.init(
        AwsSettings(table_name=TABLE),
        s3=SlowDownFor(aws.s3, "hot.png"),
        dynamodb=aws.dynamodb,
        captioner=tiny_captioner,
    )
    yield module
    module._processor = None


def test_a_throttled_read_is_retried_not_recorded(aws: Aws, throttled_module: Any) -> None:
    records = [aws.put("hot.png", png()), aws.put("cool.png", png("green"))]
    response = throttled_module.handler(sqs_event(*map(body, records)), FakeContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert list(aws.items()) == [f"s3://{BUCKET}/cool.png"]


# ----------------------------------------------------------------------------- the remaining-time guard


def test_with_too_little_time_left_everything_is_handed_back_untouched(aws: Aws, lambda_module: Any) -> None:
    records = [aws.put(f"{i}.png", png()) for i in range(3)]
    response = lambda_module.handler(sqs_event(*map(body, records)), FakeContext(lambda: 9_000))
    assert response == {"batchItemFailures": [{"itemIdentifier": f"message-{i}"} for i in range(3)]}
    assert aws.items() == {}


def test_work_stops_between_batches_when_time_runs_low(aws: Aws, lambda_module: Any) -> None:
    left = iter([60_000, 5_000, 4_000, 3_000])
    records = [aws.put(f"{i}.png", png()) for i in range(4)]  # two batches of two
    response = lambda_module.handler(sqs_event(*map(body, records)), FakeContext(lambda: next(left)))
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-2"}, {"itemIdentifier": "message-3"}]}
    assert sorted(aws.items()) == [f"s3://{BUCKET}/0.png", f"s3://{BUCKET}/1.png"]


# ----------------------------------------------------------------------------- other event kinds


def test_direct_s3_notification_with_several_records(aws: Aws, lambda_module: Any) -> None:
    keys = ["c++/a+b.png", "deep/nested/prefix/x y.png", "unicode/日本 ☕.png"]
    event = {"Records": [aws.put(key, png()) for key in keys]}
    assert lambda_module.handler(event, FakeContext()) is None
    assert sorted(aws.items()) == sorted(f"s3://{BUCKET}/{key}" for key in keys)


def test_direct_s3_notification_raises_when_something_must_be_retried(aws: Aws, throttled_module: Any) -> None:
    with pytest.raises(RetryLater, match="1 of 2"):
        throttled_module.handler({"Records": [aws.put("hot.png", png()), aws.put("ok.png", png())]}, FakeContext())
    assert list(aws.items()) == [f"s3://{BUCKET}/ok.png"]  # recording again on retry is harmless


def test_eventbridge_object_created(aws: Aws, lambda_module: Any) -> None:
    aws.put("example-key", png())
    event = json.loads((EVENTS / "eventbridge_object_created.json").read_text())
    event["detail"]["bucket"]["name"] = BUCKET
    event["detail"]["object"].update({"size": None, "version-id": None})
    assert lambda_module.handler(event, FakeContext()) is None
    assert aws.items()[f"s3://{BUCKET}/example-key"]["sequencer"] == "617f08299329d189"


def test_batch_operations_reports_each_task(aws: Aws, lambda_module: Any) -> None:
    aws.put("customer Image1.jpg", png())
    event = json.loads((EVENTS / "batch_operations_v2.json").read_text())
    event["tasks"][0]["s3Bucket"] = BUCKET
    event["tasks"].append({"taskId": "t2", "s3Key": "missing.jpg", "s3VersionId": None, "s3Bucket": BUCKET})
    response = lambda_module.handler(event, FakeContext())
    results = response.pop("results")
    assert response == {
        "invocationSchemaVersion": "2.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
    }
    assert [(r["taskId"], r["resultCode"]) for r in results] == [
        ("dGFza2lkZ29lc2hlcmUK", "Succeeded"),
        ("t2", "PermanentFailure"),
    ]
    assert results[1]["resultString"].startswith("ImageNotFoundError")


def test_an_unrecognised_event_is_an_error(lambda_module: Any) -> None:
    with pytest.raises(EventParseError):
        lambda_module.handler({"hello": "world"}, FakeContext())


# ----------------------------------------------------------------------------- observability


def test_metrics_are_published_as_cloudwatch_emf(
    aws: Aws, lambda_module: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    record = aws.put("a.png", png())
    lambda_module.handler(sqs_event(body(record)), FakeContext())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf, "no metrics were flushed"
    [blob] = emf
    names = {metric["Name"] for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Captions", "Failures", "CaptionLatency", "ImagesReceived"} <= names
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "imgcaption"
    assert blob["Captions"] == [1.0]
