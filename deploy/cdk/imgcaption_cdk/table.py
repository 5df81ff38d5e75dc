"""The caption table: one item per object, keyed by its ``s3://bucket/key`` identity."""

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from imgcaption_cdk.settings import StackSettings

PARTITION_KEY = "image_id"  # value: s3://<bucket>/<key>, written by the Lambda adapter's DynamoDB store


class CaptionTable(Construct):
    """On-demand table with point-in-time recovery; retained (and deletion-protected) unless the stack is dev."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Captions",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,  # bursty uploads; nothing to size
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=settings.retain,
            removal_policy=cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY,
        )
