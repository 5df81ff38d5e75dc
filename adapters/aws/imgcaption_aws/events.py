"""S3 events of every shape AWS (and moto) delivers, turned into :class:`S3ObjectRef` inputs for the pipeline.

Accepted: S3 notifications (every record), the same wrapped in SQS bodies or SNS envelopes, EventBridge
``Object Created`` events (directly or as an SQS body), S3 Batch Operations invocations (schema 1.0 and 2.0), and
``s3:TestEvent`` (acknowledged, yields nothing). Object keys arrive URL-encoded (``red flower.jpg`` →
``red+flower.jpg``, ``+`` → ``%2B``) and are decoded with ``unquote_plus``. Created objects become refs to caption;
removals (``ObjectRemoved:Delete``, ``ObjectRemoved:DeleteMarkerCreated``, EventBridge ``Object Deleted``) become refs
with :attr:`S3ObjectRef.removed` set, which the store turns into tombstones. Anything else (restores, tagging,
lifecycle transitions) is acknowledged and ignored.

The models are deliberately lenient pydantic models rather than powertools' parser models: moto's S3→SQS messages
omit ``userIdentity``, ``requestParameters``, ``responseElements``, ``ownerIdentity`` and ``sequencer``, which
powertools' ``S3SqsEventNotificationModel`` requires. Only what captioning needs is required: bucket and key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote_plus, unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imgcaption.errors import ImgCaptionError
from imgcaption.ports import ImageRef
from imgcaption_aws.uris import S3Location

EventKind = Literal["sqs", "s3", "sns", "eventbridge", "batch_operations", "test"]
Removal = Literal["object", "version"]
"""``object``: the key no longer shows an object (a delete in an unversioned bucket, or a delete marker);
``version``: one version was deleted for good (``versionId`` names it), which hides the object only if it was the
version on record."""


class EventParseError(ImgCaptionError):
    """An event or message that is none of the accepted shapes. Never retryable: it would fail the same way."""


@dataclass(frozen=True, slots=True)
class S3ObjectRef(ImageRef):
    """An :class:`ImageRef` for an S3 object that carries its bucket and key: ``uri`` is derived from
    :attr:`location` once, so the source and the store read the key as the event gave it, never split from a URI."""

    uri: str = field(init=False)
    event_time: str | None = None
    """ISO-8601 UTC with microseconds (fixed width, so it sorts as text); None when the event had no time."""
    removed: Removal | None = None
    """Set when the event is a removal, not a creation (see :data:`Removal`)."""
    location: S3Location = field(kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uri", self.location.uri)


def object_ref(
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    size: int | None = None,
    sequencer: str | None = None,
    event_time: datetime | str | None = None,
    removed: Removal | None = None,
) -> S3ObjectRef:
    """An :class:`S3ObjectRef` from already-decoded fields (``"null"`` version ids and quoted ETags normalised).

    An event naming no bucket or no key names no object: :class:`EventParseError` (found by scripts/fuzz_events.py:
    an EventBridge event with ``"bucket": {"name": ""}`` became ``s3:///key``).
    """
    if not bucket or not key:
        raise EventParseError(f"the event names no {'bucket' if not bucket else 'object key'} (key {key!r})")
    return S3ObjectRef(
        location=S3Location(bucket, key),
        version_id=_version(version_id),
        etag=etag.strip('"') if etag else None,
        size=size,
        sequencer=sequencer or None,
        explicit=True,
        event_time=normalize_time(event_time),
        removed=removed,
    )


# --------------------------------------------------------------------------- the order of events about one object

SEQUENCER_WIDTH = 64
"""S3 sequencers are hex strings of varying length; right-padded with zeros to this width they compare as text.

AWS's event-structure documentation: "to compare these values, first right pad the shorter value with zeros, and
then do a lexicographical comparison" (older copies said left pad; the current text and the AWS SDKs say right).
"""


def sequencer_key(sequencer: str) -> str:
    """``"0055AED6DCD90281E5"`` → a fixed-width upper-case form that orders events of one key as plain text."""
    return sequencer.strip().upper().ljust(SEQUENCER_WIDTH, "0")


def supersedes(candidate: S3ObjectRef, current: S3ObjectRef) -> bool:
    """Whether ``candidate`` is a newer event about the object than ``current``: the rule the store's write condition
    (:func:`imgcaption_aws.store.write_condition`) applies in DynamoDB, so a batch keeps what the table would.

    By sequencer when both have one, otherwise by event time. An event without a time is recorded with the time the
    object was read, so it counts as newer than any event in hand that has one.
    """
    if candidate.sequencer and current.sequencer:
        return sequencer_key(candidate.sequencer) > sequencer_key(current.sequencer)
    return _time_or_now(candidate) > _time_or_now(current)


def _time_or_now(ref: S3ObjectRef) -> str:
    return ref.event_time or "~"  # "~" sorts after every ISO-8601 time


# --------------------------------------------------------------------------- key and time spellings


def _version(version_id: str | None) -> str | None:
    """A version id, or None for none (S3 writes ``"null"`` for an object put while versioning was off)."""
    return None if version_id in (None, "", "null") else version_id


def normalize_time(value: datetime | str | None) -> str | None:
    """``2024-05-01T10:00:00.123Z`` → ``2024-05-01T10:00:00.123000+00:00``: one fixed-width UTC spelling."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def decode_key(raw: str) -> str:
    """S3 event keys are form-encoded: ``+`` is a space, ``%2B`` a plus, ``%2F`` (moto) a slash."""
    return unquote_plus(raw, encoding="utf-8")


def encode_key(key: str) -> str:
    """The inverse of :func:`decode_key`, as S3 writes keys into notifications (``/`` kept readable)."""
    return quote_plus(key, safe="/", encoding="utf-8")


# --------------------------------------------------------------------------- models (lenient on purpose)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _S3Object(_Lenient):
    """The object an S3 notification record or an EventBridge event is about (they spell two field names apart)."""

    key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def names_a_version(self) -> bool:
        return _version(self.version_id) is not None

    def ref(self, bucket: str, event_time: str | None, removed: Removal | None) -> S3ObjectRef:
        return object_ref(
            bucket,
            decode_key(self.key),
            version_id=self.version_id,
            etag=self.etag,
            size=self.size,
            sequencer=self.sequencer,
            event_time=event_time,
            removed=removed,
        )


class _NotificationObject(_S3Object):
    etag: str | None = Field(default=None, alias="eTag")
    version_id: str | None = Field(default=None, alias="versionId")


class _NotificationBucket(_Lenient):
    name: str


class _NotificationEntity(_Lenient):
    bucket: _NotificationBucket
    object: _NotificationObject


class S3NotificationRecord(_Lenient):
    """One record of an S3 event notification (AWS-documented shape; moto's subset is accepted too)."""

    event_source: str | None = Field(default=None, alias="eventSource")
    event_name: str = Field(alias="eventName")
    event_time: str | None = Field(default=None, alias="eventTime")
    s3: _NotificationEntity

    @property
    def is_created(self) -> bool:
        return self.event_name.removeprefix("s3:").startswith("ObjectCreated:")

    @property
    def removal(self) -> Removal | None:
        """What an ``ObjectRemoved:*`` record removed; None for every other event."""
        name = self.event_name.removeprefix("s3:")
        if name == "ObjectRemoved:DeleteMarkerCreated":
            return "object"
        if name == "ObjectRemoved:Delete":
            return "version" if self.s3.object.names_a_version else "object"
        return None

    def ref(self) -> S3ObjectRef:
        return self.s3.object.ref(self.s3.bucket.name, self.event_time, self.removal)


class _S3Notification(_Lenient):
    records: list[S3NotificationRecord] = Field(alias="Records")


class _EventBridgeObject(_S3Object):
    version_id: str | None = Field(default=None, alias="version-id")


class _EventBridgeDetail(_Lenient):
    bucket: _NotificationBucket
    object: _EventBridgeObject
    deletion_type: str | None = Field(default=None, alias="deletion-type")
    """``Object Deleted`` only: ``Permanently Deleted`` or ``Delete Marker Created``."""


class EventBridgeS3Event(_Lenient):
    """An S3 event delivered through EventBridge (``source: aws.s3``)."""

    detail_type: str = Field(alias="detail-type")
    time: str | None = None
    detail: _EventBridgeDetail

    @property
    def removal(self) -> Removal | None:
        if self.detail_type != "Object Deleted":
            return None
        permanent = self.detail.deletion_type == "Permanently Deleted"
        return "version" if permanent and self.detail.object.names_a_version else "object"

    def ref(self) -> S3ObjectRef:
        return self.detail.object.ref(self.detail.bucket.name, self.time, self.removal)


class BatchOperationsTask(_Lenient):
    task_id: str = Field(alias="taskId")
    s3_key: str = Field(alias="s3Key")
    s3_version_id: str | None = Field(default=None, alias="s3VersionId")
    s3_bucket_arn: str | None = Field(default=None, alias="s3BucketArn")
    """Schema 1.0."""
    s3_bucket: str | None = Field(default=None, alias="s3Bucket")
    """Schema 2.0."""

    def ref(self) -> S3ObjectRef:
        bucket = self.s3_bucket or (self.s3_bucket_arn or "").rpartition(":")[2]
        if not bucket:
            raise EventParseError(f"batch operations task {self.task_id} names no bucket")
        return object_ref(bucket, decode_key(self.s3_key), version_id=self.s3_version_id)


class BatchOperationsEvent(_Lenient):
    """An S3 Batch Operations ``LambdaInvoke`` invocation; the response must report each task."""

    invocation_schema_version: str = Field(alias="invocationSchemaVersion")
    invocation_id: str = Field(alias="invocationId")
    tasks: list[BatchOperationsTask]


# --------------------------------------------------------------------------- dispatch


def classify(event: Mapping[str, Any]) -> EventKind:
    """Which of the accepted shapes a Lambda event is; :class:`EventParseError` if none."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        first = records[0]
        source = first.get("eventSource") or first.get("EventSource")
        if source == "aws:sqs":
            return "sqs"
        if source == "aws:sns":
            return "sns"
        if "s3" in first:
            return "s3"
    if isinstance(records, list) and not records:
        return "s3"  # an empty notification: nothing to do
    if event.get("Event") == "s3:TestEvent":
        return "test"
    if event.get("source") == "aws.s3" and "detail-type" in event:
        return "eventbridge"
    if "invocationSchemaVersion" in event and "tasks" in event:
        return "batch_operations"
    raise EventParseError(f"unrecognised event with keys {sorted(event)[:8]}")


def refs_from_event(event: Mapping[str, Any], kind: EventKind | None = None) -> list[S3ObjectRef]:
    """Every created or removed object an event (or an SQS message body, decoded) is about, in delivery order.

    ``kind``: what :func:`classify` already said of the event (it is classified here otherwise). SQS events are
    handled message by message by the processor (for partial batch failures); passing one here flattens its bodies.
    """
    kind = kind or classify(event)
    try:
        if kind == "test":
            return []
        if kind == "s3":
            notification = _S3Notification.model_validate(event)
            return [record.ref() for record in notification.records if record.is_created or record.removal]
        if kind == "eventbridge":
            bridged = EventBridgeS3Event.model_validate(event)
            return [bridged.ref()] if bridged.detail_type in ("Object Created", "Object Deleted") else []
        if kind == "batch_operations":
            return [task.ref() for task in BatchOperationsEvent.model_validate(event).tasks]
        if kind == "sns":
            return [ref for record in event["Records"] for ref in refs_from_body(record["Sns"]["Message"])]
        return [ref for record in event["Records"] for ref in refs_from_body(record["body"])]
    except (ValidationError, ValueError, KeyError, TypeError, RecursionError) as exc:  # ValueError: a bad eventTime
        raise EventParseError(f"malformed {kind} event: {exc}") from exc


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One SQS message as the processor needs it, whether Lambda's event source mapping or the worker received it."""

    message_id: str
    body: str
    receive_count: int = 1
    """SQS's ``ApproximateReceiveCount``: above 1, an earlier delivery was never finished (it may have killed its
    worker)."""

    @classmethod
    def of(cls, message_id: str, body: str, attributes: Mapping[Any, Any] | None) -> QueueMessage:
        """From a message's system attributes (Lambda's records and ``ReceiveMessage`` name them alike); an absent or
        unreadable receive count counts as a first delivery."""
        value = attributes.get("ApproximateReceiveCount") if isinstance(attributes, Mapping) else None
        try:
            count = int(value) if value is not None else 1
        except (TypeError, ValueError):
            count = 1
        return cls(message_id, body, count)


def refs_from_body(body: str) -> list[S3ObjectRef]:
    """The objects an SQS message body names: an S3 notification, an SNS envelope of one, or an EventBridge event."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." nested deeper than the interpreter allows
        raise EventParseError(f"message body is not JSON: {body[:80]!r}") from exc
    if not isinstance(payload, dict):
        raise EventParseError(f"message body is not a JSON object: {body[:80]!r}")
    if payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str):
        return refs_from_body(payload["Message"])  # SNS → SQS without raw message delivery
    return refs_from_event(payload)


# --------------------------------------------------------------------------- building events (backfill, tests)


def notification_record(
    bucket: str,
    key: str,
    *,
    event_name: str = "ObjectCreated:Put",
    event_time: datetime | str | None = None,
    size: int | None = None,
    etag: str | None = None,
    version_id: str | None = None,
    sequencer: str | None = None,
    event_source: str = "aws:s3",
    region: str = "us-east-1",
) -> dict[str, Any]:
    """One S3 notification record in the documented shape, with the key encoded as S3 encodes it."""
    obj: dict[str, Any] = {"key": encode_key(key)}
    if size is not None:
        obj["size"] = size
    if etag:
        obj["eTag"] = etag.strip('"')
    if version_id:
        obj["versionId"] = version_id
    if sequencer:
        obj["sequencer"] = sequencer
    moment = normalize_time(event_time) or normalize_time(datetime.now(UTC))
    assert moment is not None
    return {
        "eventVersion": "2.1",
        "eventSource": event_source,
        "awsRegion": region,
        "eventTime": moment.replace("+00:00", "Z"),
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }
