"""X-Ray traces from the Lambda handler: a real S3 event through the handler on moto, recorded as in Lambda.

The X-Ray SDK's own recorder records here, in its Lambda mode: its ``LambdaContext`` builds the invocation's facade
segment from ``_X_AMZN_TRACE_ID`` (per thread, as in Lambda), the streaming threshold is 0 (what powertools sets, so
each subsegment leaves once it closes), and an in-memory emitter takes the serialized documents the UDP emitter would
send to the X-Ray daemon. Powertools disables the SDK outside Lambda; the fixture enables it again for the test.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from moto import mock_aws
from PIL import Image

from aws_support import create_captions_table
from imgcaption_aws.clients import dynamodb_client, s3_client
from imgcaption_aws.settings import AwsSettings

EVENTS = Path(__file__).parents[1] / "events"
TABLE = "captions"
ROOT, PARENT = "1-5759e988-bd862e3fe1be46a994272793", "53995c3f42cd8ad8"


@dataclass
class MemoryEmitter:
    """Keeps each entity the recorder sends, as the JSON document the daemon would receive."""

    documents: list[dict[str, Any]] = field(default_factory=list)

    def send_entity(self, entity: Any) -> None:
        self.documents.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address: str | None) -> None:
        """Nothing to connect to."""

    def named(self, name: str) -> list[dict[str, Any]]:
        return [document for document in self.documents if document["name"] == name]


@pytest.fixture
def xray(handler_module: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryEmitter]:
    """The SDK's recorder in its Lambda mode, inside a sampled invocation, sending to memory; restored afterwards.

    After ``handler_module``: importing the handler builds its Tracer, which disables the SDK outside Lambda."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.lambda_launcher import LambdaContext

    saved = (global_sdk_config.sdk_enabled(), xray_recorder.context, xray_recorder.emitter)
    saved_threshold = xray_recorder.streaming_threshold
    monkeypatch.delenv("AWS_XRAY_SDK_ENABLED", raising=False)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={ROOT};Parent={PARENT};Sampled=1")
    emitter = MemoryEmitter()
    global_sdk_config.set_sdk_enabled(True)
    xray_recorder.configure(context=LambdaContext(), emitter=emitter, streaming_threshold=0)
    yield emitter
    global_sdk_config.set_sdk_enabled(saved[0])
    xray_recorder.context, xray_recorder.emitter = saved[1], saved[2]
    xray_recorder.streaming_threshold = saved_threshold


def jpeg(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def uploaded_event(fake_aws_credentials: None) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """``s3_multiple_records.json`` (two uploads and a removal) with its objects in a versioned moto bucket; the
    records carry the version, size and ETag moto gave each upload."""
    event: dict[str, Any] = json.loads((EVENTS / "s3_multiple_records.json").read_text())
    with mock_aws():
        s3, dynamodb = s3_client(), dynamodb_client()
        create_captions_table(dynamodb, TABLE)
        for color, record in zip(["teal", "orange"], event["Records"][:2], strict=True):
            bucket, obj = record["s3"]["bucket"]["name"], record["s3"]["object"]
            if not s3.list_buckets()["Buckets"]:
                s3.create_bucket(Bucket=bucket)
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            body = jpeg(color)
            response = s3.put_object(Bucket=bucket, Key=unquote_plus(obj["key"]), Body=body)
            obj.update(versionId=response["VersionId"], size=len(body), eTag=response["ETag"].strip('"'))
        yield event, s3, dynamodb


@pytest.fixture
def handler_module(uploaded_event: tuple[dict[str, Any], Any, Any], tiny_captioner: Any) -> Iterator[Any]:
    from imgcaption_lambda import handler as module

    _, s3, dynamodb = uploaded_event
    module.init(AwsSettings(table_name=TABLE, batch_size=8), s3=s3, dynamodb=dynamodb, captioner=tiny_captioner)
    yield module
    module._processor = None


@dataclass
class FakeContext:
    function_name: str = "imgcaption"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:imgcaption"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


KEYS = ["holiday photos/2024/café +1.jpg", "scans/100% done.png"]
"""The two uploaded keys of ``s3_multiple_records.json``, decoded."""


def test_an_s3_event_traces_each_download_decode_inference_batch_and_store_write(
    xray: MemoryEmitter, uploaded_event: tuple[dict[str, Any], Any, Any], handler_module: Any
) -> None:
    """Catches spans that are not opened (or not annotated) around any of the four stages, or a handler that is not
    captured: each name and annotation below is asserted on what reached the emitter."""
    event, _, dynamodb = uploaded_event
    assert handler_module.handler(event, FakeContext()) is None
    assert len(dynamodb.scan(TableName=TABLE)["Items"]) == 2  # the removal is ignored: mirror_deletions is off

    [handler] = xray.named("## handler")
    assert {document["trace_id"] for document in xray.documents} == {ROOT}
    assert handler["parent_id"] == PARENT

    for name in ("s3_download", "decode"):
        spans = xray.named(name)
        assert sorted(span["annotations"]["key"] for span in spans) == sorted(KEYS)
        assert {span["annotations"]["bucket"] for span in spans} == {"amzn-s3-demo-bucket"}
    decode_ids = {span["id"] for span in xray.named("decode")}
    assert {span["parent_id"] for span in xray.named("s3_download")} == decode_ids  # each download inside its decode

    for name in ("inference_batch", "store_write"):
        [batch] = xray.named(name)  # two images, one batch
        assert batch["parent_id"] == handler["id"]
        assert batch["annotations"] == {"bucket": "amzn-s3-demo-bucket", "images": 2}
        uris = sorted(f"s3://amzn-s3-demo-bucket/{key}" for key in KEYS)
        assert sorted(batch["metadata"]["imgcaption"]["uris"]) == uris


def test_a_failed_store_write_is_recorded_on_its_span(
    xray: MemoryEmitter, uploaded_event: tuple[dict[str, Any], Any, Any], handler_module: Any
) -> None:
    """Catches a span that swallows the exception or closes before the write: the fault is on ``store_write``."""
    event, _, dynamodb = uploaded_event
    dynamodb.delete_table(TableName=TABLE)
    with pytest.raises(Exception, match="must be retried"):
        handler_module.handler(event, FakeContext())
    [write] = xray.named("store_write")
    assert write["fault"] or write["error"]
    assert write["cause"]["exceptions"]


def test_outside_lambda_the_tracer_sends_nothing(
    uploaded_event: tuple[dict[str, Any], Any, Any], handler_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the fixture the SDK stays as powertools left it outside Lambda: disabled, so no spans leave."""
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import xray_recorder

    assert not global_sdk_config.sdk_enabled()
    emitter, saved = MemoryEmitter(), xray_recorder.emitter
    xray_recorder.emitter = emitter
    try:
        assert handler_module.handler(uploaded_event[0], FakeContext()) is None
    finally:
        xray_recorder.emitter = saved
    assert emitter.documents == []


def test_annotations_name_one_object_and_count_a_batch() -> None:
    """Catches a bucket or key taken from anywhere but the ref's own S3 location, or a batch that is not counted."""
    from imgcaption.ports import ImageRef
    from imgcaption_aws.events import object_ref
    from imgcaption_aws.tracing import annotations_for

    cat, dog, other = object_ref("photos", "a b+c.jpg"), object_ref("photos", "b.jpg"), object_ref("other", "b.jpg")
    assert annotations_for([cat]) == {"bucket": "photos", "key": "a b+c.jpg"}
    assert annotations_for([cat, dog]) == {"bucket": "photos", "images": 2}
    assert annotations_for([cat, other]) == {"images": 2}
    assert annotations_for([ImageRef("/srv/local/a.jpg")]) == {"key": "/srv/local/a.jpg"}
