"""The benchmark: a smoke run on the tiny model (so it cannot rot) and the Lambda cost arithmetic.

No timing is asserted anywhere: the tiny model's numbers mean nothing and a shared CI machine's even less.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgcaption.bench.lambda_cost import (
    PRICE_PER_GB_SECOND,
    MeasuredSpeed,
    cost_per_million,
    cost_table,
    recommend,
    vcpus_for,
)
from imgcaption.bench.runner import token_agreement


def test_bench_runs_end_to_end_on_the_tiny_model_and_prints_every_section(tiny_model_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.bench_commands import bench

    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.jpg"))[:2]
    raw = tmp_path / "result.json"
    args = [str(tiny_model_dir), "--threads", "1", "--threads", "2", "--repeats", "1", "--batch-size", "1"]
    args += ["--batch-size", "2", "--cold-runs", "1", "--fidelity-images", "2", "--json", str(raw)]
    for image in examples:
        args += ["--image", str(image)]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    for heading in ("## Latency", "## Throughput", "## Cold start", "## Fidelity", "## Lambda cost", "## Capacity"):
        assert heading in result.output
    assert "Exact mode (fp32) tokens identical to the baseline on every image: **True**" in result.output
    data = json.loads(raw.read_text())
    modes = {(row["mode"], row["decoding"], row["threads"]) for row in data["latency"]}
    assert ("baseline", "beams 4", 1) in modes and ("int8", "greedy", 2) in modes
    assert {c["label"] for c in data["cold_start"]} == {"int8 artifact", "fp32 (transformers)"}
    assert all(c["peak_rss_mb"][0] > 0 for c in data["cold_start"])


def test_memory_buys_one_vcpu_per_1769_mb() -> None:
    assert vcpus_for(1769) == 1
    assert vcpus_for(3538) == 2
    assert vcpus_for(20_000) == 6  # Lambda's ceiling


def test_cost_per_million_is_gb_seconds_times_price_plus_one_request_per_batch() -> None:
    # 2 GB for 0.5 s = 1 GB-s per image; 8 images per invocation
    expected = 1_000_000 * (1 * PRICE_PER_GB_SECOND["x86_64"] + 0.20 / 1_000_000 / 8)
    assert cost_per_million(2048, 0.5, batch_size=8) == pytest.approx(expected)
    assert cost_per_million(2048, 0.5, architecture="arm64") < cost_per_million(2048, 0.5)


def test_sizes_beyond_two_vcpus_are_extrapolated_and_flagged() -> None:
    speed = MeasuredSpeed(seconds_1_thread=1.0, seconds_2_threads=0.6, batch_size=8)
    rows = {(r.memory_mb, r.architecture): r for r in cost_table(speed)}
    assert rows[(2048, "x86_64")].measured and rows[(2048, "x86_64")].seconds_per_image == 1.0
    assert rows[(4096, "x86_64")].measured and rows[(4096, "x86_64")].seconds_per_image == 0.6
    assert not rows[(10240, "x86_64")].measured
    assert rows[(10240, "x86_64")].seconds_per_image < 0.6
    assert not rows[(2048, "arm64")].measured  # arm prices on x86 times: never presented as measured


def test_the_recommendation_is_the_cheapest_measured_size_that_fits() -> None:
    speed = MeasuredSpeed(seconds_1_thread=1.0, seconds_2_threads=0.55, batch_size=8)
    rows = cost_table(speed)
    best = recommend(rows, min_memory_mb=1000)
    assert best.measured and best.architecture == "x86_64"
    assert best.dollars_per_million == min(r.dollars_per_million for r in rows if r.measured)
    assert recommend(rows, min_memory_mb=3100).memory_mb >= 3100


def test_token_agreement_counts_positions_and_pads_the_shorter() -> None:
    assert token_agreement([1, 2, 3], [1, 2, 3], pad=0) == (3, 3)
    assert token_agreement([1, 2, 3, 4], [1, 9], pad=0) == (1, 4)


def test_without_a_usable_two_thread_figure_bigger_sizes_are_assumed_no_faster() -> None:
    speed = MeasuredSpeed(seconds_1_thread=0.5, seconds_2_threads=None, batch_size=4)
    rows = {(r.memory_mb, r.architecture): r for r in cost_table(speed)}
    assert rows[(4096, "x86_64")].seconds_per_image == 0.5
    assert not rows[(4096, "x86_64")].measured
    assert recommend(list(rows.values())).memory_mb == 2048
