"""A long-polling SQS worker that runs the Lambda's own processor: the whole pipeline on a laptop or moto_server.

Each receive (up to 10 messages) goes to :meth:`~imgcaption_aws.processor.EventProcessor.process_messages`, the
method behind the Lambda's SQS path; the messages it does not report as failed are deleted, the failures become
visible again after ``retry_delay_s`` — what Lambda's event source mapping does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from imgcaption_aws.events import QueueMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)


class MessageProcessor(Protocol):
    """What the worker hands each receive to (:class:`~imgcaption_aws.processor.EventProcessor`)."""

    def process_messages(self, messages: Sequence[QueueMessage]) -> Mapping[str, Exception]:
        """The ids of the messages that failed (and why); the others are done."""
        ...


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
    processor: MessageProcessor
    wait_time_s: int = 20
    retry_delay_s: int = 10

    def run(self, *, max_empty_polls: int | None = None, max_batches: int | None = None) -> WorkerReport:
        """Poll until ``max_empty_polls`` receives in a row came back empty (None: forever) or ``max_batches``."""
        report = WorkerReport()
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
            self._process(messages, report)
        return report

    def _process(self, messages: list[MessageTypeDef], report: WorkerReport) -> None:
        received = [
            QueueMessage.of(message["MessageId"], message["Body"], message.get("Attributes")) for message in messages
        ]
        try:
            failed = set(self.processor.process_messages(received))
        except Exception:
            logger.exception("the processor failed; the whole batch will be delivered again")
            failed = {message.message_id for message in received}
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
