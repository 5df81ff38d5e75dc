"""Deletions mirrored into the table (``mirror_deletions``, set by the stack with ``notify_on_delete``).

Uploads and deletes of one key, on moto (versioned: each delete is a delete marker; unversioned: a plain delete),
become S3 events ordered by S3's ``sequencer`` alone (all at one event time). Every event is delivered one to three
times, in any order, in SQS batches of any size, through the Lambda handler. Whatever the order, the table must end
as the last operation left the key: the caption of the last upload, or a tombstone that readers (``outcomes()``, the
export path) do not see. So a late creation never resurrects a deleted object and a late delete never hides a newer
upload. Version-specific deletions and delete-marker removal have their own walkthrough below.

Caught (checked on a copy of the code): tombstones written without the ordering condition (a late delete hides
a newer upload), and removals of a missing item not written (a late creation resurrects the object).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_support import (
    BUCKET,
    TABLE,
    Aws,
    FakeCaptioner,
    FakeContext,
    color_of,
    describe,
    failed_ids,
    moto_aws,
    png,
    sqs_event,
)

from imgcaption_aws.backfill import backfill_message
from imgcaption_aws.events import notification_record, object_ref
from imgcaption_aws.settings import AwsSettings
from imgcaption_aws.store import DynamoDBStore

PLAIN_BUCKET = "plain"
EVENT_TIME = "2024-05-01T10:00:00.000Z"
_keys = itertools.count()


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Aws, Any]]:
    """One versioned bucket (``photos``) and one unversioned (``plain``), the handler mirroring deletions."""
    from imgcaption_lambda import handler as module

    for aws in moto_aws(versioned=True):
        aws.s3.create_bucket(Bucket=PLAIN_BUCKET)
        module.init(
            AwsSettings(table_name=TABLE, batch_size=2, mirror_deletions=True),
            s3=aws.s3,
            dynamodb=aws.dynamodb,
            captioner=FakeCaptioner(),
        )
        try:
            yield aws, module.handler
        finally:
            module._processor = None


@dataclass(frozen=True)
class Done:
    """One operation on the key and the S3 event it produced."""

    operation: str
    event: str
    caption: str | None


def perform(aws: Aws, bucket: str, key: str, operations: list[str]) -> list[Done]:
    """Run the operations on moto; the event each would send, sequenced as S3 sequences them (hex, increasing)."""
    done = []
    for index, operation in enumerate(operations):
        sequencer = f"0062A1B2C3D4{index:04X}"
        if operation == "put":
            color = color_of(next(_keys) + 1)
            response = aws.s3.put_object(Bucket=bucket, Key=key, Body=png(color))
            name, caption = "ObjectCreated:Put", describe(Image.new("RGB", (1, 1), color))
        else:
            response = aws.s3.delete_object(Bucket=bucket, Key=key)
            caption = None
            name = "ObjectRemoved:DeleteMarkerCreated" if bucket == BUCKET else "ObjectRemoved:Delete"
        record = notification_record(
            bucket, key, event_name=name, event_time=EVENT_TIME, version_id=response.get("VersionId"),
            sequencer=sequencer,
        )  # fmt: skip
        done.append(Done(operation, json.dumps({"Records": [record]}), caption))
    return done


def deliver(handler: Any, bodies: list[str], batch_size: int) -> None:
    for start in range(0, len(bodies), batch_size):
        response = handler(sqs_event(*bodies[start : start + batch_size]), FakeContext())
        assert failed_ids(response) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    operations=st.lists(st.sampled_from(["put", "delete"]), min_size=1, max_size=6),
    copies=st.lists(st.integers(1, 3), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
    batch_size=st.integers(1, 4),
    versioned=st.booleans(),
)
def test_shuffled_duplicated_creates_and_deletes_leave_the_key_as_its_last_operation(
    world: tuple[Aws, Any], operations: list[str], copies: list[int], seed: int, batch_size: int, versioned: bool
) -> None:
    aws, handler = world
    bucket = BUCKET if versioned else PLAIN_BUCKET
    key = f"mirrored/{next(_keys)}.png"
    uri = f"s3://{bucket}/{key}"
    done = perform(aws, bucket, key, operations)
    bodies = [entry.event for entry, times in zip(done, copies, strict=False) for _ in range(times)]
    random.Random(seed).shuffle(bodies)

    deliver(handler, bodies, batch_size)

    item = aws.items().get(uri)
    readable = {outcome.ref.uri for outcome in DynamoDBStore(aws.dynamodb, TABLE).outcomes()}
    last = done[-1]
    if last.operation == "delete":
        assert item is not None and item["status"] == "deleted"
        assert uri not in readable
    else:
        assert item is not None and (item["status"], item["caption"]) == ("ok", last.caption)
        assert uri in readable
    assert item["sequencer"] == f"0062A1B2C3D4{len(done) - 1:04X}"


def test_version_deletes_a_removed_delete_marker_and_a_backfill_bring_the_object_back(
    world: tuple[Aws, Any],
) -> None:
    """Versioned bucket: deleting an old version leaves the caption; a delete marker hides it; deleting the marker
    lifts the tombstone, and the next backfill captions the object again."""
    aws, handler = world
    key = f"versions/{next(_keys)}.png"
    uri = f"s3://{BUCKET}/{key}"
    old = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=png(color_of(1)))
    new = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=png(color_of(2)))
    sequencers = (f"0062A1B2C3D5{index:04X}" for index in itertools.count())

    def event(name: str, version_id: str) -> str:
        record = notification_record(
            BUCKET, key, event_name=name, event_time=EVENT_TIME, version_id=version_id, sequencer=next(sequencers)
        )
        return json.dumps({"Records": [record]})

    created_old, created_new = (
        event("ObjectCreated:Put", old["VersionId"]),
        event("ObjectCreated:Put", new["VersionId"]),
    )
    deliver(handler, [created_new, created_old], 2)
    caption_new = describe(Image.new("RGB", (1, 1), color_of(2)))
    assert aws.items()[uri]["caption"] == caption_new

    aws.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=old["VersionId"])
    deliver(handler, [event("ObjectRemoved:Delete", old["VersionId"])], 1)
    assert aws.items()[uri]["caption"] == caption_new  # a noncurrent version went: the caption stays

    marker = aws.s3.delete_object(Bucket=BUCKET, Key=key)["VersionId"]
    deliver(handler, [event("ObjectRemoved:DeleteMarkerCreated", marker)], 1)
    assert aws.items()[uri]["status"] == "deleted"

    aws.s3.delete_object(Bucket=BUCKET, Key=key, VersionId=marker)
    deliver(handler, [event("ObjectRemoved:Delete", marker)], 1)
    assert uri not in aws.items()  # the tombstone is lifted; no event says which version is current now

    listed = aws.s3.head_object(Bucket=BUCKET, Key=key)  # what a listing reports as LastModified
    deliver(handler, [backfill_message(object_ref(BUCKET, key, event_time=listed["LastModified"]))], 1)
    assert (aws.items()[uri]["status"], aws.items()[uri]["caption"]) == ("ok", caption_new)
    deliver(handler, [created_new], 1)  # a late copy of the creation event changes nothing but the order it records
    assert (aws.items()[uri]["status"], aws.items()[uri]["caption"]) == ("ok", caption_new)
