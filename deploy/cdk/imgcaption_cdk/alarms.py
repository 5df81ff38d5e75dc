"""Alarms that page a human: poison messages, a growing backlog, function errors and throttles."""

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcaption_cdk.settings import StackSettings


class Alarms(Construct):
    """Four alarms on one encrypted SNS topic, with an optional e-mail subscription from context."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
        function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        # A customer key, because CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key.
        self.key = kms.Key(
            self,
            "TopicKey",
            description="Encrypts the imgcaption alarm topic",
            enable_key_rotation=True,
            removal_policy=cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY,
        )
        stack = cdk.Stack.of(self)
        alarms_of_this_stack_account = stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name="*", arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        # conditions keep CloudWatch from using the key on behalf of another account (confused deputy)
        cloudwatch_alarms_of_this_account = iam.ServicePrincipal("cloudwatch.amazonaws.com").with_conditions(
            {
                "StringEquals": {"aws:SourceAccount": stack.account},
                "ArnLike": {"aws:SourceArn": alarms_of_this_stack_account},
            }
        )
        self.key.grant(cloudwatch_alarms_of_this_account, "kms:Decrypt", "kms:GenerateDataKey")
        self.topic = sns.Topic(self, "Topic", display_name="imgcaption alarms", master_key=self.key, enforce_ssl=True)
        if settings.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))

        one_minute = cdk.Duration.minutes(1)
        five_minutes = cdk.Duration.minutes(5)
        self.dead_letters = self._alarm(
            "DeadLetters",
            dead_letter_queue.metric_approximate_number_of_messages_visible(period=one_minute, statistic="Maximum"),
            threshold=0,
            description="Messages reached the dead-letter queue: an image failed every retry. Inspect, then redrive.",
        )
        self.backlog_age = self._alarm(
            "BacklogAge",
            queue.metric_approximate_age_of_oldest_message(period=one_minute, statistic="Maximum"),
            threshold=settings.oldest_message_age_alarm_s,
            evaluation_periods=5,
            description="The oldest queued image waits too long: the function does not keep up (or is throttled).",
        )
        self.errors = self._alarm(
            "FunctionErrors",
            function.metric_errors(period=five_minutes, statistic="Sum"),
            threshold=0,
            description="The captioning function failed invocations (crash, timeout or out of memory).",
        )
        self.throttles = self._alarm(
            "FunctionThrottles",
            function.metric_throttles(period=five_minutes, statistic="Sum"),
            threshold=0,
            description="The captioning function was throttled: raise reserved concurrency or lower max_concurrency.",
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.Metric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = metric.create_alarm(
            self,
            construct_id,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        action = cw_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm
