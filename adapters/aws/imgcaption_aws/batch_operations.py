"""Backfill with S3 Batch Operations: AWS's engine for "invoke a Lambda on every object of a manifest".

For millions of existing objects this beats any client-side loop: S3 drives the invocations, retries failed tasks,
and writes a completion report. The handler already answers Batch Operations events (schema 1.0 and 2.0) with a
result code per task. This module writes the manifest (a CSV of ``bucket,key`` from our own listing, with keys
URL-encoded as the CSV format requires) or takes an S3 Inventory report's ``manifest.json``, and creates the job.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from imgcaption.errors import SourceError
from imgcaption.ports import Skipped
from imgcaption_aws.clients import is_transient
from imgcaption_aws.events import S3ObjectRef
from imgcaption_aws.uris import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CSV_FORMAT = "S3BatchOperations_CSV_20180820"
INVENTORY_FORMAT = "S3InventoryReport_CSV_20161130"


@dataclass(frozen=True)
class Manifest:
    """Where a job's list of objects is: an object ARN, its ETag (S3 checks it) and its format."""

    object_arn: str
    etag: str
    format: str
    objects: int | None = None
    """How many objects the manifest names (known when we wrote it)."""


@dataclass(frozen=True)
class JobSpec:
    account_id: str
    function_arn: str
    """The function's live alias ARN (the stack's output), so a deploy in between never splits a job."""
    role_arn: str
    """The role S3 assumes to read the manifest, invoke the function and write the report (a stack output)."""
    report: S3Location
    priority: int = 10
    confirmation_required: bool = False
    description: str = "imgcaption backfill"


def manifest_csv(refs: Iterable[S3ObjectRef | Skipped]) -> tuple[bytes, int]:
    """The CSV manifest of the listed objects (``bucket,key``, key URL-encoded) and how many it names."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    count = 0
    for ref in refs:
        if isinstance(ref, Skipped):
            continue
        location = ref.location
        writer.writerow([location.bucket, quote(location.key, safe="/")])
        count += 1
    return buffer.getvalue().encode(), count


def upload_manifest(s3: S3Client, body: bytes, count: int, target: S3Location) -> Manifest:
    """Put the CSV at ``target`` (a key, or a prefix ending in ``/`` that gets a unique name) and return it."""
    unique = target.key.endswith("/") or not target.key
    manifest = (
        S3Location(target.bucket, target.key + f"imgcaption-manifest-{uuid.uuid4().hex}.csv") if unique else target
    )
    try:
        response = s3.put_object(Bucket=manifest.bucket, Key=manifest.key, Body=body, ContentType="text/csv")
    except Exception as exc:
        raise SourceError(
            f"uploading the manifest failed: {exc}", source=manifest.uri, retryable=is_transient(exc)
        ) from exc
    return Manifest(manifest.arn, response["ETag"].strip('"'), CSV_FORMAT, count)


def inventory_manifest(s3: S3Client, manifest_json: S3Location) -> Manifest:
    """An S3 Inventory report's ``manifest.json`` as a job manifest (S3 reads the report's CSV files itself)."""
    try:
        head = s3.head_object(Bucket=manifest_json.bucket, Key=manifest_json.key)
    except Exception as exc:
        raise SourceError(
            f"reading the inventory manifest failed: {exc}", source=manifest_json.uri, retryable=is_transient(exc)
        ) from exc
    return Manifest(manifest_json.arn, head["ETag"].strip('"'), INVENTORY_FORMAT)


def create_job_request(manifest: Manifest, spec: JobSpec, *, token: str | None = None) -> dict[str, Any]:
    """The ``s3control.create_job`` arguments: LambdaInvoke on the alias, a report of every task, the manifest."""
    manifest_spec: dict[str, Any] = {"Format": manifest.format}
    if manifest.format == CSV_FORMAT:
        manifest_spec["Fields"] = ["Bucket", "Key"]
    return {
        "AccountId": spec.account_id,
        "ConfirmationRequired": spec.confirmation_required,
        "Operation": {"LambdaInvoke": {"FunctionArn": spec.function_arn, "InvocationSchemaVersion": "2.0"}},
        "Report": {
            "Bucket": f"arn:aws:s3:::{spec.report.bucket}",
            "Prefix": spec.report.key.rstrip("/") or "imgcaption-reports",
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",
        },
        "ClientRequestToken": token or str(uuid.uuid4()),
        "Manifest": {
            "Spec": manifest_spec,
            "Location": {"ObjectArn": manifest.object_arn, "ETag": manifest.etag},
        },
        "Description": spec.description,
        "Priority": spec.priority,
        "RoleArn": spec.role_arn,
    }


def create_job(s3control: Any, manifest: Manifest, spec: JobSpec) -> str:
    """Create the job and return its id."""
    try:
        response = s3control.create_job(**create_job_request(manifest, spec))
    except Exception as exc:
        raise SourceError(
            f"creating the Batch Operations job failed: {exc}", source=manifest.object_arn, retryable=is_transient(exc)
        ) from exc
    return str(response["JobId"])
