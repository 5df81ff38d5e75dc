"""cdk-nag wiring: the AwsSolutions pack runs at every synth, and each exception is recorded next to its cause.

cdk-nag 3.x is a CDK policy-validation plugin (``Validations.of(app).add_plugins``), not an Aspect; a finding
that is not acknowledged fails ``cdk synth``. Acknowledgments are recorded with CDK's own
``Validations.of(construct).acknowledge`` and apply to the construct and everything below it.
"""

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

MIN_REASON_LENGTH = 40  # a reason a reviewer can check, not "needed"


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding (``AwsSolutions-S1`` or ``AwsSolutions-IAM5[Resource::*]``) on scope."""
    if not rule_id.startswith("AwsSolutions-"):
        raise ValueError(f"not an AwsSolutions rule id: {rule_id!r}")
    if len(reason) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledging {rule_id} needs a real reason, got {reason!r}")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def bucket_arn_in_findings(bucket: s3.IBucket) -> str:
    """How cdk-nag writes a bucket's ARN in a finding: a reference to a created bucket, the name if imported."""
    child = bucket.node.default_child
    if child is None:
        return f"arn:<AWS::Partition>:s3:::{bucket.bucket_name}"
    return f"<{cdk.Stack.of(bucket).get_logical_id(child)}.Arn>"  # type: ignore[arg-type]


def add_nag_checks(app: cdk.App) -> AwsSolutionsChecks:
    """Run the AWS Solutions rules at synth; unacknowledged findings fail the synth."""
    checks = AwsSolutionsChecks(app, verbose=True)
    cdk.Validations.of(app).add_plugins(checks)
    return checks
