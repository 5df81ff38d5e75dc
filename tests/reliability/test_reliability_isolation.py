"""An image that makes the model raise fails alone: its batch is retried one by one, the culprit is recorded as a
non-retryable ``CaptioningError`` (retrying the same pixels would fail the same way), everything else is captioned,
and no message of the SQS batch comes back.
"""

from __future__ import annotations

from typing import Any

from PIL import Image
from reliability_support import BUCKET, Aws, FakeCaptioner, FakeContext, body, describe, failed_ids, png, sqs_event

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
