"""Memory is bounded by the model's input size, not by the uploads' dimensions.

Ten 16-megapixel PNGs of about 60 KB each go to the Lambda handler as one SQS batch, in a fresh process
(``decode_memory_probe.py``) whose peak resident set (``VmHWM``) is read before and after. Each image is reduced to
what the model needs as soon as it is decoded, so the peak grows by about two frames (one being decoded, with its
resampling) however many are in the batch; holding the batch at full resolution takes ten.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("decode_memory_probe.py")
SIDE = 4000
COUNT = 10


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is read from Linux's /proc")
def test_a_batch_of_ten_large_pngs_at_the_pixel_cap_costs_a_few_frames_of_memory_not_ten() -> None:
    """Catches decoded images travelling to the batch at full resolution (growth ~14 frames before the fix)."""
    completed = subprocess.run(
        [sys.executable, str(PROBE), "--side", str(SIDE), "--count", str(COUNT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.splitlines()[-1])

    assert report["statuses"] == ["ok"] * COUNT
    assert report["sizes"] == [[SIDE, SIDE]] * COUNT  # the record keeps the original dimensions
    assert report["failed_messages"] == []
    frame_mb = report["frame_mb"]  # one 4000×4000 RGB frame: 46 MB
    assert report["growth_mb"] < 4 * frame_mb, report  # measured: ~2.4 frames; the full-resolution batch: ~14.7
