"""The image bucket, its access-log bucket and the notifications that feed the queue.

With ``bucket_name`` set the stack creates neither bucket: it imports the named one and only adds what captioning
needs, the notifications (a custom resource that merges them into the bucket's existing configuration) and the
function's read grant (on the function's role; the bucket policy is not touched).
"""

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcaption_cdk.nag import acknowledge, bucket_arn_in_findings
from imgcaption_cdk.settings import StackSettings


class ImageBucket(Construct):
    """Private, encrypted, TLS-only bucket whose new images (under the watched prefix) are announced on a queue."""

    bucket: s3.IBucket
    access_logs: s3.Bucket | None
    """None for an existing bucket: its logging is its owner's."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        self.settings = settings
        if settings.bucket_name:
            self.bucket = s3.Bucket.from_bucket_name(self, "Images", settings.bucket_name)
            self.access_logs = None
            return
        removal = cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 server access logging supports
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(settings.access_log_retention_days))],
            removal_policy=removal,
        )
        self.bucket = s3.Bucket(
            self,
            "Images",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,  # the caption store orders events by version; overwrites stay recoverable
            lifecycle_rules=[
                s3.LifecycleRule(
                    noncurrent_version_expiration=cdk.Duration.days(settings.noncurrent_version_retention_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                )
            ],
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="images/",
            removal_policy=removal,
        )

    def notify(self, queue: sqs.IQueue) -> None:
        """Send object events for images under the watched prefix to the queue (one rule per suffix variant)."""
        destination = s3n.SqsDestination(queue)
        events = [s3.EventType.OBJECT_CREATED]
        if self.settings.notify_on_delete:
            events.append(s3.EventType.OBJECT_REMOVED)
        prefix = self.settings.watch_prefix or None
        for event in events:
            for suffix in self.settings.image_suffix_variants:
                self.bucket.add_event_notification(
                    event, destination, s3.NotificationKeyFilter(prefix=prefix, suffix=suffix)
                )

    def grant_read_images(self, role: iam.Role) -> None:
        """Read objects under the watched prefix only, plus ListBucket.

        ListBucket (on the bucket ARN, no wildcard) is what makes S3 answer ``NoSuchKey`` (404) instead of
        ``AccessDenied`` (403) for an object deleted before it was processed; the Lambda adapter records that as a
        final outcome instead of retrying it into the dead-letter queue. It reveals key names, never content.
        """
        pattern = f"{self.settings.watch_prefix}*"
        s3.BucketGrants.from_bucket(self.bucket).actions_on_object_keys(
            role, pattern, "s3:GetObject", "s3:GetObjectVersion"
        )
        iam.Grant.add_to_principal(grantee=role, actions=["s3:ListBucket"], resource_arns=[self.bucket.bucket_arn])
        acknowledge(
            role,
            f"AwsSolutions-IAM5[Resource::{bucket_arn_in_findings(self.bucket)}/{pattern}]",
            "The function reads the images announced on its queue: every object under the watched prefix, "
            "by definition not known in advance. Only GetObject and GetObjectVersion, only under that prefix.",
        )
