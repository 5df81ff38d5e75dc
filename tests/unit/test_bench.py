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
from imgcaption.bench.report import fastest_fast_mode, render
from imgcaption.bench.runner import BenchResult, ColdStart, Fidelity, Throughput, Timing, token_agreement


def test_bench_runs_end_to_end_on_the_tiny_model_and_prints_every_section(tiny_model_dir: Path, tmp_path: Path) -> None:
    from imgcaption_cli.bench_commands import bench

    examples = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.jpg"))[:2]
    raw = tmp_path / "result.json"
    onnx_dir = tmp_path / "tiny-onnx"  # absent: the run builds it there
    args = [str(tiny_model_dir), "--threads", "1", "--threads", "2", "--repeats", "1", "--batch-size", "1"]
    args += ["--batch-size", "2", "--cold-runs", "1", "--fidelity-images", "2", "--json", str(raw)]
    args += ["--onnx-artifact", str(onnx_dir)]
    for image in examples:
        args += ["--image", str(image)]
    result = CliRunner().invoke(bench, args)
    assert result.exit_code == 0, result.output
    headings = ("## Latency", "## Throughput", "## Cold start", "## Fidelity", "## Fast modes side by side")
    for heading in (*headings, "## Lambda cost", "## Capacity"):
        assert heading in result.output
    assert "Exact mode (fp32) tokens identical to the baseline on every image: **True**" in result.output
    assert (onnx_dir / "imgcaption-model.json").is_file()
    data = json.loads(raw.read_text())
    assert data["config"]["onnx_artifact"] == str(onnx_dir)
    assert data["machine"]["onnxruntime"]
    modes = {(row["mode"], row["decoding"], row["threads"]) for row in data["latency"]}
    assert ("baseline", "beams 4", 1) in modes and ("int8", "greedy", 2) in modes
    assert {("onnx", decoding, threads) for decoding in ("beams 4", "greedy") for threads in (1, 2)} <= modes
    assert all(len(row["ratios"]) == 2 for row in data["latency"])  # paired with the baseline: 2 images, 1 repeat
    rates = {(row["mode"], row["threads"], row["batch_size"]) for row in data["throughput"]}
    assert {("onnx", threads, batch) for threads in (1, 2) for batch in (1, 2)} <= rates
    assert {c["label"] for c in data["cold_start"]} == {
        "int8 artifact",
        "onnx int8 artifact",
        "onnx int8 artifact, 2 threads",
        "fp32 (transformers)",
    }
    assert all(c["peak_rss_mb"][0] > 0 for c in data["cold_start"])
    # spawn to first caption comes before the interpreter's exit, and after its own import, load and caption
    for c in data["cold_start"]:
        inside = c["import_seconds"][0] + c["load_seconds"][0] + c["first_caption_seconds"][0]
        assert inside <= c["to_first_caption_seconds"][0] <= c["wall_seconds"][0]
    assert "import onnxruntime" in data["import_seconds"]
    # Fidelity on the tiny model and on the committed scene captioner (the default --fidelity-model: a missing one
    # drops its rows, and that fails here).
    assert {(f["model"].startswith("scene captioner"), f["mode"]) for f in data["fidelity"]} == {
        (False, "int8"),
        (False, "onnx"),
        (True, "int8"),
        (True, "onnx"),
    }
    assert all(f["images"] == 2 for f in data["fidelity"] if f["model"].startswith("scene captioner"))
    for row in ("| 1 | beams 4 | onnx |", "| 2 | greedy | onnx |", "| 1 | 2 | onnx |", "| onnx int8 artifact |"):
        assert row in result.output, row
    assert "| int8 ONNX Runtime (`onnx`) |" in result.output  # the side-by-side and fidelity tables name the mode
    assert "| `import onnxruntime` |" in result.output
    assert "## int8 floors of the onnx artifact on this CPU" in result.output
    floors = data["floors"]
    assert floors["encoder_seconds_per_image"] > 0 and floors["decoder_step_seconds"] > 0
    assert floors["encoder_int8_macs_per_image"] > 0 and floors["decoder_bytes_per_step"] > 0


def _result(onnx_cpu_seconds: float | None) -> BenchResult:
    """A made-up result: int8 at 0.5 CPU-s/image (1 thread, batch 4), onnx at ``onnx_cpu_seconds`` if given."""
    speeds = {"int8": 0.5} | ({"onnx": onnx_cpu_seconds} if onnx_cpu_seconds is not None else {})
    latency = [Timing("baseline", "beams 4", 1, [1.0], [1.0])]
    latency += [Timing(mode, "beams 4", 1, [seconds], [1 / seconds]) for mode, seconds in speeds.items()]
    throughput = [
        Throughput(mode, 1, batch, 1 / seconds * (1 if batch == 4 else 0.5), 2.0, seconds * (1 if batch == 4 else 2))
        for mode, seconds in speeds.items()
        for batch in (1, 4)
    ]
    cold = [ColdStart("int8 artifact", [3.0], [1.0], [1.0], [1.0], [1000.0])]
    if onnx_cpu_seconds is not None:
        cold.append(ColdStart("onnx int8 artifact", [1.0], [0.2], [0.3], [0.5], [2000.0]))
    fidelity = [Fidelity("tiny", mode, 2, 1.0, 1.0) for mode in speeds]
    machine = {
        "cpu": "test",
        "cores": 2,
        "flags": [],
        "python": "3.11",
        "torch": "2",
        "quantized_engine": "x86",
        "load_average_at_start": [0.0, 0.0, 0.0],
    }
    config = {"model": "tiny", "images": ["a.jpg"], "repeats": 1}
    return BenchResult(machine, config, latency, throughput, cold, {}, fidelity, True)


def test_the_lambda_sections_model_the_fast_mode_with_fewer_cpu_seconds_per_image() -> None:
    faster_onnx = _result(onnx_cpu_seconds=0.25)
    mode, speed = fastest_fast_mode(faster_onnx) or ("none", None)
    assert mode == "onnx" and speed is not None and speed.seconds_1_thread == 0.25 and speed.batch_size == 4
    report = render(faster_onnx)
    assert "## Lambda cost per million images (fastest fast mode: int8 ONNX Runtime (`onnx`), batch 4" in report
    assert "## Capacity (int8 ONNX Runtime (`onnx`), x86_64, batch 4)" in report
    assert "cold-start peak RSS (3000 MB)" in report  # the onnx row's 2000 MB × 1.5, not int8's
    assert "| int8 ONNX Runtime (`onnx`) | **4.00×** | 1.00 | 2000 | 0.250 (batch 4) |" in report
    assert "| int8 (torch) (`int8`) | **2.00×** | 3.00 | 1000 | 0.500 (batch 4) |" in report

    faster_int8 = render(_result(onnx_cpu_seconds=0.75))
    assert "fastest fast mode: int8 (torch) (`int8`)" in faster_int8
    assert "cold-start peak RSS (1500 MB)" in faster_int8


def test_the_report_renders_without_the_onnx_mode() -> None:
    report = render(_result(onnx_cpu_seconds=None))
    assert "fastest fast mode: int8 (torch) (`int8`)" in report
    assert "`onnx`" not in report


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
    assert recommend(list(rows.values())).memory_mb == 1769  # exactly one vCPU: all one thread can use
