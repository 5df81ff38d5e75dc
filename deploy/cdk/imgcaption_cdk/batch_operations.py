"""The role S3 Batch Operations assumes for ``imgcaption backfill --batch-operations``.

It may read job manifests and write completion reports under one prefix of the image bucket, and invoke the
function's ``live`` alias: nothing else. The function's own role is unchanged, so the function still never writes
to the bucket it reads.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from imgcaption_cdk.nag import acknowledge, bucket_arn_in_findings

OPERATIONS_PREFIX = "imgcaption-batch-operations/"
MANIFESTS_PREFIX = OPERATIONS_PREFIX + "manifests/"
REPORTS_PREFIX = OPERATIONS_PREFIX + "reports/"


class BatchOperationsRole(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, bucket: s3.IBucket, alias: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("batchoperations.s3.amazonaws.com"),
            description="S3 Batch Operations backfill: read manifests, write reports, invoke the live alias",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(MANIFESTS_PREFIX + "*")],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects(REPORTS_PREFIX + "*")])
        )
        self.role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[alias.function_arn]))
        for prefix, what in ((MANIFESTS_PREFIX, "reads the manifests"), (REPORTS_PREFIX, "writes the reports")):
            acknowledge(
                self.role,
                f"AwsSolutions-IAM5[Resource::{bucket_arn_in_findings(bucket)}/{prefix}*]",
                f"S3 Batch Operations {what} of backfill jobs, whose names are chosen per job: objects under "
                f"{prefix} of the image bucket only, never the images themselves.",
            )
