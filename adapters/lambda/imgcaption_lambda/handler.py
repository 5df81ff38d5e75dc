"""AWS Lambda handler: S3 / SQS / EventBridge / Batch Operations events → captions in DynamoDB.

Thin on purpose: parsing, the pipeline, the store and the partial batch response live in
:class:`imgcaption_aws.processor.EventProcessor`, which the local ``imgcaption worker`` runs too. This module adds
what only Lambda has: structured logs, CloudWatch metrics and X-Ray traces (powertools), and a model loaded once per
execution environment — during the init phase when running in Lambda, so the cold start is paid before the first event.

Traces: with active tracing on (the CDK stack turns it on) each invocation gets a ``## handler`` subsegment and, under
the invocation, one per S3 download, decode, inference batch and store write, annotated with the object's ``bucket``
and ``key`` (:mod:`imgcaption_aws.tracing`); botocore is patched, so each S3 and DynamoDB call is a subsegment too.
The handler's response is not attached (Batch Operations reports carry every caption). Outside Lambda, or with
``POWERTOOLS_TRACE_DISABLED=true``, the Tracer records nothing.

Configuration (``IMGCAPTION_*``, see :class:`imgcaption_aws.settings.AwsSettings`): ``IMGCAPTION_TABLE_NAME``,
``IMGCAPTION_MODEL`` (``/opt/model`` in the image), ``IMGCAPTION_PRECISION``, ``IMGCAPTION_NUM_BEAMS``,
``IMGCAPTION_MAX_LENGTH``, ``IMGCAPTION_MAX_BYTES``, ``IMGCAPTION_MAX_PIXELS``, ``IMGCAPTION_BATCH_SIZE``,
``IMGCAPTION_TIME_RESERVE_MS``, ``IMGCAPTION_MAX_ATTEMPTS`` (crash isolation), ``IMGCAPTION_MIRROR_DELETIONS``
(tombstones for ``ObjectRemoved`` events; the stack sets it with ``notify_on_delete``); ``POWERTOOLS_SERVICE_NAME``
and ``POWERTOOLS_METRICS_NAMESPACE`` (default ``imgcaption``), ``POWERTOOLS_TRACE_DISABLED``.

A crash of this process (out of memory, a segfault, the function timeout) returns nothing, so SQS delivers the whole
batch again once the visibility timeout passes; the processor then captions those messages' images one at a time
and gives up on an image that keeps killing it (:class:`imgcaption.errors.WorkerCrashedError`).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from imgcaption_aws.processor import EventProcessor, build_processor
from imgcaption_aws.settings import AwsSettings
from imgcaption_aws.tracing import TracerSpans

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

    from imgcaption.captioner import Captioner
    from imgcaption.ports import CaptionStore

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "imgcaption")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "imgcaption"))
copy_config_to_registered_loggers(source_logger=logger, include={"imgcaption"})
tracer = Tracer(service=SERVICE, patch_modules=("botocore",))

_processor: EventProcessor | None = None


def init(
    settings: AwsSettings | None = None,
    *,
    s3: S3Client | None = None,
    dynamodb: DynamoDBClient | None = None,
    store: CaptionStore | None = None,
    captioner: Captioner | None = None,
) -> EventProcessor:
    """Build the processor (clients, store, model) once; tests pass their own clients, store or captioner."""
    global _processor
    started = time.perf_counter()
    _processor = build_processor(
        settings or AwsSettings(),
        s3=s3,
        dynamodb=dynamodb,
        store=store,
        captioner=captioner,
        metrics=metrics,
        spans=TracerSpans(tracer),
    )
    signature = _processor.captioner.signature
    logger.info(
        "initialised",
        extra={"init_ms": round((time.perf_counter() - started) * 1000), "model_signature": signature.key},
    )
    return _processor


def processor() -> EventProcessor:
    return _processor or init()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    return processor().handle(event, context)


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):  # inside a Lambda execution environment: load during init
    init()
