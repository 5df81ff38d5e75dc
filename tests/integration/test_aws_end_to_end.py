"""S3 → SQS → worker (the Lambda's processor) → DynamoDB over real HTTP, against moto_server on 127.0.0.1.

The bucket notification is configured as in production, moto sends its own S3 → SQS messages (no sequencer, ``/``
as ``%2F``, an ``s3:TestEvent`` first), and ``imgcaption worker`` drains the queue. Every object must end as exactly
one item with the right status and, from the committed scene captioner, its scene's caption word for word; duplicate
and out-of-order deliveries must not add or overwrite items. Without the scene captioner these tests fail: there is
no fallback that would check the plumbing alone and still pass.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from PIL import Image

from aws_support import create_captions_table, running_moto_server
from imgcaption_aws.clients import dynamodb_client, s3_client, sqs_client
from imgcaption_aws.events import notification_record
from imgcaption_cli.aws_commands import worker
from imgcaption_cli.backfill_command import backfill

pytestmark = pytest.mark.slow

TABLE = "captions"


@dataclass
class Moto:
    endpoint: str
    s3: Any
    sqs: Any
    dynamodb: Any
    queue_url: str
    queue_arn: str

    def bucket(self, name: str, *, notify: bool = True) -> str:
        self.s3.create_bucket(Bucket=name)
        if notify:
            self.s3.put_bucket_notification_configuration(
                Bucket=name,
                NotificationConfiguration={
                    "QueueConfigurations": [{"QueueArn": self.queue_arn, "Events": ["s3:ObjectCreated:*"]}]
                },
            )
        return name

    def items(self, bucket: str) -> dict[str, dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=TABLE)
        items = [item for page in pages for item in page["Items"]]
        plain = [{name: next(iter(value.values())) for name, value in item.items()} for item in items]
        return {item["key"]: item for item in plain if item["bucket"] == bucket}

    def messages_left(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def send(self, *records: dict[str, Any]) -> None:
        for record in records:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps({"Records": [record]}))


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    with running_moto_server() as endpoint:
        sqs = sqs_client(endpoint)
        queue_url = sqs.create_queue(QueueName="imgcaption", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        dynamodb = dynamodb_client(endpoint)
        create_captions_table(dynamodb, TABLE)
        yield Moto(endpoint, s3_client(endpoint), sqs, dynamodb, queue_url, queue_arn)


@dataclass(frozen=True)
class Images:
    """Image bytes to upload and the caption each must get."""

    model_dir: str
    scenes: list[tuple[bytes, str]]

    def image(self, index: int) -> bytes:
        return self.scenes[index % len(self.scenes)][0]

    def caption(self, index: int) -> str:
        return self.scenes[index % len(self.scenes)][1]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def images() -> Images:
    """Scenes the committed scene captioner captions exactly (an ImportError or FileNotFoundError here fails)."""
    from imgcaption.testing.scene_model import reliably_captioned_seeds, scene_captioner_path
    from imgcaption.testing.scenes import generate_scene

    model_dir = scene_captioner_path()
    scenes = [generate_scene(seed) for seed in reliably_captioned_seeds(12)]
    assert len({scene.caption for scene in scenes}) == len(scenes), "each upload's caption names its own scene"
    return Images(str(model_dir), [(_png(scene.image), scene.caption) for scene in scenes])


def run_worker(moto: Moto, images: Images) -> dict[str, Any]:
    result = CliRunner().invoke(
        worker,
        [
            "--queue-url",
            moto.queue_url,
            "--endpoint-url",
            moto.endpoint,
            "--table",
            TABLE,
            "--model",
            images.model_dir,
            "--wait-time",
            "1",
            "--until-empty",
            "1",
            "--retry-delay",
            "0",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert moto.messages_left() == 0
    return report


KEYS = [
    "plain.png",
    "with space/holiday photo.png",
    "c++/a+b.png",
    "unicode/café ☕ 日本.png",
    "deep/nested/prefix/scene.png",
    "percent/100%.png",
]


def test_every_uploaded_object_ends_as_exactly_one_item(moto: Moto, images: Images) -> None:
    bucket = moto.bucket("uploads")  # moto queues an s3:TestEvent here
    for index, key in enumerate(KEYS):
        moto.s3.put_object(Bucket=bucket, Key=key, Body=images.image(index))
    moto.s3.put_object(Bucket=bucket, Key="broken.jpg", Body=b"\xff\xd8\xff\xe0" + b"\x00garbage" * 8)
    moto.s3.put_object(Bucket=bucket, Key="gone.png", Body=images.image(0))
    moto.s3.delete_object(Bucket=bucket, Key="gone.png")

    report = run_worker(moto, images)

    assert report["retried"] == 0
    items = moto.items(bucket)
    assert sorted(items) == sorted([*KEYS, "broken.jpg", "gone.png"])
    for index, key in enumerate(KEYS):
        item = items[key]
        assert item["image_id"] == f"s3://{bucket}/{key}"
        assert item["status"] == "ok", item
        assert item["caption"] == images.caption(index)
    assert (items["broken.jpg"]["status"], items["broken.jpg"]["error_type"]) == ("failed", "ImageDecodeError")
    assert (items["gone.png"]["status"], items["gone.png"]["error_type"]) == ("failed", "ImageNotFoundError")


def test_duplicate_and_out_of_order_deliveries_never_add_or_overwrite(moto: Moto, images: Images) -> None:
    bucket = moto.bucket("reuploads")
    moto.s3.put_object(Bucket=bucket, Key="cat.png", Body=images.image(1))
    run_worker(moto, images)
    first = moto.items(bucket)["cat.png"]
    assert first["caption"] == images.caption(1)

    # The object is replaced; its event is delivered twice (at-least-once delivery).
    moto.s3.put_object(Bucket=bucket, Key="cat.png", Body=images.image(2))
    [message] = moto.sqs.receive_message(QueueUrl=moto.queue_url, WaitTimeSeconds=1)["Messages"]
    moto.sqs.send_message(QueueUrl=moto.queue_url, MessageBody=message["Body"])
    moto.sqs.send_message(QueueUrl=moto.queue_url, MessageBody=message["Body"])
    moto.sqs.delete_message(QueueUrl=moto.queue_url, ReceiptHandle=message["ReceiptHandle"])
    run_worker(moto, images)
    second = moto.items(bucket)
    assert list(second) == ["cat.png"]
    assert second["cat.png"]["etag"] != first["etag"]
    assert second["cat.png"]["sha256"] != first["sha256"]
    assert second["cat.png"]["caption"] == images.caption(2) != first["caption"]

    # Late deliveries: the first upload's event, an hour-old event, and the newest event once more.
    stale_time = datetime.fromisoformat(first["event_time"])
    moto.send(
        notification_record(bucket, "cat.png", event_time=stale_time, etag=first["etag"]),
        notification_record(bucket, "cat.png", event_time=stale_time - timedelta(hours=1)),
    )
    moto.sqs.send_message(QueueUrl=moto.queue_url, MessageBody=message["Body"])
    run_worker(moto, images)
    assert moto.items(bucket) == second


def test_backfill_queues_existing_objects_through_the_same_path(moto: Moto, images: Images) -> None:
    bucket = moto.bucket("archive", notify=False)
    keys = [f"2023/{month:02d}/photo {month}.png" for month in range(1, 12)]  # more than one SQS batch of 10
    for index, key in enumerate(keys):
        moto.s3.put_object(Bucket=bucket, Key=key, Body=images.image(index))
    moto.s3.put_object(Bucket=bucket, Key="2023/notes.txt", Body=b"not an image")

    args = [f"s3://{bucket}/2023/", "--queue-url", moto.queue_url, "--endpoint-url", moto.endpoint]
    result = CliRunner().invoke(backfill, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "enqueued": 11,
        "already_captioned": 0,
        "skipped": 1,
        "failed": [],
        "resume_after": keys[-1],  # every key up to the last one was queued
    }
    run_worker(moto, images)
    items = moto.items(bucket)
    assert sorted(items) == sorted(keys)
    assert {item["status"] for item in items.values()} == {"ok"}
    assert {key: item["caption"] for key, item in items.items()} == {
        key: images.caption(i) for i, key in enumerate(keys)
    }

    # A second backfill is harmless: the records are as new as the objects, so nothing is rewritten.
    assert CliRunner().invoke(backfill, args, catch_exceptions=False).exit_code == 0
    run_worker(moto, images)
    assert moto.items(bucket) == items


def test_backfill_dry_run_sends_nothing(moto: Moto) -> None:
    bucket = moto.bucket("dry", notify=False)
    moto.s3.put_object(Bucket=bucket, Key="a.jpg", Body=b"x")
    args = [f"s3://{bucket}", "--queue-url", moto.queue_url, "--endpoint-url", moto.endpoint, "--dry-run"]
    result = CliRunner().invoke(backfill, args, catch_exceptions=False)
    assert json.loads(result.stdout)["enqueued"] == 1
    assert moto.messages_left() == 0


def test_worker_without_a_queue_is_a_usage_error() -> None:
    result = CliRunner().invoke(worker, ["--table", TABLE])
    assert result.exit_code == 2
    assert "--queue-url" in result.output
