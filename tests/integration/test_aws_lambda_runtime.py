"""The container's real entrypoint, ``python -m awslambdaric imgcaption_lambda.handler.handler``, against a fake
Lambda Runtime API on 127.0.0.1 (the Runtime Interface Emulator is not available here) and moto_server.

This is what the image's CMD runs: the model loads during init, an SQS event is answered with a partial batch
response, and a bad event is reported to the Runtime API as an invocation error rather than crashing the runtime.
"""

from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
from PIL import Image

from aws_support import create_captions_table, running_moto_server
from imgcaption_aws.clients import dynamodb_client, s3_client
from imgcaption_aws.events import notification_record

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
PREFIX = "/2018-06-01/runtime"


class FakeRuntimeApi(ThreadingHTTPServer):
    """Hands out queued events on ``invocation/next`` and records what the runtime posts back."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.closing = threading.Event()
        self.posted: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()
        """(kind, request id, body) with kind ``response``, ``error`` or ``init_error``."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _RuntimeHandler(BaseHTTPRequestHandler):
    server: FakeRuntimeApi

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        if self.path != f"{PREFIX}/invocation/next":
            self.send_error(404)
            return
        while True:  # long-poll like the real API, until the test is over
            try:
                request_id, event = self.server.events.get(timeout=0.1)
                break
            except queue.Empty:
                if self.server.closing.is_set():
                    self.send_error(503)
                    return
        payload = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 120_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        parts = self.path.removeprefix(PREFIX).strip("/").split("/")
        if parts == ["init", "error"]:
            self.server.posted.put(("init_error", "", body))
        elif len(parts) == 3 and parts[0] == "invocation":
            self.server.posted.put((parts[2], parts[1], body))
        else:
            self.send_error(404)
            return
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def runtime_api() -> Iterator[FakeRuntimeApi]:
    server = FakeRuntimeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    with running_moto_server() as endpoint:
        yield endpoint


BLOCK_HEAVY_IMPORTS = """
import sys


class _NotInTheSlimImage:
    \"\"\"The default Lambda image installs no torch, transformers, safetensors or huggingface_hub.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "transformers", "safetensors", "huggingface_hub"}:
            raise ModuleNotFoundError(f"No module named {name!r} (not installed in the slim Lambda image)")
        return None


sys.meta_path.insert(0, _NotInTheSlimImage())
"""


@pytest.fixture(scope="module")
def onnx_artifact(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcaption.backends.export import save_onnx_artifact

    return save_onnx_artifact(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "tiny-onnx")


@pytest.mark.parametrize("image", ["slim int8 ONNX image", "fp32 image"])
def test_the_image_entrypoint_serves_invocations(
    runtime_api: FakeRuntimeApi,
    moto_endpoint: str,
    tiny_model_dir: Path,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    image: str,
) -> None:
    s3, dynamodb = s3_client(moto_endpoint), dynamodb_client(moto_endpoint)
    s3.create_bucket(Bucket="photos")
    create_captions_table(dynamodb, "captions")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "teal").save(buffer, "PNG")
    s3.put_object(Bucket="photos", Key="new arrivals/shoe.png", Body=buffer.getvalue())
    # An iPhone's default format: both images install pillow-heif (the `lambda` extra, the deps stage), so a valid
    # HEIC is captioned, not recorded as an unsupported or corrupt image.
    heic = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 48), "orange")).save(heic, quality=90)
    s3.put_object(Bucket="photos", Key="new arrivals/IMG_0001.HEIC", Body=heic.getvalue())
    records = [notification_record("photos", key) for key in ("new arrivals/shoe.png", "new arrivals/IMG_0001.HEIC")]
    sqs_event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "h-1",
                "body": json.dumps({"Records": records}),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        ]
    }
    runtime_api.events.put(("req-1", sqs_event))
    runtime_api.events.put(("req-2", {"hello": "world"}))

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("IMGCAPTION_")},
        "AWS_LAMBDA_RUNTIME_API": runtime_api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "imgcaption",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "IMGCAPTION_MODEL": str(tiny_model_dir),
        "IMGCAPTION_PRECISION": "fp32",
        "IMGCAPTION_TABLE_NAME": "captions",
        "IMGCAPTION_ENDPOINT_URL": moto_endpoint,
        "IMGCAPTION_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "adapters" / "lambda"), str(ROOT / "src")]),
    }
    if image == "slim int8 ONNX image":  # what the Dockerfile's default stage holds: the artifact, no torch
        (tmp_path / "sitecustomize.py").write_text(BLOCK_HEAVY_IMPORTS)
        env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
        env["IMGCAPTION_MODEL"] = str(request.getfixturevalue("onnx_artifact"))
        env["IMGCAPTION_PRECISION"] = "int8"
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "imgcaption_lambda.handler.handler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = runtime_api.posted.get(timeout=150)
        second = runtime_api.posted.get(timeout=60)
    finally:
        process.kill()
        output = process.communicate(timeout=30)[0]

    assert first == ("response", "req-1", {"batchItemFailures": []}), output
    kind, request_id, error = second
    assert (kind, request_id, error["errorType"]) == ("error", "req-2", "EventParseError"), output
    for key in ("new arrivals/shoe.png", "new arrivals/IMG_0001.HEIC"):
        item = dynamodb.get_item(TableName="captions", Key={"image_id": {"S": f"s3://photos/{key}"}})
        assert item["Item"]["status"]["S"] == "ok", (key, item["Item"])
        assert item["Item"]["precision"]["S"] == env["IMGCAPTION_PRECISION"]
    init_lines = [json.loads(line) for line in output.splitlines() if '"message":"initialised"' in line]
    assert len(init_lines) == 1, output  # loaded once, during init, with its timing
    assert init_lines[0]["init_ms"] >= 0
