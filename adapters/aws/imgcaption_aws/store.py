"""A :class:`~imgcaption.ports.CaptionStore` in DynamoDB: one item per S3 object, written conditionally.

Table contract (shared with the CDK stack): partition key ``image_id`` (String) = ``s3://<bucket>/<key>`` with the
key URL-decoded, no sort key. Attributes: ``bucket`` and ``key`` (exactly as the object's ref carries them),
``caption``, ``status`` (``ok``/``failed``), ``error_type``, ``message``, ``model``, ``revision``, ``precision``,
``generation`` (map) and ``generation_key``, ``signature``, ``version_id``, ``etag``, ``size``, ``sha256``, ``width``,
``height``, ``elapsed_ms``, ``created_at`` (ISO-8601 UTC), ``sequencer``, plus the ordering attributes
``sequencer_key`` (the sequencer right-padded to a fixed width so it compares as text) and ``event_time``.

Why conditional: S3 delivers events at least once and in no particular order. A write succeeds only when the item
is new, or the event is newer than the one recorded (by ``sequencer`` when both have one — S3's own per-key order —
otherwise by event time), or it is the same event bringing a caption where a failure was, or a caption by another
model signature (a failure never replaces a caption of the same event). So a duplicate never rewrites a record
and an older event never overwrites a newer one.
Events without any time (S3 Batch Operations) count as happening when the object was read.

Deletions (:meth:`DynamoDBStore.record_removal`) write a *tombstone*: ``status`` ``deleted`` with the removal's
``sequencer``/``event_time`` (and ``version_id``: the delete marker's, or the deleted version's), no caption. It is
ordered like any write, so a late creation event never resurrects a deleted object and a late removal never hides a
newer upload. Readers never see tombstones: :meth:`~DynamoDBStore.outcomes` (export) and
:meth:`~DynamoDBStore.has_caption` skip them; a raw ``GetItem``/``Scan`` shows them, ``status`` says what they are.
Deleting a delete marker removes the tombstone, so the object comes back with its next event or a backfill.

Crash isolation (:meth:`DynamoDBStore.begin_attempt`): before an image is captioned alone, ``attempts`` and
``attempt_event`` (which event they count) are set on its item by a conditional ``UpdateItem`` that only succeeds
while nothing recorded covers that event, so it never touches a finished outcome. The outcome's ``PutItem`` later
replaces the whole item, counter included. An item holding only a counter has no ``status`` and is hidden too.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imgcaption.errors import StoreError
from imgcaption.generation import GenerationOptions
from imgcaption.ports import CaptionSignature, ImageRef, Outcome
from imgcaption.results import Caption, CaptionFailure
from imgcaption_aws.clients import error_code, is_transient
from imgcaption_aws.events import S3ObjectRef, normalize_time, sequencer_key
from imgcaption_aws.uris import S3Location

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

PARTITION_KEY = "image_id"
DELETED = "deleted"
"""``status`` of a tombstone: the object was removed; the item only keeps the removal's order."""
READABLE_STATUSES = frozenset({"ok", "failed"})
Item = dict[str, Any]


@dataclass(frozen=True)
class AttemptStart:
    """What :meth:`DynamoDBStore.begin_attempt` found: ``finished`` (nothing to do) or the attempt's number."""

    finished: bool
    number: int = 0


@dataclass
class WriteReport:
    """What the conditional writes did; ``superseded`` are outcomes a newer (or equal) record already covered."""

    written: int = 0
    superseded: list[str] = field(default_factory=list)


class DynamoDBStore:
    """Outcomes in a DynamoDB table, one item per object. Thread-safe (boto3 clients are)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table_name = table_name
        self.report = WriteReport()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ CaptionStore

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write each outcome conditionally. Writes are idempotent, so recording a batch again after a failure is safe.

        Raises :class:`StoreError` (``retryable`` for throttling and 5xx, after botocore's own retries).
        """
        for outcome in outcomes:
            self._put(outcome)

    def has_caption(self, ref: ImageRef, signature: CaptionSignature) -> bool:
        item = self.get(ref.uri)
        return item is not None and _holds_caption(item, ref, signature)

    def outcomes(self, prefix: str | None = None) -> Iterator[Outcome]:
        """Every caption and failure, page by page; tombstones and items holding only an attempt counter are not
        outcomes. ``prefix`` (``s3://bucket/some/prefix``) keeps the objects whose URI starts with it: the table has
        no sort key, so that is still a scan, filtered by DynamoDB before the pages come back."""
        paginator = self.client.get_paginator("scan")
        scan: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True}
        if prefix:
            scan.update(
                FilterExpression="begins_with(#id, :prefix)",
                ExpressionAttributeNames={"#id": PARTITION_KEY},
                ExpressionAttributeValues={":prefix": {"S": prefix}},
            )
        try:
            for page in paginator.paginate(**scan):
                for item in page.get("Items", []):
                    if _s(item, "status") in READABLE_STATUSES:
                        yield outcome_from_item(item)
        except Exception as exc:
            raise _store_error(exc, "scanning the table failed") from exc

    # ------------------------------------------------------------------ extras

    def get(self, uri: str) -> Item | None:
        try:
            response = self.client.get_item(
                TableName=self.table_name, Key={PARTITION_KEY: {"S": uri}}, ConsistentRead=True
            )
        except Exception as exc:
            raise _store_error(exc, "reading an item failed", uri) from exc
        item: Item | None = response.get("Item")
        return item

    # ------------------------------------------------------------------ crash isolation

    def begin_attempt(self, ref: ImageRef, signature: CaptionSignature) -> AttemptStart:
        """Count one more attempt at captioning ``ref``'s event, unless an outcome covering it is recorded.

        Two conditional updates: add one to the counter when it counts this event, else start it at 1 (another
        event's counter, or none yet). When both are refused, the write condition is what refused them: the event
        (or a newer one) is finished. A concurrent attempt on the same event can refuse both once; hence the loop.
        """
        item = _ordering_item(ref, signature)
        gate = attempt_condition(item)
        event = {":k": {"S": attempt_event(ref)}, ":one": {"N": "1"}}
        steps = (
            ("SET #att = #att + :one", f"#ak = :k AND ({gate})"),
            ("SET #att = :one, #ak = :k", f"(attribute_not_exists(#ak) OR #ak <> :k) AND ({gate})"),
        )
        for _ in range(3):
            for update, condition in steps:
                _, names, values = _expression(f"{update} | {condition}", item, event)
                try:
                    response = self.client.update_item(
                        TableName=self.table_name,
                        Key={PARTITION_KEY: {"S": ref.uri}},
                        UpdateExpression=update,
                        ConditionExpression=condition,
                        ExpressionAttributeNames=names,
                        ExpressionAttributeValues=values,
                        ReturnValues="UPDATED_NEW",
                    )
                except Exception as exc:
                    if error_code(exc) == "ConditionalCheckFailedException":
                        continue
                    raise _store_error(exc, "counting an attempt failed", ref.uri) from exc
                return AttemptStart(finished=False, number=int(response["Attributes"]["attempts"]["N"]))
        return AttemptStart(finished=True)

    def attempts(self, refs: Sequence[ImageRef]) -> dict[str, int]:
        """How many attempts each ref's event has had so far (0 when none is counted for that event)."""
        wanted = {ref.uri: attempt_event(ref) for ref in refs}
        found: dict[str, int] = {}
        for item in self._batch_get(wanted, ("attempts", "attempt_event"), "reading attempt counters failed"):
            uri = _s(item, PARTITION_KEY) or ""
            if _s(item, "attempt_event") == wanted.get(uri):
                found[uri] = _optional_int(item.get("attempts")) or 0
        return found

    def captioned(self, refs: Sequence[ImageRef], signature: CaptionSignature) -> set[str]:
        """The URIs among ``refs`` that :meth:`has_caption` would accept, read 100 keys per ``BatchGetItem``."""
        wanted = {ref.uri: ref for ref in refs}
        items = self._batch_get(wanted, ("status", "signature", "etag"), "reading which objects are captioned failed")
        return {
            ref.uri
            for item in items
            if (ref := wanted.get(_s(item, PARTITION_KEY) or "")) is not None and _holds_caption(item, ref, signature)
        }

    def _batch_get(self, uris: Iterable[str], attributes: Sequence[str], failure: str) -> Iterator[Item]:
        """The items of ``uris`` (those that exist) with the partition key and ``attributes``, 100 keys per call."""
        keys = [{PARTITION_KEY: {"S": uri}} for uri in uris]
        names = {"#id": PARTITION_KEY, **{f"#a{index}": name for index, name in enumerate(attributes)}}
        for start in range(0, len(keys), 100):  # BatchGetItem's limit
            request: Any = {
                self.table_name: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": ", ".join(names),
                    "ExpressionAttributeNames": names,
                    "ConsistentRead": True,
                }
            }
            while request:  # what DynamoDB did not get to comes back as UnprocessedKeys
                try:
                    response = self.client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise _store_error(exc, failure) from exc
                yield from response.get("Responses", {}).get(self.table_name, [])
                request = response.get("UnprocessedKeys") or {}

    # ------------------------------------------------------------------ deletions

    def record_removal(self, ref: S3ObjectRef) -> bool:
        """Mirror an ``ObjectRemoved`` event; True when the table changed.

        ``removed == "object"`` (unversioned delete, delete marker): a tombstone, written if the event is newer than
        what is stored (a missing item too, so a late creation event cannot resurrect the object).
        ``removed == "version"``: if the item is the tombstone of that very delete marker, the marker is gone and the
        tombstone is deleted (the object is visible again); if the item describes that version, a tombstone; any
        other version's deletion leaves the item alone.
        """
        tombstone = tombstone_item(ref)
        newer, _ = _ordering(tombstone)
        if ref.removed == "version":
            lifted = self._delete_if(ref, tombstone, f"#st = :deleted AND #v = :v AND ({newer})")
            return lifted or self._put_if(ref, tombstone, f"#v = :v AND ({newer})")
        return self._put_if(ref, tombstone, f"attribute_not_exists(#id) OR {newer}")

    def _put_if(self, ref: ImageRef, item: Item, condition: str) -> bool:
        expression, names, values = _expression(condition, item)
        return self._conditional(
            ref,
            lambda: self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            ),
        )

    def _delete_if(self, ref: ImageRef, item: Item, condition: str) -> bool:
        expression, names, values = _expression(condition, item)
        return self._conditional(
            ref,
            lambda: self.client.delete_item(
                TableName=self.table_name,
                Key={PARTITION_KEY: {"S": ref.uri}},
                ConditionExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            ),
        )

    def _conditional(self, ref: ImageRef, write: Any) -> bool:
        try:
            write()
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise _store_error(exc, "mirroring a deletion failed", ref.uri) from exc
        with self._lock:
            self.report.written += 1
        return True

    def _put(self, outcome: Outcome) -> None:
        item = item_from_outcome(outcome)
        condition, names, values = write_condition(item)
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                logger.info("kept the newer record for %s (duplicate or out-of-order event)", outcome.ref.uri)
                with self._lock:
                    self.report.superseded.append(outcome.ref.uri)
                return
            raise _store_error(exc, "writing the outcome failed", outcome.ref.uri) from exc
        with self._lock:
            self.report.written += 1


def _holds_caption(item: Mapping[str, Any], ref: ImageRef, signature: CaptionSignature) -> bool:
    """A caption of ``signature`` for this content (the same ETag, when both sides know it)."""
    if _s(item, "status") != "ok" or _s(item, "signature") != signature.key:
        return False
    stored_etag = _s(item, "etag")
    return ref.etag is None or stored_etag is None or stored_etag == ref.etag


def _store_error(exc: BaseException, what: str, uri: str | None = None) -> StoreError:
    return StoreError(f"{what}: {type(exc).__name__}: {exc}", source=uri, retryable=is_transient(exc))


# ---------------------------------------------------------------------- the condition


def write_condition(item: Item) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The ``ConditionExpression`` under which ``item`` may replace what is stored (see the module docstring)."""
    newer, same = _ordering(item)
    condition = f"attribute_not_exists(#id) OR {newer}"
    if item["status"]["S"] == "ok":  # the same event may bring a caption where a failure or another model was
        condition += f" OR (({same}) AND (#st <> :ok OR #sig <> :sig))"
    return _expression(condition, item)


def attempt_condition(item: Item) -> str:
    """When captioning ``item``'s event may start: nothing recorded covers it yet.

    The write condition of its caption, except that a failure of the same event counts as finished: a recorded
    :class:`~imgcaption.errors.WorkerCrashedError` must stop the retries, not invite another one.
    """
    newer, same = _ordering(item)
    return f"attribute_not_exists(#id) OR {newer} OR (({same}) AND #st = :ok AND #sig <> :sig)"


def _ordering(item: Item) -> tuple[str, str]:
    """``newer``: the stored item is about an older event than ``item``'s; ``same``: about the same event.

    An item without ordering attributes (only an attempt counter so far) counts as older than any event.
    """
    if "sequencer_key" in item:
        newer = "#seq < :s OR (attribute_not_exists(#seq) AND (attribute_not_exists(#t) OR #t < :t))"
        same = "#seq = :s"
    else:
        newer = "attribute_not_exists(#t) OR #t < :t"
        same = "attribute_not_exists(#seq) AND #t = :t"
    return newer, same


_NAMES = {
    "#id": PARTITION_KEY,
    "#seq": "sequencer_key",
    "#t": "event_time",
    "#st": "status",
    "#sig": "signature",
    "#v": "version_id",
    "#att": "attempts",
    "#ak": "attempt_event",
}


def _expression(
    expression: str, item: Item, extra_values: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``expression`` with the names and values it uses (DynamoDB rejects unused ones)."""
    values: dict[str, Any] = {":t": item["event_time"], ":ok": {"S": "ok"}, ":deleted": {"S": DELETED}}
    if "signature" in item:
        values[":sig"] = item["signature"]
    if "sequencer_key" in item:
        values[":s"] = item["sequencer_key"]
    if "version_id" in item:
        values[":v"] = item["version_id"]
    values.update(extra_values or {})
    used = set(re.findall(r"[#:]\w+", expression))
    return (
        expression,
        {k: v for k, v in _NAMES.items() if k in used},
        {k: v for k, v in values.items() if k in used},
    )


# ---------------------------------------------------------------------- items


def item_from_outcome(outcome: Outcome) -> Item:
    """The DynamoDB item (attribute-value form) for one outcome."""
    ref, result = outcome.ref, outcome.result
    signature = CaptionSignature.of(result)
    generation = result.generation
    event_time = _event_time(ref) or normalize_time(result.created_at)
    item: Item = {
        PARTITION_KEY: {"S": ref.uri},
        "status": {"S": result.status},
        "model": {"S": result.model},
        "precision": {"S": result.precision},
        "generation": {"M": _generation_map(generation)},
        "generation_key": {"S": generation.key},
        "signature": {"S": signature.key},
        "created_at": {"S": result.created_at.isoformat()},
        "event_time": {"S": event_time},
    }
    _put_location(item, ref)
    _put_s(item, "revision", result.revision)
    _put_s(item, "sha256", result.sha256)
    _put_s(item, "version_id", ref.version_id)
    _put_s(item, "etag", ref.etag)
    if ref.size is not None:
        item["size"] = {"N": str(ref.size)}
    _put_order(item, ref)
    if isinstance(result, Caption):
        item["caption"] = {"S": result.text}
        item["width"] = {"N": str(result.width)}
        item["height"] = {"N": str(result.height)}
        item["elapsed_ms"] = {"N": str(result.elapsed_ms)}
    else:
        item["error_type"] = {"S": result.error_type}
        item["message"] = {"S": result.message}
        item["retryable"] = {"BOOL": result.retryable}
    return item


def tombstone_item(ref: S3ObjectRef) -> Item:
    """The item that stands for a removed object: its identity and the removal's order, no outcome."""
    from imgcaption.results import utc_now

    now = utc_now()
    item: Item = {
        PARTITION_KEY: {"S": ref.uri},
        "status": {"S": DELETED},
        "created_at": {"S": now.isoformat()},
        "event_time": {"S": ref.event_time or normalize_time(now)},
    }
    _put_location(item, ref)
    _put_s(item, "version_id", ref.version_id)
    _put_order(item, ref)
    return item


def attempt_event(ref: ImageRef) -> str:
    """Which event an attempt counter counts: the same message delivered again keeps counting, a new event restarts."""
    return "|".join(part or "" for part in (ref.sequencer, _event_time(ref), ref.version_id, ref.etag))


def _ordering_item(ref: ImageRef, signature: CaptionSignature) -> Item:
    """The ordering attributes a caption of ``ref`` by ``signature`` would be written with."""
    from imgcaption.results import utc_now

    event_time = _event_time(ref) or normalize_time(utc_now())
    item: Item = {"status": {"S": "ok"}, "signature": {"S": signature.key}, "event_time": {"S": event_time}}
    _put_order(item, ref)
    return item


def outcome_from_item(item: Mapping[str, Any]) -> Outcome:
    """Rebuild the :class:`Outcome` an item was written from (for export and tests)."""
    generation_map = item.get("generation", {}).get("M", {})
    generation = GenerationOptions(
        num_beams=int(generation_map.get("num_beams", {}).get("N", 4)),
        max_length=_optional_int(generation_map.get("max_length")),
        max_new_tokens=_optional_int(generation_map.get("max_new_tokens")),
        prompt=generation_map.get("prompt", {}).get("S"),
    )
    common: dict[str, Any] = {
        "source": _s(item, PARTITION_KEY),
        "model": _s(item, "model"),
        "revision": _s(item, "revision"),
        "precision": _s(item, "precision") or "fp32",
        "generation": generation,
        "sha256": _s(item, "sha256"),
        "created_at": _s(item, "created_at"),
    }
    result: Caption | CaptionFailure
    if _s(item, "status") == "ok":
        result = Caption(
            **common,
            text=_s(item, "caption") or "",
            width=int(item["width"]["N"]),
            height=int(item["height"]["N"]),
            elapsed_ms=float(item["elapsed_ms"]["N"]),
        )
    else:
        result = CaptionFailure(
            **common,
            error_type=_s(item, "error_type") or "ImgCaptionError",
            message=_s(item, "message") or "",
            retryable=bool(item.get("retryable", {}).get("BOOL", False)),
        )
    return Outcome(_ref_from_item(item), result)


def _ref_from_item(item: Mapping[str, Any]) -> ImageRef:
    """The ref an item was written from: an :class:`S3ObjectRef` by the item's own ``bucket`` and ``key``."""
    pins: dict[str, Any] = {
        "version_id": _s(item, "version_id"),
        "etag": _s(item, "etag"),
        "size": _optional_int(item.get("size")),
        "sequencer": _s(item, "sequencer"),
    }
    bucket, key = _s(item, "bucket"), _s(item, "key")
    if bucket is None or key is None:  # written from a ref that named no S3 object
        return ImageRef(_s(item, PARTITION_KEY) or "", **pins)
    return S3ObjectRef(location=S3Location(bucket, key), event_time=_s(item, "event_time"), **pins)


def _generation_map(generation: GenerationOptions) -> dict[str, Any]:
    values: dict[str, Any] = {"num_beams": {"N": str(generation.num_beams)}}
    for name in ("max_length", "max_new_tokens"):
        value = getattr(generation, name)
        values[name] = {"NULL": True} if value is None else {"N": str(value)}
    if generation.prompt is not None:  # part of the caption's identity (generation_key), kept readable too
        values["prompt"] = {"S": generation.prompt}
    return values


def _event_time(ref: ImageRef) -> str | None:
    return ref.event_time if isinstance(ref, S3ObjectRef) else None


def _put_location(item: Item, ref: ImageRef) -> None:
    """``bucket`` and ``key`` exactly as the ref carries them (a ref that names no S3 object has neither)."""
    if isinstance(ref, S3ObjectRef):
        item["bucket"] = {"S": ref.location.bucket}
        item["key"] = {"S": ref.location.key}


def _put_order(item: Item, ref: ImageRef) -> None:
    """The event's ``sequencer`` and its ``sequencer_key``, which orders events as text in a condition."""
    if ref.sequencer:
        item["sequencer"] = {"S": ref.sequencer}
        item["sequencer_key"] = {"S": sequencer_key(ref.sequencer)}


def _put_s(item: Item, name: str, value: str | None) -> None:
    if value:
        item[name] = {"S": value}


def _s(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    if isinstance(value, Mapping) and "S" in value:
        return str(value["S"])
    return None


def _optional_int(value: Any) -> int | None:
    if isinstance(value, Mapping) and "N" in value:
        return int(value["N"])
    return None
