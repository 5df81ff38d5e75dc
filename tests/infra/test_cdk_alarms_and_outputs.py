"""Alarms reach a human through an encrypted topic; outputs name what an operator needs."""

from typing import Any

import pytest
from cdk_synth import Synth

pytestmark = pytest.mark.infra


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    """Alarm properties by metric name."""
    found = synth.template.find_resources("AWS::CloudWatch::Alarm")
    return {alarm["Properties"]["MetricName"]: alarm["Properties"] for alarm in found.values()}


def test_four_alarms_watch_dead_letters_backlog_age_errors_and_throttles(default: Synth) -> None:
    stack = default.stack
    dlq_name = {"Fn::GetAtt": [default.logical_id(stack.ingest.dead_letter_queue), "QueueName"]}
    queue_name = {"Fn::GetAtt": [default.logical_id(stack.ingest.queue), "QueueName"]}
    function_name = {"Ref": default.logical_id(stack.captioner.function)}
    found = alarms(default)
    assert set(found) == {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage", "Errors", "Throttles"}

    dead_letters = found["ApproximateNumberOfMessagesVisible"]
    assert dead_letters["Dimensions"] == [{"Name": "QueueName", "Value": dlq_name}]
    assert (dead_letters["Threshold"], dead_letters["Statistic"]) == (0, "Maximum")

    backlog = found["ApproximateAgeOfOldestMessage"]
    assert backlog["Dimensions"] == [{"Name": "QueueName", "Value": queue_name}]
    assert backlog["Threshold"] == 900

    for metric in ("Errors", "Throttles"):
        assert found[metric]["Namespace"] == "AWS/Lambda"
        assert found[metric]["Dimensions"] == [{"Name": "FunctionName", "Value": function_name}]
        assert (found[metric]["Threshold"], found[metric]["Statistic"]) == (0, "Sum")

    for alarm in found.values():
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"  # an idle system is healthy


def test_backlog_age_threshold_is_configurable(custom: Synth) -> None:
    assert alarms(custom)["ApproximateAgeOfOldestMessage"]["Threshold"] == 600


def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(default: Synth) -> None:
    topic = {"Ref": default.logical_id(default.stack.alarms.topic)}
    for alarm in alarms(default).values():
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
        assert alarm["AlarmDescription"]


def test_topic_is_encrypted_with_a_rotated_key_that_only_cloudwatch_alarms_of_this_account_may_use(
    default: Synth,
) -> None:
    _, topic = default.only("AWS::SNS::Topic")
    key_id = default.logical_id(default.stack.alarms.key)
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    key = default.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert ":alarm:*" in str(cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"])


def test_topic_refuses_publishing_over_plain_http(default: Synth) -> None:
    _, policy = default.only("AWS::SNS::TopicPolicy")
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Action"]) == ("Deny", "sns:Publish")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_no_subscription_unless_an_alarm_email_is_configured(default: Synth, custom: Synth) -> None:
    assert default.template.find_resources("AWS::SNS::Subscription") == {}
    _, subscription = custom.only("AWS::SNS::Subscription")
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    assert subscription["Properties"]["TopicArn"] == {"Ref": custom.logical_id(custom.stack.alarms.topic)}


def test_outputs_name_the_bucket_table_and_queues(default: Synth) -> None:
    stack = default.stack
    outputs = {name: output["Value"] for name, output in default.template.to_json()["Outputs"].items()}
    assert outputs["BucketName"] == {"Ref": default.logical_id(stack.images.bucket)}
    assert outputs["WatchPrefix"] == "uploads/"
    assert outputs["TableName"] == {"Ref": default.logical_id(stack.captions.table)}
    assert outputs["QueueName"] == {"Fn::GetAtt": [default.logical_id(stack.ingest.queue), "QueueName"]}
    assert outputs["QueueUrl"] == {"Ref": default.logical_id(stack.ingest.queue)}
    assert outputs["DeadLetterQueueName"] == {
        "Fn::GetAtt": [default.logical_id(stack.ingest.dead_letter_queue), "QueueName"]
    }
    assert outputs["FunctionName"] == {"Ref": default.logical_id(stack.captioner.function)}
    assert outputs["AlarmTopicArn"] == {"Ref": default.logical_id(stack.alarms.topic)}


def test_the_stack_name_comes_from_settings(custom: Synth) -> None:
    assert custom.stack.stack_name == "ImgCaptionDev"
