"""Backfill: caption objects that were in the bucket before the notifications were wired, by the same path.

Lists ``s3://bucket/prefix`` page by page and enqueues one S3-notification-shaped message per object (batches of
10, SQS's limit), so the handler (or the worker) treats old objects exactly like new uploads. Each message carries the
object's ``LastModified`` as its event time: a genuine event about the same object is as new or newer and wins.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgcaption.errors import SourceError
from imgcaption.ports import Skipped
from imgcaption_aws.clients import is_transient
from imgcaption_aws.events import S3ObjectRef, notification_record
from imgcaption_aws.source import IMAGE_SUFFIXES, iter_objects

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

logger = logging.getLogger(__name__)

SQS_BATCH = 10
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"
"""Not an AWS event name, on purpose: consumers filtering on ``ObjectCreated:`` accept it, logs tell it apart."""


@dataclass
class BackfillReport:
    enqueued: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """URIs whose message SQS refused even after one retry."""


def backfill_message(ref: S3ObjectRef) -> str:
    location = ref.location
    record = notification_record(
        location.bucket,
        location.key,
        event_name=BACKFILL_EVENT_NAME,
        event_time=ref.event_time,
        size=ref.size,
        etag=ref.etag,
    )
    return json.dumps({"Records": [record]})


def enqueue_backfill(
    s3: S3Client,
    sqs: SQSClient,
    uri: str,
    queue_url: str,
    *,
    suffixes: Sequence[str] | None = IMAGE_SUFFIXES,
    dry_run: bool = False,
) -> BackfillReport:
    """Enqueue a creation message for every matching object under ``uri``."""
    report = BackfillReport()
    refs: list[S3ObjectRef] = []
    for item in iter_objects(s3, uri, suffixes):
        if isinstance(item, Skipped):
            report.skipped.append(item)
            continue
        refs.append(item)
        if len(refs) == SQS_BATCH:
            _send(sqs, queue_url, refs, report, dry_run)
            refs = []
    if refs:
        _send(sqs, queue_url, refs, report, dry_run)
    return report


def _send(sqs: SQSClient, queue_url: str, refs: list[S3ObjectRef], report: BackfillReport, dry_run: bool) -> None:
    if dry_run:
        report.enqueued += len(refs)
        return
    pending = {str(index): ref for index, ref in enumerate(refs)}
    for attempt in (1, 2):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": index, "MessageBody": backfill_message(ref)} for index, ref in pending.items()
        ]
        try:
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            raise SourceError(
                f"enqueueing to {queue_url} failed: {exc}", source=queue_url, retryable=is_transient(exc)
            ) from exc
        report.enqueued += len(response.get("Successful", []))
        failed = response.get("Failed", [])
        pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
        if not pending:
            return
        logger.warning("SQS refused %d messages (attempt %d): %s", len(pending), attempt, failed[:3])
    report.failed.extend(ref.uri for ref in pending.values())
