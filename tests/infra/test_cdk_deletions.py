"""``notify_on_delete`` sends ObjectRemoved events to the queue *and* tells the function to mirror them."""

from __future__ import annotations

from typing import Any

from cdk_synth import Synth

from imgcaption_cdk.stack import MIRROR_DELETIONS_ENV


def environment(synth: Synth) -> dict[str, Any]:
    function = synth.resources[synth.logical_id(synth.stack.captioner.function)]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_the_function_mirrors_deletions_exactly_when_the_bucket_sends_them(default: Synth, custom: Synth) -> None:
    assert MIRROR_DELETIONS_ENV not in environment(default)
    assert environment(custom)[MIRROR_DELETIONS_ENV] == "true"


def test_the_environment_name_is_the_core_setting() -> None:
    from imgcaption_aws.settings import AwsSettings

    assert (str(AwsSettings.model_config.get("env_prefix")) + "mirror_deletions").upper() == MIRROR_DELETIONS_ENV
    assert "mirror_deletions" in AwsSettings.model_fields


def test_the_role_may_delete_items_to_lift_a_tombstone(custom: Synth) -> None:
    actions = [
        action
        for policy in custom.template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    ]
    assert "dynamodb:DeleteItem" in actions
