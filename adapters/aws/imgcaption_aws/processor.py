"""Events in, outcomes in DynamoDB, a Lambda response out: the one piece of logic behind the handler and the worker.

* SQS messages (the recommended wiring) go through :meth:`EventProcessor.process_messages`, whether Lambda delivered
  them (answered with partial batch failures through powertools' ``BatchProcessor``) or the local worker received
  them: all images of the batch go through one :class:`~imgcaption.pipeline.Pipeline` run (batched inference), then
  each message succeeds or fails by what happened to its images.
* S3 notifications and EventBridge events (asynchronous invocations) raise when something must be retried, so Lambda
  retries the event; recording again is harmless thanks to the conditional writes.
* S3 Batch Operations get a per-task ``Succeeded`` / ``TemporaryFailure`` / ``PermanentFailure`` report.

A bad image is a recorded failure, never a retry. A transient fault (throttling, 5xx, a store write that failed)
is never recorded: the message goes back to the queue. Before each batch the processor checks the time left and
hands back what it cannot finish instead of being killed mid-batch.

Crash isolation: a process that dies (out of memory, a segfault in a codec, a hard timeout) sends no response, so
SQS delivers its whole batch again. The images of a message delivered again (``ApproximateReceiveCount`` > 1) are
therefore captioned one at a time, each read, decoded and captioned alone, after an attempt counter in the store says
nothing recorded covers its event yet (those are skipped: finished before the crash). An image whose counter has
reached ``max_attempts`` is not tried again: it is recorded as a non-retryable
:class:`~imgcaption.errors.WorkerCrashedError`, so one poisonous image costs its batch-mates one redelivery and
never takes them, or itself, to the dead-letter queue.

Removals (``ObjectRemoved:*``) become tombstones when ``mirror_deletions`` is on (see
:meth:`imgcaption_aws.store.DynamoDBStore.record_removal`); otherwise they are ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from imgcaption.errors import ConfigurationError, ImgCaptionError, WorkerCrashedError
from imgcaption.ports import CaptionSignature, CaptionStore, ImageRef, Outcome
from imgcaption.results import Caption, CaptionFailure
from imgcaption_aws.events import (
    BatchOperationsEvent,
    EventParseError,
    QueueMessage,
    S3ObjectRef,
    classify,
    refs_from_body,
    refs_from_event,
    supersedes,
)
from imgcaption_aws.source import S3Source
from imgcaption_aws.tracing import NO_SPANS, STORE_WRITE, Spans, TracedPipeline, TracedSource

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from imgcaption.captioner import Captioner
    from imgcaption_aws.settings import AwsSettings
    from imgcaption_aws.store import AttemptStart

logger = logging.getLogger(__name__)


class LambdaContextLike(Protocol):
    """The part of the Lambda context object the processor uses."""

    def get_remaining_time_in_millis(self) -> int: ...


class MetricsSink(Protocol):
    """powertools ``Metrics`` fits; the worker passes None and only logs."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


@runtime_checkable
class AttemptTracker(Protocol):
    """A store that counts attempts per event (:class:`~imgcaption_aws.store.DynamoDBStore`)."""

    def begin_attempt(self, ref: ImageRef, signature: CaptionSignature) -> AttemptStart: ...

    def attempts(self, refs: Sequence[ImageRef]) -> dict[str, int]: ...


@runtime_checkable
class RemovalRecorder(Protocol):
    """A store that mirrors deletions (:class:`~imgcaption_aws.store.DynamoDBStore`)."""

    def record_removal(self, ref: S3ObjectRef) -> bool: ...


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

    def __init__(self, inner: CaptionStore, report: RunReport, spans: Spans = NO_SPANS) -> None:
        self.inner = inner
        self.report = report
        self.spans = spans

    def record(self, outcomes: Sequence[Outcome]) -> None:
        try:
            with self.spans.span(STORE_WRITE, [outcome.ref for outcome in outcomes]):
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
    max_attempts: int = 2
    """Attempts alone, after a redelivery, before an image is recorded as a :class:`WorkerCrashedError`."""
    mirror_deletions: bool = False
    spans: Spans = NO_SPANS
    """X-Ray subsegments per download, decode, inference batch and store write (:mod:`imgcaption_aws.tracing`)."""

    # ------------------------------------------------------------------ entry point

    def handle(self, event: Mapping[str, Any], context: LambdaContextLike | None = None) -> dict[str, Any] | None:
        """Process one Lambda event of any accepted kind and return what Lambda expects for it."""
        self._metric("Events", "Count", 1)
        kind = classify(event)
        if kind == "sqs":
            return self._handle_sqs(event, context)
        if kind == "batch_operations":
            return self._handle_batch_operations(event, context)
        refs = refs_from_event(event, kind)
        if not refs:
            logger.info("nothing to caption in this %s event (test event or not an object creation)", kind)
            return None
        report = self.process(refs, context)
        failed = report.failed_refs(refs)
        if failed:
            raise RetryLater(f"{len(failed)} of {len(refs)} objects must be retried: {failed}")
        return None

    def process(
        self,
        refs: Sequence[S3ObjectRef],
        context: LambdaContextLike | None = None,
        *,
        isolate: Collection[str] = (),
    ) -> RunReport:
        """Caption the newest event of each object; every ref ends in ``results`` or ``retry``.

        Objects whose URI is in ``isolate`` (delivered again: maybe what killed the last worker) are captioned one
        at a time behind the attempt counter, after the others. Removals are mirrored last.
        """
        report = RunReport()
        removals = [ref for ref in refs if ref.removed]
        if removals and not self.mirror_deletions:
            logger.info("ignoring %d removal events (mirror_deletions is off)", len(removals))
            removals = []
        newest = [ref for ref in _newest_per_object([r for r in refs if not r.removed]) if not _hidden(ref, removals)]
        self._metric("ImagesReceived", "Count", len(refs))
        guard = RemainingTimeGuard(context.get_remaining_time_in_millis, self.time_reserve_ms) if context else None
        batched = [ref for ref in newest if ref.uri not in isolate]
        alone = [ref for ref in newest if ref.uri in isolate]
        if batched:
            self._run(batched, report, self.batch_size, guard)
        if alone:
            if guard is not None and guard.stopped:
                self._hand_back(alone, report)
            else:
                self._caption_alone(alone, report, guard)
        self._mirror(removals, report)
        if newest or removals:
            self._record_metrics(report)
        return report

    def _run(
        self, refs: Sequence[S3ObjectRef], report: RunReport, batch_size: int, guard: RemainingTimeGuard | None
    ) -> None:
        pipeline = TracedPipeline(
            TracedSource(S3Source(self.s3, refs), self.spans),
            _GuardedStore(self.store, report, self.spans),
            self.captioner,
            batch_size=batch_size,
            record_retryable_failures=False,
            on_outcome=lambda outcome: _note(outcome, report),
            should_stop=guard,
            spans=self.spans,
        )
        self._hand_back(pipeline.run().unprocessed, report)

    def _caption_alone(self, refs: Sequence[S3ObjectRef], report: RunReport, guard: RemainingTimeGuard | None) -> None:
        """One image per pipeline run (no decoding ahead), each behind its attempt counter.

        Images never tried alone go first, so once a culprit has died alone it no longer holds up its batch-mates;
        those at the limit go before them, as they only need a write.
        """
        tracker = self.store if isinstance(self.store, AttemptTracker) else None
        signature = self.captioner.signature
        if tracker is not None:
            try:
                counted = tracker.attempts(refs)
            except ImgCaptionError as exc:
                logger.warning("reading attempt counters failed, the images will be retried: %s", exc)
                self._hand_back(refs, report, f"{type(exc).__name__}: {exc.message}")
                return
            refs = sorted(refs, key=lambda ref: _attempt_order(counted.get(ref.uri, 0), self.max_attempts))
        for position, ref in enumerate(refs):
            if guard is not None and guard():
                self._hand_back(refs[position:], report)
                return
            if tracker is not None:
                try:
                    start = tracker.begin_attempt(ref, signature)
                except ImgCaptionError as exc:
                    report.retry[ref.uri] = f"{type(exc).__name__}: {exc.message}"
                    continue
                if start.finished:
                    logger.info("%s: already recorded (before the last worker died); skipped", ref.uri)
                    continue
                if start.number > self.max_attempts:
                    self._record_crash(ref, start.number - 1, report)
                    continue
                logger.warning("%s: delivered again; captioning it alone (attempt %d)", ref.uri, start.number)
            self._run([ref], report, 1, None)

    def _record_crash(self, ref: S3ObjectRef, attempts: int, report: RunReport) -> None:
        error = WorkerCrashedError(
            f"the worker died each of the {attempts} times it captioned this image alone (out of memory, a crash "
            "in native code, or a timeout); not retried",
            source=ref.uri,
        )
        logger.error("%s", error)
        outcome = Outcome(ref, self.captioner.failure(error, ref.uri))
        _GuardedStore(self.store, report, self.spans).record([outcome])
        _note(outcome, report)

    def _mirror(self, removals: Sequence[S3ObjectRef], report: RunReport) -> None:
        if not removals:
            return
        if not isinstance(self.store, RemovalRecorder):
            logger.warning("this store cannot mirror deletions; %d removal events ignored", len(removals))
            return
        for ref in removals:
            try:
                changed = self.store.record_removal(ref)
            except ImgCaptionError as exc:
                logger.warning("mirroring the removal of %s failed, it will be retried: %s", ref.uri, exc)
                report.retry[ref.uri] = f"{type(exc).__name__}: {exc.message}"
                continue
            logger.info("%s removed (%s): %s", ref.uri, ref.removed, "mirrored" if changed else "superseded")

    @staticmethod
    def _hand_back(refs: Sequence[ImageRef], report: RunReport, why: str | None = None) -> None:
        for ref in refs:
            report.retry[ref.uri] = why or "out of time: handed back before the function timeout"
        if refs and why is None:
            logger.warning("out of time: %d objects handed back unprocessed", len(refs))

    # ------------------------------------------------------------------ per kind

    def process_messages(
        self, messages: Sequence[QueueMessage], context: LambdaContextLike | None = None
    ) -> dict[str, ImgCaptionError]:
        """Caption the objects of a batch of queue messages in one pipeline run; the messages that failed, by id.

        A message that is no S3 event maps to its :class:`EventParseError` (it would fail the same way each time, so
        the queue dead-letters it); one with objects to retry maps to :class:`RetryLater`. Every other message is done
        and may be deleted.
        """
        parsed: dict[str, list[S3ObjectRef]] = {}
        failed: dict[str, ImgCaptionError] = {}
        isolate: set[str] = set()  # objects of messages delivered again: maybe what killed the last worker
        for message in messages:
            try:
                parsed[message.message_id] = refs = refs_from_body(message.body)
            except EventParseError as exc:
                logger.error("message %s is not an S3 event; it will go to the DLQ: %s", message.message_id, exc)
                failed[message.message_id] = exc
                continue
            if message.receive_count > 1:
                isolate.update(ref.uri for ref in refs)
        report = self.process([ref for refs in parsed.values() for ref in refs], context, isolate=isolate)
        for message_id, refs in parsed.items():
            retry = report.failed_refs(refs)
            if retry:
                failed[message_id] = RetryLater(f"{len(retry)} of {len(refs)} objects must be retried: {retry}")
        self._metric("MessagesRetried", "Count", len(failed))
        return failed

    def _handle_sqs(self, event: Mapping[str, Any], context: LambdaContextLike | None) -> dict[str, Any]:
        """:meth:`process_messages`, answered as Lambda's partial batch response (powertools' ``BatchProcessor``)."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
        from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

        messages = [
            QueueMessage.of(record["messageId"], record["body"], record.get("attributes"))
            for record in event["Records"]
        ]
        failed = self.process_messages(messages, context)

        def check_record(record: SQSRecord) -> None:
            error = failed.get(record.message_id)
            if error is not None:
                raise error

        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return dict(
            process_partial_response(
                event=dict(event),
                record_handler=check_record,
                processor=processor,
                context=context,  # type: ignore[arg-type]
            )
        )

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


def _note(outcome: Outcome, report: RunReport) -> None:
    """File one outcome: a transient failure is a retry, anything else a result (unless already a retry)."""
    result = outcome.result
    if isinstance(result, CaptionFailure) and result.retryable:
        report.retry.setdefault(outcome.ref.uri, f"{result.error_type}: {result.message}")
        logger.warning("transient failure, will retry %s: %s", outcome.ref.uri, result.message)
    elif outcome.ref.uri not in report.retry:
        report.results[outcome.ref.uri] = result
        if isinstance(result, CaptionFailure):
            logger.warning("recorded failure for %s: %s: %s", outcome.ref.uri, result.error_type, result.message)


def _attempt_order(attempts: int, limit: int) -> tuple[int, int]:
    """Sort key: images due to be recorded as crashed first (a write), then the fewest attempts first."""
    return (0, 0) if attempts >= limit else (1, attempts)


def _hidden(ref: S3ObjectRef, removals: Sequence[S3ObjectRef]) -> bool:
    """Whether a removal in the same batch hides this creation (so it is not read only to be tombstoned)."""
    return any(
        removal.uri == ref.uri and removal.removed == "object" and supersedes(removal, ref) for removal in removals
    )


def _newest_per_object(refs: Sequence[S3ObjectRef]) -> list[S3ObjectRef]:
    """One ref per object, the newest event wins (by the store's own rule): duplicates and superseded events in one
    batch cost nothing, and the one kept is the one the store would keep had they come in separate batches (two
    events with neither sequencer nor time, as S3 Batch Operations sends, are equal here: the first is kept)."""
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
    spans: Spans = NO_SPANS,
) -> EventProcessor:
    """Wire the real adapters from settings; anything passed in (tests) is used instead."""
    from imgcaption_aws.clients import dynamodb_client, s3_client
    from imgcaption_aws.store import DynamoDBStore

    if store is None:
        if not settings.table_name:
            raise ConfigurationError("set IMGCAPTION_TABLE_NAME to the DynamoDB table that receives the captions")
        store = DynamoDBStore(dynamodb or dynamodb_client(settings.endpoint_url, settings.region), settings.table_name)
    if captioner is None:
        captioner = _build_captioner(settings)
    return EventProcessor(
        s3=s3 or s3_client(settings.endpoint_url, settings.region),
        store=store,
        captioner=captioner,
        batch_size=settings.batch_size,
        time_reserve_ms=settings.time_reserve_ms,
        metrics=metrics,
        max_attempts=settings.max_attempts,
        mirror_deletions=settings.mirror_deletions,
        spans=spans,
    )


def _build_captioner(settings: AwsSettings) -> Captioner:
    """The model of the settings, or what ``captioner_factory`` (``module:function``) builds from them."""
    from imgcaption.captioner import Captioner

    if not settings.captioner_factory:
        return Captioner.from_pretrained(settings=settings)
    import importlib

    module_name, _, name = settings.captioner_factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(
            f"IMGCAPTION_CAPTIONER_FACTORY={settings.captioner_factory!r} does not name a 'module:function': {exc}"
        ) from exc
    captioner = factory(settings)
    if not isinstance(captioner, Captioner):
        raise ConfigurationError(f"{settings.captioner_factory} returned {type(captioner).__name__}, not a Captioner")
    return captioner
