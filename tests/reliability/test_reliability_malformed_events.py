"""Malformed SQS messages are failed records of their own batch: the handler never raises, the good messages in the
same batch are captioned, and only the bad ones come back in ``batchItemFailures`` (to reach the DLQ after
``maxReceiveCount`` deliveries). A handler that raised would instead bounce the whole batch until every message in
it, good ones included, ended in the DLQ.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
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

from imgcaption.aws.events import EventParseError, notification_record, refs_from_body
from imgcaption.aws.settings import AwsSettings

GOOD_KEYS = ("good/a.png", "good/b c+d.png")


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Aws, Any]]:
    """One moto and one initialised handler for the module (hypothesis runs many examples against them)."""
    from imgcaption_lambda import handler as module

    for aws in moto_aws():
        for index, key in enumerate(GOOD_KEYS):
            aws.s3.put_object(Bucket=BUCKET, Key=key, Body=png((10 * index, 200, 30)))
        settings = AwsSettings(table_name=TABLE, batch_size=4)
        module.init(settings, s3=aws.s3, dynamodb=aws.dynamodb, captioner=FakeCaptioner())
        try:
            yield aws, module.handler
        finally:
            module._processor = None


def valid_body(key: str) -> str:
    return body(notification_record(BUCKET, key))


# ----------------------------------------------------------------------------- regressions (both crashed the batch)


def test_a_body_nested_deeper_than_python_can_parse_fails_alone(world: tuple[Aws, Any]) -> None:
    aws, handler = world
    too_deep = "[" * 100_000 + "]" * 100_000  # valid JSON that json.loads cannot parse: RecursionError
    response = handler(sqs_event(too_deep, valid_body(GOOD_KEYS[0])), FakeContext())
    assert failed_ids(response) == ["message-0"]
    assert f"s3://{BUCKET}/{GOOD_KEYS[0]}" in aws.items()


def test_an_event_time_that_is_not_a_time_fails_alone(world: tuple[Aws, Any]) -> None:
    aws, handler = world
    record = notification_record(BUCKET, GOOD_KEYS[1])
    record["eventTime"] = "yesterday"  # fromisoformat raised a plain ValueError, which escaped the parser
    response = handler(sqs_event(valid_body(GOOD_KEYS[1]), body(record)), FakeContext())
    assert failed_ids(response) == ["message-1"]
    assert f"s3://{BUCKET}/{GOOD_KEYS[1]}" in aws.items()


# ----------------------------------------------------------------------------- generated malformed bodies

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


_RECORD = notification_record(BUCKET, GOOD_KEYS[0])
broken_notifications = st.one_of(
    st.sampled_from(_REQUIRED).map(lambda path: body(_without(_RECORD, path))),
    st.sampled_from(_WRONG_VALUES).map(lambda change: body(_with(_RECORD, *change))),
    st.just(json.dumps({"Records": {"0": _RECORD}})),
    st.just(json.dumps({"Records": [_RECORD, "second record is a string"]})),
    st.just(json.dumps({"Type": "Notification", "Message": "not json either"})),
    st.just(json.dumps({"Records": [{"eventSource": "aws:sqs", "body": 5}]})),
    st.just(json.dumps({"Records": [{"eventSource": "aws:sns", "Sns": {}}]})),
    st.just(json.dumps({"source": "aws.s3", "detail-type": "Object Created", "time": "noon", "detail": {}})),
    st.integers(1, 200_000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(1, 100_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
).map(json.dumps)


def _rejected(text: str) -> bool:
    try:
        refs_from_body(text)
    except EventParseError:
        return True
    return False


@st.composite
def junk(draw: st.DrawFn) -> str:
    """Any text or JSON at all, as long as it is not accidentally an event the parser accepts."""
    text = draw(st.text(max_size=200) | json_values)
    assume(_rejected(text))
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bad=st.lists(broken_notifications | junk(), min_size=1, max_size=6),
    good=st.lists(st.sampled_from(GOOD_KEYS), max_size=3),
    seed=st.integers(0, 2**16),
)
@example(bad=["", "null", "[]", "{}", '"Records"', "\ud800", '{"Records": null}'], good=[GOOD_KEYS[0]], seed=0)
def test_every_malformed_message_fails_alone_and_the_rest_of_the_batch_is_captioned(
    world: tuple[Aws, Any], bad: list[str], good: list[str], seed: int
) -> None:
    aws, handler = world
    messages = [(f"bad-{i}", text) for i, text in enumerate(bad)]
    messages += [(f"good-{i}", valid_body(key)) for i, key in enumerate(good)]
    random.Random(seed).shuffle(messages)
    ids, bodies = zip(*messages, strict=True)

    response = handler(sqs_event(*bodies, ids=ids), FakeContext())

    assert sorted(failed_ids(response)) == sorted(name for name in ids if name.startswith("bad-"))
    items = aws.items()
    for key in good:
        assert items[f"s3://{BUCKET}/{key}"]["status"] == "ok"


def test_a_malformed_direct_invocation_is_an_error_lambda_retries_then_sends_to_its_failure_destination(
    world: tuple[Aws, Any],
) -> None:
    """Asynchronous invocations have no per-record response: the handler raises, non-retryable, typed."""
    _, handler = world
    with pytest.raises(EventParseError) as raised:
        handler({"Records": [_without(_RECORD, ("s3", "object", "key"))]}, FakeContext())
    assert not raised.value.retryable
