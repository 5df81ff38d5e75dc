"""``imgcaption backfill``: caption the objects a bucket already holds, by the SQS queue or by S3 Batch Operations.

SQS (the default) sends one notification-shaped message per object from a pool of threads, resumable with
``--start-after``; Batch Operations hands AWS a manifest and lets S3 invoke the function on every object, the better
path for millions of objects (README: Backfill).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from imgcaption_cli.aws_commands import EXIT_SOME_FAILED, _fail, _settings, endpoint_option, queue_option, region_option
from imgcaption_cli.graceful_stop import GracefulStop
from imgcaption_cli.options import prompt_option

if TYPE_CHECKING:
    from imgcaption_aws.backfill import BackfillReport
    from imgcaption_aws.settings import AwsSettings


@click.command()
@click.argument("s3_uri")
@queue_option
@click.option(
    "--suffix",
    "suffixes",
    multiple=True,
    help="Only keys ending with this (repeatable, case-insensitive). [default: common image suffixes]",
)
@click.option("--all-objects", is_flag=True, help="Queue every object, whatever its suffix.")
@click.option("--dry-run", is_flag=True, help="Count what would be queued; send nothing.")
@click.option("--senders", type=click.IntRange(1, 64), default=8, show_default=True, help="Threads sending to SQS.")
@click.option("--max-rate", type=click.FloatRange(min=1), default=None, help="Messages per second at most.")
@click.option("--start-after", default=None, help="Only keys after this one (resume an interrupted run).")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Ask the table (--table) which objects already have a caption of the model, precision and options the "
    "function captions with (--model, --revision, --precision, --prompt, IMGCAPTION_*); queue only the rest.",
)
@click.option("--table", "table_name", default=None, help="DynamoDB table. [default: $IMGCAPTION_TABLE_NAME]")
@click.option(
    "--model",
    default=None,
    help="The function's model: a hub id or a local copy of its directory (only its config.json and "
    "imgcaption-model.json are read). [default: $IMGCAPTION_MODEL]",
)
@click.option("--revision", default=None, help="Its hub revision. [default: $IMGCAPTION_REVISION, else pinned]")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    default="int8",
    show_default=True,
    help="Precision the captions were made with (the stack's default image is int8).",
)
@prompt_option
@click.option("--batch-operations", is_flag=True, help="Create an S3 Batch Operations job instead of queueing.")
@click.option("--inventory", default=None, help="With --batch-operations: an S3 Inventory manifest.json URI.")
@click.option("--manifest-uri", default=None, help="With --batch-operations: where to write the CSV manifest.")
@click.option("--report-uri", default=None, help="With --batch-operations: s3://bucket/prefix for the report.")
@click.option("--function-arn", default=None, help="With --batch-operations: the function's live alias ARN.")
@click.option("--role-arn", default=None, help="With --batch-operations: the stack's BatchOperationsRoleArn.")
@click.option("--priority", type=click.IntRange(0, 2147483647), default=10, show_default=True)
@click.option("--confirm", is_flag=True, help="Create the job suspended until confirmed in the console or CLI.")
@click.option("--account-id", default=None, help="AWS account id. [default: from STS]")
@endpoint_option
@region_option
def backfill(s3_uri: str, **options: Any) -> None:
    """Caption every object under S3_URI (s3://bucket/prefix) as if it had just been uploaded."""
    from imgcaption.errors import ImgCaptionError

    settings = _settings(
        queue_url=options["queue_url"],
        endpoint_url=options["endpoint_url"],
        region=options["region"],
        table_name=options["table_name"],
        model=options["model"],
        revision=options["revision"],
        precision=options["precision"],
        prompt=options["prompt"],
    )
    try:
        if options["batch_operations"]:
            _batch_operations(s3_uri, settings, options)
        else:
            _queue(s3_uri, settings, options)
    except ImgCaptionError as exc:
        raise _fail(str(exc)) from exc


def _queue(s3_uri: str, settings: AwsSettings, options: dict[str, Any]) -> None:
    from imgcaption_aws.backfill import BackfillOptions, enqueue_backfill
    from imgcaption_aws.clients import s3_client, sqs_client
    from imgcaption_aws.source import IMAGE_SUFFIXES

    if not settings.queue_url:
        raise _fail("--queue-url (or IMGCAPTION_QUEUE_URL) is required")
    stop = GracefulStop()
    with _progress(options["dry_run"]) as on_progress, stop.on_signals():
        report = enqueue_backfill(
            s3_client(settings.endpoint_url, settings.region),
            sqs_client(settings.endpoint_url, settings.region),
            s3_uri,
            settings.queue_url,
            BackfillOptions(
                suffixes=None if options["all_objects"] else (options["suffixes"] or IMAGE_SUFFIXES),
                dry_run=options["dry_run"],
                senders=options["senders"],
                max_rate=options["max_rate"],
                start_after=options["start_after"],
                skip_existing=_existing_lookup(settings) if options["skip_existing"] else None,
                on_progress=on_progress,
            ),
            should_stop=stop.is_set,
        )
    verb = "would queue" if options["dry_run"] else "queued"
    click.echo(
        f"{verb} {report.enqueued} objects; {report.already_captioned} already captioned; "
        f"skipped {len(report.skipped)} by suffix",
        err=True,
    )
    if stop.is_set():
        click.echo(f"interrupted: resume with --start-after {json.dumps(report.resume_after or '')}", err=True)
    summary = {
        "enqueued": report.enqueued,
        "already_captioned": report.already_captioned,
        "skipped": len(report.skipped),
        "failed": report.failed,
        "resume_after": report.resume_after,
    }
    click.echo(json.dumps(summary))
    if report.failed or stop.is_set():
        raise SystemExit(EXIT_SOME_FAILED)


def _existing_lookup(settings: AwsSettings) -> tuple[Any, Any]:
    """The table and the signature the deployed function writes, for ``--skip-existing``.

    The signature is the one its captioner has (``Captioner.from_pretrained(settings=...)``), worked out by
    :func:`~imgcaption.captioner.caption_signature` from the model's config without loading its weights.
    """
    from imgcaption.captioner import caption_signature
    from imgcaption_aws.clients import dynamodb_client
    from imgcaption_aws.store import DynamoDBStore

    if not settings.table_name:
        raise _fail("--skip-existing needs --table (or IMGCAPTION_TABLE_NAME)")
    signature = caption_signature(settings=settings)
    store = DynamoDBStore(dynamodb_client(settings.endpoint_url, settings.region), settings.table_name)
    return store, signature


def _batch_operations(s3_uri: str, settings: AwsSettings, options: dict[str, Any]) -> None:
    from imgcaption_aws import batch_operations as jobs
    from imgcaption_aws.clients import account_id, s3_client, s3control_client
    from imgcaption_aws.source import IMAGE_SUFFIXES, iter_objects
    from imgcaption_aws.uris import parse_s3_uri

    missing = [name for name in ("report_uri", "function_arn", "role_arn") if not options[name]]
    if not options["inventory"] and not options["manifest_uri"]:
        missing.append("manifest_uri (or inventory)")
    if missing:
        raise _fail("--batch-operations needs " + ", ".join("--" + name.replace("_", "-") for name in missing))
    s3 = s3_client(settings.endpoint_url, settings.region)
    if options["inventory"]:
        manifest = jobs.inventory_manifest(s3, parse_s3_uri(options["inventory"]))
    else:
        suffixes = None if options["all_objects"] else (options["suffixes"] or IMAGE_SUFFIXES)
        body, count = jobs.manifest_csv(iter_objects(s3, s3_uri, suffixes, start_after=options["start_after"]))
        if options["dry_run"]:
            click.echo(json.dumps({"objects": count}))
            return
        manifest = jobs.upload_manifest(s3, body, count, parse_s3_uri(options["manifest_uri"], allow_empty_key=True))
    spec = jobs.JobSpec(
        account_id=options["account_id"] or account_id(settings.endpoint_url, settings.region),
        function_arn=options["function_arn"],
        role_arn=options["role_arn"],
        report=parse_s3_uri(options["report_uri"], allow_empty_key=True),
        priority=options["priority"],
        confirmation_required=options["confirm"],
    )
    job_id = jobs.create_job(s3control_client(settings.endpoint_url, settings.region), manifest, spec)
    click.echo(
        f"created Batch Operations job {job_id} over {manifest.objects if manifest.objects is not None else 'the'} "
        f"objects of {manifest.object_arn}; follow it with:\n"
        f"  aws s3control describe-job --account-id {spec.account_id} --job-id {job_id}"
        + (f"\nconfirm it with:\n  aws s3control update-job-status --account-id {spec.account_id} --job-id {job_id}"
           " --requested-job-status Ready" if spec.confirmation_required else ""),
        err=True,
    )  # fmt: skip
    click.echo(json.dumps({"job_id": job_id, "objects": manifest.objects, "manifest": manifest.object_arn}))


@contextlib.contextmanager
def _progress(dry_run: bool) -> Iterator[Any]:
    """A progress line on a terminal (objects queued so far; the total is unknown until the listing ends)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("listing")
        verb = "would queue" if dry_run else "queued"

        def show(report: BackfillReport) -> None:
            bar.update(task, description=f"{verb} {report.enqueued}, already captioned {report.already_captioned}")

        yield show
