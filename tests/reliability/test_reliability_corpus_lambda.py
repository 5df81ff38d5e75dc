"""The hostile-input corpus through the Lambda handler: each file uploaded under an odd key, one S3 event each.

Every object must end as exactly one DynamoDB item with the outcome the corpus promises, and no message may come
back for redelivery: a bad file is a recorded failure, never a retry. Decoding is the point here, so the model is
the fast fake; bombs are refused from their declared size, before any pixel is allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability_support import BUCKET, Aws, FakeContext, body, failed_ids, sqs_event

from imgcaption.testing.corpus import CorpusEntry, write_corpus

ODD_PREFIXES = ["", "with space/", "plus+sign/", "percent%25/", "unicode/日本 ☕/", "../../", "/abs/", "a//b/"]
NOT_OBJECTS = {"fifo.jpg", "folder.jpg"}  # a named pipe and a directory have no S3 equivalent
S3_EXPECTATIONS = {"unreadable.jpg": "ok"}  # file modes do not exist in S3: those bytes are a fine JPEG
SQS_BATCH = 10


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[CorpusEntry]]:
    root = tmp_path_factory.mktemp("corpus")
    entries = write_corpus(root)
    return root, [entry for entry in entries if entry.name not in NOT_OBJECTS]


def object_bytes(path: Path) -> bytes:
    """The file's bytes as an upload would carry them; a mode-000 file (unreadable unless run as root) is opened
    up for the read and closed again, since an S3 object has no file mode."""
    mode = path.stat().st_mode
    path.chmod(mode | 0o400)
    try:
        return path.read_bytes()
    finally:
        path.chmod(mode)


def test_every_corpus_object_becomes_exactly_one_item_with_its_expected_outcome(
    aws: Aws, lambda_handler: Any, corpus: tuple[Path, list[CorpusEntry]]
) -> None:
    root, entries = corpus
    handler = lambda_handler(aws, batch_size=8)
    keys = {entry.name: ODD_PREFIXES[index % len(ODD_PREFIXES)] + entry.name for index, entry in enumerate(entries)}
    records = [aws.put(keys[entry.name], object_bytes(root / entry.name)) for entry in entries]

    for start in range(0, len(records), SQS_BATCH):
        batch = records[start : start + SQS_BATCH]
        assert failed_ids(handler(sqs_event(*(body(record) for record in batch)), FakeContext())) == []

    items = aws.items()
    assert sorted(items) == sorted(f"s3://{BUCKET}/{key}" for key in keys.values())
    for entry in entries:
        item = items[f"s3://{BUCKET}/{keys[entry.name]}"]
        expected = S3_EXPECTATIONS.get(entry.name, entry.expect)
        got = item["status"] if item["status"] == "ok" else item["error_type"]
        assert got == expected, f"{entry.name} ({entry.why}): {item.get('message')}"
        if expected != "ok":
            assert item["retryable"] is False, entry.name
            assert item["message"], entry.name
