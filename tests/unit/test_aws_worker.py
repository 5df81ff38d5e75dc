"""The SQS worker hands each receive to the processor as queue messages and settles them as Lambda's event source
mapping would: what the processor reports as failed comes back (counted as a redelivery), the rest is deleted.

The processor here is a fake with nothing but ``process_messages``: the worker builds no Lambda event and calls no
handler."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from imgcaption_aws.events import QueueMessage
from imgcaption_aws.processor import RetryLater
from imgcaption_aws.worker import SqsWorker


@dataclass
class FailsOnce:
    """Fails each message whose body is in ``flaky`` on its first delivery; remembers every batch it was given."""

    flaky: set[str] = field(default_factory=set)
    batches: list[list[QueueMessage]] = field(default_factory=list)

    def process_messages(self, messages: Sequence[QueueMessage]) -> Mapping[str, Exception]:
        self.batches.append(list(messages))
        return {
            message.message_id: RetryLater("try again")
            for message in messages
            if message.body in self.flaky and message.receive_count == 1
        }


class Explodes:
    def process_messages(self, messages: Sequence[QueueMessage]) -> Mapping[str, Exception]:
        raise RuntimeError("the processor itself failed")


@pytest.fixture
def queue(fake_aws_credentials: None) -> Iterator[tuple[Any, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        yield sqs, sqs.create_queue(QueueName="events")["QueueUrl"]


def send(sqs: Any, queue_url: str, *bodies: str) -> dict[str, str]:
    """Send each body; message id → body."""
    return {sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]: body for body in bodies}


def left_in(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_messages_go_to_the_processor_as_received_and_its_failures_come_back_as_redeliveries(
    queue: tuple[Any, str],
) -> None:
    sqs, queue_url = queue
    sent = send(sqs, queue_url, '{"Records": []}', "flaky body", "plain text")
    processor = FailsOnce(flaky={"flaky body"})

    worker = SqsWorker(sqs, queue_url, processor, wait_time_s=0, retry_delay_s=0)
    report = worker.run(max_empty_polls=1, max_batches=5)  # a worker that retries everything stops too

    first, *later = processor.batches
    assert {message.message_id: message.body for message in first} == sent
    assert {message.receive_count for message in first} == {1}
    [redelivered] = [message for batch in later for message in batch]
    assert (redelivered.body, redelivered.receive_count) == ("flaky body", 2)
    assert (report.messages, report.deleted, report.retried) == (4, 3, 1)
    assert left_in(sqs, queue_url) == 0


def test_a_processor_that_raises_has_its_whole_batch_delivered_again(queue: tuple[Any, str]) -> None:
    sqs, queue_url = queue
    send(sqs, queue_url, "one", "two")

    report = SqsWorker(sqs, queue_url, Explodes(), wait_time_s=0, retry_delay_s=60).run(max_batches=1)

    assert (report.messages, report.deleted, report.retried) == (2, 0, 2)
    assert left_in(sqs, queue_url) == 2
