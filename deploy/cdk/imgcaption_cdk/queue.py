"""The work queue between the bucket and the function, with a dead-letter queue for poison messages."""

import aws_cdk as cdk
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcaption_cdk import defaults
from imgcaption_cdk.settings import StackSettings


class IngestQueue(Construct):
    """Encrypted, TLS-only queue; a message that fails ``max_receive_count`` times moves to the DLQ for 14 days."""

    def __init__(self, scope: Construct, construct_id: str, *, settings: StackSettings) -> None:
        super().__init__(scope, construct_id)
        removal = cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY
        # SQS-managed SSE: S3 event notifications cannot publish to a queue encrypted with the AWS-managed KMS key,
        # and a customer key would cost money for messages that only carry bucket and key names.
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(defaults.DLQ_RETENTION_DAYS),
            removal_policy=removal,
        )
        self.queue = sqs.Queue(
            self,
            "Work",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # longer than any invocation, so a message in flight is never handed to a second container
            visibility_timeout=cdk.Duration.seconds(settings.visibility_timeout_s),
            retention_period=cdk.Duration.days(settings.queue_retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=settings.max_receive_count
            ),
            removal_policy=removal,
        )
