"""Settings of the AWS entry points: the core :class:`~imgcaption.settings.Settings` plus where AWS is."""

from __future__ import annotations

from pydantic import Field

from imgcaption.settings import Settings


class AwsSettings(Settings):
    """``IMGCAPTION_*`` variables of the core settings, plus table, queue, endpoint and the Lambda time reserve."""

    table_name: str | None = Field(default=None, description="DynamoDB table the handler and worker write to.")
    queue_url: str | None = Field(default=None, description="SQS queue the worker polls and backfill fills.")
    endpoint_url: str | None = Field(
        default=None, description="Custom AWS endpoint (moto_server, LocalStack); AWS_ENDPOINT_URL also works."
    )
    region: str | None = Field(default=None, description="AWS region; defaults to the SDK's own resolution.")
    time_reserve_ms: int = Field(
        default=10_000,
        ge=0,
        description="Stop starting batches when less than this (plus the slowest batch so far) remains in Lambda.",
    )
    max_attempts: int = Field(
        default=2,
        ge=1,
        description="Times an image of a redelivered message is captioned alone before a worker death is taken as "
        "its doing and recorded as WorkerCrashedError (it also died once in its first, batched delivery).",
    )
    mirror_deletions: bool = Field(
        default=False,
        description="Turn ObjectRemoved events into tombstones (the stack sets it with notify_on_delete); "
        "otherwise they are acknowledged and ignored.",
    )
    captioner_factory: str | None = Field(
        default=None,
        description="'module:function' called with these settings to build the captioner instead of loading "
        "IMGCAPTION_MODEL: another backend, or a test double.",
    )
