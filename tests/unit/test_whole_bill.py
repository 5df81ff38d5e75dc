"""The whole bill per image: compute plus every request an image makes, and the int8 instruction set named."""

from __future__ import annotations

import pytest

from imgcaption.backends.cpu_int8 import int8_instruction_set
from imgcaption.bench.whole_bill import PRICES, whole_bill


def test_the_bill_adds_each_request_an_image_makes_to_the_compute() -> None:
    lines = {line.item: line.dollars_per_million_images for line in whole_bill(14.0, images_per_invocation=10)}
    assert lines["Lambda compute"] == 14.0
    assert lines["S3 GET"] == PRICES["s3_get"].dollars  # one GET per image
    assert lines["DynamoDB conditional write"] == PRICES["dynamodb_write"].dollars  # one write per image
    assert lines["SQS send, receive, delete"] == pytest.approx(3 * PRICES["sqs_request"].dollars / 10)
    assert lines["Lambda requests"] == pytest.approx(PRICES["lambda_request"].dollars / 10)
    assert lines["total"] == pytest.approx(sum(value for item, value in lines.items() if item != "total"))


def test_smaller_batches_cost_more_in_requests_but_not_in_gets_or_writes() -> None:
    one = {line.item: line.dollars_per_million_images for line in whole_bill(14.0, images_per_invocation=1)}
    ten = {line.item: line.dollars_per_million_images for line in whole_bill(14.0, images_per_invocation=10)}
    assert one["SQS send, receive, delete"] == pytest.approx(10 * ten["SQS send, receive, delete"])
    assert one["S3 GET"] == ten["S3 GET"] and one["total"] > ten["total"]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"}, "AMX"),
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX-512 VNNI"),
        ({"avx2", "avx_vnni"}, "AVX-VNNI"),
        ({"avx2"}, "AVX2"),
        ({"asimddp", "i8mm"}, "Arm i8mm"),
        ({"asimddp"}, "Arm dotprod"),
        (set(), "none of AVX2, VNNI, AMX, dotprod"),
    ],
)
def test_the_int8_instruction_set_is_the_best_the_cpu_offers(flags: set[str], expected: str) -> None:
    assert int8_instruction_set(flags) == expected
