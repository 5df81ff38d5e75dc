"""Events in, outcomes in DynamoDB, a Lambda response out: the one piece of logic behind the handler and the worker.

* SQS events (the recommended wiring) answer with partial batch failures through powertools' ``BatchProcessor``:
  all images of the batch go through one :class:`~imgcaption.pipeline.Pipeline` run (batched inference), then each
  message succeeds or fails by what happened to its images.
* S3 notifications and EventBridge events (asynchronous invocations) raise when something must be retried, so Lambda
  retries the event; recording again is harmless thanks to the conditional writes.
* S3 Batch Operations get a per-task ``Succeeded`` / ``TemporaryFailure`` / ``PermanentFailure`` report.

A bad image is a recorded failure, never a retry. A transient fault (throttling, 5xx, a store write that failed)
is never recorded: the message goes back to the queue. Before each batch the processor checks the time left and
hands back what it cannot finish instead of being killed mid-batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from imgcaption.aws.events import (
    BatchOperationsEvent,
    EventParseError,
    S3ObjectRef,
    classify,
    refs_from_body,
    refs_from_event,
)
from imgcaption.aws.source import S3Source
from imgcaption.errors import ConfigurationError, ImgCaptionError
from imgcaption.pipeline import Pipeline
from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, Outcome
from imgcaption.results import Caption, CaptionFailure

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from imgcaption.aws.settings import AwsSettings
    from imgcaption.captioner import Captioner

logger = logging.getLogger(__name__)


class LambdaContextLike(Protocol):
    """The part of the Lambda context object the processor uses."""

    def get_remaining_time_in_millis(self) -> int: ...


class MetricsSink(Protocol):
    """powertools ``Metrics`` fits; the worker passes None and only logs."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


class RetryLater(ImgCaptionError):
    """Some images of a message or event could not be finished now; the queue (or Lambda) should deliver it again."""

    retryable = True


@dataclass
class RemainingTimeGuard:
    """Says when to stop starting batches: less left than the reserve plus the slowest batch seen so far.

    The pipeline calls it before each batch, so the time between two calls is one batch's duration.
    """

    remaining_ms: Callable[[], int]
    reserve_ms: int
    slowest_batch_ms: float = 0.0
    _last_call: float | None = None
    stopped: bool = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if self._last_call is not None:
            self.slowest_batch_ms = max(self.slowest_batch_ms, (now - self._last_call) * 1000)
        self._last_call = now
        self.stopped = self.remaining_ms() < self.reserve_ms + self.slowest_batch_ms
        return self.stopped


@dataclass
class RunReport:
    """What happened to each object of one invocation, by URI."""

    results: dict[str, Caption | CaptionFailure] = field(default_factory=dict)
    retry: dict[str, str] = field(default_factory=dict)
    """URI → why it must be delivered again (transient failure, store failure, out of time)."""

    def failed_refs(self, refs: Sequence[ImageRef]) -> dict[str, str]:
        return {ref.uri: self.retry[ref.uri] for ref in refs if ref.uri in self.retry}


class _GuardedStore:
    """Passes writes through; a failed write marks its objects for retry instead of aborting the whole batch."""

    def __init__(self, inner: CaptionStore, report: RunReport) -> None:
        self.inner = inner
        self.report = report

    def record(self, outcomes: Sequence[Outcome]) -> None:
        try:
            self.inner.record(outcomes)
        except ImgCaptionError as exc:
            logger.warning("recording %d outcomes failed, they will be retried: %s", len(outcomes), exc)
            for outcome in outcomes:
                self.report.retry[outcome.ref.uri] = f"{type(exc).__name__}: {exc.message}"

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        return self.inner.has_caption(ref, signature)

    def outcomes(self) -> Any:
        return self.inner.outcomes()


@dataclass
class EventProcessor:
    """S3 events → captions in the store. Build it once per container (the model load is the expensive part)."""

    s3: S3Client
    store: CaptionStore
    captioner: Captioner
    batch_size: int = 8
    time_reserve_ms: int = 10_000
    metrics: MetricsSink | None = None

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Mapping[str, Any], context: LambdaContextLike | None = None) -> dict[str, Any] | None:
        """Process one Lambda event of any accepted kind and return what Lambda expects for it."""
        self._metric("Events", "Count", 1)
        kind = classify(event)
        if kind == "sqs":
            return self._handle_sqs(event, context)
        if kind == "batch_operations":
            return self._handle_batch_operations(event, context)
        refs = refs_from_event(event)
        if not refs:
            logger.info("nothing to caption in this %s event (test event or not an object creation)", kind)
            return None
        report = self.process(refs, context)
        failed = report.failed_refs(refs)
        if failed:
            raise RetryLater(f"{len(failed)} of {len(refs)} objects must be retried: {failed}")
        return None

    def process(self, refs: Sequence[S3ObjectRef], context: LambdaContextLike | None = None) -> RunReport:
        """Caption the newest event of each object; every ref ends in ``results`` or ``retry``."""
        report = RunReport()
        newest = _newest_per_object(refs)
        self._metric("ImagesReceived", "Count", len(refs))
        if not newest:
            return report
        guard = RemainingTimeGuard(context.get_remaining_time_in_millis, self.time_reserve_ms) if context else None

        def on_outcome(outcome: Outcome) -> None:
            result = outcome.result
            if isinstance(result, CaptionFailure) and result.retryable:
                report.retry.setdefault(outcome.ref.uri, f"{result.error_type}: {result.message}")
                logger.warning("transient failure, will retry %s: %s", outcome.ref.uri, result.message)
            elif outcome.ref.uri not in report.retry:
                report.results[outcome.ref.uri] = result
                if isinstance(result, CaptionFailure):
                    logger.warning(
                        "recorded failure for %s: %s: %s", outcome.ref.uri, result.error_type, result.message
                    )

        pipeline = Pipeline(
            S3Source(self.s3, newest),
            _GuardedStore(self.store, report),
            self.captioner,
            batch_size=self.batch_size,
            record_retryable_failures=False,
            on_outcome=on_outcome,
            should_stop=guard,
        )
        summary = pipeline.run()
        for ref in summary.unprocessed:
            report.retry[ref.uri] = "out of time: handed back before the function timeout"
        if summary.unprocessed:
            logger.warning("out of time: %d objects handed back unprocessed", len(summary.unprocessed))
        self._record_metrics(report)
        return report

    # ------------------------------------------------------------------ per kind

    def _handle_sqs(self, event: Mapping[str, Any], context: LambdaContextLike | None) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

        parsed: dict[str, list[S3ObjectRef] | EventParseError] = {}
        for record in event["Records"]:
            try:
                parsed[record["messageId"]] = refs_from_body(record["body"])
            except EventParseError as exc:
                logger.error("message %s is not an S3 event; it will go to the DLQ: %s", record["messageId"], exc)
                parsed[record["messageId"]] = exc
        refs = [ref for entry in parsed.values() if not isinstance(entry, EventParseError) for ref in entry]
        report = self.process(refs, context)

        def check_record(record: SQSRecord) -> None:
            entry = parsed[record.message_id]
            if isinstance(entry, EventParseError):
                raise entry
            failed = report.failed_refs(entry)
            if failed:
                raise RetryLater(f"{len(failed)} of {len(entry)} objects must be retried: {failed}")

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        response: dict[str, Any] = dict(
            process_partial_response(
                event=dict(event),
                record_handler=check_record,
                processor=processor,
                context=context,  # type: ignore[arg-type]
            )
        )
        self._metric("MessagesRetried", "Count", len(response.get("batchItemFailures", [])))
        return response

    def _handle_batch_operations(self, event: Mapping[str, Any], context: LambdaContextLike | None) -> dict[str, Any]:
        invocation = BatchOperationsEvent.model_validate(event)
        refs: list[S3ObjectRef | EventParseError] = []
        for task in invocation.tasks:
            try:
                refs.append(task.ref())
            except EventParseError as exc:
                refs.append(exc)
        report = self.process([ref for ref in refs if isinstance(ref, S3ObjectRef)], context)
        results = []
        for task, ref in zip(invocation.tasks, refs, strict=True):
            code, text = _task_result(ref, report)
            results.append({"taskId": task.task_id, "resultCode": code, "resultString": text})
        return {
            "invocationSchemaVersion": invocation.invocation_schema_version,
            "treatMissingKeysAs": "PermanentFailure",
            "invocationId": invocation.invocation_id,
            "results": results,
        }

    # ------------------------------------------------------------------ metrics

    def _record_metrics(self, report: RunReport) -> None:
        captions = [r for r in report.results.values() if isinstance(r, Caption)]
        self._metric("Captions", "Count", len(captions))
        self._metric("Failures", "Count", len(report.results) - len(captions))
        self._metric("Retries", "Count", len(report.retry))
        for caption in captions:
            self._metric("CaptionLatency", "Milliseconds", caption.elapsed_ms)

    def _metric(self, name: str, unit: str, value: float) -> None:
        if self.metrics is not None:
            self.metrics.add_metric(name=name, unit=unit, value=value)


def _newest_per_object(refs: Sequence[S3ObjectRef]) -> list[S3ObjectRef]:
    """One ref per object, the newest event wins (by the store's own rule): duplicates and superseded events in one
    batch cost nothing, and the one kept is the one the store would keep had they come in separate batches (two
    events with neither sequencer nor time, as S3 Batch Operations sends, are equal here: the first is kept)."""
    from imgcaption.aws.store import supersedes

    newest: dict[str, S3ObjectRef] = {}
    for ref in refs:
        current = newest.get(ref.uri)
        if current is None or supersedes(ref, current):
            newest[ref.uri] = ref
    return list(newest.values())


def _task_result(ref: S3ObjectRef | EventParseError, report: RunReport) -> tuple[str, str]:
    if isinstance(ref, EventParseError):
        return "PermanentFailure", ref.message
    if ref.uri in report.retry:
        return "TemporaryFailure", report.retry[ref.uri]
    result = report.results.get(ref.uri)
    if isinstance(result, Caption):
        return "Succeeded", result.text
    if isinstance(result, CaptionFailure):
        return "PermanentFailure", f"{result.error_type}: {result.message}"
    return "TemporaryFailure", "not processed"


# ---------------------------------------------------------------------- composition


def build_processor(
    settings: AwsSettings,
    *,
    s3: S3Client | None = None,
    dynamodb: DynamoDBClient | None = None,
    store: CaptionStore | None = None,
    captioner: Captioner | None = None,
    metrics: MetricsSink | None = None,
) -> EventProcessor:
    """Wire the real adapters from settings; anything passed in (tests) is used instead."""
    from imgcaption.aws.clients import dynamodb_client, s3_client
    from imgcaption.aws.store import DynamoDBStore

    if store is None:
        if not settings.table_name:
            raise ConfigurationError("set IMGCAPTION_TABLE_NAME to the DynamoDB table that receives the captions")
        store = DynamoDBStore(dynamodb or dynamodb_client(settings.endpoint_url, settings.region), settings.table_name)
    if captioner is None:
        from imgcaption.captioner import Captioner

        captioner = Captioner.from_pretrained(settings=settings)
    return EventProcessor(
        s3=s3 or s3_client(settings.endpoint_url, settings.region),
        store=store,
        captioner=captioner,
        batch_size=settings.batch_size,
        time_reserve_ms=settings.time_reserve_ms,
        metrics=metrics,
    )
