"""At-least-once, unordered delivery made idempotent: every event three times, shuffled, older after newer.

Each object is uploaded three times to a versioned bucket (so an old event reads its own, old pixels), all its
events carry the same event time (only S3's ``sequencer`` orders them), and every event is delivered three times in
a shuffled order through a real SQS queue drained by the worker (the Lambda's processor). The table must end with
one item per object holding the newest version's caption, and the writes that reached DynamoDB must, per object,
have strictly increasing sequencers: no event written twice, never an older one after a newer one.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image
from reliability_support import BUCKET, TABLE, Aws, FakeCaptioner, color_of, describe, png

from imgcaption_aws.events import notification_record
from imgcaption_aws.processor import EventProcessor
from imgcaption_aws.store import DynamoDBStore
from imgcaption_aws.worker import SqsWorker

OBJECTS = 8
UPLOADS_PER_OBJECT = 3
DELIVERIES_PER_EVENT = 3
EVENT_TIME = "2024-05-01T10:00:00.000Z"


@dataclass
class RecordingDynamoDB:
    """The real (moto) client; remembers which items each successful ``PutItem`` wrote."""

    inner: Any
    written: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def put_item(self, **request: Any) -> Any:
        response = self.inner.put_item(**request)  # raises when the condition keeps the stored item
        item = request["Item"]
        self.written[item["image_id"]["S"]].append(item["sequencer"]["S"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(frozen=True)
class Upload:
    key: str
    data: bytes
    version_id: str
    sequencer: str
    caption: str


def upload_everything(aws: Aws) -> list[Upload]:
    uploads = []
    for obj in range(OBJECTS):
        key = f"reuploaded/photo {obj}+.png"
        for version in range(UPLOADS_PER_OBJECT):
            color = color_of(obj * UPLOADS_PER_OBJECT + version + 1)
            data = png(color)
            response = aws.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
            sequencer = f"0062A1B2C3{obj:02X}{version:04X}"  # S3 sequencers: hex, higher is later for one key
            caption = describe(Image.new("RGB", (1, 1), color))
            uploads.append(Upload(key, data, response["VersionId"], sequencer, caption))
    return uploads


def deliveries(uploads: list[Upload], seed: int) -> list[str]:
    """Every event three times, shuffled, with one copy of each newest event up front so older ones come later."""
    events = {
        upload: json.dumps(
            {
                "Records": [
                    notification_record(
                        BUCKET,
                        upload.key,
                        event_time=EVENT_TIME,
                        size=len(upload.data),
                        version_id=upload.version_id,
                        sequencer=upload.sequencer,
                    )
                ]
            }
        )
        for upload in uploads
    }
    order = [body for body in events.values() for _ in range(DELIVERIES_PER_EVENT)]
    random.Random(seed).shuffle(order)
    newest = [events[upload] for upload in uploads[UPLOADS_PER_OBJECT - 1 :: UPLOADS_PER_OBJECT]]
    for body in newest:
        order.remove(body)
    return newest + order


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triple_shuffled_deliveries_leave_one_item_per_object_with_the_newest_caption(
    versioned_aws: Aws, seed: int
) -> None:
    aws = versioned_aws
    uploads = upload_everything(aws)
    queue_url, _ = aws.queue("events")
    for message in deliveries(uploads, seed):
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=message)
    dynamodb = RecordingDynamoDB(aws.dynamodb)
    processor = EventProcessor(aws.s3, DynamoDBStore(dynamodb, TABLE), FakeCaptioner(), batch_size=4)

    report = SqsWorker(aws.sqs, queue_url, processor, wait_time_s=0, retry_delay_s=0).run(max_empty_polls=1)

    assert report.messages == OBJECTS * UPLOADS_PER_OBJECT * DELIVERIES_PER_EVENT
    assert (report.deleted, report.retried) == (report.messages, 0)
    items = aws.items()
    newest = {upload.key: upload for upload in uploads[UPLOADS_PER_OBJECT - 1 :: UPLOADS_PER_OBJECT]}
    assert sorted(items) == sorted(f"s3://{BUCKET}/{key}" for key in newest)
    for key, upload in newest.items():
        item = items[f"s3://{BUCKET}/{key}"]
        assert (item["version_id"], item["sequencer"]) == (upload.version_id, upload.sequencer)
        assert item["caption"] == upload.caption
        assert item["sha256"] == hashlib.sha256(upload.data).hexdigest()
        written = dynamodb.written[f"s3://{BUCKET}/{key}"]
        assert written == sorted(set(written)), f"{key}: a duplicate or out-of-order write got through: {written}"
        assert written[-1] == upload.sequencer
