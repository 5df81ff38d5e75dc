"""Static checks over what we synthesize: cdk-nag (AWS Solutions rules) and cfn-lint."""

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from cdk_synth import Synth
from cfnlint.api import ManualArgs, lint
from constructs import IConstruct

from imgcaption_cdk.app import build_app
from imgcaption_cdk.nag import acknowledge

pytestmark = pytest.mark.infra

# W3005 "dependency already enforced by a GetAtt": CDK adds an explicit DependsOn on the role/queue that a resource
# also references, to order policy creation; the redundancy is deliberate and harmless. Nothing else is ignored.
IGNORED_ONLY_AS_REDUNDANT_DEPENDS_ON = "W3005"
LINT_REGIONS = ["us-east-1", "eu-west-1", "eu-central-1"]


def violations(scope: IConstruct) -> list[str]:
    report = AwsSolutionsChecks().validate_scope(scope)
    return [
        f"{v.rule_name} at {[r.construct_path for r in v.violating_resources]}: {v.description}"
        for v in report.violations
    ]


@pytest.mark.parametrize("app", ["default", "custom"])
def test_aws_solutions_checks_report_no_unacknowledged_finding(app: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(app)
    assert violations(synth.app) == []


def test_every_acknowledgment_still_silences_a_real_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """An acknowledgment whose finding went away must be deleted, not left to hide a future one."""
    recorded: list[tuple[str, str]] = []

    class Recorder:
        def __init__(self, scope: IConstruct) -> None:
            self.path = scope.node.path

        def acknowledge(self, *rules: cdk.Acknowledgment) -> None:
            recorded.extend((self.path, rule.id) for rule in rules)

    monkeypatch.setattr(cdk.Validations, "of", staticmethod(Recorder))
    app, _ = build_app(nag=False)  # acknowledgments are recorded instead of applied
    monkeypatch.undo()
    report = AwsSolutionsChecks().validate_scope(app)
    findings = {(r.construct_path, v.rule_name) for v in report.violations for r in v.violating_resources}

    assert recorded, "the stack acknowledges some findings; the recorder saw none"
    for scope_path, rule_id in recorded:
        silenced = [path for path, rule in findings if rule == rule_id and (path + "/").startswith(scope_path + "/")]
        assert silenced, f"{rule_id} on {scope_path} silences nothing"
    acknowledged = {rule_id for _, rule_id in recorded}
    assert {rule for _, rule in findings} == acknowledged, "every finding is acknowledged somewhere"


def test_an_acknowledgment_needs_an_aws_solutions_id_and_a_real_reason() -> None:
    scope = cdk.Stack(cdk.App(), "Scratch")
    with pytest.raises(ValueError, match="real reason"):
        acknowledge(scope, "AwsSolutions-S1", "not needed")
    with pytest.raises(ValueError, match="not an AwsSolutions rule"):
        acknowledge(scope, "S1", "a reason long enough to pass the length check on its own")


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path) -> None:
    app, stack = build_app(outdir=str(tmp_path))
    sqs.Queue(stack, "PlainQueue")  # no dead-letter queue, plain HTTP allowed
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    message = str(failure.value)
    assert "ImgCaption/PlainQueue/Resource" in message
    assert "AwsSolutions-SQS3" in message
    assert "AwsSolutions-SQS4" in message
    assert "ImgCaption/Images" not in message  # the real stack's resources are still clean


@pytest.mark.parametrize("app", ["default", "custom"])
def test_cfn_lint_is_clean(app: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(app)
    template = json.dumps(synth.template.to_json())
    matches = lint(template, config=ManualArgs(regions=LINT_REGIONS))
    redundant = [m for m in matches if m.rule.id == IGNORED_ONLY_AS_REDUNDANT_DEPENDS_ON]
    others = [f"{m.rule.id} {m.message} at {m.path}" for m in matches if m not in redundant]
    assert others == []
    assert all("DependsOn" in m.path for m in redundant)
