"""A long-polling SQS worker that runs the Lambda's own processor: the whole pipeline on a laptop or moto_server.

Each receive (up to 10 messages) becomes an SQS-shaped Lambda event handed to
:meth:`~imgcaption_aws.processor.EventProcessor.handle`; the messages it does not report as batch item failures are
deleted, the failures become visible again after ``retry_delay_s`` — what Lambda's event source mapping does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)

Handler = Callable[[Mapping[str, Any]], "dict[str, Any] | None"]


def sqs_event(messages: Sequence[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping would deliver for these received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


@dataclass
class WorkerReport:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    retried: int = 0


@dataclass
class SqsWorker:
    sqs: SQSClient
    queue_url: str
    handle: Handler
    wait_time_s: int = 20
    retry_delay_s: int = 10

    def run(self, *, max_empty_polls: int | None = None, max_batches: int | None = None) -> WorkerReport:
        """Poll until ``max_empty_polls`` receives in a row came back empty (None: forever) or ``max_batches``."""
        report = WorkerReport()
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        region = queue_arn.split(":")[3] if queue_arn.count(":") >= 3 else "us-east-1"
        empty = 0
        while max_batches is None or report.batches < max_batches:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=self.wait_time_s,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                empty += 1
                if max_empty_polls is not None and empty >= max_empty_polls:
                    break
                continue
            empty = 0
            report.batches += 1
            report.messages += len(messages)
            self._process(messages, queue_arn, region, report)
        return report

    def _process(self, messages: list[MessageTypeDef], queue_arn: str, region: str, report: WorkerReport) -> None:
        try:
            response = self.handle(sqs_event(messages, queue_arn, region)) or {}
            failed = {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}
        except Exception:
            logger.exception("the handler failed; the whole batch will be delivered again")
            failed = {message["MessageId"] for message in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        again = [m for m in messages if m["MessageId"] in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if again:
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay_s}
                    for i, m in enumerate(again)
                ],
            )
        report.deleted += len(done)
        report.retried += len(again)
        logger.info("batch of %d: %d done, %d to retry", len(messages), len(done), len(again))
