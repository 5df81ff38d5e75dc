"""The backfill rate benchmark (benchmarks/backfill_rate.py) in a small version: it runs and queues every object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow


def test_the_backfill_rate_script_queues_every_object_with_each_sender_count(tmp_path: Path) -> None:
    out = tmp_path / "rates.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "backfill_rate.py"), "--objects", "120", "--senders", "1", "4"]
    result = subprocess.run(
        [*command, "--latency-ms", "0", "--json", str(out)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(row["senders"], row["objects"]) for row in rows] == [(1, 120), (4, 120)]
    assert all(row["enqueued_per_s"] > 0 and row["listed_per_s"] > 0 for row in rows)
    assert "| 4 | 120 |" in result.stdout
