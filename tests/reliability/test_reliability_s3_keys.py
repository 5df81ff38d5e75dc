"""Any S3 key survives event → handler → S3 read → DynamoDB: ``image_id`` is ``s3://bucket/<the exact key>``.

``tests/unit/test_aws_events.py`` checks the key encoding alone on short keys; here the whole path runs, with keys
up to S3's limit of 1024 UTF-8 bytes, encoded either as S3 encodes them (``/`` kept) or as moto does (``/`` as
``%2F``), and each item must carry the caption of *its* object's pixels, so two keys that collapse into one (a
decoding slip, a normalised ``..``) cannot pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from reliability_support import (
    BUCKET,
    TABLE,
    Aws,
    FakeCaptioner,
    FakeContext,
    body,
    color_of,
    describe,
    failed_ids,
    png,
    served_aws,
    sqs_event,
)

from imgcaption_aws.events import notification_record
from imgcaption_aws.settings import AwsSettings

MAX_KEY_BYTES = 1024

tricky_pieces = st.sampled_from(
    [" ", "+", "%", "%2B", "%20", "%2F", "%%", "/", "//", "..", "../", "./", "~", "#", "?", "&", "=", ":", ";", "@",
     "\\", "'", '"', "<", ">", "*", "é", "日本", "☕", "🦆", "\u200b", "\ufeff", "Ω", "ß", "İ"]
)  # fmt: skip
any_printable = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=120)
keys = (
    st.lists(tricky_pieces | any_printable, min_size=1, max_size=12)
    .map("".join)
    .filter(lambda key: len(key.encode("utf-8")) <= MAX_KEY_BYTES)
)
long_keys = st.sampled_from(["k" * 1024, "é" * 512, "日" * 341 + "a", "a b+c%/" * 146 + "xy"])


@pytest.fixture(scope="module")
def world(moto_endpoint: str) -> Iterator[tuple[Aws, Any]]:
    """moto_server over HTTP, not moto in-process: in-process moto rebuilds each request with werkzeug, which splits
    the URL path twice, so for a key starting with ``///`` (virtual-hosted path ``////key``) it reads the key's
    first segment as a host name and IDNA-encodes it: ``///0000:`` + eight NBSPs (hypothesis found it),
    ``///a..b.png`` or a first segment over 63 characters fail inside moto ("label empty or too long") before any
    of our code runs. moto_server gets the request line as sent (path-style: ``/photos///key``)."""
    from imgcaption_lambda import handler as module

    for aws in served_aws(moto_endpoint):
        module.init(AwsSettings(table_name=TABLE), s3=aws.s3, dynamodb=aws.dynamodb, captioner=FakeCaptioner())
        try:
            yield aws, module.handler
        finally:
            module._processor = None


def as_moto_encodes(record: dict[str, Any], key: str) -> dict[str, Any]:
    record["s3"]["object"]["key"] = quote_plus(key, safe="")
    return record


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chosen=st.lists(keys | long_keys, min_size=1, max_size=6, unique=True),
    moto_style=st.booleans(),
)
@example(chosen=["a b.png", "a+b.png", "a%2Bb.png", "a%20b.png"], moto_style=False)
@example(chosen=["x/../y.png", "y.png", "/y.png", "./y.png"], moto_style=True)
@example(chosen=["k" * 1024, "é" * 512, "日" * 341 + "a"], moto_style=False)
@example(chosen=[" ", "///0000:" + "\xa0" * 8 + "\u0800"], moto_style=False)  # broke in-process moto (see world)
@example(chosen=["///a..b.png", "///" + "x" * 64 + ".png"], moto_style=True)  # an empty and a 64-character "label"
def test_every_key_round_trips_to_its_own_item(world: tuple[Aws, Any], chosen: list[str], moto_style: bool) -> None:
    aws, handler = world
    colors = {key: color_of(index + 1) for index, key in enumerate(chosen)}
    records = []
    for key, color in colors.items():
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=png(color))
        record = notification_record(BUCKET, key)
        records.append(as_moto_encodes(record, key) if moto_style else record)
    try:
        response = handler(sqs_event(*(body(record) for record in records)), FakeContext())

        assert failed_ids(response) == []
        items = aws.items()
        assert sorted(items) == sorted(f"s3://{BUCKET}/{key}" for key in chosen)
        for key, color in colors.items():
            item = items[f"s3://{BUCKET}/{key}"]
            assert (item["bucket"], item["key"], item["status"]) == (BUCKET, key, "ok")
            assert item["caption"] == describe(Image.new("RGB", (1, 1), color))
    finally:
        for key in chosen:
            aws.s3.delete_object(Bucket=BUCKET, Key=key)
            aws.dynamodb.delete_item(TableName=TABLE, Key={"image_id": {"S": f"s3://{BUCKET}/{key}"}})
