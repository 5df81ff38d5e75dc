"""Least privilege: which identity may do what, on which resource."""

from typing import Any

import pytest
from cdk_synth import Synth

pytestmark = pytest.mark.infra


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def identity_statements(synth: Synth) -> list[dict[str, Any]]:
    """Every statement of every identity policy (AWS::IAM::Policy and inline role policies)."""
    statements: list[dict[str, Any]] = []
    for policy in synth.template.find_resources("AWS::IAM::Policy").values():
        statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in synth.template.find_resources("AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            statements += inline["PolicyDocument"]["Statement"]
    return statements


def function_statements(synth: Synth) -> dict[str, Any]:
    """The function role's statements, as {action: resource}."""
    role_id = synth.logical_id(synth.stack.captioner.role)
    policies = synth.template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    assert len(policies) == 1
    by_action: dict[str, Any] = {}
    for statement in next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        assert "Condition" not in statement
        for action in as_list(statement["Action"]):
            assert action not in by_action, f"{action} granted twice"
            by_action[action] = statement["Resource"]
    return by_action


@pytest.mark.parametrize("app", ["default", "custom"])
def test_no_identity_policy_uses_a_wildcard_action(app: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(app)
    actions = [action for s in identity_statements(synth) for action in as_list(s["Action"])]
    assert actions
    assert [a for a in actions if "*" in a] == []


def test_the_function_role_grants_exactly_these_actions_on_these_resources(default: Synth) -> None:
    stack = default.stack
    bucket_arn = {"Fn::GetAtt": [default.logical_id(stack.images.bucket), "Arn"]}
    table_arn = {"Fn::GetAtt": [default.logical_id(stack.captions.table), "Arn"]}
    queue_arn = {"Fn::GetAtt": [default.logical_id(stack.ingest.queue), "Arn"]}
    log_group_arn = {"Fn::GetAtt": [default.logical_id(stack.captioner.log_group), "Arn"]}
    images_under_prefix = {"Fn::Join": ["", [bucket_arn, "/uploads/*"]]}
    table_actions = [
        "BatchGetItem", "BatchWriteItem", "ConditionCheckItem", "DeleteItem", "DescribeTable", "GetItem",
        "GetRecords", "GetShardIterator", "PutItem", "Query", "Scan", "UpdateItem",
    ]  # fmt: skip
    queue_actions = ["ChangeMessageVisibility", "DeleteMessage", "GetQueueAttributes", "GetQueueUrl", "ReceiveMessage"]
    assert function_statements(default) == {
        # read images under the watched prefix only
        "s3:GetObject": images_under_prefix,
        "s3:GetObjectVersion": images_under_prefix,
        # so a deleted object reads as NoSuchKey, not AccessDenied (the bucket ARN, not its objects)
        "s3:ListBucket": bucket_arn,
        # consume the work queue (and nothing else: not the dead-letter queue)
        **{f"sqs:{action}": queue_arn for action in queue_actions},
        # read and write the caption table (no index, no other table)
        **{f"dynamodb:{action}": table_arn for action in table_actions},
        # write its own log group (the GetAtt ARN already ends in ':*', its streams)
        "logs:CreateLogStream": log_group_arn,
        "logs:PutLogEvents": log_group_arn,
        # X-Ray's write APIs have no resource-level permissions
        "xray:PutTelemetryRecords": "*",
        "xray:PutTraceSegments": "*",
    }


def test_the_function_never_writes_to_the_bucket_it_listens_to(default: Synth) -> None:
    s3_actions = {action for action in function_statements(default) if action.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}


def test_the_function_role_has_no_managed_policies_and_only_lambda_can_assume_it(default: Synth) -> None:
    role = default.resources[default.logical_id(default.stack.captioner.role)]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
    ]


def test_without_a_prefix_the_function_reads_the_whole_bucket_and_nothing_more(custom: Synth) -> None:
    bucket_arn = {"Fn::GetAtt": [custom.logical_id(custom.stack.images.bucket), "Arn"]}
    assert function_statements(custom)["s3:GetObject"] == {"Fn::Join": ["", [bucket_arn, "/*"]]}


def test_cdk_notification_handler_may_only_configure_notifications_on_the_image_bucket(default: Synth) -> None:
    bucket_arn = {"Fn::GetAtt": [default.logical_id(default.stack.images.bucket), "Arn"]}
    handler_policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for logical_id, policy in default.template.find_resources("AWS::IAM::Policy").items()
        if "NotificationsHandler" in logical_id
    ]
    assert handler_policies == [[{"Action": "s3:PutBucketNotification", "Effect": "Allow", "Resource": bucket_arn}]]
