"""``imgcaption export --table``: the DynamoDB table the Lambda writes, read back over real HTTP from moto_server.

The table is filled by the production writers: the Lambda's processor captions two photos and records a corrupt file
as a failure, a removal event tombstones a third photo after its caption, and a redelivered image leaves only its
crash-isolation attempt counter. Export must give back exactly the caption and failure records the processor made,
in the SQLite export's formats, and nothing for the tombstone or the counter.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from aws_support import create_captions_table, running_moto_server
from imgcaption.local.writers import make_writer
from imgcaption.ports import Outcome
from imgcaption_aws.clients import dynamodb_client, s3_client
from imgcaption_aws.events import object_ref
from imgcaption_aws.processor import EventProcessor
from imgcaption_aws.store import DynamoDBStore
from imgcaption_cli.main import cli

pytestmark = pytest.mark.slow

TABLE, BUCKET = "captions", "photos"


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (36, 24), color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Table:
    endpoint: str
    expected: dict[str, dict[str, Any]]
    """Source → the JSONL record the SQLite export would write for the processor's own result."""
    bodies: dict[str, bytes]
    """Source → the bytes of the object version that was captioned."""
    hidden: set[str]
    """Sources the table holds an item for that is not an outcome (a tombstone, an attempt counter)."""


@pytest.fixture(scope="module")
def table(tiny_captioner: Any) -> Iterator[Table]:
    with running_moto_server() as endpoint:
        yield _fill(endpoint, tiny_captioner)


def _fill(endpoint: str, captioner: Any) -> Table:
    s3, dynamodb = s3_client(endpoint), dynamodb_client(endpoint)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    create_captions_table(dynamodb, TABLE)
    uploads = {
        "holiday/beach.png": png("khaki"),
        "holiday/pier & pond.png": png("navy"),
        "holiday/gone.png": png("gray"),
        "scans/broken.jpg": b"\xff\xd8\xff\xe0 not a jpeg",
    }
    refs = []
    for key, body in uploads.items():
        version = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        refs.append(object_ref(BUCKET, key, version_id=version, size=len(body), sequencer="0A"))
    store = DynamoDBStore(dynamodb, TABLE)
    report = EventProcessor(s3, store, captioner).process(refs)
    assert not report.retry and len(report.results) == 4
    gone = f"s3://{BUCKET}/holiday/gone.png"
    assert store.record_removal(object_ref(BUCKET, "holiday/gone.png", sequencer="0B", removed="object"))
    crashy = object_ref(BUCKET, "crashy.png", sequencer="0A")
    assert store.begin_attempt(crashy, captioner.signature).number == 1
    expected = {}
    for ref in refs:
        if ref.uri != gone:
            buffer = io.StringIO()
            writer = make_writer("jsonl", buffer)
            writer.write(Outcome(ref, report.results[ref.uri]))
            writer.close()
            expected[ref.uri] = json.loads(buffer.getvalue())
    bodies = {f"s3://{BUCKET}/{key}": body for key, body in uploads.items()}
    return Table(endpoint, expected, bodies, {gone, crashy.uri})


def export(table: Table, *args: str) -> Result:
    return CliRunner().invoke(cli, ["export", "--table", TABLE, "--endpoint-url", table.endpoint, *args])


def by_source(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    assert len({record["source"] for record in records}) == len(records), "one record per object"
    return {record["source"]: record for record in records}


def test_jsonl_gives_back_every_caption_and_failure_as_the_processor_made_it(table: Table) -> None:
    result = export(table)
    assert result.exit_code == 0, result.stderr
    records = by_source([json.loads(line) for line in result.stdout.splitlines()])
    assert records == table.expected
    assert {record["status"] for record in records.values()} == {"ok", "failed"}
    assert not table.hidden & set(records)


def test_json_and_csv_hold_the_same_records_as_the_sqlite_export_writes_them(table: Table) -> None:
    as_json = export(table, "--format", "json")
    assert as_json.exit_code == 0, as_json.stderr
    assert by_source(json.loads(as_json.stdout)) == table.expected

    as_csv = export(table, "--format", "csv", "--status", "failed")
    assert as_csv.exit_code == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["source"] for row in rows] == [f"s3://{BUCKET}/scans/broken.jpg"]
    assert rows[0]["error_type"] == table.expected[rows[0]["source"]]["error_type"]


def test_a_prefix_keeps_only_the_objects_under_it(table: Table) -> None:
    result = export(table, "--prefix", f"s3://{BUCKET}/holiday/")
    assert result.exit_code == 0, result.stderr
    sources = {json.loads(line)["source"] for line in result.stdout.splitlines()}
    assert sources == {f"s3://{BUCKET}/holiday/beach.png", f"s3://{BUCKET}/holiday/pier & pond.png"}


class Pictures(HTMLParser):
    def __init__(self, document: str) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.feed(document)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs)["src"] or "")


def test_the_gallery_shows_each_image_through_a_presigned_url_that_fetches_the_captioned_version(
    table: Table, tmp_path: Any
) -> None:
    gallery = tmp_path / "gallery.html"
    result = export(table, "--format", "html", "--presign", "--output", str(gallery))
    assert result.exit_code == 0, result.stderr
    assert f"exported {len(table.expected)} records" in result.stderr
    document = gallery.read_text()
    urls = Pictures(document).sources
    assert len(urls) == len(table.expected)
    for url in urls:
        assert "X-Amz-Signature=" in url and "versionId=" in url
        with urllib.request.urlopen(url, timeout=10) as response:  # the moto_server endpoint
            body = response.read()
        [source] = [source for source, data in table.bodies.items() if data == body]
        assert source in table.expected
    assert not any(source in document for source in table.hidden)


def test_without_presign_the_gallery_has_no_pictures(table: Table) -> None:
    result = export(table, "--format", "html")
    assert result.exit_code == 0, result.stderr
    assert Pictures(result.stdout).sources == []
    assert result.stdout.count("no preview") == len(table.expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "--prefix", "s3://photos/"], "--prefix: only with --table TABLE"),
        (["export", "--table", TABLE, "--db", "x.db"], "--db and --table name two different stores"),
        (["export", "--table", TABLE, "--presign"], "use it with --format html"),
        (["export", "--table", TABLE, "--prefix", "photos/holiday"], "--prefix: not an s3:// URI"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_a_missing_table_is_a_usage_error_naming_it(table: Table) -> None:
    result = CliRunner().invoke(cli, ["export", "--table", "nope", "--endpoint-url", table.endpoint])
    assert result.exit_code == 2
    assert "scanning the table failed" in result.stderr and "ResourceNotFoundException" in result.stderr


def test_without_the_aws_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    result = CliRunner().invoke(cli, ["export", "--table", TABLE])
    assert result.exit_code == 2
    assert "`export --table` needs the `aws` extra: pip install 'imgcaption-toolkit[aws]'" in result.stderr
    assert "boto3" in result.stderr
