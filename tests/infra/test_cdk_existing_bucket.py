"""``bucket_name``: the stack watches an existing bucket instead of creating one.

It creates no bucket and no bucket policy; it adds the notifications to the named bucket (the same rules as for a
bucket of its own) and lets the function read the images under the watched prefix of that bucket and nothing else.
"""

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from cdk_nag import AwsSolutionsChecks
from cdk_synth import Synth, synth
from cfnlint.api import ManualArgs, lint
from constructs import IConstruct
from pydantic import ValidationError

from imgcaption_cdk.app import build_app
from imgcaption_cdk.settings import StackSettings

pytestmark = pytest.mark.infra

BUCKET = "acme-photo-archive"
CONTEXT = {"imgcaption:bucket_name": BUCKET, "imgcaption:notify_on_delete": "true"}
"""Set as ``cdk deploy -c imgcaption:bucket_name=... -c imgcaption:notify_on_delete=true`` would: on top of cdk.json."""
BUCKET_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{BUCKET}"]]}
IMAGES_UNDER_PREFIX = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{BUCKET}/uploads/*"]]}


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Synthesized with cdk-nag on: an unacknowledged finding fails here."""
    return synth(Path(os.environ["CDK_OUTDIR"]), CONTEXT, outdir=tmp_path_factory.mktemp("cdk.out.existing"))


def rules(synth: Synth) -> list[dict[str, Any]]:
    _, notifications = synth.only("Custom::S3BucketNotifications")
    found: list[dict[str, Any]] = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    return found


def filters(synth: Synth) -> set[tuple[str, str, str]]:
    """(event, prefix, suffix) of every queue notification rule."""
    found = set()
    for rule in rules(synth):
        [event] = rule["Events"]
        values = {r["Name"]: r["Value"] for r in rule["Filter"]["Key"]["FilterRules"]}
        found.add((event, values.get("prefix", ""), values["suffix"]))
    return found


def function_s3_statements(synth: Synth) -> list[dict[str, Any]]:
    role_id = synth.logical_id(synth.stack.captioner.role)
    policies = synth.template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    [policy] = policies.values()
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return [s for s in statements if any(a.startswith("s3:") for a in _as_list(s["Action"]))]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_bucket_and_no_bucket_policy_is_created(existing: Synth) -> None:
    assert existing.template.find_resources("AWS::S3::Bucket") == {}
    assert existing.template.find_resources("AWS::S3::BucketPolicy") == {}
    assert existing.stack.images.access_logs is None


def test_the_notifications_go_on_the_named_bucket_without_replacing_its_own(existing: Synth) -> None:
    _, notifications = existing.only("Custom::S3BucketNotifications")
    assert notifications["Properties"]["BucketName"] == BUCKET
    assert notifications["Properties"]["Managed"] is False  # merged into the bucket's existing configuration


def test_the_notifications_send_the_same_rules_to_the_queue_as_for_a_bucket_of_its_own(
    existing: Synth, default: Synth
) -> None:
    queue_arn = {"Fn::GetAtt": [existing.logical_id(existing.stack.ingest.queue), "Arn"]}
    assert all(rule["QueueArn"] == queue_arn for rule in rules(existing))
    created = {f for f in filters(existing) if f[0] == "s3:ObjectCreated:*"}
    assert created == filters(default)  # same prefix and suffix variants as the default stack's own bucket
    removed = {f for f in filters(existing) if f[0] == "s3:ObjectRemoved:*"}
    assert removed == {("s3:ObjectRemoved:*", prefix, suffix) for _, prefix, suffix in created}


def test_the_function_may_read_images_under_the_prefix_of_the_named_bucket_only(existing: Synth) -> None:
    by_action = {action: s["Resource"] for s in function_s3_statements(existing) for action in _as_list(s["Action"])}
    assert by_action == {
        "s3:GetObject": IMAGES_UNDER_PREFIX,
        "s3:GetObjectVersion": IMAGES_UNDER_PREFIX,
        "s3:ListBucket": BUCKET_ARN,
    }


def test_the_stack_outputs_the_named_bucket(existing: Synth) -> None:
    assert existing.template.to_json()["Outputs"]["BucketName"]["Value"] == BUCKET


def test_cdk_nag_reports_nothing_unacknowledged_and_each_acknowledgment_silences_a_finding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorded: list[tuple[str, str]] = []

    class Recorder:
        def __init__(self, scope: IConstruct) -> None:
            self.path = scope.node.path

        def acknowledge(self, *acknowledgments: cdk.Acknowledgment) -> None:
            recorded.extend((self.path, a.id) for a in acknowledgments)

    monkeypatch.setattr(cdk.Validations, "of", staticmethod(Recorder))
    app, _ = build_app(CONTEXT, nag=False)
    monkeypatch.undo()
    report = AwsSolutionsChecks().validate_scope(app)
    findings = {(r.construct_path, v.rule_name) for v in report.violations for r in v.violating_resources}
    for scope_path, rule_id in recorded:
        silenced = [path for path, rule in findings if rule == rule_id and (path + "/").startswith(scope_path + "/")]
        assert silenced, f"{rule_id} on {scope_path} silences nothing"
    assert {rule for _, rule in findings} == {rule_id for _, rule_id in recorded}
    assert f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{BUCKET}/uploads/*]" in {r for _, r in recorded}


def test_cfn_lint_is_clean(existing: Synth) -> None:
    matches = lint(json.dumps(existing.template.to_json()), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id != "W3005"] == []


@pytest.mark.parametrize("name", ["arn:aws:s3:::photos", "Photos", "ab", "my..bucket", "192.168.1.1", "-photos"])
def test_a_bucket_name_that_s3_would_refuse_fails_the_synth(name: str) -> None:
    with pytest.raises(ValidationError, match="not an S3 bucket name"):
        StackSettings(bucket_name=name)


def test_an_empty_bucket_name_on_the_command_line_means_create_one() -> None:
    assert StackSettings.model_validate({"bucket_name": ""}).bucket_name is None
