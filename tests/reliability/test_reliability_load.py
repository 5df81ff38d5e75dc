"""The load test at CI size: 500 objects through moto_server S3 → SQS → 2 worker processes → DynamoDB.

Runs ``benchmarks/load_test.py`` exactly as documented (docs/RELIABILITY.md has the 10,000-object figures) and
checks its verdict: nothing lost, nothing written twice, every outcome right, the DLQ holding only the injected
poison messages. Throughput is reported by the script but never asserted: this machine's speed is not a property of
the code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "load_test.py"
OBJECTS = 500
CORRUPT_EVERY = 50
POISON = 2


def test_500_objects_through_two_worker_processes_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    report_file = tmp_path / "load.json"
    args = ["--objects", OBJECTS, "--workers", 2, "--corrupt-every", CORRUPT_EVERY, "--poison", POISON]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args), "--json", str(report_file)],
        capture_output=True,
        text=True,
        timeout=900,  # a hang guard, not a performance assertion
        check=False,
    )
    assert report_file.exists(), completed.stderr[-3000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))

    assert (report["lost"], report["duplicated"], report["wrong_outcome"], report["unexpected_items"]) == (0, 0, 0, 0)
    assert report["writes"] == OBJECTS
    assert report["recorded_failures"] == OBJECTS // CORRUPT_EVERY  # broken JPEGs are outcomes, not retries
    assert report["dlq"] == {"messages": POISON, "poison_injected": POISON, "poison_found": POISON}
    assert report["dlq_unexplained"] == 0
    assert len(report["per_worker"]) == 2 and all(worker["messages"] > 0 for worker in report["per_worker"])
    assert report["ok"] is True
    assert completed.returncode == 0, completed.stderr[-3000:]
