"""Backfill at scale: parallel senders queue every object once, a run resumes where it stopped, a re-run queues only
what is left, and S3 Batch Operations jobs are requested exactly as the service model says (botocore's Stubber)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from botocore.stub import ANY, Stubber

from aws_support import backfill_account
from imgcaption.generation import GenerationOptions
from imgcaption.ports import CaptionSignature, Outcome, Skipped
from imgcaption.results import Caption
from imgcaption_aws import batch_operations as jobs
from imgcaption_aws.backfill import BackfillOptions, _RateLimiter, enqueue_backfill
from imgcaption_aws.events import refs_from_body
from imgcaption_aws.source import iter_objects
from imgcaption_aws.uris import S3Location

BUCKET = "archive"
KEYS = [f"{year}/{index:04d} photo+café.jpg" for year in (2022, 2023) for index in range(60)]  # 12 SQS batches
SIGNATURE = CaptionSignature("model", "rev", "int8", GenerationOptions())


@pytest.fixture
def aws(fake_aws_credentials: None) -> Iterator[dict[str, Any]]:
    with backfill_account(BUCKET) as account:
        for key in KEYS:
            account["s3"].put_object(Bucket=BUCKET, Key=key, Body=b"jpeg")
        account["s3"].put_object(Bucket=BUCKET, Key="2023/readme.md", Body=b"not an image")
        yield account


def queued_keys(aws: dict[str, Any]) -> list[str]:
    keys = []
    while True:
        response = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)
        messages = response.get("Messages", [])
        if not messages:
            return keys
        for message in messages:
            (ref,) = refs_from_body(message["Body"])  # as the processor reads it
            keys.append(ref.location.key)
            aws["sqs"].delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])


@pytest.mark.parametrize("senders", [1, 4, 16])
def test_every_object_is_queued_exactly_once_whatever_the_number_of_senders(aws: dict[str, Any], senders: int) -> None:
    report = enqueue_backfill(
        aws["s3"], aws["sqs"], f"s3://{BUCKET}/", aws["queue_url"], BackfillOptions(senders=senders)
    )
    assert (report.enqueued, len(report.skipped), report.failed) == (len(KEYS), 1, [])
    assert sorted(queued_keys(aws)) == sorted(KEYS)
    assert report.resume_after == max(KEYS)


def test_an_interrupted_run_resumes_after_the_last_key_below_which_everything_was_queued(aws: dict[str, Any]) -> None:
    batches_seen = 0

    def stop_after_five_batches() -> bool:
        nonlocal batches_seen
        batches_seen += 1
        return batches_seen > 5

    uri = f"s3://{BUCKET}/"
    first = enqueue_backfill(
        aws["s3"], aws["sqs"], uri, aws["queue_url"], BackfillOptions(senders=4), should_stop=stop_after_five_batches
    )
    sent_first = queued_keys(aws)
    assert first.enqueued == 50 and first.resume_after == sorted(KEYS)[49]
    assert sorted(sent_first) == sorted(KEYS)[:50]
    second = enqueue_backfill(
        aws["s3"], aws["sqs"], uri, aws["queue_url"], BackfillOptions(senders=4, start_after=first.resume_after)
    )
    assert sorted(sent_first + queued_keys(aws)) == sorted(KEYS)
    assert second.enqueued == len(KEYS) - 50


def test_skip_existing_queues_only_objects_without_a_caption_of_the_signature(aws: dict[str, Any]) -> None:
    listed = [item for item in iter_objects(aws["s3"], f"s3://{BUCKET}/2022/") if not isinstance(item, Skipped)]
    done, other_model = listed[:25], listed[25:30]
    aws["store"].record([Outcome(ref, caption(ref.uri, SIGNATURE)) for ref in done])
    other = CaptionSignature("another-model", "rev", "int8", GenerationOptions())
    aws["store"].record([Outcome(ref, caption(ref.uri, other)) for ref in other_model])
    options = BackfillOptions(skip_existing=(aws["store"], SIGNATURE))
    report = enqueue_backfill(aws["s3"], aws["sqs"], f"s3://{BUCKET}/2022/", aws["queue_url"], options)
    assert (report.enqueued, report.already_captioned) == (35, 25)
    assert sorted(queued_keys(aws)) == sorted(ref.location.key for ref in listed[25:])


def test_the_rate_limit_spaces_sends_out_without_sleeping_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr("imgcaption_aws.backfill.time.monotonic", lambda: now[0])
    monkeypatch.setattr("imgcaption_aws.backfill.time.sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    limiter = _RateLimiter(20.0)  # messages per second
    for _ in range(10):
        limiter.wait(10)
    assert now[0] == pytest.approx((100 - 20) / 20)  # the first second's burst is free, then 20 a second


def caption(uri: str, signature: CaptionSignature) -> Caption:
    return Caption(
        text="a photo",
        source=uri,
        model=signature.model,
        revision=signature.revision,
        precision=signature.precision,
        generation=signature.generation,
        width=1,
        height=1,
        sha256="0" * 64,
        elapsed_ms=1.0,
    )


# ------------------------------------------------------------------ S3 Batch Operations


def test_the_csv_manifest_names_each_listed_image_once_with_its_key_url_encoded(aws: dict[str, Any]) -> None:
    body, count = jobs.manifest_csv(iter_objects(aws["s3"], f"s3://{BUCKET}/"))
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert count == len(rows) == len(KEYS)
    assert {bucket for bucket, _ in rows} == {BUCKET}
    assert sorted(unquote(key) for _, key in rows) == sorted(KEYS)
    assert all(" " not in key and "+" not in key for _, key in rows)
    aws["s3"].create_bucket(Bucket="manifests")
    manifest = jobs.upload_manifest(aws["s3"], body, count, S3Location("manifests", "jobs/"))
    stored = aws["s3"].get_object(Bucket="manifests", Key=manifest.object_arn.split(":::manifests/")[1])
    assert stored["Body"].read() == body and stored["ETag"].strip('"') == manifest.etag
    assert manifest.object_arn.startswith("arn:aws:s3:::manifests/jobs/imgcaption-manifest-")


def test_the_job_is_a_lambda_invoke_on_the_alias_with_a_full_report_as_the_service_model_requires() -> None:
    client = boto3.client("s3control", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    manifest = jobs.Manifest("arn:aws:s3:::manifests/jobs/m.csv", "abc123", jobs.CSV_FORMAT, 120)
    alias = "arn:aws:lambda:us-east-1:123456789012:function:imgcaption:live"
    spec = jobs.JobSpec(
        account_id="123456789012",
        function_arn=alias,
        role_arn="arn:aws:iam::123456789012:role/imgcaption-batch",
        report=S3Location("reports", "imgcaption/"),
        priority=42,
    )
    expected = {
        "AccountId": "123456789012",
        "ConfirmationRequired": False,
        "Operation": {"LambdaInvoke": {"FunctionArn": alias, "InvocationSchemaVersion": "2.0"}},
        "Report": {
            "Bucket": "arn:aws:s3:::reports",
            "Prefix": "imgcaption",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        "ClientRequestToken": ANY,
        "Manifest": {
            "Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
            "Location": {"ObjectArn": manifest.object_arn, "ETag": "abc123"},
        },
        "Description": "imgcaption backfill",
        "Priority": 42,
        "RoleArn": spec.role_arn,
    }
    with Stubber(client) as stub:  # validates the request against the real s3control model
        stub.add_response("create_job", {"JobId": "job-1"}, expected)
        assert jobs.create_job(client, manifest, spec) == "job-1"
        stub.assert_no_pending_responses()


def test_an_inventory_manifest_is_passed_on_as_an_inventory_report(aws: dict[str, Any]) -> None:
    aws["s3"].create_bucket(Bucket="inventory")
    aws["s3"].put_object(Bucket="inventory", Key="archive/all/2024-01-01T00-00Z/manifest.json", Body=b"{}")
    location = S3Location("inventory", "archive/all/2024-01-01T00-00Z/manifest.json")
    manifest = jobs.inventory_manifest(aws["s3"], location)
    request = jobs.create_job_request(manifest, jobs.JobSpec("1", "fn", "role", S3Location("r", "p")))
    assert request["Manifest"]["Spec"] == {"Format": "S3InventoryReport_CSV_20161130"}
    assert request["Manifest"]["Location"]["ObjectArn"] == f"arn:aws:s3:::inventory/{location.key}"


def test_the_cli_writes_the_manifest_creates_the_job_and_says_how_to_follow_it(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from imgcaption_cli.backfill_command import backfill

    aws["s3"].create_bucket(Bucket="manifests")
    client = boto3.client("s3control", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response("create_job", {"JobId": "job-7"}, {**_any_job_request(), "Priority": 10})
    monkeypatch.setattr("imgcaption_aws.clients.s3control_client", lambda *args: client)
    args = [
        f"s3://{BUCKET}/2023/",
        "--batch-operations",
        "--manifest-uri", "s3://manifests/jobs/",
        "--report-uri", "s3://manifests/reports/",
        "--function-arn", "arn:aws:lambda:us-east-1:123456789012:function:imgcaption:live",
        "--role-arn", "arn:aws:iam::123456789012:role/imgcaption-batch",
        "--account-id", "123456789012",
    ]  # fmt: skip
    with stub:
        result = CliRunner().invoke(backfill, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["job_id"] == "job-7"
    assert json.loads(result.stdout.strip().splitlines()[-1])["objects"] == 60
    assert "aws s3control describe-job --account-id 123456789012 --job-id job-7" in result.stderr
    stub.assert_no_pending_responses()


def _any_job_request() -> dict[str, Any]:
    names = ["AccountId", "ConfirmationRequired", "Operation", "Report", "ClientRequestToken", "Manifest"]
    return dict.fromkeys([*names, "Description", "RoleArn"], ANY)
