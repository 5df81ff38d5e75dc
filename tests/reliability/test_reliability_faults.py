"""Throttling and 5xx: botocore retries first, then the message goes back to the queue, and a redelivery succeeds.

Faults are injected at the HTTP layer (botocore's ``before-send`` event, where moto itself answers), so the clients
built by :mod:`imgcaption_aws.clients` run their real ``standard`` retry mode over them: the attempt counts below are
botocore's. Backoff sleeps are recorded instead of slept. Nothing transient is ever recorded as a failure, and
nothing that a redelivery could finish reaches the DLQ; a bad image is a recorded failure, deleted from the queue.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from reliability_support import BUCKET, Aws, FakeCaptioner, FakeContext, body, failed_ids, png, sqs_event

from imgcaption_aws.clients import MAX_ATTEMPTS
from imgcaption_aws.events import notification_record
from imgcaption_aws.processor import EventProcessor
from imgcaption_aws.store import DynamoDBStore
from imgcaption_aws.worker import SqsWorker

THROTTLED = (400, "ProvisionedThroughputExceededException")
SLOW_DOWN = (503, "SlowDown")
INTERNAL_ERROR = (500, "InternalError")
ACCESS_DENIED = (403, "AccessDenied")
ARCHIVED = (403, "InvalidObjectState")


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


@dataclass
class Fault:
    """Answers the next ``times`` matching requests of one operation with an error, before they reach moto."""

    status: int
    code: str
    times: int
    matches: Callable[[AWSPreparedRequest], bool] = lambda request: True
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        with self._lock:
            if self.injected >= self.times or not self.matches(request):
                return None
            self.injected += 1
        if _is_dynamodb(request):
            payload = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{self.code}", "message": "slow down"})
            headers = {"Content-Type": "application/x-amz-json-1.0"}
        else:
            payload = f"<?xml version='1.0'?><Error><Code>{self.code}</Code><Message>try later</Message></Error>"
            headers = {"Content-Type": "application/xml"}
        return AWSResponse(request.url, self.status, HTTPHeaders.from_dict(headers), _Raw(payload.encode()))

    def clear(self) -> None:
        with self._lock:
            self.times = self.injected


@dataclass
class NetworkFault:
    """Raises a connection error or read timeout for the next ``times`` matching requests, as urllib3 would.

    botocore's endpoint turns these into its own retries (they are ``HTTPClientError`` subclasses).
    """

    error: Callable[[str], Exception]
    times: int
    matches: Callable[[AWSPreparedRequest], bool] = lambda request: True
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> None:
        with self._lock:
            if self.injected >= self.times or not self.matches(request):
                return
            self.injected += 1
        raise self.error(request.url)

    def clear(self) -> None:
        with self._lock:
            self.times = self.injected


def connection_refused(url: str) -> Exception:
    return EndpointConnectionError(endpoint_url=url)


def read_timeout(url: str) -> Exception:
    return ReadTimeoutError(endpoint_url=url, error="read timed out")


def _is_dynamodb(request: AWSPreparedRequest) -> bool:
    target = request.headers.get("X-Amz-Target", b"")
    return (target.decode() if isinstance(target, bytes) else target).startswith("DynamoDB_")


def inject(client: Any, operation: str, fault: Any) -> Any:
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register_first(f"before-send.{service}.{operation}", fault)
    return fault


def for_key(key: str) -> Callable[[AWSPreparedRequest], bool]:
    """Requests about one S3 key (GetObject URL) or its DynamoDB item (PutItem body)."""

    def matches(request: AWSPreparedRequest) -> bool:
        if _is_dynamodb(request):
            body = request.body if isinstance(request.body, str | bytes) else b"{}"
            item = json.loads(body or b"{}").get("Item", {})
            return bool(item.get("image_id") == {"S": f"s3://{BUCKET}/{key}"})
        return request.url.split("?")[0].endswith("/" + quote(key))

    return matches


@dataclass
class RecordedSleeps:
    """Stands in for ``time`` in botocore's endpoint: retries back off without the test waiting."""

    delays: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def aws(http_aws: Aws) -> Aws:
    """moto over HTTP: in-process moto would apply a request even when a fault answers it."""
    return http_aws


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> RecordedSleeps:
    recorded = RecordedSleeps()
    monkeypatch.setattr("botocore.endpoint.time", recorded)
    return recorded


def uploads(aws: Aws, *keys: str) -> list[str]:
    """Upload a small image per key; the SQS message bodies S3 would send about them."""
    return [body(aws.put(key, png((40 * index, 90, 200)))) for index, key in enumerate(keys)]


# ----------------------------------------------------------------------------- botocore retries, then success


@pytest.mark.parametrize(
    ("operation", "fault"), [("PutItem", THROTTLED), ("GetObject", SLOW_DOWN), ("GetObject", INTERNAL_ERROR)]
)
def test_a_short_fault_is_absorbed_by_botocore_retries(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps, operation: str, fault: tuple[int, str]
) -> None:
    client = aws.dynamodb if operation == "PutItem" else aws.s3
    injected = inject(client, operation, Fault(*fault, times=MAX_ATTEMPTS - 2, matches=for_key("hot.png")))
    handler = lambda_handler(aws)

    response = handler(sqs_event(*uploads(aws, "hot.png", "cool.png")), FakeContext())

    assert failed_ids(response) == []
    assert injected.injected == MAX_ATTEMPTS - 2
    assert len(sleeps.delays) == MAX_ATTEMPTS - 2  # one backoff before each retry
    assert {item["status"] for item in aws.items().values()} == {"ok"}


# ----------------------------------------------------------------------------- persistent faults


@pytest.mark.parametrize(("operation", "fault"), [("PutItem", THROTTLED), ("GetObject", SLOW_DOWN)])
def test_a_persistent_fault_returns_only_its_message_and_the_redelivery_succeeds(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps, operation: str, fault: tuple[int, str]
) -> None:
    client = aws.dynamodb if operation == "PutItem" else aws.s3
    injected = inject(client, operation, Fault(*fault, times=10**6, matches=for_key("hot.png")))
    handler = lambda_handler(aws, batch_size=1)
    messages = uploads(aws, "cool.png", "hot.png", "warm.png")

    response = handler(sqs_event(*messages), FakeContext())

    assert failed_ids(response) == ["message-1"]
    assert injected.injected == MAX_ATTEMPTS  # botocore gave up after its attempts, then the queue takes over
    assert sorted(aws.items()) == [f"s3://{BUCKET}/cool.png", f"s3://{BUCKET}/warm.png"]  # nothing recorded for hot

    injected.clear()
    assert failed_ids(handler(sqs_event(messages[1]), FakeContext())) == []
    assert aws.items()[f"s3://{BUCKET}/hot.png"]["status"] == "ok"


def test_a_throttled_write_in_a_bigger_batch_hands_back_its_batch_and_nothing_is_lost(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps
) -> None:
    """The store writes an inference batch at a time: its unwritten neighbours come back with it (at-least-once)."""
    inject(aws.dynamodb, "PutItem", fault := Fault(*THROTTLED, times=MAX_ATTEMPTS, matches=for_key("hot.png")))
    handler = lambda_handler(aws, batch_size=4)
    keys = ["a.png", "b.png", "hot.png", "c.png", "d.png", "e.png"]
    messages = uploads(aws, *keys)

    failed = failed_ids(handler(sqs_event(*messages), FakeContext()))

    assert "message-2" in failed
    recorded = aws.items()
    assert all(f"s3://{BUCKET}/{key}" in recorded for i, key in enumerate(keys) if f"message-{i}" not in failed)
    assert fault.injected == MAX_ATTEMPTS
    redelivered = [messages[int(name.removeprefix("message-"))] for name in failed]
    assert failed_ids(handler(sqs_event(*redelivered), FakeContext())) == []
    assert sorted(aws.items()) == sorted(f"s3://{BUCKET}/{key}" for key in keys)


# ----------------------------------------------------------------------------- through a queue with a DLQ


def test_only_what_can_never_succeed_reaches_the_dead_letter_queue(aws: Aws, sleeps: RecordedSleeps) -> None:
    """maxReceiveCount 3: a read that fails for two deliveries still succeeds; a corrupt image is recorded; only the
    message that is not an S3 event (it fails every time) is dead-lettered."""
    queue_url, dlq_url = aws.queue("events", max_receive_count=3)
    aws.s3.put_object(Bucket=BUCKET, Key="good.png", Body=png("red"))
    aws.s3.put_object(Bucket=BUCKET, Key="flaky.png", Body=png("blue"))
    aws.s3.put_object(Bucket=BUCKET, Key="corrupt.jpg", Body=b"\xff\xd8\xff\xe0 and then nothing")
    for key in ("good.png", "flaky.png", "corrupt.jpg"):
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=body(notification_record(BUCKET, key)))
    aws.sqs.send_message(QueueUrl=queue_url, MessageBody="this is not an S3 event")
    flaky = inject(aws.s3, "GetObject", Fault(*SLOW_DOWN, times=2 * MAX_ATTEMPTS, matches=for_key("flaky.png")))
    processor = EventProcessor(aws.s3, DynamoDBStore(aws.dynamodb, "captions"), FakeCaptioner())

    worker = SqsWorker(aws.sqs, queue_url, processor, wait_time_s=0, retry_delay_s=0)
    report = worker.run(max_empty_polls=1)

    assert flaky.injected == 2 * MAX_ATTEMPTS  # two whole deliveries failed, the third succeeded
    assert report.retried == 2 + 3  # flaky twice, the non-event three times
    items = aws.items()
    assert {key: items[f"s3://{BUCKET}/{key}"]["status"] for key in ("good.png", "flaky.png", "corrupt.jpg")} == {
        "good.png": "ok",
        "flaky.png": "ok",
        "corrupt.jpg": "failed",
    }
    assert items[f"s3://{BUCKET}/corrupt.jpg"]["error_type"] == "ImageDecodeError"
    assert aws.drain(dlq_url) == ["this is not an S3 event"]
    assert aws.drain(queue_url) == []


# ----------------------------------------------------------------------------- the network itself


@pytest.mark.parametrize("operation", ["GetObject", "PutItem"])
@pytest.mark.parametrize("error", [connection_refused, read_timeout], ids=["connection-refused", "read-timeout"])
def test_connection_errors_and_read_timeouts_are_retried_then_handed_back_with_nothing_recorded(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps, operation: str, error: Callable[[str], Exception]
) -> None:
    """No HTTP response at all: botocore retries (standard mode), then the message comes back; a redelivery after
    the network recovers records the caption."""
    client = aws.dynamodb if operation == "PutItem" else aws.s3
    fault = inject(client, operation, NetworkFault(error, times=10**6, matches=for_key("hot.png")))
    handler = lambda_handler(aws, batch_size=1)
    messages = uploads(aws, "cool.png", "hot.png")

    response = handler(sqs_event(*messages), FakeContext())

    assert failed_ids(response) == ["message-1"]
    assert fault.injected == MAX_ATTEMPTS
    assert sorted(aws.items()) == [f"s3://{BUCKET}/cool.png"]
    fault.clear()
    assert failed_ids(handler(sqs_event(messages[1]), FakeContext())) == []
    assert aws.items()[f"s3://{BUCKET}/hot.png"]["status"] == "ok"


# ----------------------------------------------------------------------------- answers that are not faults


def test_access_denied_on_the_object_is_handed_back_so_a_policy_fix_finishes_the_job(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps
) -> None:
    """403 AccessDenied is not retried by botocore (it is not transient), but it is usually a missing grant that a
    deploy fixes: the message is a batch item failure, nothing is recorded, and the redelivery after the fix works."""
    denied = inject(aws.s3, "GetObject", Fault(*ACCESS_DENIED, times=10**6, matches=for_key("locked.png")))
    handler = lambda_handler(aws)
    messages = uploads(aws, "open.png", "locked.png")

    response = handler(sqs_event(*messages), FakeContext())

    assert failed_ids(response) == ["message-1"]
    assert denied.injected == 1  # no botocore retry: only the queue retries it
    assert sorted(aws.items()) == [f"s3://{BUCKET}/open.png"]
    denied.clear()  # the policy is fixed
    assert failed_ids(handler(sqs_event(messages[1]), FakeContext())) == []
    assert aws.items()[f"s3://{BUCKET}/locked.png"]["status"] == "ok"


def test_an_archived_object_is_a_recorded_failure_not_a_retry(
    aws: Aws, lambda_handler: Any, sleeps: RecordedSleeps
) -> None:
    """403 InvalidObjectState (Glacier, Deep Archive): no redelivery can read it until someone restores it, so it is
    recorded once as a non-retryable ``SourceError`` and its message is done."""
    archived = inject(aws.s3, "GetObject", Fault(*ARCHIVED, times=10**6, matches=for_key("cold.png")))
    handler = lambda_handler(aws)

    response = handler(sqs_event(*uploads(aws, "warm.png", "cold.png")), FakeContext())

    assert failed_ids(response) == []
    assert archived.injected == 1
    item = aws.items()[f"s3://{BUCKET}/cold.png"]
    assert (item["status"], item["error_type"], item["retryable"]) == ("failed", "SourceError", False)
    assert "restore" in item["message"]
    assert aws.items()[f"s3://{BUCKET}/warm.png"]["status"] == "ok"
