"""The image bucket: private, encrypted, TLS-only, logged, retained; its events go to the queue and nowhere else."""

from typing import Any

import pytest
from cdk_synth import Synth

pytestmark = pytest.mark.infra

BLOCK_ALL = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def bucket_policy_statements(synth: Synth, bucket: Any) -> list[dict[str, Any]]:
    bucket_id = synth.logical_id(bucket)
    policies = synth.template.find_resources("AWS::S3::BucketPolicy", {"Properties": {"Bucket": {"Ref": bucket_id}}})
    assert len(policies) == 1
    statements: list[dict[str, Any]] = next(iter(policies.values()))["Properties"]["PolicyDocument"]["Statement"]
    return statements


def notification_rules(synth: Synth) -> list[dict[str, Any]]:
    _, notifications = synth.only("Custom::S3BucketNotifications")
    rules: list[dict[str, Any]] = notifications["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    return rules


def filter_of(rule: dict[str, Any]) -> dict[str, str]:
    return {r["Name"]: r["Value"] for r in rule["Filter"]["Key"]["FilterRules"]}


@pytest.mark.parametrize("which", ["bucket", "access_logs"])
def test_both_buckets_are_private_encrypted_and_owner_enforced(default: Synth, which: str) -> None:
    bucket = getattr(default.stack.images, which)
    props = default.resources[default.logical_id(bucket)]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == BLOCK_ALL
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("which", ["bucket", "access_logs"])
def test_both_buckets_refuse_plain_http_and_old_tls(default: Synth, which: str) -> None:
    bucket = getattr(default.stack.images, which)
    denies = [s for s in bucket_policy_statements(default, bucket) if s["Effect"] == "Deny"]
    conditions = [s["Condition"] for s in denies]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions
    assert all(s["Principal"] == {"AWS": "*"} and s["Action"] == "s3:*" for s in denies)


def test_image_bucket_is_versioned_and_logs_access_to_the_log_bucket(default: Synth) -> None:
    props = default.resources[default.logical_id(default.stack.images.bucket)]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": default.logical_id(default.stack.images.access_logs)},
        "LogFilePrefix": "images/",
    }
    assert props["LifecycleConfiguration"]["Rules"] == [
        {
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            "Status": "Enabled",
        }
    ]


def test_only_s3_log_delivery_from_the_image_bucket_may_write_access_logs(default: Synth) -> None:
    logs_id = default.logical_id(default.stack.images.access_logs)
    allows = [s for s in bucket_policy_statements(default, default.stack.images.access_logs) if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Action": "s3:PutObject",
            "Condition": {
                "ArnLike": {"aws:SourceArn": {"Fn::GetAtt": [default.logical_id(default.stack.images.bucket), "Arn"]}},
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            },
            "Effect": "Allow",
            "Principal": {"Service": "logging.s3.amazonaws.com"},
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [logs_id, "Arn"]}, "/images/*"]]},
        }
    ]
    access_log_props = default.resources[logs_id]["Properties"]
    assert access_log_props["LifecycleConfiguration"]["Rules"] == [{"ExpirationInDays": 90, "Status": "Enabled"}]


def test_buckets_are_retained_by_default_and_destroyed_only_in_a_dev_stack(default: Synth, custom: Synth) -> None:
    for synth, policy in ((default, "Retain"), (custom, "Delete")):
        buckets = synth.template.find_resources("AWS::S3::Bucket")
        assert len(buckets) == 2
        assert {b["DeletionPolicy"] for b in buckets.values()} == {policy}
        assert {b["UpdateReplacePolicy"] for b in buckets.values()} == {policy}


def test_new_images_under_the_prefix_in_both_cases_are_sent_to_the_work_queue(default: Synth) -> None:
    rules = notification_rules(default)
    queue_arn = {"Fn::GetAtt": [default.logical_id(default.stack.ingest.queue), "Arn"]}
    assert all(rule["QueueArn"] == queue_arn for rule in rules)
    assert all(rule["Events"] == ["s3:ObjectCreated:*"] for rule in rules)
    assert all(filter_of(rule)["prefix"] == "uploads/" for rule in rules)
    suffixes = [filter_of(rule)["suffix"] for rule in rules]
    for suffix in (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".webp", ".WEBP", ".heic", ".avif", ".tiff"):
        assert suffix in suffixes
    assert len(suffixes) == len(set(suffixes)), "S3 rejects duplicate notification rules"


def test_deletions_are_only_sent_when_asked_and_an_empty_prefix_watches_the_whole_bucket(custom: Synth) -> None:
    rules = notification_rules(custom)
    by_event = {event: sorted(filter_of(r)["suffix"] for r in rules if r["Events"] == [event]) for event in
                ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")}  # fmt: skip
    assert by_event == {
        "s3:ObjectCreated:*": [".JPG", ".PNG", ".jpg", ".png"],
        "s3:ObjectRemoved:*": [".JPG", ".PNG", ".jpg", ".png"],
    }
    assert all("prefix" not in filter_of(rule) for rule in rules)


def test_the_bucket_notifies_only_the_queue_never_a_function_or_topic_directly(default: Synth) -> None:
    _, notifications = default.only("Custom::S3BucketNotifications")
    assert set(notifications["Properties"]["NotificationConfiguration"]) == {"QueueConfigurations"}
