"""The DynamoDB store keeps one item per object and never lets a duplicate or an older event overwrite a newer one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from aws_support import AWKWARD_KEYS
from imgcaption.errors import StoreError
from imgcaption.generation import GenerationOptions
from imgcaption.ports import CaptionSignature, Outcome
from imgcaption.results import Caption, CaptionFailure
from imgcaption_aws.clients import dynamodb_client
from imgcaption_aws.events import S3ObjectRef, object_ref, sequencer_key, supersedes
from imgcaption_aws.store import DynamoDBStore

TABLE = "captions"
URI = "s3://photos/holiday 2024/café +1.jpg"


@pytest.fixture
def store(fake_aws_credentials: None) -> Iterator[DynamoDBStore]:
    with mock_aws():
        client = dynamodb_client()
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoDBStore(client, TABLE)


def ref(sequencer: str | None = None, event_time: str | None = "2024-05-01T10:00:00Z", **fields: Any) -> S3ObjectRef:
    return object_ref("photos", "holiday 2024/café +1.jpg", sequencer=sequencer, event_time=event_time, **fields)


def caption(text: str = "a cat on a mat", model: str = "/opt/model") -> Caption:
    return Caption(
        source=URI,
        model=model,
        revision="dc68f91c06a1ba6f15268e5b9c13ae7a7c514084",
        precision="int8",
        text=text,
        width=640,
        height=480,
        sha256="ab" * 32,
        elapsed_ms=123.5,
        created_at=datetime(2024, 5, 1, 10, 0, 5, tzinfo=UTC),
    )


def failure(error_type: str = "ImageDecodeError") -> CaptionFailure:
    return CaptionFailure(
        source=URI, model="/opt/model", precision="int8", error_type=error_type, message="truncated JPEG"
    )


def items(store: DynamoDBStore) -> list[dict[str, Any]]:
    return store.client.scan(TableName=TABLE)["Items"]


def text_of(store: DynamoDBStore) -> str | None:
    item = store.get(URI)
    assert item is not None
    text = item.get("caption", {}).get("S")
    return None if text is None else str(text)


def test_a_caption_is_one_item_with_the_contract_attributes(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0055AED6DCD90281E5", etag="e1", size=1024, version_id="v1"), caption())])
    [item] = items(store)
    plain = {name: next(iter(value.values())) for name, value in item.items() if name != "generation"}
    assert plain == {
        "image_id": URI,
        "bucket": "photos",
        "key": "holiday 2024/café +1.jpg",
        "status": "ok",
        "caption": "a cat on a mat",
        "model": "/opt/model",
        "revision": "dc68f91c06a1ba6f15268e5b9c13ae7a7c514084",
        "precision": "int8",
        "generation_key": "beams4-len16",
        "signature": "/opt/model@dc68f91c06a1ba6f15268e5b9c13ae7a7c514084:int8:beams4-len16",
        "version_id": "v1",
        "etag": "e1",
        "size": "1024",
        "sha256": "ab" * 32,
        "width": "640",
        "height": "480",
        "elapsed_ms": "123.5",
        "created_at": "2024-05-01T10:00:05+00:00",
        "sequencer": "0055AED6DCD90281E5",
        "sequencer_key": sequencer_key("0055AED6DCD90281E5"),
        "event_time": "2024-05-01T10:00:00.000000+00:00",
    }
    assert item["generation"]["M"] == {
        "num_beams": {"N": "4"},
        "max_length": {"N": "16"},
        "max_new_tokens": {"NULL": True},
    }


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_the_item_and_its_tombstone_carry_the_bucket_and_key_of_the_ref_unchanged(
    store: DynamoDBStore, key: str
) -> None:
    captioned = object_ref("photos", key, sequencer="0A", event_time="2024-05-01T10:00:00Z")
    store.record([Outcome(captioned, caption())])
    [item] = items(store)
    assert (item["image_id"]["S"], item["bucket"]["S"], item["key"]["S"]) == (f"s3://photos/{key}", "photos", key)
    [read_back] = store.outcomes()
    assert read_back.ref == captioned
    assert store.record_removal(object_ref("photos", key, sequencer="0B", removed="object"))
    [tombstone] = items(store)
    assert (tombstone["status"]["S"], tombstone["bucket"]["S"], tombstone["key"]["S"]) == ("deleted", "photos", key)


def test_a_failure_records_its_type_and_message(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("01"), failure())])
    item = store.get(URI)
    assert item is not None
    assert (item["status"]["S"], item["error_type"]["S"], item["message"]["S"]) == (
        "failed",
        "ImageDecodeError",
        "truncated JPEG",
    )
    assert "caption" not in item


def test_a_duplicate_delivery_neither_adds_nor_rewrites_a_record(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A"), caption("first"))])
    store.record([Outcome(ref("0A"), caption("second run of the same event"))])
    assert len(items(store)) == 1
    assert text_of(store) == "first"
    assert store.report.superseded == [URI]


@pytest.mark.parametrize(
    ("older", "newer"),
    [("0A", "0B"), ("0062E99A88DC407460", "0062E99A88DC4075"), ("0062E99A88DC4075", "0062E99A88DC407501")],
)
def test_an_older_event_never_overwrites_a_newer_one_by_sequencer(store: DynamoDBStore, older: str, newer: str) -> None:
    # Sequencers of different lengths compare after right-padding with zeros (AWS's rule): the shorter
    # "...4075" is newer than the longer "...407460", and older than "...407501".
    store.record([Outcome(ref(newer, event_time="2024-05-01T10:00:00Z"), caption("newer"))])
    store.record([Outcome(ref(older, event_time="2024-05-01T11:00:00Z"), caption("older"))])
    assert text_of(store) == "newer"


def test_a_newer_event_replaces_an_older_one_by_sequencer(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0062E99A88DC407460"), caption("older"))])
    store.record([Outcome(ref("0062E99A88DC4075"), failure())])  # the new content is broken: the table says so
    item = store.get(URI)
    assert item is not None
    assert (item["status"]["S"], item["sequencer"]["S"]) == ("failed", "0062E99A88DC4075")


def test_without_sequencers_event_time_orders_events(store: DynamoDBStore) -> None:
    # moto's notifications carry no sequencer
    store.record([Outcome(ref(event_time="2024-05-01T10:00:02Z"), caption("newer"))])
    store.record([Outcome(ref(event_time="2024-05-01T10:00:01Z"), caption("older"))])
    assert text_of(store) == "newer"
    store.record([Outcome(ref(event_time="2024-05-01T10:00:03Z"), caption("newest"))])
    assert text_of(store) == "newest"


def test_a_backfill_message_does_not_overwrite_a_real_event_about_the_same_upload(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0055AED6DCD90281E5", event_time="2024-05-01T10:00:00.500Z"), caption("event"))])
    store.record([Outcome(ref(None, event_time="2024-05-01T10:00:00Z"), caption("backfill"))])  # LastModified
    assert text_of(store) == "event"


def test_the_same_event_may_turn_a_failure_into_a_caption_but_not_back(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A"), failure("CaptioningError"))])
    store.record([Outcome(ref("0A"), caption())])
    assert text_of(store) == "a cat on a mat"
    store.record([Outcome(ref("0A"), failure("CaptioningError"))])
    assert text_of(store) == "a cat on a mat"


def test_the_same_event_captioned_by_another_model_replaces_the_caption(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A"), caption("old model", model="/opt/model"))])
    store.record([Outcome(ref("0A"), caption("new model", model="/opt/model-v2"))])
    assert text_of(store) == "new model"
    assert len(items(store)) == 1


def test_has_caption_matches_signature_and_content(store: DynamoDBStore) -> None:
    recorded = caption()
    store.record([Outcome(ref("0A", etag="e1"), recorded)])
    signature = CaptionSignature.of(recorded)
    assert store.has_caption(ref(etag="e1"), signature)
    assert not store.has_caption(ref(etag="e2"), signature)  # the object changed since
    other = CaptionSignature(recorded.model, recorded.revision, recorded.precision, GenerationOptions(num_beams=1))
    assert not store.has_caption(ref(etag="e1"), other)


def test_outcomes_round_trip(store: DynamoDBStore) -> None:
    outcome = Outcome(ref("0A", etag="e1", size=3, version_id="v1"), caption())
    store.record([outcome])
    assert list(store.outcomes()) == [outcome]


def test_a_caption_made_with_a_prompt_reads_back_with_its_prompt_and_is_a_different_caption(
    store: DynamoDBStore,
) -> None:
    prompted = caption().model_copy(update={"generation": GenerationOptions(prompt="a photography of")})
    outcome = Outcome(ref("0A", etag="e1"), prompted)
    store.record([outcome])
    assert list(store.outcomes()) == [outcome]
    assert store.has_caption(ref(etag="e1"), CaptionSignature.of(prompted))
    assert not store.has_caption(ref(etag="e1"), CaptionSignature.of(caption()))  # no prompt: another caption


class ThrottledClient:
    """A DynamoDB client that is throttled even after botocore's retries."""

    def put_item(self, **_: Any) -> Any:
        response: Any = {
            "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(response, "PutItem")


def test_throttling_surfaces_as_a_retryable_store_error() -> None:
    store = DynamoDBStore(ThrottledClient(), TABLE)  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        store.record([Outcome(ref("0A"), caption())])
    assert caught.value.retryable is True
    assert caught.value.source == URI


@pytest.mark.parametrize("sequencer", [None, "0A"])
@pytest.mark.parametrize("result", [caption(), failure()], ids=["caption", "failure"])
def test_every_kind_of_write_is_a_valid_request(
    store: DynamoDBStore, sequencer: str | None, result: Caption | CaptionFailure
) -> None:
    store.record([Outcome(ref(sequencer), result)])
    assert store.report.written == 1


EVENTS_IN_HAND = [
    ref("0A", event_time="2024-05-01T10:00:00Z"),
    ref("0B", event_time="2024-05-01T09:00:00Z"),  # newer by sequencer, older by clock
    ref("0062E99A88DC4075", event_time="2024-05-01T10:00:00Z"),
    ref(None, event_time="2024-05-01T10:00:01Z"),  # no sequencer (moto, backfill): ordered by time
    ref(None, event_time="2024-05-01T09:59:59Z"),
    ref(None, event_time="2024-05-01T10:00:00Z"),
]


@pytest.mark.parametrize("current", EVENTS_IN_HAND)
@pytest.mark.parametrize("candidate", EVENTS_IN_HAND)
def test_the_in_batch_rule_is_the_write_condition(
    store: DynamoDBStore, current: S3ObjectRef, candidate: S3ObjectRef
) -> None:
    """What the Lambda keeps of two events in one batch is what the table keeps when they come in two batches."""
    store.record([Outcome(current, caption("current"))])
    store.record([Outcome(candidate, caption("candidate"))])
    assert (text_of(store) == "candidate") == supersedes(candidate, current)


# ----------------------------------------------------------------------------- attempt counter (crash isolation)

SIGNATURE = CaptionSignature.of(caption())


def test_attempts_count_per_event_and_are_invisible_to_readers(store: DynamoDBStore) -> None:
    assert [store.begin_attempt(ref("0A"), SIGNATURE).number for _ in range(3)] == [1, 2, 3]
    assert store.attempts([ref("0A")]) == {URI: 3}
    assert store.attempts([ref("0B")]) == {}  # another event: its own count, none yet
    assert store.begin_attempt(ref("0B"), SIGNATURE).number == 1
    assert list(store.outcomes()) == []
    assert not store.has_caption(ref("0A"), SIGNATURE)


def test_an_attempt_never_touches_a_finished_outcome_and_the_outcome_replaces_the_counter(
    store: DynamoDBStore,
) -> None:
    store.begin_attempt(ref("0A"), SIGNATURE)
    store.record([Outcome(ref("0A"), caption("done"))])
    item = store.get(URI)
    assert item is not None and "attempts" not in item
    assert store.begin_attempt(ref("0A"), SIGNATURE).finished  # the same event again: nothing to do
    assert store.begin_attempt(ref("09"), SIGNATURE).finished  # an older one: nothing to do either
    assert text_of(store) == "done"


def test_a_recorded_failure_of_the_event_stops_the_attempts(store: DynamoDBStore) -> None:
    """A recorded WorkerCrashedError must end the retries: the failure counts as finished for the attempt gate."""
    store.record([Outcome(ref("0A"), failure("WorkerCrashedError"))])
    assert store.begin_attempt(ref("0A"), SIGNATURE).finished


def test_a_newer_event_is_attempted_while_the_older_caption_stays_readable(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A"), caption("old upload"))])
    assert store.begin_attempt(ref("0B"), SIGNATURE).number == 1
    assert text_of(store) == "old upload"
    assert [outcome.result.ok for outcome in store.outcomes()] == [True]
    store.record([Outcome(ref("0B"), caption("new upload"))])  # the counter does not block the newer outcome
    assert text_of(store) == "new upload"


# ----------------------------------------------------------------------------- deletions (tombstones)


def removal(sequencer: str, removed: str = "object", version_id: str | None = None) -> S3ObjectRef:
    return object_ref(
        "photos", "holiday 2024/café +1.jpg", sequencer=sequencer, event_time="2024-05-01T10:00:00Z",
        version_id=version_id, removed=removed,  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_delete_tombstones_the_caption_and_readers_do_not_see_it(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A"), caption())])
    assert store.record_removal(removal("0B"))
    item = store.get(URI)
    assert item is not None
    assert (item["status"]["S"], item["sequencer"]["S"], "caption" in item) == ("deleted", "0B", False)
    assert list(store.outcomes()) == []
    assert not store.has_caption(ref("0A"), SIGNATURE)


def test_a_late_creation_never_resurrects_and_a_late_delete_never_hides_a_newer_upload(store: DynamoDBStore) -> None:
    assert store.record_removal(removal("0B"))  # the delete arrives before the creation it follows
    store.record([Outcome(ref("0A"), caption("resurrected"))])
    assert list(store.outcomes()) == []
    store.record([Outcome(ref("0C"), caption("uploaded again"))])
    assert not store.record_removal(removal("0B"))  # delivered twice, the second copy after the new upload
    assert text_of(store) == "uploaded again"


def test_deleting_a_version_hides_only_that_version_and_deleting_the_marker_lifts_the_tombstone(
    store: DynamoDBStore,
) -> None:
    store.record([Outcome(ref("0A", version_id="v1"), caption("v1"))])
    assert not store.record_removal(removal("0B", "version", "v0"))  # another (noncurrent) version
    assert text_of(store) == "v1"
    assert store.record_removal(removal("0C", "object", "marker"))  # a delete marker hides it
    assert list(store.outcomes()) == []
    assert store.record_removal(removal("0D", "version", "marker"))  # the marker deleted: no tombstone left
    assert store.get(URI) is None
    store.record([Outcome(ref(None, event_time="2024-04-30T00:00:00Z"), caption("backfill"))])  # LastModified
    assert text_of(store) == "backfill"


def test_deleting_the_captioned_version_tombstones_it(store: DynamoDBStore) -> None:
    store.record([Outcome(ref("0A", version_id="v1"), caption("v1"))])
    assert store.record_removal(removal("0B", "version", "v1"))
    assert list(store.outcomes()) == []
