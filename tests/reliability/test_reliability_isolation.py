"""An image that makes the model raise fails alone: its batch is retried one by one, the culprit is recorded as a
non-retryable ``CaptioningError`` (retrying the same pixels would fail the same way), everything else is captioned,
and no message of the SQS batch comes back.

An image that kills the process (no exception to catch) is isolated by redelivery: ``imgcaption worker`` runs as a
subprocess against moto_server, restarted each time it dies, until the queue is drained.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crash_captioner import CRASH_EXIT_CODE, hex_colour
from PIL import Image
from reliability_support import (
    BUCKET,
    REGION,
    TABLE,
    Aws,
    FakeCaptioner,
    FakeContext,
    body,
    describe,
    failed_ids,
    png,
    sqs_event,
)

from imgcaption_aws.settings import AwsSettings

POISON = (13, 13, 13)
COLORS = [(200, 10, 10), (10, 200, 10), POISON, (10, 10, 200), (200, 200, 10), (10, 200, 200)]


def test_only_the_image_the_model_chokes_on_fails_and_nothing_is_redelivered(aws: Aws, lambda_handler: Any) -> None:
    captioner = FakeCaptioner(poison=[POISON])
    handler = lambda_handler(aws, captioner, batch_size=4)
    keys = [f"batch/{index}.png" for index in range(len(COLORS))]
    records = [aws.put(key, png(color)) for key, color in zip(keys, COLORS, strict=True)]
    # Five messages; the poisoned image shares its message (and its inference batch) with a good one.
    messages = [body(records[0]), body(records[1]), body(records[2], records[3]), body(records[4]), body(records[5])]

    response = handler(sqs_event(*messages), FakeContext())

    assert failed_ids(response) == []
    items = aws.items()
    assert len(items) == len(keys)
    for key, color in zip(keys, COLORS, strict=True):
        item = items[f"s3://{BUCKET}/{key}"]
        if color == POISON:
            assert (item["status"], item["error_type"], item["retryable"]) == ("failed", "CaptioningError", False)
            assert "inference failed" in item["message"]
        else:
            assert (item["status"], item["caption"]) == ("ok", describe(Image.new("RGB", (1, 1), color)))
    assert describe(Image.new("RGB", (1, 1), POISON)) not in captioner.forwarded


# ----------------------------------------------------------------------------- a worker that dies


class BatchRecordingCaptioner(FakeCaptioner):
    """Remembers how many images each call of the model saw."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def forward(self, pixel_values: Any, generation: Any) -> Any:
        self.batch_sizes.append(len(pixel_values))
        return super().forward(pixel_values, generation)


def test_a_redelivered_batch_is_captioned_one_image_at_a_time_and_what_was_finished_is_skipped(
    aws: Aws, lambda_handler: Any
) -> None:
    """After a death, the messages come back with ApproximateReceiveCount 2: the image recorded before the death is
    not captioned again, the others are captioned alone, and fresh messages in the same batch are still batched."""
    captioner = BatchRecordingCaptioner()
    handler = lambda_handler(aws, captioner, batch_size=4)
    records = [aws.put(f"again/{index}.png", png(color)) for index, color in enumerate(COLORS)]
    handler(sqs_event(body(records[0])), FakeContext())  # finished before the worker died
    captioner.batch_sizes.clear()
    captioner.forwarded.clear()

    redelivered = sqs_event(body(records[0]), body(records[1], records[2]), receive_count=2)["Records"]
    fresh = sqs_event(body(records[3]), body(records[4]), body(records[5]), ids=["new-0", "new-1", "new-2"])
    response = handler({"Records": redelivered + fresh["Records"]}, FakeContext())

    assert failed_ids(response) == []
    assert captioner.batch_sizes == [3, 1, 1]  # the fresh ones together, then each redelivered image alone
    assert describe(Image.new("RGB", (1, 1), COLORS[0])) not in captioner.forwarded
    assert {item["status"] for item in aws.items().values()} == {"ok"}
    assert not any("attempts" in item for item in aws.items().values())


CRASHED = {"exit": CRASH_EXIT_CODE, "kill": -signal.SIGKILL, "segfault": -signal.SIGSEGV}
MAX_ATTEMPTS = AwsSettings().max_attempts
NOT_AN_EVENT = "this is not an S3 event"


def run_worker_until_drained(aws: Aws, queue_url: str, culprit: str, how: str) -> list[int]:
    """``imgcaption worker`` as a subprocess, started again each time it dies, until it exits by itself.

    Its exit codes, in order. The queue's visibility timeout is 1 s, so a dead worker's messages come back quickly;
    two empty one-second polls in a row mean drained.
    """
    command = [
        str(Path(sys.executable).with_name("imgcaption")), "worker",
        "--queue-url", queue_url, "--table", TABLE, "--endpoint-url", aws.s3.meta.endpoint_url,
        "--region", REGION, "--wait-time", "1", "--until-empty", "2", "--retry-delay", "0",
    ]  # fmt: skip
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]),
        "IMGCAPTION_CAPTIONER_FACTORY": "crash_captioner:build",
        "IMGCAPTION_BATCH_SIZE": "4",
        "CRASH_ON": culprit,
        "CRASH_HOW": how,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    codes: list[int] = []
    while len(codes) < 2 * (MAX_ATTEMPTS + 2):
        finished = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
        codes.append(finished.returncode)
        if finished.returncode in (0, 1):  # 1: some messages were handed back (the one that is not an event)
            return codes
    raise AssertionError(f"the worker never finished: exit codes {codes}; last stderr:\n{finished.stderr[-3000:]}")


@pytest.mark.parametrize("how", sorted(CRASHED))
def test_a_worker_killed_by_one_image_costs_its_batch_mates_a_redelivery_and_the_culprit_one_failure_item(
    http_aws: Aws, how: str
) -> None:
    """The model kills the process on one image (``os._exit``, SIGKILL, a segfault) while captioning a batch of 4.

    Each death redelivers every unfinished message; delivered again, images are captioned alone behind the attempt
    counter, so the worker dies once in the batch and ``max_attempts`` times on the culprit alone, then records it as
    a ``WorkerCrashedError``. Every other image (its message-mate included) is captioned, and the dead-letter queue
    (maxReceiveCount 5, the deployed default) gets only the message that is not an S3 event.

    Caught (checked on a copy of the code): redelivered images captioned in batches again (the culprit takes its
    batch-mates down on every delivery, all of them end in the DLQ), and an attempt counter that is never compared
    with the limit (the culprit's message reaches the DLQ, no failure item).
    """
    aws = http_aws
    queue_url, dlq_url = aws.queue("work", max_receive_count=5, visibility_timeout=1)
    keys = [f"crash/{index}.png" for index in range(len(COLORS))]
    records = [aws.put(key, png(color)) for key, color in zip(keys, COLORS, strict=True)]
    messages = [body(records[0]), body(records[1]), body(records[2], records[3]), body(records[4]), body(records[5])]
    for message in [*messages, NOT_AN_EVENT]:
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=message)

    codes = run_worker_until_drained(aws, queue_url, hex_colour(POISON), how)

    assert codes == [CRASHED[how]] * (1 + MAX_ATTEMPTS) + [1]
    items = aws.items()
    assert sorted(items) == sorted(f"s3://{BUCKET}/{key}" for key in keys)
    for key, color in zip(keys, COLORS, strict=True):
        item = items[f"s3://{BUCKET}/{key}"]
        assert "attempts" not in item  # the outcome replaced the counter
        if color == POISON:
            assert (item["status"], item["error_type"], item["retryable"]) == ("failed", "WorkerCrashedError", False)
        else:
            assert (item["status"], item["caption"]) == ("ok", describe(Image.new("RGB", (1, 1), color)))
    assert aws.drain(dlq_url) == [NOT_AN_EVENT]
    assert aws.drain(queue_url) == []


def test_an_allocation_past_the_address_space_limit_is_a_memory_error_recorded_without_a_crash(
    http_aws: Aws,
) -> None:
    """Under ``RLIMIT_AS`` an allocation that does not fit raises ``MemoryError`` instead of killing the process:
    the captioner's own isolation records the culprit as a ``CaptioningError`` on the first delivery."""
    aws = http_aws
    queue_url, dlq_url = aws.queue("work", max_receive_count=5, visibility_timeout=1)
    keys = [f"oom/{index}.png" for index in range(len(COLORS))]
    for key, color in zip(keys, COLORS, strict=True):
        aws.sqs.send_message(QueueUrl=queue_url, MessageBody=body(aws.put(key, png(color))))

    codes = run_worker_until_drained(aws, queue_url, hex_colour(POISON), "allocate")

    assert codes == [0]
    items = aws.items()
    culprit = items[f"s3://{BUCKET}/{keys[COLORS.index(POISON)]}"]
    assert (culprit["status"], culprit["error_type"]) == ("failed", "CaptioningError")
    assert "MemoryError" in culprit["message"]
    assert sorted(key for key, item in items.items() if item["status"] == "ok") == sorted(
        f"s3://{BUCKET}/{key}" for key, color in zip(keys, COLORS, strict=True) if color != POISON
    )
    assert aws.drain(dlq_url) == []
