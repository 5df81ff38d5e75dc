"""The benchmark as markdown: ratios first, absolute numbers second, then the Lambda cost and capacity models.

The Lambda sections model the faster of the two int8 modes (torch ``int8``, ``onnx`` ONNX Runtime): the one with
fewer CPU seconds per image at 1 thread, and its own cold-start peak RSS as the memory floor.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from imgcaption.backends.cpu_int8 import int8_instruction_set
from imgcaption.bench.lambda_cost import (
    CONCURRENCIES,
    MEMORY_SIZES_MB,
    PRICE_PER_REQUEST,
    MeasuredSpeed,
    capacity_table,
    cost_table,
    recommend,
)
from imgcaption.bench.runner import COLD_START_LABELS, FAST_MODES, MODE_NAMES, BenchResult, ColdStart, Throughput
from imgcaption.bench.whole_bill import PRICES, PRICES_READ_ON, whole_bill

RSS_HEADROOM = 1.5
"""Recommend a Lambda size with this factor above the measured peak RSS (larger images, batches, allocator slack)."""


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def speed_for_lambda(result: BenchResult, mode: str = "int8") -> MeasuredSpeed | None:
    """Seconds per image for the Lambda model, at the batch size with the best 1-thread throughput.

    1 thread: the process's CPU seconds per image — what the same work takes on a dedicated vCPU, which a Lambda
    vCPU is and a shared benchmark machine is not. 2 threads: the wall time, used only if it beats 1 thread.
    """
    rates = {(t.threads, t.batch_size): t for t in result.throughput if t.mode == mode}
    batches = sorted({b for threads, b in rates if threads == 1})
    if not batches:
        return None
    best = max(batches, key=lambda b: rates[(1, b)].images_per_second)
    one = rates[(1, best)].cpu_seconds_per_image
    two = rates.get((2, best))
    two_seconds = 1 / two.images_per_second if two is not None else None
    usable = two_seconds if two_seconds is not None and two_seconds < one else None
    return MeasuredSpeed(one, usable, batch_size=best)


def fastest_fast_mode(result: BenchResult) -> tuple[str, MeasuredSpeed] | None:
    """The fast mode (``int8`` or ``onnx``) with the fewest 1-thread CPU seconds per image, and that speed."""
    speeds = [(mode, speed) for mode in FAST_MODES if (speed := speed_for_lambda(result, mode)) is not None]
    return min(speeds, key=lambda pair: pair[1].seconds_1_thread) if speeds else None


def cold_start_for(result: BenchResult, mode: str) -> ColdStart | None:
    """The cold-start row of a fast mode (``int8 artifact`` or ``onnx int8 artifact``), if measured."""
    rows = [c for c in result.cold_start if c.label == COLD_START_LABELS.get(mode)]
    return rows[0] if rows else None


def _first_caption(cold: ColdStart) -> float:
    """Spawn to first caption; results recorded before that was measured only have spawn to exit."""
    return _median(cold.to_first_caption_seconds or cold.wall_seconds)


def _fast_modes_section(result: BenchResult) -> list[str]:
    measured = [mode for mode in FAST_MODES if any(t.mode == mode for t in result.latency + result.throughput)]
    if not measured:
        return []
    lines = [
        "",
        "## Fast modes side by side",
        "",
        "| mode | speed-up, beams 4, batch 1, 1 thread | start → first caption s | cold start peak RSS MB | "
        "CPU s/image, 1 thread, best batch |",
        "|---|---|---|---|---|",
    ]
    for mode in measured:
        latency = [t.speedup for t in result.latency if t.mode == mode and t.decoding == "beams 4" and t.threads == 1]
        cold = cold_start_for(result, mode)
        speed = speed_for_lambda(result, mode)
        lines.append(
            f"| {MODE_NAMES[mode]} (`{mode}`) | {f'**{max(latency):.2f}×**' if latency else '—'} | "
            f"{f'{_first_caption(cold):.2f}' if cold else '—'} | "
            f"{f'{_median(cold.peak_rss_mb):.0f}' if cold else '—'} | "
            f"{f'{speed.seconds_1_thread:.3f} (batch {speed.batch_size})' if speed else '—'} |"
        )
    return lines


def render(result: BenchResult) -> str:
    m = result.machine
    lines = [
        "## Machine",
        "",
        f"{m['cpu']}, {m['cores']} cores ({', '.join(m['flags'])}; int8 instructions: "
        f"{int8_instruction_set(set(m['flags']))}), Python {m['python']}, torch {m['torch']} "
        f"(kernels {m.get('cpu_capability', '?')}, quantized engine {m['quantized_engine']}), "
        f"onnxruntime {m.get('onnxruntime') or 'not installed'}; load average at start {m['load_average_at_start']}.",
        f"Model: `{result.config['model']}`; images: {', '.join(result.config['images'])}; "
        f"{result.config['repeats']} repeats, interleaved A B A B with the baseline.",
        "Modes: " + "; ".join(f"`{mode}` {MODE_NAMES[mode]}" for mode in _modes(result)) + ".",
        "",
        "## Latency, batch 1 — speed-up over the baseline (fp32 `generate`, beams 4), median of paired ratios",
        "",
        "| threads | decoding | mode | speed-up | p50 s | p95 s |",
        "|---|---|---|---|---|---|",
    ]
    for t in result.latency:
        lines.append(f"| {t.threads} | {t.decoding} | {t.mode} | **{t.speedup:.2f}×** | {t.p50:.3f} | {t.p95:.3f} |")
    lines += [
        "",
        f"Exact mode (fp32) tokens identical to the baseline on every image: **{result.exact_tokens_identical}**.",
        "",
        "## Throughput, beams 4 — images/s and speed-up over the baseline's batch-1 rate at the same threads "
        "(medians over the repeats)",
        "",
        "| threads | batch | mode | speed-up | images/s | CPU s/image |",
        "|---|---|---|---|---|---|",
    ]
    for tp in sorted(result.throughput, key=lambda x: (x.threads, x.mode, x.batch_size)):
        lines.append(
            f"| {tp.threads} | {tp.batch_size} | {tp.mode} | {tp.speedup:.2f}× | {tp.images_per_second:.2f} | "
            f"{tp.cpu_seconds_per_image:.3f} |"
        )
    lines += ["", "## Cold start: a fresh process, start to first caption (medians)", ""]
    lines += [
        "| what | start → first caption s | of which import s | load s | first caption s | peak RSS MB | "
        "start → exit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result.cold_start:
        lines.append(
            f"| {c.label} | **{_first_caption(c):.2f}** | {_median(c.import_seconds):.2f} | "
            f"{_median(c.load_seconds):.2f} | {_median(c.first_caption_seconds):.2f} | {_median(c.peak_rss_mb):.0f} | "
            f"{_median(c.wall_seconds):.2f} |"
        )
    lines += ["", "| import (fresh process, wall) | median s |", "|---|---|"]
    for label, values in result.import_seconds.items():
        lines.append(f"| `{label}` | {_median(values):.2f} |")
    lines += ["", "## Fidelity of the int8 modes against fp32 (beams 4)", ""]
    lines += ["| model | mode | images | identical captions | token agreement |", "|---|---|---|---|---|"]
    for f in result.fidelity:
        lines.append(
            f"| {f.model} | {MODE_NAMES.get(f.mode, f.mode)} (`{f.mode}`) | {f.images} | {f.identical_captions:.1%} | "
            f"{f.token_agreement:.1%} |"
        )
    lines += _floors_section(result)
    lines += _fast_modes_section(result)
    lines += _lambda_sections(result)
    return "\n".join(lines) + "\n"


def _floors_section(result: BenchResult) -> list[str]:
    floors = result.floors
    if floors is None:
        return []
    return [
        "",
        f"## int8 floors of the onnx artifact on this CPU ({floors.instruction_set}), 1 thread, CPU seconds",
        "",
        "| part | work | measured | rate |",
        "|---|---|---|---|",
        f"| encoder, per image | {floors.encoder_int8_macs_per_image / 1e9:.1f} G int8 multiply-adds | "
        f"{floors.encoder_seconds_per_image:.3f} s | **{floors.encoder_gmacs_per_second:.0f} GMAC/s** |",
        f"| decoder step, batch 1 × beams 4 | {floors.decoder_bytes_per_step / 1e6:.0f} MB of weights read | "
        f"{floors.decoder_step_seconds * 1000:.1f} ms | **{floors.decoder_gigabytes_per_second:.1f} GB/s** |",
        f"| a batch-1 caption ({floors.steps_per_caption} steps) | encoder + steps | "
        f"{floors.batch1_seconds_per_image:.3f} s | |",
        "",
        "The encoder is bound by int8 GEMM throughput (VNNI and AMX raise it); a batch-1 decoder step by the bytes "
        "of weights it reads (batching shares them across images).",
    ]


def _modes(result: BenchResult) -> list[str]:
    seen = {t.mode for t in result.latency}
    return [mode for mode in MODE_NAMES if mode in seen]


def _lambda_sections(result: BenchResult) -> list[str]:
    fastest = fastest_fast_mode(result)
    if fastest is None:
        return ["", "(no 1-thread int8 or onnx throughput measured: no Lambda cost model)"]
    mode, speed = fastest
    name = f"{MODE_NAMES[mode]} (`{mode}`)"
    others = [
        f"`{other}` {other_speed.seconds_1_thread:.3f}"
        for other in FAST_MODES
        if other != mode and (other_speed := speed_for_lambda(result, other)) is not None
    ]
    why = f" (CPU-s/image at 1 thread: `{mode}` {speed.seconds_1_thread:.3f}, {', '.join(others)})" if others else ""
    cold = cold_start_for(result, mode)
    min_memory = int(_median(cold.peak_rss_mb) * RSS_HEADROOM) if cold else 0
    rows = cost_table(speed)
    best = recommend(rows, min_memory_mb=min_memory)
    two = (
        f"{speed.seconds_2_threads:.3f} s wall at 2 threads"
        if speed.seconds_2_threads is not None
        else "no usable 2-thread figure (2 threads were no faster than 1 on this shared machine)"
    )
    lines = [
        "",
        f"## Lambda cost per million images (fastest fast mode: {name}, batch {speed.batch_size} per invocation)",
        "",
        f"The fast mode with the fewest CPU seconds per image at 1 thread{why}. "
        f"From {speed.seconds_1_thread:.3f} CPU-s/image at 1 thread and {two} (batch {speed.batch_size}); "
        f"1 vCPU per 1,769 MB; figures not measured here are marked * (extrapolated with Amdahl's law, "
        f"p = {speed.parallel_fraction:.2f}); arm prices applied to x86 times, not measured on arm.",
        "",
        "| memory MB | vCPUs | threads | s/image | x86_64 $/M | arm64 $/M |",
        "|---|---|---|---|---|---|",
    ]
    by_size: dict[int, dict[str, float]] = {}
    for row in rows:
        by_size.setdefault(row.memory_mb, {})[row.architecture] = row.dollars_per_million
    for row in rows:
        if row.architecture != "x86_64":
            continue
        star = "" if row.measured else "*"
        lines.append(
            f"| {row.memory_mb} | {row.vcpus:.2f} | {row.threads} | {row.seconds_per_image:.3f}{star} | "
            f"{by_size[row.memory_mb]['x86_64']:.2f} | {by_size[row.memory_mb]['arm64']:.2f} |"
        )
    lines += [
        "",
        f"**Recommended: {best.memory_mb} MB, x86_64, batch {speed.batch_size}** — ${best.dollars_per_million:.2f} "
        f"per million images ({best.threads} thread(s), {best.seconds_per_image:.3f} s/image), the cheapest measured "
        f"size with at least {RSS_HEADROOM}× the {name} cold-start peak RSS ({min_memory} MB). "
        "arm64 would be 20% cheaper per GB-second if its speed per vCPU matched; measure before switching.",
        "",
        *_whole_bill_section(best.dollars_per_million - PRICE_PER_REQUEST * 1e6 / speed.batch_size),
        f"## Capacity ({name}, x86_64, batch {speed.batch_size}): images/hour by memory size and reserved concurrency",
        "",
        "| memory MB | " + " | ".join(f"{c} workers" for c in CONCURRENCIES) + " | $ per busy worker-hour |",
        "|---|" + "---|" * (len(CONCURRENCIES) + 1),
    ]
    capacity = capacity_table(speed)
    for memory_mb in MEMORY_SIZES_MB:
        cells = [c for c in capacity if c.memory_mb == memory_mb]
        per_worker = cells[0].dollars_per_hour / cells[0].concurrency
        lines.append(
            f"| {memory_mb} | " + " | ".join(f"{c.images_per_hour:,.0f}" for c in cells) + f" | {per_worker:.3f} |"
        )
    return lines


def best_throughput(result: BenchResult, mode: str, threads: int) -> Throughput | None:
    rows = [t for t in result.throughput if t.mode == mode and t.threads == threads]
    return max(rows, key=lambda t: t.images_per_second) if rows else None


def _whole_bill_section(compute_per_million: float) -> list[str]:
    """The recommended size's whole bill: compute plus every request an image makes on its way (10 per SQS batch)."""
    lines = [
        f"### The whole bill per million images (recommended size, SQS batches of 10; list prices of {PRICES_READ_ON})",
        "",
        "| item | $ per million images |",
        "|---|---:|",
    ]
    lines += [f"| {line.item} | {line.dollars_per_million_images:.2f} |" for line in whole_bill(
        compute_per_million, images_per_invocation=10
    )]  # fmt: skip
    lines += [
        "",
        "Prices (us-east-1): " + "; ".join(f"{p.item} ${p.dollars} per {p.per}" for p in PRICES.values()) + ".",
        "",
    ]
    return lines
