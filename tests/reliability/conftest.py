"""Fixtures of the reliability tests: moto in-process and the Lambda handler wired to it with a fast captioner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from reliability_support import TABLE, Aws, FakeCaptioner, moto_aws, moto_server, served_aws

from imgcaption_aws.settings import AwsSettings


@pytest.fixture
def aws() -> Iterator[Aws]:
    yield from moto_aws()


@pytest.fixture
def versioned_aws() -> Iterator[Aws]:
    yield from moto_aws(versioned=True)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    yield from moto_server()


@pytest.fixture
def http_aws(moto_endpoint: str) -> Iterator[Aws]:
    """moto over real HTTP: a ``before-send`` hook's response stands in for the network call (fault injection)."""
    yield from served_aws(moto_endpoint)


HandlerFactory = Callable[..., Any]


@pytest.fixture
def lambda_handler() -> Iterator[HandlerFactory]:
    """Initialise ``imgcaption_lambda.handler`` as a cold start would, with the given clients or store and captioner.

    Returns the handler function; the module's cached processor is dropped afterwards.
    """
    from imgcaption_lambda import handler as module

    def initialise(
        aws: Aws,
        captioner: Any = None,
        *,
        s3: Any = None,
        dynamodb: Any = None,
        store: Any = None,
        batch_size: int = 4,
        mirror_deletions: bool = False,
    ) -> Any:
        module.init(
            AwsSettings(table_name=TABLE, batch_size=batch_size, mirror_deletions=mirror_deletions),
            s3=s3 or aws.s3,
            dynamodb=dynamodb or aws.dynamodb,
            store=store,
            captioner=captioner or FakeCaptioner(),
        )
        return module.handler

    yield initialise
    module._processor = None
