"""The S3 Batch Operations role: assumed only by S3 Batch Operations, reading manifests, writing reports, invoking
the live alias, and nothing else; its ARN and the alias ARN are stack outputs for ``imgcaption backfill``."""

from typing import Any

import pytest
from cdk_synth import Synth

from imgcaption_cdk.batch_operations import MANIFESTS_PREFIX, REPORTS_PREFIX

pytestmark = pytest.mark.infra


def role_statements(synth: Synth) -> dict[str, Any]:
    role_id = synth.logical_id(synth.stack.batch_operations.role)
    policies = synth.template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    (policy,) = policies.values()
    by_action: dict[str, Any] = {}
    for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            by_action[action] = statement["Resource"]
    return by_action


def test_only_s3_batch_operations_may_assume_the_role(default: Synth) -> None:
    role = default.resources[default.logical_id(default.stack.batch_operations.role)]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_the_role_reads_manifests_writes_reports_and_invokes_the_alias_only(default: Synth) -> None:
    stack = default.stack
    bucket_arn = {"Fn::GetAtt": [default.logical_id(stack.images.bucket), "Arn"]}
    alias_id = default.stack.get_logical_id(stack.captioner.alias.node.default_child)
    assert role_statements(default) == {
        "s3:GetObject": {"Fn::Join": ["", [bucket_arn, f"/{MANIFESTS_PREFIX}*"]]},
        "s3:GetObjectVersion": {"Fn::Join": ["", [bucket_arn, f"/{MANIFESTS_PREFIX}*"]]},
        "s3:PutObject": {"Fn::Join": ["", [bucket_arn, f"/{REPORTS_PREFIX}*"]]},
        "lambda:InvokeFunction": {"Ref": alias_id},
    }


def test_the_stack_outputs_the_role_and_the_alias_for_backfill(default: Synth) -> None:
    outputs = default.template.to_json()["Outputs"]
    assert outputs["BatchOperationsRoleArn"]["Value"] == {
        "Fn::GetAtt": [default.logical_id(default.stack.batch_operations.role), "Arn"]
    }
    assert "FunctionAliasArn" in outputs
