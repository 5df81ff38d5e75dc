"""``imgcaption worker`` and the options every AWS command shares (the ``aws`` extra).

``worker`` long-polls the queue and runs the Lambda handler's own processor, so the whole S3 → SQS → captioner →
DynamoDB path runs locally, e.g. against ``moto_server`` with ``--endpoint-url http://127.0.0.1:5000``.
(``backfill`` is in backfill_command.py.)
"""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from imgcaption_cli.options import EXIT_INTERRUPTED, UsageFailure
from imgcaption_cli.options import EXIT_SOME_FAILED as EXIT_SOME_FAILED  # backfill_command takes it from here


def _settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from imgcaption_aws.settings import AwsSettings

    try:
        return AwsSettings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc


def _fail(message: str) -> click.ClickException:
    """A problem with the arguments or the environment: exit 2, one line on stderr."""
    return UsageFailure(message)


endpoint_option = click.option(
    "--endpoint-url",
    default=None,
    help="AWS endpoint, e.g. http://127.0.0.1:5000 for moto_server. [default: $IMGCAPTION_ENDPOINT_URL]",
)
region_option = click.option("--region", default=None, help="AWS region. [default: the SDK's own resolution]")
queue_option = click.option("--queue-url", default=None, help="SQS queue URL. [default: $IMGCAPTION_QUEUE_URL]")


@click.command()
@queue_option
@click.option("--table", "table_name", default=None, help="DynamoDB table. [default: $IMGCAPTION_TABLE_NAME]")
@click.option("--model", default=None, help="Model directory or hub id. [default: $IMGCAPTION_MODEL]")
@endpoint_option
@region_option
@click.option("--wait-time", type=click.IntRange(0, 20), default=20, show_default=True, help="Long-poll seconds.")
@click.option(
    "--until-empty",
    "max_empty_polls",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many empty receives in a row (drain the queue and exit). [default: run forever]",
)
@click.option(
    "--retry-delay",
    type=click.IntRange(0, 43200),
    default=10,
    show_default=True,
    help="Seconds before a message that failed transiently is delivered again.",
)
def worker(
    queue_url: str | None,
    table_name: str | None,
    model: str | None,
    endpoint_url: str | None,
    region: str | None,
    wait_time: int,
    max_empty_polls: int | None,
    retry_delay: int,
) -> None:
    """Caption S3 objects announced on an SQS queue, with the same code as the Lambda handler."""
    from imgcaption.errors import ImgCaptionError
    from imgcaption_aws.clients import sqs_client
    from imgcaption_aws.processor import build_processor
    from imgcaption_aws.worker import SqsWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(
        queue_url=queue_url, table_name=table_name, model=model, endpoint_url=endpoint_url, region=region
    )
    if not settings.queue_url:
        raise _fail("--queue-url (or IMGCAPTION_QUEUE_URL) is required")
    try:
        report = SqsWorker(
            sqs_client(settings.endpoint_url, settings.region),
            settings.queue_url,
            build_processor(settings),
            wait_time_s=wait_time,
            retry_delay_s=retry_delay,
        ).run(max_empty_polls=max_empty_polls)
    except ImgCaptionError as exc:
        raise _fail(str(exc)) from exc
    except KeyboardInterrupt:
        raise SystemExit(EXIT_INTERRUPTED) from None
    click.echo(
        json.dumps(
            {
                "batches": report.batches,
                "messages": report.messages,
                "deleted": report.deleted,
                "retried": report.retried,
            }
        )
    )
    if report.retried:
        raise SystemExit(EXIT_SOME_FAILED)
