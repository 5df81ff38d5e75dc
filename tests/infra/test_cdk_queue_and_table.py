"""The queue between bucket and function, its dead-letter queue, and the caption table."""

from typing import Any

import pytest
from cdk_synth import Synth

pytestmark = pytest.mark.infra

FOURTEEN_DAYS_S = 14 * 24 * 3600


def queue_props(synth: Synth, queue: Any) -> dict[str, Any]:
    props: dict[str, Any] = synth.resources[synth.logical_id(queue)]["Properties"]
    return props


def queue_policy_statements(synth: Synth, queue: Any) -> list[dict[str, Any]]:
    queue_ref = {"Ref": synth.logical_id(queue)}
    policies = synth.template.find_resources("AWS::SQS::QueuePolicy", {"Properties": {"Queues": [queue_ref]}})
    assert len(policies) == 1
    statements: list[dict[str, Any]] = next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]
    return statements


@pytest.mark.parametrize("which", ["queue", "dead_letter_queue"])
def test_both_queues_are_encrypted_and_refuse_plain_http(default: Synth, which: str) -> None:
    queue = getattr(default.stack.ingest, which)
    assert queue_props(default, queue)["SqsManagedSseEnabled"] is True
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [default.logical_id(queue), "Arn"]},
    } in queue_policy_statements(default, queue)


def test_visibility_timeout_is_six_times_the_function_timeout(default: Synth) -> None:
    function = default.resources[default.logical_id(default.stack.captioner.function)]["Properties"]
    assert queue_props(default, default.stack.ingest.queue)["VisibilityTimeout"] == 6 * function["Timeout"] == 720


def test_visibility_timeout_follows_the_function_timeout_and_batching_window(custom: Synth) -> None:
    assert queue_props(custom, custom.stack.ingest.queue)["VisibilityTimeout"] == 6 * 300 + 10


def test_a_message_goes_to_the_dead_letter_queue_after_five_receives(default: Synth) -> None:
    assert queue_props(default, default.stack.ingest.queue)["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [default.logical_id(default.stack.ingest.dead_letter_queue), "Arn"]},
        "maxReceiveCount": 5,
    }


def test_max_receive_count_is_configurable(custom: Synth) -> None:
    assert queue_props(custom, custom.stack.ingest.queue)["RedrivePolicy"]["maxReceiveCount"] == 3


def test_dead_letters_are_kept_14_days(default: Synth) -> None:
    assert queue_props(default, default.stack.ingest.dead_letter_queue)["MessageRetentionPeriod"] == FOURTEEN_DAYS_S


def test_only_s3_events_from_the_image_bucket_may_be_sent_to_the_queue(default: Synth) -> None:
    allows = [s for s in queue_policy_statements(default, default.stack.ingest.queue) if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"],
            "Condition": {
                "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [default.logical_id(default.stack.images.bucket), "Arn"]}}
            },
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Resource": {"Fn::GetAtt": [default.logical_id(default.stack.ingest.queue), "Arn"]},
        }
    ]


def test_table_is_keyed_by_image_id_on_demand_with_pitr_and_encryption(default: Synth) -> None:
    _, table = default.only("AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "image_id", "KeyType": "HASH"}]  # no sort key
    assert props["AttributeDefinitions"] == [{"AttributeName": "image_id", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}  # AWS-managed key; no customer key to lose
    assert "PointInTimeRecoveryEnabled" not in props  # the deprecated flag is not used


def test_table_queues_and_logs_are_retained_by_default(default: Synth) -> None:
    for resource_type in ("AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::KMS::Key"):
        for logical_id, resource in default.template.find_resources(resource_type).items():
            assert resource["DeletionPolicy"] == "Retain", logical_id
            assert resource["UpdateReplacePolicy"] == "Retain", logical_id
    _, table = default.only("AWS::DynamoDB::Table")
    assert table["Properties"]["DeletionProtectionEnabled"] is True


def test_a_dev_stack_can_be_destroyed(custom: Synth) -> None:
    _, table = custom.only("AWS::DynamoDB::Table")
    assert table["DeletionPolicy"] == "Delete"
    assert table["Properties"]["DeletionProtectionEnabled"] is False
