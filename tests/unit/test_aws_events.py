"""Every accepted event shape becomes the right S3 objects, with keys decoded exactly as S3 encoded them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgcaption_aws.events import (
    EventParseError,
    S3ObjectRef,
    classify,
    decode_key,
    encode_key,
    notification_record,
    refs_from_body,
    refs_from_event,
)
from imgcaption_aws.uris import S3Location, parse_s3_uri

EVENTS = Path(__file__).parents[1] / "events"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def test_documented_s3_notification_gives_the_object_with_its_identity_and_order() -> None:
    [ref] = refs_from_event(load("s3_put.json"))
    assert ref == S3ObjectRef(
        location=S3Location("amzn-s3-demo-bucket", "HappyFace.jpg"),
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        size=1024,
        sequencer="0055AED6DCD90281E5",
        event_time="1970-01-01T00:00:00.000000+00:00",
    )


def test_every_record_is_used_keys_are_decoded_and_removals_are_marked() -> None:
    refs = refs_from_event(load("s3_multiple_records.json"))
    assert [(ref.uri, ref.removed) for ref in refs] == [
        ("s3://amzn-s3-demo-bucket/holiday photos/2024/café +1.jpg", None),
        ("s3://amzn-s3-demo-bucket/scans/100% done.png", None),
        ("s3://amzn-s3-demo-bucket/old/removed.jpg", "version"),  # a versionId: that version is gone for good
    ]


@pytest.mark.parametrize(
    ("fixture", "uri", "removed", "version_id", "sequencer"),
    [
        ("s3_object_removed_delete.json", "s3://amzn-s3-demo-bucket/holiday photos/2024/café +1.jpg", "object",
         None, "0062A1B2C3D4E5F702"),
        ("s3_delete_marker_created.json", "s3://amzn-s3-demo-bucket/HappyFace.jpg", "object",
         "Wbj1.yRlYdCAvYGW2uaVGUzoVUtvrQhA", "0055AED6DCD90281F0"),
        ("s3_object_version_removed.json", "s3://amzn-s3-demo-bucket/HappyFace.jpg", "version",
         "096fKKXTRTtl3on89fVO.nfljtsv6qko", "0055AED6DCD90281F8"),
        ("eventbridge_object_deleted.json", "s3://amzn-s3-demo-bucket1/example-key", "object",
         "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF", "617f0837b476e463"),
    ],
)  # fmt: skip
def test_removals_say_what_they_removed_in_the_order_s3_gave_them(
    fixture: str, uri: str, removed: str, version_id: str | None, sequencer: str
) -> None:
    """A delete in an unversioned bucket or a delete marker hides the object; deleting a version names it."""
    [ref] = refs_from_event(load(fixture))
    assert (ref.uri, ref.removed, ref.version_id, ref.sequencer) == (uri, removed, version_id, sequencer)
    assert ref.event_time is not None


def test_moto_bodies_lacking_sequencer_and_identity_fields_are_accepted() -> None:
    event = load("sqs_moto.json")
    assert classify(event) == "sqs"
    [ref] = refs_from_body(event["Records"][0]["body"])
    assert ref.uri == "s3://photos/holiday 2024/café +1%.jpg"
    assert ref.sequencer is None
    assert ref.event_time == "2026-11-26T02:01:31.881000+00:00"
    assert (ref.size, ref.etag) == (3, "900150983cd24fb0d6963f7d28e17f72")


def test_sqs_event_bodies_are_parsed_one_message_at_a_time() -> None:
    event = load("sqs_s3.json")
    assert classify(event) == "sqs"
    bodies = [refs_from_body(record["body"]) for record in event["Records"]]
    assert [[ref.uri for ref in refs] for refs in bodies] == [
        ["s3://amzn-s3-demo-bucket/holiday photos/2024/café +1.jpg"],
        [],  # the s3:TestEvent sent when the notification is configured
    ]


def test_test_event_is_acknowledged_and_yields_nothing() -> None:
    assert classify(load("s3_test_event.json")) == "test"
    assert refs_from_event(load("s3_test_event.json")) == []


def test_eventbridge_object_created() -> None:
    event = load("eventbridge_object_created.json")
    assert classify(event) == "eventbridge"
    [ref] = refs_from_event(event)
    assert ref.uri == "s3://amzn-s3-demo-bucket1/example-key"
    assert (ref.version_id, ref.sequencer, ref.size) == ("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "617f08299329d189", 5)


def test_eventbridge_events_other_than_created_or_deleted_are_ignored() -> None:
    event = load("eventbridge_object_created.json") | {"detail-type": "Object Restore Completed"}
    assert refs_from_event(event) == []


def test_an_eventbridge_permanent_deletion_names_the_deleted_version() -> None:
    event = load("eventbridge_object_deleted.json")
    event["detail"]["deletion-type"] = "Permanently Deleted"
    [ref] = refs_from_event(event)
    assert (ref.removed, ref.version_id) == ("version", "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF")


@pytest.mark.parametrize(
    ("fixture", "uri", "version_id"),
    [
        ("batch_operations_v1.json", "s3://amzn-s3-demo-bucket1/customerImage1.jpg", "1"),
        ("batch_operations_v2.json", "s3://amzn-s3-demo-bucket1/customer Image1.jpg", None),
    ],
)
def test_batch_operations_schema_1_and_2(fixture: str, uri: str, version_id: str | None) -> None:
    event = load(fixture)
    assert classify(event) == "batch_operations"
    [ref] = refs_from_event(event)
    assert (ref.uri, ref.version_id, ref.event_time) == (uri, version_id, None)


def test_sns_envelope_inside_an_sqs_body() -> None:
    envelope = {"Type": "Notification", "Message": json.dumps(load("s3_put.json"))}
    [ref] = refs_from_body(json.dumps(envelope))
    assert ref.uri == "s3://amzn-s3-demo-bucket/HappyFace.jpg"


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", json.dumps({"hello": "world"}), json.dumps({"Records": [{"s3": {"bucket": {}}}]})],
)
def test_anything_else_is_a_non_retryable_parse_error(body: str) -> None:
    with pytest.raises(EventParseError) as caught:
        refs_from_body(body)
    assert caught.value.retryable is False


@pytest.mark.parametrize(
    ("encoded", "key"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("c%2B%2B/a%2Bb.png", "c++/a+b.png"),
        ("caf%C3%A9.jpg", "café.jpg"),
        ("100%25.png", "100%.png"),
        ("a%2Fb.png", "a/b.png"),
    ],
)
def test_keys_are_decoded_with_unquote_plus(encoded: str, key: str) -> None:
    assert decode_key(encoded) == key


@given(st.text(min_size=1, max_size=40).filter(lambda k: "\x00" not in k))
def test_a_key_survives_a_notification_round_trip(key: str) -> None:
    [ref] = refs_from_event({"Records": [notification_record("bucket", key)]})
    assert parse_s3_uri(ref.uri).key == key
    assert ref.location == S3Location("bucket", key)


def test_a_null_version_and_quoted_etag_are_normalised() -> None:
    record = notification_record("b", "k.jpg", version_id="null", etag='"abc"')
    [ref] = refs_from_event({"Records": [record]})
    assert (ref.version_id, ref.etag) == (None, "abc")


def test_keys_are_encoded_as_s3_encodes_them_in_notifications() -> None:
    assert encode_key("holiday photos/c++ café.jpg") == "holiday+photos/c%2B%2B+caf%C3%A9.jpg"


@pytest.mark.parametrize(
    "event_file", ["eventbridge_object_deleted.json", "eventbridge_object_created.json", "s3_put.json"]
)
@pytest.mark.parametrize("field", ["bucket", "key"])
def test_an_event_naming_no_bucket_or_no_key_is_a_parse_error_not_an_object(event_file: str, field: str) -> None:
    """Found by scripts/fuzz_events.py: an empty bucket name used to become the object ``s3:///example-key``."""
    event = load(event_file)
    if "detail" in event:
        target = event["detail"]["bucket"] if field == "bucket" else event["detail"]["object"]
    else:
        target = event["Records"][0]["s3"]["bucket"] if field == "bucket" else event["Records"][0]["s3"]["object"]
    target["name" if field == "bucket" else "key"] = ""
    with pytest.raises(EventParseError, match="names no"):
        refs_from_event(event)
    with pytest.raises(EventParseError, match="names no"):
        refs_from_body(json.dumps({"Type": "Notification", "Message": json.dumps(event)}))
