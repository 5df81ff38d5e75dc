"""Bounded load test: N objects through moto_server S3 → SQS → W worker processes → DynamoDB, nothing lost.

    python benchmarks/load_test.py                         # 10,000 objects, 4 workers
    python benchmarks/load_test.py --objects 500 --workers 2 --json /tmp/load.json

What runs is production code over real HTTP: ``moto_server`` (its own process, 127.0.0.1) with a bucket whose
notification feeds a queue (redrive to a DLQ after 3 receives), and W worker processes each running
:class:`~imgcaption_aws.worker.SqsWorker` around the Lambda's :class:`~imgcaption_aws.processor.EventProcessor`
and the conditional :class:`~imgcaption_aws.store.DynamoDBStore`. Only the model is fake (a :class:`Captioner` whose
three stages name the image's colour), so the figures measure the plumbing, not inference.

Mixed in on purpose: every ``--corrupt-every``-th object is a broken JPEG (must be a recorded ``ImageDecodeError``,
not a retry) and ``--poison`` messages that are not S3 events (must be the DLQ's only content). At the end the
table is compared with the bucket listing: every object has exactly one item with the outcome its bytes deserve
(lost = 0), no event was written twice (duplicated = 0), and the DLQ holds nothing but the poison. Exit status 0
only then. Keys carry spaces, ``+``, ``%`` and non-ASCII, as real uploads do.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PIL import Image

from imgcaption.backends.base import LoadedModel
from imgcaption.captioner import Captioner
from imgcaption.generation import GenerationOptions

TABLE = "captions"
BUCKET = "uploads"
QUEUE = "imgcaption-load"
MAX_RECEIVE_COUNT = 3
POISON_PREFIX = "poison: not an S3 event #"
REGION = "us-east-1"


# ----------------------------------------------------------------------------- the fake model and the data


class FastCaptioner(Captioner):
    """The real Captioner (batching, isolation, provenance) with the network replaced by a colour lookup."""

    def __init__(self) -> None:
        loaded = LoadedModel(None, None, None, model_id="load-test-captioner", revision="1", provenance={})
        super().__init__(loaded, generation=GenerationOptions(num_beams=1))

    def preprocess(self, images: Sequence[Image.Image]) -> Any:
        return [image.convert("RGB").getpixel((0, 0)) for image in images]

    def forward(self, pixel_values: Any, generation: GenerationOptions) -> Any:
        return pixel_values

    def postprocess(self, token_ids: Any) -> list[str]:
        return [caption_for(rgb) for rgb in token_ids]


def caption_for(rgb: tuple[int, int, int]) -> str:
    return "a picture that is mostly #{:02x}{:02x}{:02x}".format(*rgb)


def color_of(index: int) -> tuple[int, int, int]:
    return (index % 256, (index // 256) % 256, (index * 7) % 256)


def key_of(index: int) -> str:
    return f"load/{index % 100:02d}/img {index:06d}+é%.png"


def content_of(index: int, corrupt_every: int) -> bytes:
    if corrupt_every and index % corrupt_every == corrupt_every - 1:
        return b"\xff\xd8\xff\xe0 truncated JPEG " + str(index).encode()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color_of(index)).save(buffer, "PNG")
    return buffer.getvalue()


def expected_outcome(index: int, corrupt_every: int) -> tuple[str, str]:
    """(status, caption or error type) the item for object ``index`` must have."""
    if corrupt_every and index % corrupt_every == corrupt_every - 1:
        return "failed", "ImageDecodeError"
    return "ok", caption_for(color_of(index))


# ----------------------------------------------------------------------------- AWS plumbing


def clients(endpoint: str) -> tuple[Any, Any, Any]:
    from imgcaption_aws.clients import dynamodb_client, s3_client, sqs_client

    return s3_client(endpoint, REGION), sqs_client(endpoint, REGION), dynamodb_client(endpoint, REGION)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2):
                return server, endpoint
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)


def provision(endpoint: str) -> tuple[str, str]:
    """Bucket → queue (→ DLQ) notification and the captions table; the queue's and the DLQ's URLs."""
    s3, sqs, dynamodb = clients(endpoint)
    dlq_url = sqs.create_queue(QueueName=f"{QUEUE}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)})
    queue_url = sqs.create_queue(QueueName=QUEUE, Attributes={"VisibilityTimeout": "60", "RedrivePolicy": redrive})[
        "QueueUrl"
    ]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "image_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "image_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return queue_url, dlq_url


def queue_depth(sqs: Any, queue_url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(value) for value in attributes.values())


def drain(sqs: Any, queue_url: str) -> list[str]:
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        bodies.extend(message["Body"] for message in messages)
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return bodies


# ----------------------------------------------------------------------------- one worker process


def run_worker(endpoint: str, queue_url: str, signals: Path, batch_size: int) -> dict[str, Any]:
    """Say ``ready``, wait for ``signals/go``, then consume the queue with the Lambda's processor until
    ``signals/stop`` exists and a poll came back empty."""
    from imgcaption_aws.processor import EventProcessor
    from imgcaption_aws.store import DynamoDBStore
    from imgcaption_aws.worker import SqsWorker

    s3, sqs, dynamodb = clients(endpoint)
    store = DynamoDBStore(dynamodb, TABLE)
    processor = EventProcessor(s3, store, FastCaptioner(), batch_size=batch_size)
    worker = SqsWorker(sqs, queue_url, processor, wait_time_s=1, retry_delay_s=0)
    print("ready", flush=True)
    while not (signals / "go").exists():
        time.sleep(0.02)
    totals = {"batches": 0, "messages": 0, "deleted": 0, "retried": 0}
    while True:
        report = worker.run(max_empty_polls=1)
        for name in totals:
            totals[name] += getattr(report, name)
        if (signals / "stop").exists():
            break
    return {**totals, "written": store.report.written, "superseded": len(store.report.superseded)}


# ----------------------------------------------------------------------------- the run


def upload(endpoint: str, queue_url: str, objects: int, corrupt_every: int, threads: int, max_backlog: int) -> float:
    """Upload every object, pausing while the queue holds more than ``max_backlog`` messages; seconds paused.

    The pacing is for moto, not for imgcaption: moto's ReceiveMessage costs O(queue length²) (about 0.4 s per call
    with 300 messages waiting), so a 10,000-message backlog would measure moto's queue scan instead of the workers.
    """
    s3, sqs, _ = clients(endpoint)
    paused = 0.0

    def put(index: int) -> None:
        s3.put_object(Bucket=BUCKET, Key=key_of(index), Body=content_of(index, corrupt_every))

    chunk = max(1, min(50, max_backlog // 2))
    with ThreadPoolExecutor(threads) as pool:
        for start in range(0, objects, chunk):
            while queue_depth(sqs, queue_url) > max_backlog:
                time.sleep(0.1)
                paused += 0.1
            for _ in pool.map(put, range(start, min(objects, start + chunk))):
                pass
    return paused


def verify(endpoint: str, objects: int, corrupt_every: int) -> dict[str, Any]:
    """Compare the table with the bucket listing and with what each object's bytes deserve."""
    s3, _, dynamodb = clients(endpoint)
    listed = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    }
    items: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=TABLE, ConsistentRead=True):
        for item in page["Items"]:
            items[item["key"]["S"]] = item
    expected = {key_of(index): expected_outcome(index, corrupt_every) for index in range(objects)}
    wrong = []
    for key, (status, detail) in expected.items():
        item = items.get(key)
        if item is None:
            continue
        got = (item["status"]["S"], item["caption"]["S"] if "caption" in item else item["error_type"]["S"])
        if got != (status, detail) or item["image_id"]["S"] != f"s3://{BUCKET}/{key}":
            wrong.append({"key": key, "expected": [status, detail], "got": list(got)})
    return {
        "listed": len(listed),
        "items": len(items),
        "lost": sorted(listed - set(items))[:20],
        "lost_count": len(listed - set(items)),
        "unexpected_items": sorted(set(items) - listed)[:20],
        "not_uploaded": len(set(expected) - listed),
        "wrong": wrong[:20],
        "wrong_count": len(wrong),
        "failed_items": sum(1 for item in items.values() if item["status"]["S"] == "failed"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="images per pipeline batch in each worker")
    parser.add_argument("--corrupt-every", type=int, default=100, help="every Nth object is a broken JPEG (0: none)")
    parser.add_argument("--poison", type=int, default=3, help="messages that are not S3 events (must reach the DLQ)")
    parser.add_argument("--upload-threads", type=int, default=8)
    parser.add_argument(
        "--max-backlog", type=int, default=100, help="pause uploads above this queue depth (moto's receive is O(n²))"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="give up draining after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--queue-url", help=argparse.SUPPRESS)
    parser.add_argument("--signals", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

    if args.worker:
        logging.basicConfig(level=logging.ERROR, format=f"worker {os.getpid()}: %(levelname)s %(name)s: %(message)s")
        print(json.dumps(run_worker(args.endpoint, args.queue_url, args.signals, args.batch_size)), flush=True)
        return 0

    server, endpoint = start_moto()
    workers: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        signals = Path(scratch)
        try:
            queue_url, dlq_url = provision(endpoint)
            command = [sys.executable, __file__, "--worker", "--endpoint", endpoint, "--queue-url", queue_url]
            command += ["--signals", str(signals), "--batch-size", str(args.batch_size)]
            workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(args.workers)]
            _, sqs, _ = clients(endpoint)
            for worker in workers:
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != "ready":
                    raise RuntimeError("a worker failed to start")
            (signals / "go").touch()
            started = time.perf_counter()  # workers consume while the objects are uploaded, as in production
            paused = upload(
                endpoint, queue_url, args.objects, args.corrupt_every, args.upload_threads, args.max_backlog
            )
            for number in range(args.poison):
                sqs.send_message(QueueUrl=queue_url, MessageBody=f"{POISON_PREFIX}{number}")
            uploaded = time.perf_counter()
            empty_checks = 0
            while empty_checks < 3:
                if time.perf_counter() - started > args.timeout:
                    raise TimeoutError(f"the queue was not drained within {args.timeout} s")
                empty_checks = empty_checks + 1 if queue_depth(sqs, queue_url) == 0 else 0
                time.sleep(0.5)
            drained = time.perf_counter() - 1.0  # the last two checks only confirmed it
            (signals / "stop").touch()
            reports = [json.loads(worker.communicate(timeout=120)[0].strip().splitlines()[-1]) for worker in workers]
            checked = verify(endpoint, args.objects, args.corrupt_every)
            dlq = drain(sqs, dlq_url)
        finally:
            (signals / "go").touch()
            (signals / "stop").touch()
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
            server.terminate()
            server.wait(timeout=30)

    total = {name: sum(report[name] for report in reports) for name in reports[0]}
    poison = [message for message in dlq if message.startswith(POISON_PREFIX)]
    duplicated = total["written"] - checked["items"]
    elapsed = drained - started
    result = {
        "command": " ".join(["python", "benchmarks/load_test.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "objects": args.objects,
        "workers": args.workers,
        "max_backlog": args.max_backlog,
        "upload_s": round(uploaded - started, 2),
        "upload_paused_for_backlog_s": round(paused, 1),
        "end_to_end_s": round(elapsed, 2),
        "throughput_objects_per_s": round(args.objects / elapsed, 1),
        "messages_received": total["messages"],
        "redeliveries": total["retried"],
        "writes": total["written"],
        "duplicate_deliveries_absorbed": total["superseded"],
        "lost": checked["lost_count"],
        "duplicated": duplicated,
        "wrong_outcome": checked["wrong_count"],
        "unexpected_items": len(checked["unexpected_items"]),
        "recorded_failures": checked["failed_items"],
        "dlq": {"messages": len(dlq), "poison_injected": args.poison, "poison_found": len(poison)},
        "dlq_unexplained": len(dlq) - len(poison),
        "examples": {k: checked[k] for k in ("lost", "wrong", "unexpected_items") if checked[k]},
        "per_worker": reports,
    }
    ok = (
        result["lost"] == 0
        and duplicated == 0
        and result["wrong_outcome"] == 0
        and result["unexpected_items"] == 0
        and checked["not_uploaded"] == 0
        and result["dlq_unexplained"] == 0
        and len(poison) == args.poison
    )
    result["ok"] = ok
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
