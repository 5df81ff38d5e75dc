"""The stack: S3 bucket -> SQS queue (+ DLQ) -> Lambda container -> DynamoDB table, with alarms."""

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from imgcaption_cdk.alarms import Alarms
from imgcaption_cdk.batch_operations import MANIFESTS_PREFIX, REPORTS_PREFIX, BatchOperationsRole
from imgcaption_cdk.function import CaptionFunction, image_code
from imgcaption_cdk.nag import acknowledge
from imgcaption_cdk.queue import IngestQueue
from imgcaption_cdk.settings import StackSettings
from imgcaption_cdk.storage import ImageBucket
from imgcaption_cdk.table import CaptionTable

# The core setting (AwsSettings.mirror_deletions) that turns ObjectRemoved events into tombstones in the table.
MIRROR_DELETIONS_ENV = "IMGCAPTION_MIRROR_DELETIONS"

# CDK's singleton behind Bucket.add_event_notification (a Lambda-backed custom resource).
BUCKET_NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class ImgCaptionStack(cdk.Stack):
    """Everything the deployed captioner needs; one instance per environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        self.images = ImageBucket(self, "Images", settings=settings)
        self.ingest = IngestQueue(self, "Ingest", settings=settings)
        self.captions = CaptionTable(self, "Captions", settings=settings)
        self.captioner = CaptionFunction(
            self,
            "Captioner",
            settings=settings,
            table_name=self.captions.table.table_name,
            code=image_code(settings),
        )
        self.alarms = Alarms(
            self,
            "Alarms",
            settings=settings,
            queue=self.ingest.queue,
            dead_letter_queue=self.ingest.dead_letter_queue,
            function=self.captioner.function,
        )

        # wiring and least privilege: each grant names the one resource it is about
        self.images.notify(self.ingest.queue)
        if settings.notify_on_delete:  # removals reach the function: it mirrors them (the role may DeleteItem)
            self.captioner.function.add_environment(MIRROR_DELETIONS_ENV, "true")
        self.captioner.consume(self.ingest.queue, settings)
        self.images.grant_read_images(self.captioner.role)
        self.captions.table.grant_read_write_data(self.captioner.role)
        self._acknowledge_cdk_notification_handler()
        self.batch_operations = BatchOperationsRole(
            self, "BatchOperations", bucket=self.images.bucket, alias=self.captioner.alias
        )

        cdk.CfnOutput(self, "BucketName", value=self.images.bucket.bucket_name, description="Upload images here")
        cdk.CfnOutput(self, "WatchPrefix", value=settings.watch_prefix or "(whole bucket)")
        cdk.CfnOutput(self, "TableName", value=self.captions.table.table_name, description="Captions are read here")
        cdk.CfnOutput(self, "QueueName", value=self.ingest.queue.queue_name)
        cdk.CfnOutput(self, "QueueUrl", value=self.ingest.queue.queue_url, description="For backfill")
        cdk.CfnOutput(self, "DeadLetterQueueName", value=self.ingest.dead_letter_queue.queue_name)
        cdk.CfnOutput(self, "FunctionName", value=self.captioner.function.function_name)
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn)
        cdk.CfnOutput(self, "FunctionAliasArn", value=self.captioner.alias.function_arn, description="For backfill")
        cdk.CfnOutput(
            self,
            "BatchOperationsRoleArn",
            value=self.batch_operations.role.role_arn,
            description=f"backfill --batch-operations: manifests in {MANIFESTS_PREFIX}, reports in {REPORTS_PREFIX}",
        )

    def _acknowledge_cdk_notification_handler(self) -> None:
        """CDK's own custom resource that writes the bucket notification configuration (not objects)."""
        handler = self.node.find_child(BUCKET_NOTIFICATIONS_HANDLER_ID)
        acknowledge(
            handler,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK-owned custom resource that only runs during deployment to set the bucket notification "
            "configuration; the managed policy only lets it write CloudWatch Logs. Its one S3 permission is "
            "s3:PutBucketNotification on the image bucket.",
        )
