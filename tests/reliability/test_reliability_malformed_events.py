"""Malformed SQS messages are failed records of their own batch: the handler never raises, the good messages in the
same batch are captioned, and only the bad ones come back in ``batchItemFailures`` (to reach the DLQ after
``maxReceiveCount`` deliveries). A handler that raised would instead bounce the whole batch until every message in
it, good ones included, ended in the DLQ.

The generated bodies come from categories whose outcome is known from the accepted shapes alone (never from asking
the parser): *rejected* bodies (not JSON, JSON that is not an object, objects of no accepted shape, notifications
with a required field removed or mistyped, any of these inside an SNS or SQS envelope) must fail; *ignored* bodies
(``s3:TestEvent``, an empty notification, restore, tagging and lifecycle events) must neither fail nor
write an item. Every rejected notification names :data:`BAIT`, an object that exists: a parser that wrongly
accepted one would caption it, and the table, emptied before each example, would show it.

Caught (checked on a copy of the code): a processor that drops every good message of a batch holding two or more
malformed ones, a parser that accepts a notification with one broken record among good ones, and one that rejects
``s3:TestEvent``.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_support import (
    BUCKET,
    TABLE,
    Aws,
    FakeCaptioner,
    FakeContext,
    body,
    failed_ids,
    moto_aws,
    png,
    sqs_event,
)

from imgcaption_aws.events import EventParseError, notification_record
from imgcaption_aws.settings import AwsSettings

GOOD_KEYS = ("good/a.png", "good/b c+d.png")
BAIT = "bait/named-by-every-malformed-notification.png"
EVENTS = Path(__file__).parents[1] / "events"


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Aws, Any]]:
    """One moto and one initialised handler for the module (hypothesis runs many examples against them)."""
    from imgcaption_lambda import handler as module

    for aws in moto_aws():
        for index, key in enumerate((*GOOD_KEYS, BAIT)):
            aws.s3.put_object(Bucket=BUCKET, Key=key, Body=png((10 * index, 200, 30)))
        settings = AwsSettings(table_name=TABLE, batch_size=4)
        module.init(settings, s3=aws.s3, dynamodb=aws.dynamodb, captioner=FakeCaptioner())
        try:
            yield aws, module.handler
        finally:
            module._processor = None


def emptied(world: tuple[Aws, Any]) -> tuple[Aws, Any]:
    """The module's handler over an empty table, so every item a test finds was written by that test."""
    aws, handler = world
    for uri in aws.items():
        aws.dynamodb.delete_item(TableName=TABLE, Key={"image_id": {"S": uri}})
    assert aws.items() == {}
    return aws, handler


def valid_body(key: str) -> str:
    return body(notification_record(BUCKET, key))


def uri(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


# ----------------------------------------------------------------------------- regressions (both crashed the batch)


def test_a_body_nested_deeper_than_python_can_parse_fails_alone(world: tuple[Aws, Any]) -> None:
    aws, handler = emptied(world)
    too_deep = "[" * 100_000 + "]" * 100_000  # valid JSON that json.loads cannot parse: RecursionError
    response = handler(sqs_event(too_deep, valid_body(GOOD_KEYS[0])), FakeContext())
    assert failed_ids(response) == ["message-0"]
    assert {name: item["status"] for name, item in aws.items().items()} == {uri(GOOD_KEYS[0]): "ok"}


def test_an_event_time_that_is_not_a_time_fails_alone(world: tuple[Aws, Any]) -> None:
    aws, handler = emptied(world)
    record = notification_record(BUCKET, BAIT)
    record["eventTime"] = "yesterday"  # fromisoformat raised a plain ValueError, which escaped the parser
    response = handler(sqs_event(valid_body(GOOD_KEYS[1]), body(record)), FakeContext())
    assert failed_ids(response) == ["message-1"]
    assert {name: item["status"] for name, item in aws.items().items()} == {uri(GOOD_KEYS[1]): "ok"}


# ----------------------------------------------------------------------------- rejected: never an S3 event

_RECORD = notification_record(BUCKET, BAIT)
_REQUIRED: list[tuple[str, ...]] = [
    ("eventName",),
    ("s3",),
    ("s3", "bucket"),
    ("s3", "bucket", "name"),
    ("s3", "object"),
    ("s3", "object", "key"),
]
_WRONG_VALUES: list[tuple[tuple[str, ...], Any]] = [
    (("s3", "object", "key"), 5),
    (("s3", "object", "key"), None),
    (("s3", "object", "key"), ["a.png"]),
    (("s3", "object", "size"), "big"),
    (("s3", "object", "size"), 1e400),
    (("s3", "bucket"), "photos"),
    (("s3",), []),
    (("eventName",), {"x": 1}),
    (("eventTime",), "yesterday"),
    (("eventTime",), "2024-13-45T25:61:00Z"),
    (("eventTime",), 1714557600),
]
ENVELOPE_KEYS = {"Records", "Event", "source", "detail-type", "invocationSchemaVersion", "tasks", "Type", "Message"}
"""The top-level keys by which an accepted shape is recognised; an object with none of them is no event."""


def _without(record: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    broken = copy.deepcopy(record)
    parent = broken
    for name in path[:-1]:
        parent = parent[name]
    del parent[path[-1]]
    return broken


def _with(record: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(record)
    parent = broken
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    return broken


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
broken_records = st.one_of(
    st.sampled_from(_REQUIRED).map(lambda path: _without(_RECORD, path)),
    st.sampled_from(_WRONG_VALUES).map(lambda change: _with(_RECORD, *change)),
)
not_json = st.one_of(
    st.text(alphabet=" \t\r\n", max_size=4),  # empty or blank
    st.tuples(st.sampled_from("<#'}],:=;xZ\ud800"), st.text(max_size=200)).map("".join),  # no JSON starts so
    st.integers(1, len(body(_RECORD)) - 1).map(lambda end: body(_RECORD)[:end]),  # a notification cut short
    st.integers(1, 100_000).map(lambda depth: '{"a":' * depth + "1" + "}" * (depth - 1)),  # one brace short
)
not_an_object = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(max_size=20), st.lists(json_values)
).map(json.dumps)
no_accepted_shape = st.dictionaries(
    st.text(max_size=10).filter(lambda name: name not in ENVELOPE_KEYS), json_values, max_size=4
).map(json.dumps)
malformed_notifications = st.one_of(
    broken_records.map(lambda record: body(record)),
    st.tuples(broken_records, st.integers(0, 2)).map(  # one broken record among good ones fails the whole message
        lambda pair: body(*[_RECORD] * pair[1], pair[0], _RECORD)
    ),
    st.just(json.dumps({"Records": {"0": _RECORD}})),
    st.just(json.dumps({"Records": [_RECORD, "second record is a string"]})),
    st.just(json.dumps({"Records": None})),
    st.just(json.dumps({"Type": "Notification", "Message": "not json either"})),
    st.just(json.dumps({"Records": [{"eventSource": "aws:sqs", "body": 5}]})),
    st.just(json.dumps({"Records": [{"eventSource": "aws:sns", "Sns": {}}]})),
    st.just(json.dumps({"source": "aws.s3", "detail-type": "Object Created", "time": "noon", "detail": {}})),
    st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 100_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)


def in_sns_envelope(inner: str) -> str:
    """SNS → SQS without raw message delivery: the body is an SNS notification whose Message is the original."""
    return json.dumps({"Type": "Notification", "MessageId": "sns-1", "Message": inner})


def in_sqs_record(inner: str) -> str:
    """An SQS event (as Lambda would deliver it) sent on as a message body."""
    return json.dumps({"Records": [{"eventSource": "aws:sqs", "messageId": "inner-1", "body": inner}]})


rejected = st.recursive(
    not_json | not_an_object | no_accepted_shape | malformed_notifications,
    lambda inner: inner.map(in_sns_envelope) | inner.map(in_sqs_record),
    max_leaves=3,
)


# ----------------------------------------------------------------------------- ignored: an event, but nothing to do


def _event_file(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _restore_completed() -> dict[str, Any]:
    event = _event_file("eventbridge_object_created.json")
    event["detail-type"] = "Object Restore Completed"
    event["detail"]["bucket"]["name"] = BUCKET
    event["detail"]["object"]["key"] = BAIT
    return event


_IGNORED_EVENTS = [
    _event_file("s3_test_event.json"),
    {"Records": []},
    {"Records": [notification_record(BUCKET, BAIT, event_name="ObjectRestore:Completed")]},
    {"Records": [notification_record(BUCKET, BAIT, event_name="ObjectTagging:Put")]},
    {"Records": [notification_record(BUCKET, BAIT, event_name="LifecycleTransition")]},
    _restore_completed(),
]
ignored = st.recursive(
    st.sampled_from(_IGNORED_EVENTS).map(json.dumps), lambda inner: inner.map(in_sns_envelope), max_leaves=2
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bad=st.lists(rejected, min_size=1, max_size=6),
    harmless=st.lists(ignored, max_size=2),
    good=st.lists(st.sampled_from(GOOD_KEYS), max_size=3),
    seed=st.integers(0, 2**16),
)
@example(
    bad=["", "null", "[]", "{}", '"Records"', "\ud800", '{"Records": null}'], harmless=[], good=[GOOD_KEYS[0]], seed=0
)
@example(bad=["", "[]"], harmless=[], good=list(GOOD_KEYS), seed=0)
def test_every_malformed_message_fails_alone_and_the_rest_of_the_batch_is_captioned(
    world: tuple[Aws, Any], bad: list[str], harmless: list[str], good: list[str], seed: int
) -> None:
    aws, handler = emptied(world)
    messages = [(f"bad-{i}", text) for i, text in enumerate(bad)]
    messages += [(f"ignored-{i}", text) for i, text in enumerate(harmless)]
    messages += [(f"good-{i}", valid_body(key)) for i, key in enumerate(good)]
    random.Random(seed).shuffle(messages)
    ids, bodies = zip(*messages, strict=True)

    response = handler(sqs_event(*bodies, ids=ids), FakeContext())

    assert sorted(failed_ids(response)) == sorted(name for name in ids if name.startswith("bad-"))
    assert {name: item["status"] for name, item in aws.items().items()} == {uri(key): "ok" for key in good}


def test_a_malformed_direct_invocation_is_an_error_lambda_retries_then_sends_to_its_failure_destination(
    world: tuple[Aws, Any],
) -> None:
    """Asynchronous invocations have no per-record response: the handler raises, non-retryable, typed."""
    aws, handler = emptied(world)
    with pytest.raises(EventParseError) as raised:
        handler({"Records": [_without(_RECORD, ("s3", "object", "key"))]}, FakeContext())
    assert not raised.value.retryable
    assert aws.items() == {}
