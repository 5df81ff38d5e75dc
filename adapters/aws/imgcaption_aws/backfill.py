"""Backfill: caption objects that were in the bucket before the notifications were wired, by the same path.

Lists ``s3://bucket/prefix`` page by page and enqueues one S3-notification-shaped message per object (batches of
10, SQS's limit), so the handler (or the worker) treats old objects exactly like new uploads. Each message carries the
object's ``LastModified`` as its event time: a genuine event about the same object is as new or newer and wins.

At a few tens of milliseconds per ``SendMessageBatch``, sending is what takes the time, so batches go out from a
bounded pool of threads (``senders``), optionally under a rate limit. The listing stays one ordered walk (S3 lists
keys in UTF-8 order), which is what makes a run resumable: :attr:`BackfillReport.resume_after` is the last key
below which every object was queued, and ``start_after`` continues from it. ``skip_existing`` asks the table, 100
keys per read, which objects already have a caption of the current signature, so a re-run costs only what is left.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from imgcaption.errors import SourceError
from imgcaption.ports import CaptionSignature, Skipped
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


class CaptionedLookup(Protocol):
    """What ``skip_existing`` needs from the table: which of these objects already hold this signature's caption."""

    def captioned(self, refs: Sequence[S3ObjectRef], signature: CaptionSignature) -> set[str]: ...


@dataclass
class BackfillReport:
    enqueued: int = 0
    already_captioned: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """URIs whose message SQS refused even after one retry."""
    resume_after: str | None = None
    """The last key below which every listed object was queued (or found captioned): ``--start-after`` resumes."""


@dataclass(frozen=True)
class BackfillOptions:
    suffixes: Sequence[str] | None = IMAGE_SUFFIXES
    dry_run: bool = False
    senders: int = 4
    """Threads sending ``SendMessageBatch`` calls; the listing is one thread."""
    max_rate: float | None = None
    """Messages per second at most, over all senders."""
    start_after: str | None = None
    """List keys after this one only (S3's ``StartAfter``): resume an interrupted run."""
    skip_existing: tuple[CaptionedLookup, CaptionSignature] | None = None
    on_progress: Callable[[BackfillReport], None] | None = None
    """Called after each batch is settled (from a sender thread), e.g. to move a progress bar."""


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
    options: BackfillOptions | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> BackfillReport:
    """Enqueue a creation message for every matching object under ``uri``.

    ``should_stop`` (checked between batches) ends the run early; the report's ``resume_after`` says where to pick
    up. An error from SQS or the listing stops the run too, after the batches already sent are settled.
    """
    options = options or BackfillOptions()
    report = BackfillReport()
    lock = threading.Lock()
    watermark = _Watermark(report, lock)
    limiter = _RateLimiter(options.max_rate) if options.max_rate else None

    def settle(batch: list[S3ObjectRef]) -> None:
        todo = batch
        if options.skip_existing is not None:
            lookup, signature = options.skip_existing
            done = lookup.captioned(batch, signature)
            todo = [ref for ref in batch if ref.uri not in done]
            with lock:
                report.already_captioned += len(batch) - len(todo)
        if todo:
            if limiter is not None:
                limiter.wait(len(todo))
            sent, refused = (len(todo), []) if options.dry_run else _send(sqs, queue_url, todo)
            with lock:
                report.enqueued += sent
                report.failed.extend(refused)
        if options.on_progress is not None:
            options.on_progress(report)

    with ThreadPoolExecutor(max_workers=max(1, options.senders), thread_name_prefix="imgcaption-backfill") as pool:
        in_flight: deque[tuple[str, Future[None]]] = deque()
        try:
            for batch in _batches(iter_objects(s3, uri, options.suffixes, start_after=options.start_after), report):
                if should_stop is not None and should_stop():
                    break
                while len(in_flight) >= 2 * max(1, options.senders):  # bounded: the listing waits for the senders
                    watermark.settle(*in_flight.popleft())
                in_flight.append((batch[-1].location.key, pool.submit(settle, batch)))
        finally:  # every batch handed to a sender is waited for; the watermark stops at the first that failed
            intact = True
            while in_flight:
                key, future = in_flight.popleft()
                intact = intact and future.exception() is None
                if intact:
                    watermark.settle(key, future)
    return report


class _Watermark:
    """Advances :attr:`BackfillReport.resume_after` over batches settled in listing order (they finish in any)."""

    def __init__(self, report: BackfillReport, lock: threading.Lock) -> None:
        self.report = report
        self.lock = lock

    def settle(self, last_key: str, future: Future[None]) -> None:
        future.result()  # re-raises a sender's error here, on the listing thread
        with self.lock:
            self.report.resume_after = last_key


def _batches(listing: Iterator[S3ObjectRef | Skipped], report: BackfillReport) -> Iterator[list[S3ObjectRef]]:
    batch: list[S3ObjectRef] = []
    for item in listing:
        if isinstance(item, Skipped):
            report.skipped.append(item)
            continue
        batch.append(item)
        if len(batch) == SQS_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _RateLimiter:
    """A token bucket of ``rate`` messages per second, shared by the sender threads (bursts of one second)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, count: int) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= count or self.tokens >= self.rate:
                    self.tokens -= count
                    return
                delay = (count - self.tokens) / self.rate
            time.sleep(delay)


def _send(sqs: SQSClient, queue_url: str, refs: list[S3ObjectRef]) -> tuple[int, list[str]]:
    """Send one batch (one retry for the entries SQS refused); the count sent and the URIs refused twice."""
    sent = 0
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
        sent += len(response.get("Successful", []))
        failed = response.get("Failed", [])
        pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
        if not pending:
            break
        logger.warning("SQS refused %d messages (attempt %d): %s", len(pending), attempt, failed[:3])
    return sent, [ref.uri for ref in pending.values()]
