"""AWS adapters: an S3 image source, a DynamoDB caption store, S3 event parsing, backfill and an SQS worker.

Install with the ``aws`` extra. Importing this package is cheap and needs no AWS libraries; the
modules that talk to AWS import boto3 on first use and say which extra to install when it is missing.

The Lambda handler (``imgcaption_lambda.handler``) and the local worker (``imgcaption worker``) both call the same
:class:`~imgcaption_aws.processor.EventProcessor`, so what runs against moto_server is what runs in Lambda.
"""

from __future__ import annotations

from imgcaption_aws.deps import MissingDependencyError
from imgcaption_aws.uris import S3Location, parse_s3_uri

__all__ = ["MissingDependencyError", "S3Location", "parse_s3_uri"]
