"""How much a batch of large, cheap PNGs raises the peak memory of the Lambda handler: run in a fresh process.

``python tests/reliability/decode_memory_probe.py --side 7000 --count 10`` uploads ``count`` PNGs of ``side``²
pixels (about 160 KB each at 7000²) to moto, sends them to the handler as one SQS batch with the pixel cap set to
exactly their size, and prints one JSON line: the peak resident set (``VmHWM``) before and after, and the outcomes.
The fake captioner stands in for the model, so the figure is what decoding and batching cost, nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imgcaption.testing.corpus import cheap_large_png
from imgcaption_aws.settings import AwsSettings

HERE = Path(__file__).parent


def peak_rss_kb() -> int:
    """``VmHWM`` of this process: the most resident memory it has held so far, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (not Linux?)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=7000, help="width and height of each PNG")
    parser.add_argument("--count", type=int, default=10, help="PNGs in the batch (an SQS batch holds up to 10)")
    arguments = parser.parse_args()
    sys.path[:0] = [str(HERE), str(HERE.parents[1] / "adapters" / "lambda")]  # as pytest's rootdir config has them
    from reliability_support import (
        TABLE,
        FakeCaptioner,
        FakeContext,
        body,
        color_of,
        failed_ids,
        moto_aws,
        png,
        sqs_event,
    )

    from imgcaption_lambda import handler as module

    moto = moto_aws()  # kept referenced: moto stays active until the generator is closed
    aws = next(moto)
    captioner = FakeCaptioner()
    captioner.max_pixels = arguments.side * arguments.side  # the images are exactly at the pixel cap
    module.init(AwsSettings(table_name=TABLE, batch_size=arguments.count), s3=aws.s3, dynamodb=aws.dynamodb,
                captioner=captioner)  # fmt: skip
    warm_up = aws.put("warm-up.png", png())  # imports and first-call allocations happen before the baseline
    assert failed_ids(module.handler(sqs_event(body(warm_up)), FakeContext())) == []
    records = [
        aws.put(f"large-{index}.png", cheap_large_png(arguments.side, arguments.side, color_of(index), (0, 0, 0)))
        for index in range(arguments.count)
    ]

    before = peak_rss_kb()
    response = module.handler(sqs_event(*(body(record) for record in records)), FakeContext())
    after = peak_rss_kb()

    items = aws.items()
    outcomes = [items[f"s3://photos/large-{index}.png"] for index in range(arguments.count)]
    print(
        json.dumps(
            {
                "side": arguments.side,
                "count": arguments.count,
                "frame_mb": arguments.side * arguments.side * 3 / 2**20,
                "vmhwm_before_kb": before,
                "vmhwm_after_kb": after,
                "growth_mb": (after - before) / 1024,
                "failed_messages": failed_ids(response),
                "statuses": [item["status"] for item in outcomes],
                "sizes": [[int(item["width"]), int(item["height"])] for item in outcomes],
            }
        )
    )


if __name__ == "__main__":
    main()
