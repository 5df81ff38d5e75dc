"""Measure how fast ``imgcaption backfill`` lists and enqueues a bucket, with 1, 4 and 16 sender threads.

    python benchmarks/backfill_rate.py --objects 100000 [--latency-ms 20] [--senders 1 4 16] [--sqs model|moto]

The listing runs against moto_server on 127.0.0.1 (started here), over real HTTP with the production clients. SQS
is, by default, a model: botocore's ``before-send`` hook answers every ``SendMessageBatch`` after ``--latency-ms``
(SQS's round trip) with every entry accepted, so the rate is what our senders achieve against that latency, not what
moto can serve (moto's own SQS, ``--sqs moto``, is CPU-bound at a few dozen messages a second in this process).
Prints one markdown row per sender count: objects per second listed and enqueued.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moto.server import ThreadedMotoServer

from imgcaption_aws.backfill import BackfillOptions, enqueue_backfill
from imgcaption_aws.clients import s3_client, sqs_client
from imgcaption_aws.source import iter_objects


def fill_bucket(s3: Any, bucket: str, objects: int) -> None:
    s3.create_bucket(Bucket=bucket)
    keys = [f"photos/{index // 1000:03d}/{index:07d}.jpg" for index in range(objects)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))


def delayed(sqs: Any, latency_ms: float) -> Any:
    if latency_ms > 0:
        sqs.meta.events.register("before-send.sqs.*", lambda **_: time.sleep(latency_ms / 1000))
    return sqs


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class ModelledSqs:
    """Answers ``SendMessageBatch`` after a fixed round trip, accepting every entry, and counts what it accepted."""

    def __init__(self, latency_ms: float) -> None:
        self.latency_s = latency_ms / 1000
        self.accepted = 0
        self.lock = threading.Lock()

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        time.sleep(self.latency_s)
        entries = json.loads(request.body)["Entries"]
        with self.lock:
            self.accepted += len(entries)
        successful = [
            {
                "Id": entry["Id"],
                "MessageId": f"m-{entry['Id']}",
                "MD5OfMessageBody": hashlib.md5(entry["MessageBody"].encode()).hexdigest(),
            }
            for entry in entries
        ]
        payload = json.dumps({"Successful": successful, "Failed": []}).encode()
        headers = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})
        return AWSResponse(request.url, 200, headers, _Body(payload))


def measure(endpoint: str, bucket: str, senders: int, latency_ms: float, modelled: bool) -> dict[str, Any]:
    s3 = s3_client(endpoint, "us-east-1")
    sqs = sqs_client(endpoint, "us-east-1")
    model = ModelledSqs(latency_ms)
    if modelled:
        sqs.meta.events.register_first("before-send.sqs.SendMessageBatch", model)
        queue_url = f"{endpoint}/123456789012/backfill-{senders}"
    else:
        queue_url = sqs.create_queue(QueueName=f"backfill-{senders}")["QueueUrl"]
        delayed(sqs, latency_ms)
    started = time.perf_counter()
    listed = sum(1 for _ in iter_objects(s3, f"s3://{bucket}/photos/"))
    listing_s = time.perf_counter() - started
    started = time.perf_counter()
    report = enqueue_backfill(s3, sqs, f"s3://{bucket}/photos/", queue_url, BackfillOptions(senders=senders))
    enqueue_s = time.perf_counter() - started
    if report.enqueued != listed or report.failed or (modelled and model.accepted != listed):
        raise SystemExit(f"{senders} senders: queued {report.enqueued} of {listed}, {len(report.failed)} refused")
    return {
        "senders": senders,
        "objects": listed,
        "listed_per_s": round(listed / listing_s),
        "enqueued_per_s": round(report.enqueued / enqueue_s),
        "enqueue_s": round(enqueue_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--latency-ms", type=float, default=20.0, help="SQS's round trip per request")
    parser.add_argument("--sqs", choices=["model", "moto"], default="model")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        print(f"filling a bucket with {args.objects} objects on {endpoint}", file=sys.stderr)
        fill_bucket(s3_client(endpoint, "us-east-1"), "archive", args.objects)
        modelled = args.sqs == "model"
        rows = [measure(endpoint, "archive", senders, args.latency_ms, modelled) for senders in args.senders]
    finally:
        server.stop()
    print(f"| senders | objects | listed/s | enqueued/s ({args.sqs} SQS, {args.latency_ms:g} ms a request) |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['senders']} | {row['objects']} | {row['listed_per_s']:,} | {row['enqueued_per_s']:,} |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"sqs": args.sqs, "latency_ms": args.latency_ms, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
