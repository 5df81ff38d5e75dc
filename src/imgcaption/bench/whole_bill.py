"""What every captioned image costs on AWS besides Lambda compute, so "$ per million" is what the bill would say.

Each image that arrives by S3 → SQS → Lambda → DynamoDB also pays for: its S3 GET, its share of the SQS send /
receive / delete calls (batched 10 per call at most), its share of the Lambda invocations (one per SQS batch), its
DynamoDB conditional write, and the CloudWatch log lines of its invocation. Prices are list prices for us-east-1, with
the date they were read; they change, so the date is part of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_READ_ON = "2025-06"
"""When the prices below were read from the AWS pricing pages (us-east-1, on-demand, first tier)."""


@dataclass(frozen=True, slots=True)
class Price:
    item: str
    dollars: float
    per: str
    source: str


PRICES: dict[str, Price] = {
    "lambda_request": Price("Lambda request", 0.20, "million requests", "https://aws.amazon.com/lambda/pricing/"),
    "s3_get": Price("S3 GET", 0.40, "million requests", "https://aws.amazon.com/s3/pricing/"),
    "sqs_request": Price("SQS request (standard)", 0.40, "million requests", "https://aws.amazon.com/sqs/pricing/"),
    "dynamodb_write": Price(
        "DynamoDB write request unit (on-demand)", 0.625, "million units", "https://aws.amazon.com/dynamodb/pricing/"
    ),
    "logs_ingestion": Price("CloudWatch Logs ingestion", 0.50, "GB", "https://aws.amazon.com/cloudwatch/pricing/"),
}

LOG_BYTES_PER_INVOCATION = 1500
"""The handler's structured log lines per invocation (start, summary, metrics, report), measured from its output."""


@dataclass(frozen=True, slots=True)
class BillLine:
    item: str
    dollars_per_million_images: float


def whole_bill(compute_per_million: float, *, images_per_invocation: int) -> list[BillLine]:
    """Every line of the bill per million images, compute first; SQS batches of ``images_per_invocation``."""
    per_batch = 1 / max(1, images_per_invocation)
    sqs_calls_per_image = 3 * per_batch  # SendMessageBatch, ReceiveMessage, DeleteMessageBatch, each per batch
    lines = [
        BillLine("Lambda compute", compute_per_million),
        BillLine("Lambda requests", PRICES["lambda_request"].dollars * per_batch),
        BillLine("S3 GET", PRICES["s3_get"].dollars),
        BillLine("SQS send, receive, delete", PRICES["sqs_request"].dollars * sqs_calls_per_image),
        BillLine("DynamoDB conditional write", PRICES["dynamodb_write"].dollars),
        BillLine(
            "CloudWatch Logs",
            PRICES["logs_ingestion"].dollars * LOG_BYTES_PER_INVOCATION * per_batch * 1_000_000 / 1e9,
        ),
    ]
    return [*lines, BillLine("total", sum(line.dollars_per_million_images for line in lines))]
